//! Peers for the Modbus tests: `tests/peers/modbus_lab.py` (pymodbus) as a PLC on Modbus TCP,
//! RTU over TCP and a serial port at once, a server that answers garbage, pymodbus's own decoder
//! for reading back what the runtime wrote, and a socat pseudo-terminal pair as the serial line.
//! Like the rest of the harness, a missing peer is a panic that says to run scripts/test.sh.

use super::process::{PeerProcess, Ready};
use super::{free_port, python_bin};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub fn lab_script() -> PathBuf {
    super::peer_script("modbus_lab.py")
}

/// The socat binary (`MES_EDGE_SOCAT`, set by scripts/test.sh); panics if unset or missing.
pub fn socat_bin() -> PathBuf {
    super::required_env_file("MES_EDGE_SOCAT")
}

/// Which listeners a [`LabPeer`] opens, and how it behaves.
#[derive(Default, Clone)]
pub struct LabOptions {
    pub tcp: bool,
    pub rtu_over_tcp: bool,
    /// RTU on this serial port (e.g. one end of a [`SocatPair`]), 19200 8N1.
    pub serial: Option<PathBuf>,
    pub unit_ids: Vec<u8>,
    pub init: Option<serde_json::Value>,
    pub delay_ms: Option<u64>,
    pub count_reads_at: Option<u16>,
}

/// `modbus_lab.py <args>` in `process`, up once it printed its READY line; panics if it does not
/// come up.
fn spawn_lab(mut process: PeerProcess, args: Vec<String>) -> PeerProcess {
    let mut cmd = Command::new(python_bin());
    cmd.arg("-u").arg(lab_script()).args(&args);
    let ready = Ready::Line(Box::new(|line| line.starts_with("READY")));
    if let Err(e) = process.spawn(cmd, ready) {
        panic!("modbus_lab.py ({args:?}) did not get ready: {e}");
    }
    process
}

fn lab_process(mode: &str) -> PeerProcess {
    PeerProcess::new(
        &format!("modbus_lab.py {mode}"),
        &format!("mes-edge-modbus-lab-{mode}-"),
        "stdout.log",
        "stderr.log",
    )
}

/// The pymodbus PLC of the Modbus tests; see the docstring of `tests/peers/modbus_lab.py`.
pub struct LabPeer {
    pub tcp_port: u16,
    pub rtu_over_tcp_port: u16,
    _process: PeerProcess,
}

impl LabPeer {
    pub fn start(opts: LabOptions) -> LabPeer {
        let process = lab_process("serve");
        let (tcp_port, rtu_over_tcp_port) = (free_port(), free_port());
        let mut args = vec!["serve".to_string()];
        if opts.tcp {
            args.extend(["--tcp".into(), tcp_port.to_string()]);
        }
        if opts.rtu_over_tcp {
            args.extend(["--rtu-tcp".into(), rtu_over_tcp_port.to_string()]);
        }
        if let Some(port) = &opts.serial {
            // 8N1: pyserial's even or odd parity setting is refused (EINVAL) by a Linux
            // pseudo-terminal, which has no parity to set.
            args.extend(["--serial".into(), port.display().to_string()]);
            args.extend(["--parity".into(), "N".into()]);
        }
        let units = if opts.unit_ids.is_empty() {
            vec![1]
        } else {
            opts.unit_ids.clone()
        };
        let units: Vec<String> = units.iter().map(|u| u.to_string()).collect();
        args.extend(["--unit-ids".into(), units.join(",")]);
        if let Some(init) = &opts.init {
            let path = process.dir().join("init.json");
            std::fs::write(&path, serde_json::to_vec_pretty(init).unwrap()).unwrap();
            args.extend(["--init".into(), path.display().to_string()]);
        }
        if let Some(ms) = opts.delay_ms {
            args.extend(["--delay-ms".into(), ms.to_string()]);
        }
        if let Some(a) = opts.count_reads_at {
            args.extend(["--count-reads-at".into(), a.to_string()]);
        }
        LabPeer {
            tcp_port,
            rtu_over_tcp_port,
            _process: spawn_lab(process, args),
        }
    }
}

/// A TCP server that answers every Modbus request with something that is not a correct reply.
pub struct GarbagePeer {
    pub port: u16,
    _process: PeerProcess,
}

impl GarbagePeer {
    pub fn start() -> GarbagePeer {
        let port = free_port();
        let args = vec!["garbage".into(), "--port".into(), port.to_string()];
        GarbagePeer {
            port,
            _process: spawn_lab(lab_process("garbage"), args),
        }
    }
}

/// Reads holding registers (or coils) with pymodbus's client and decodes them with pymodbus's
/// `convert_from_registers`: `spec` is a list of `{"address", "type", "order"[, "length"]}` or
/// `{"address", "coil": true}`.
pub fn pymodbus_decode(port: u16, unit: u8, spec: &serde_json::Value) -> Vec<serde_json::Value> {
    let out = Command::new(python_bin())
        .arg(lab_script())
        .args([
            "decode",
            "--port",
            &port.to_string(),
            "--unit",
            &unit.to_string(),
        ])
        .args(["--spec", &spec.to_string()])
        .output()
        .expect("run modbus_lab.py decode");
    assert!(
        out.status.success(),
        "modbus_lab.py decode failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("decode prints a JSON list")
}

/// Two connected pseudo-terminals made by socat: one end for the PLC, one for the runtime.
pub struct SocatPair {
    pub plc_end: PathBuf,
    pub runtime_end: PathBuf,
    _process: PeerProcess,
}

impl SocatPair {
    pub fn start() -> SocatPair {
        let mut process = PeerProcess::new("socat", "mes-edge-socat-", "socat.log", "socat.log")
            .start_timeout(Duration::from_secs(10));
        let (a, b) = (process.dir().join("plc"), process.dir().join("runtime"));
        let mut cmd = Command::new(socat_bin());
        cmd.arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()));
        let (pa, pb) = (a.clone(), b.clone());
        let up = move |_: &str| pa.exists() && pb.exists();
        if let Err(e) = process.spawn(cmd, Ready::Check(Box::new(up))) {
            panic!("socat made no pty pair: {e}");
        }
        SocatPair {
            plc_end: a,
            runtime_end: b,
            _process: process,
        }
    }
}

