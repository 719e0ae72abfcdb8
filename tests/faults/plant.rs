//! The production scenario every fault is injected into: Mosquitto as the plant's broker (it
//! keeps sessions across its own restart, as a plant's broker does), pymodbus as the PLC, the
//! simulated machine writing into it, MOM sending a few order commands and collecting every
//! message, and the runtime under test, optionally behind the fault proxy.

use crate::common::cell::{write_config_with, COMMAND_TOPIC, TOPIC_FILTER};
use crate::common::{
    eventually, mqtt_publish, unique_name, Collector, ModbusPeer, Mosquitto, RuntimeProcess,
};
use crate::machine::{Machine, Registers};
use crate::proxy::FaultProxy;
use crate::verdict::{Report, Verdict};
use rumqttc::QoS;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

pub struct Options {
    /// The runtime reaches the broker through the fault proxy.
    pub via_proxy: bool,
    /// Where the store goes (a small filesystem for the disk-full scenario); default: the
    /// plant's temp dir.
    pub store_dir: Option<PathBuf>,
    /// The PLC's counters at start.
    pub start: Registers,
    /// One machine step (a part while running).
    pub cycle: Duration,
    pub poll_ms: u64,
    /// Extra TOML for the cell config.
    pub extra: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            via_proxy: false,
            store_dir: None,
            start: Registers::default(),
            cycle: Duration::from_millis(20),
            poll_ms: 100,
            extra: String::new(),
        }
    }
}

pub struct Plant {
    pub name: &'static str,
    pub broker: Mosquitto,
    pub peer: ModbusPeer,
    pub collector: Collector,
    pub proxy: Option<FaultProxy>,
    pub runtime: RuntimeProcess,
    pub machine: Option<Machine>,
    _dir: tempfile::TempDir,
    pub config: PathBuf,
    pub store: PathBuf,
    clock_file: PathBuf,
    clock_offset_ms: i64,
    /// Faults injected so far, and kill -9 cycles among them.
    pub faults: u64,
    pub kills: u64,
    commands: Vec<String>,
    orders: u64,
    pid: Arc<AtomicU32>,
    pub max_rss_kb: Arc<AtomicU64>,
    rss_task: tokio::task::JoinHandle<()>,
    pub started: Instant,
}