/// A cell config around the given `[[devices]]` tables (no signals; a store and broker that the
/// driver tests never open).
pub fn cell_config(devices: &str) -> String {
    format!(
        "[cell]\nenterprise = \"acme\"\nsite = \"plant1\"\narea = \"a\"\nline = \"l\"\ncell = \"c\"\n\n\
         {devices}\n\n[store]\npath = \"cell.db\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n"
    )
}

/// The runtime's drivers (any protocol), built from a cell config as the runtime builds them (the
/// checked config's driver specs, started), with everything they report recorded.
pub struct Drivers {
    events: std::sync::Arc<std::sync::Mutex<Vec<(Instant, mes_edge_drivers::DeviceEvent)>>>,
    stop: tokio::sync::watch::Sender<bool>,
    writes: std::collections::HashMap<
        mes_edge_drivers::TagId,
        tokio::sync::mpsc::Sender<mes_edge_drivers::WriteRequest>,
    >,
    tags: Vec<String>,
    tasks: tokio::task::JoinSet<()>,
}

impl Drivers {
    /// Checks the config (panics with its problems) and starts a task per driver.
    pub fn start(config_text: &str) -> Drivers {
        let config = mes_edge::config::parse(Path::new("cell.toml"), config_text)
            .unwrap_or_else(|e| panic!("test config does not check:\n{e}\n{config_text}"));
        let tags = config
            .numbered_tags()
            .iter()
            .map(|(_, _, t)| t.name().to_string())
            .collect();
        let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        let mut writes = std::collections::HashMap::new();
        for spec in config.drivers.iter().cloned() {
            let driver = spec.start(tx.clone(), stopped.clone()).unwrap();
            tasks.spawn(driver.task);
            writes.extend(driver.writers);
        }
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        tasks.spawn(async move {
            while let Some(ev) = rx.recv().await {
                sink.lock().unwrap().push((Instant::now(), ev));
            }
        });
        Drivers {
            events,
            stop,
            writes,
            tags,
            tasks,
        }
    }

    pub fn tag_id(&self, name: &str) -> mes_edge_drivers::TagId {
        let i = self
            .tags
            .iter()
            .position(|t| t == name)
            .unwrap_or_else(|| panic!("no tag {name:?}"));
        mes_edge_drivers::TagId(i as u32)
    }

    /// Every sample of tag `name` so far, with when it arrived.
    pub fn samples(&self, name: &str) -> Vec<(Instant, mes_edge_drivers::Sample)> {
        let id = self.tag_id(name);
        let events = self.events.lock().unwrap();
        events
            .iter()
            .filter_map(|(at, ev)| match ev {
                mes_edge_drivers::DeviceEvent::Samples { samples, .. } => Some(
                    samples
                        .iter()
                        .filter(|s| s.tag == id)
                        .map(|s| (*at, s.clone()))
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn latest(&self, name: &str) -> Option<mes_edge_drivers::Sample> {
        self.samples(name).pop().map(|(_, s)| s)
    }

    /// Online (true) / offline (false) reports of device number `device`, in order.
    pub fn statuses(&self, device: u32) -> Vec<bool> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, ev)| match ev {
                mes_edge_drivers::DeviceEvent::Status {
                    device: d, status, ..
                } if d.0 == device => Some(*status == mes_edge_drivers::DeviceStatus::Online),
                _ => None,
            })
            .collect()
    }

    /// Waits until every named tag has a sample, good or bad.
    pub async fn wait_all(&self, names: &[&str], timeout: Duration) -> bool {
        super::eventually(timeout, || names.iter().all(|n| self.latest(n).is_some())).await
    }

    /// A write-back, as the work-order engine makes it.
    /// Writes through the driver as the runtime does, with the driver's answer; a tag with no
    /// write channel or a driver that never answers is a failure of the test, not an answer.
    pub async fn write(
        &self,
        name: &str,
        value: mes_edge_drivers::Value,
    ) -> Result<(), mes_edge_drivers::DriverError> {
        let Some(tx) = self.writes.get(&self.tag_id(name)) else {
            return Err(mes_edge_drivers::DriverError::configuration(format!(
                "no write channel for {name:?} (is it `write = true`?)"
            )));
        };
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(mes_edge_drivers::WriteRequest {
            tag: self.tag_id(name),
            value,
            reply,
        })
        .await
        .expect("the driver is gone");
        tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("no reply within 10 s")
            .expect("the driver dropped the write")
    }

    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        tokio::time::timeout(Duration::from_secs(5), async {
            while self.tasks.len() > 1 {
                self.tasks.join_next().await;
            }
        })
        .await
        .expect("the drivers stop within 5 s");
        self.tasks.abort_all();
    }
}