impl Plant {
    pub async fn start(name: &'static str, opts: Options) -> Plant {
        let started = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("mes-edge-faults-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(dir.path().join("broker")).unwrap();
        // Mosquitto started as root drops to the `mosquitto` user: it must reach and write its
        // persistence folder, or it loses every session at a restart.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        mode(dir.path(), 0o755).unwrap();
        mode(&dir.path().join("broker"), 0o777).unwrap();
        let broker = Mosquitto::start_with_config(&format!(
            "persistence true\npersistence_location {}/\n",
            dir.path().join("broker").display()
        ));
        let peer = ModbusPeer::start();
        let collector =
            Collector::start_persistent(broker.port(), TOPIC_FILTER, &unique_name("mom")).await;
        let proxy = if opts.via_proxy {
            Some(FaultProxy::start(broker.port()).await)
        } else {
            None
        };
        let mqtt_port = proxy.as_ref().map_or(broker.port(), |p| p.port());
        let extra = format!("[health]\nenabled = false\n\n{}", opts.extra);
        let config = write_config_with(dir.path(), peer.port(), mqtt_port, &extra);
        let store = opts
            .store_dir
            .clone()
            .unwrap_or_else(|| dir.path().to_path_buf())
            .join("cell.db");
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text
            .replace(
                "path = \"cell.db\"",
                &format!("path = {:?}", store.display().to_string()),
            )
            .replace(
                "poll_interval_ms = 100",
                &format!("poll_interval_ms = {}", opts.poll_ms),
            );
        std::fs::write(&config, text).unwrap();
        let clock_file = dir.path().join("clock-offset-ms");
        std::fs::write(&clock_file, "0").unwrap();
        let machine = Machine::start(peer.port(), opts.cycle, opts.start).await;
        let runtime = RuntimeProcess::spawn_with(
            BIN,
            ["run", "--config", config.to_str().unwrap()],
            [("MES_EDGE_TEST_CLOCK_OFFSET_FILE", clock_file.as_os_str())],
            None,
        );
        let pid = Arc::new(AtomicU32::new(runtime.pid().unwrap()));
        let max_rss_kb = Arc::new(AtomicU64::new(0));
        let rss_task = tokio::spawn(sample_rss(pid.clone(), max_rss_kb.clone()));
        let plant = Plant {
            name,
            broker,
            peer,
            collector,
            proxy,
            runtime,
            machine: Some(machine),
            _dir: dir,
            config,
            store,
            clock_file,
            clock_offset_ms: 0,
            faults: 0,
            kills: 0,
            commands: Vec::new(),
            orders: 0,
            pid,
            max_rss_kb,
            rss_task,
            started,
        };
        plant.wait_online(1).await;
        // Parts count from the runtime's first reading (its baseline): the machine starts now.
        plant.machine().resume();
        plant
    }

    pub fn machine(&self) -> &Machine {
        self.machine.as_ref().unwrap()
    }

    /// Stops the machine and waits until MOM has every part it made, so the runtime has read
    /// its last counter values. A counter reset or a PLC that loses its counters destroys the
    /// parts made since the last reading, in the plant as here (docs/RELIABILITY.md); scenarios
    /// that want exact totals across one stop the machine first. The wait also covers a runtime
    /// still backing off from a PLC that was away (its reconnect backoff grows to 30 s).
    pub async fn pause_and_settle(&self) {
        self.machine().pause().await;
        let (good, scrap) = (self.machine().good(), self.machine().scrap());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let d = crate::common::cell::Delivery::of(&self.collector.snapshot());
            if (d.parts("good"), d.parts("scrap")) == (good, scrap) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: the runtime did not count the machine's {good}+{scrap} parts within 90 s (has {}+{})\n{}",
                self.name,
                d.parts("good"),
                d.parts("scrap"),
                self.runtime.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn proxy(&self) -> &FaultProxy {
        self.proxy.as_ref().expect("a plant started with via_proxy")
    }

    /// How many times the device has been reported online so far.
    pub fn online_count(&self) -> usize {
        online_reports(&self.collector.snapshot())
    }

    /// Counter resets MOM has had, per counter (good, scrap).
    pub fn resets(&self) -> (usize, usize) {
        resets(&self.collector.snapshot())
    }

    /// Waits until the runtime has confirmed the drop to zero of each counter that stood above
    /// zero (`was`: its value before), counting resets from `before` (see [`Plant::resets`]).
    /// A counter near zero that restarts and counts straight back to its old value before the
    /// drop is confirmed looks like a glitch when nothing else says restart, and those parts are
    /// lost (docs/EVENTS.md, rule 7 and "Where the count cannot be exact"): a counter at 1 that
    /// makes one part reads 0, 1. Across a reconnect, or as the other counter restarts, it is a
    /// restart. A scenario that wants exact totals lets the runtime confirm the reset first.
    pub async fn wait_resets_confirmed(&self, before: (usize, usize), was: (u32, u16)) {
        let want = (
            before.0 + usize::from(was.0 > 0),
            before.1 + usize::from(was.1 > 0),
        );
        let ok = self
            .collector
            .wait_for(
                |m| {
                    let (g, s) = resets(m);
                    g >= want.0 && s >= want.1
                },
                Duration::from_secs(30),
            )
            .await;
        assert!(
            ok,
            "{}: the runtime did not confirm the counters' reset (from {was:?})\n{}",
            self.name,
            self.runtime.logs()
        );
    }

    /// Waits until the device has been reported online `n` times.
    pub async fn wait_online(&self, n: usize) {
        let ok = self
            .collector
            .wait_for(|m| online_reports(m) >= n, Duration::from_secs(45))
            .await;
        assert!(
            ok,
            "{}: device not online (#{n})\n{}",
            self.name,
            self.runtime.logs()
        );
    }

    /// Panics if the runtime exited on its own: it never does outside the documented cases.
    pub fn assert_running(&mut self) {
        if !self.runtime.is_running() {
            panic!(
                "{}: the runtime exited by itself ({:?})\n{}",
                self.name,
                self.runtime.last_status(),
                self.runtime.logs()
            );
        }
    }

    /// kill -9: a power cut of the line-side PC as far as the process can tell.
    pub fn kill_runtime(&mut self) {
        self.assert_running();
        self.runtime.kill9();
        self.faults += 1;
        self.kills += 1;
    }

    pub fn restart_runtime(&mut self) {
        self.runtime.start_again();
        self.pid
            .store(self.runtime.pid().unwrap(), Ordering::SeqCst);
    }

    /// Steps the runtime's wall clock by `delta_ms` (see drivers/src/clock.rs).
    pub async fn step_clock(&mut self, delta_ms: i64) {
        self.clock_offset_ms += delta_ms;
        let tmp = self.clock_file.with_extension("tmp");
        std::fs::write(&tmp, self.clock_offset_ms.to_string()).unwrap();
        std::fs::rename(&tmp, &self.clock_file).unwrap();
        self.faults += 1;
        // The runtime re-reads the offset every 50 ms.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }

    /// MOM's next order command, in a cycle: store and start an order, pause it, resume it,
    /// stop it. Sent to the broker directly (MOM is not behind the cell's network fault).
    pub async fn order_step(&mut self) {
        let n = self.commands.len() as u64;
        let id = format!("WO-{}", self.orders);
        let correlation = format!("mom-{}-{n}", self.name.replace(' ', "-"));
        let body = match n % 4 {
            0 => {
                self.orders += 1;
                let id = format!("WO-{}", self.orders);
                format!(
                    r#""command":"store_and_start","order":{{"id":"{id}","material":"BRK-220","quantity":0}}"#
                )
            }
            1 => format!(r#""command":"pause","order_id":"{id}","reason":"material shortage""#),
            2 => format!(r#""command":"resume","order_id":"{id}""#),
            _ => format!(r#""command":"stop","order_id":"{id}""#),
        };
        let payload = format!(r#"{{"correlation_id":"{correlation}",{body}}}"#);
        mqtt_publish(
            self.broker.port(),
            COMMAND_TOPIC,
            payload,
            QoS::AtLeastOnce,
            false,
            Duration::from_secs(30),
        )
        .await;
        self.commands.push(correlation);
    }

    pub fn commands(&self) -> &[String] {
        &self.commands
    }

    /// Stops the machine, waits until everything committed has reached MOM, checks the pass
    /// criteria, stops the runtime cleanly and verifies the store. Panics on any failure.
    pub async fn finish(mut self, cycles: u64, seed: Option<u64>) -> Report {
        let (good, scrap) = self.machine.take().unwrap().stop().await;
        self.assert_running();
        let verdict = Verdict::wait_for_delivery(&self, good, scrap, Duration::from_secs(90)).await;
        let report = verdict.check(&self, good, scrap, cycles, seed);
        self.assert_running();
        let status = self.runtime.terminate();
        assert!(
            status.success(),
            "{}: SIGTERM gave {status}\n{}",
            self.name,
            self.runtime.logs()
        );
        let verify = std::process::Command::new(BIN)
            .args([
                "outbox",
                "verify",
                "--config",
                self.config.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            verify.status.success(),
            "{}: outbox verify failed:\n{}{}",
            self.name,
            String::from_utf8_lossy(&verify.stdout),
            String::from_utf8_lossy(&verify.stderr)
        );
        self.rss_task.abort();
        report.print(self.started.elapsed());
        report
    }

    pub fn store_path(&self) -> &Path {
        &self.store
    }
}

fn resets(msgs: &[crate::common::Received]) -> (usize, usize) {
    let d = crate::common::cell::Delivery::of(msgs);
    let n = |counter: &str| {
        d.of_type("counter_reset")
            .filter(|e| e["data"]["counter"] == counter)
            .count()
    };
    (n("good"), n("scrap"))
}

fn online_reports(msgs: &[crate::common::Received]) -> usize {
    msgs.iter()
        .filter(|m| {
            m.topic.ends_with("/events/device_status") && m.payload["data"]["online"] == true
        })
        .map(|m| m.payload["seq"].as_u64())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The runtime's resident memory, sampled every 100 ms; the maximum seen.
async fn sample_rss(pid: Arc<AtomicU32>, max_kb: Arc<AtomicU64>) {
    loop {
        if let Some(kb) = rss_kb(pid.load(Ordering::SeqCst)) {
            max_kb.fetch_max(kb, Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// VmRSS of a process, in kB.
pub fn rss_kb(pid: u32) -> Option<u64> {
    crate::common::process::memory_kb(pid, "VmRSS")
}

/// Waits until `cond` or panics with `what`.
pub async fn must(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        eventually(timeout, cond).await,
        "timed out waiting for {what}"
    );
}
