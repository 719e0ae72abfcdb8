//! What systemd hears from the real binary, with the test in systemd's place: the sd_notify
//! datagrams on `$NOTIFY_SOCKET` (READY, STATUS, WATCHDOG, RELOADING, STOPPING) and log lines
//! with journald's `<N>` priority prefixes when stderr is the stream `$JOURNAL_STREAM` names.
//! (CI has no running systemd; the unit itself is checked by scripts/ops-checks.sh.)

use crate::common;
use crate::ops_support;

use common::cell::{write_config, write_config_with};
use common::{free_port, ModbusPeer, Mosquitto};
use ops_support::{scrape, signal, with_health, BIN, SIGHUP, SIGTERM};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Datagrams received within `d`.
fn receive(rx: &UnixDatagram, d: Duration) -> Vec<String> {
    let until = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        rx.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(n) = rx.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    out
}

/// Receives until a datagram satisfies `pred` (or `d` passes); returns everything received.
fn receive_until(rx: &UnixDatagram, d: Duration, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let until = Instant::now() + d;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = until.checked_duration_since(Instant::now()) {
        rx.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(n) = rx.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = pred(&msg);
            out.push(msg);
            if done {
                break;
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_status_watchdog_reloading_and_stopping() {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    with_health(&config);
    let (mut rt, rx) = ops_support::run_under_watchdog(&config, dir.path());
    let pid = rt.pid().unwrap();

    let start = tokio::task::block_in_place(|| {
        receive_until(&rx, Duration::from_secs(15), |m| {
            m.contains("devices online 1/1, broker connected")
        })
    });
    // First more start time for the store's check (a large store's may outlast
    // TimeoutStartSec), then READY; the status says 1/1 in it or in a later STATUS=, depending
    // on whether the PLC answered before the runtime was up.
    assert!(
        start[0].starts_with("EXTEND_TIMEOUT_USEC=") && start[0].contains("STATUS=opening"),
        "more start time asked for first: {start:?}\n{}",
        rt.logs()
    );
    assert!(
        start[1].starts_with("READY=1\nSTATUS=devices online"),
        "READY=1 with a STATUS next: {start:?}\n{}",
        rt.logs()
    );
    assert!(
        start
            .iter()
            .any(|m| m.contains("STATUS=devices online 1/1, broker connected, outbox depth")),
        "STATUS once the device answers: {start:?}"
    );

    let running = tokio::task::block_in_place(|| receive(&rx, Duration::from_millis(3500)));
    let pings = running.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(pings >= 2, "watchdog pings while well: {running:?}");

    signal(pid, SIGHUP);
    let reload = tokio::task::block_in_place(|| {
        receive_until(&rx, Duration::from_secs(10), |m| m.starts_with("READY=1"))
    });
    let reloading = reload.iter().position(|m| m == "RELOADING=1");
    let ready = reload.iter().position(|m| m.starts_with("READY=1"));
    assert!(
        matches!((reloading, ready), (Some(a), Some(b)) if a < b),
        "RELOADING=1 then READY=1: {reload:?}"
    );

    signal(pid, SIGTERM);
    let stop = tokio::task::block_in_place(|| {
        receive_until(&rx, Duration::from_secs(10), |m| m == "STOPPING=1")
    });
    assert!(stop.iter().any(|m| m == "STOPPING=1"), "{stop:?}");
    let status = rt
        .wait_exit(Duration::from_secs(10))
        .expect("exits after SIGTERM");
    assert!(status.success(), "exit 0: {status}\n{}", rt.logs());
}

/// Sparkplug B only (`json = false`): no JSON forwarder turns, and the Sparkplug session stands
/// in for it. Under the shipped unit's watchdog (here 4 s, so a loop silent for 3 s is hung)
/// the pings go on and `/health` stays 200 while the PLC makes parts and while it makes none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_only_keeps_its_watchdog_and_health() {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        dir.path(),
        peer.port(),
        broker.port(),
        "[sparkplug]\nenabled = true\njson = false\n",
    );
    let health = with_health(&config);
    let (mut rt, rx) = ops_support::run_under_watchdog(&config, dir.path());
    let start = tokio::task::block_in_place(|| {
        receive_until(&rx, Duration::from_secs(15), |m| m.starts_with("READY=1"))
    });
    assert!(
        start.iter().any(|m| m.starts_with("READY=1")),
        "{start:?}\n{}",
        rt.logs()
    );
    let mut plc = common::Plc::connect(peer.port(), 1).await;
    // Read all the while: the socket queues only a few datagrams (net.unix.max_dgram_qlen),
    // and what systemd would have read at once must not be refused for the test's sake.
    let mut seen = Vec::new();
    for (i, good) in (1..=10u32).enumerate() {
        plc.write_u32(common::cell::GOOD, good).await;
        let h = scrape(health, "/health", false);
        assert_eq!(
            h.status,
            200,
            "parts made, {i} s in: {}\n{}",
            h.body,
            rt.logs()
        );
        seen.extend(tokio::task::block_in_place(|| {
            receive(&rx, Duration::from_secs(1))
        }));
    }
    // Ten seconds without a part: nothing is committed, nothing published.
    let idle = tokio::task::block_in_place(|| receive(&rx, Duration::from_secs(10)));
    let pings = idle.iter().filter(|m| *m == "WATCHDOG=1").count();
    assert!(
        pings >= 5,
        "watchdog pings while idle: {idle:?}\n{}",
        rt.logs()
    );
    let h = scrape(health, "/health", false);
    assert_eq!(h.status, 200, "{}\n{}", h.body, rt.logs());
    let body: serde_json::Value = serde_json::from_str(&h.body).unwrap();
    assert_eq!(body["broker"]["connected"], true, "{}", h.body);
    // The one sink enabled, caught up: every part's event acknowledged by its broker.
    let sinks = body["sinks"].as_array().unwrap();
    assert_eq!(sinks.len(), 1, "{}", h.body);
    let sink = &sinks[0];
    assert_eq!(
        (&sink["name"], &sink["connected"], &sink["depth"]),
        (&"sparkplug".into(), &true.into(), &0.into()),
        "{}",
        h.body
    );
    assert!(sink["last_acknowledged"].is_string(), "{}", h.body);
    // STATUS= goes with READY and then when it changes: the last one, whenever it came (READY's
    // own, when the session was up before it and nothing changed since), is what systemctl shows.
    let last_status = start
        .iter()
        .chain(&seen)
        .chain(&idle)
        .rfind(|m| m.contains("STATUS="));
    assert!(
        last_status.is_some_and(|m| m.contains("sparkplug connected, 0 events waiting")),
        "STATUS= names the sink: {start:?} {seen:?} {idle:?}"
    );
    let metrics = scrape(health, "/metrics", false).body;
    assert!(
        metrics.contains("mes_edge_sink_depth{sink=\"sparkplug\"} 0\n")
            && !metrics.contains("sink=\"events\""),
        "{metrics}"
    );
    assert!(rt.terminate().success(), "{}", rt.logs());
}

/// `(dev, inode)` of an open file, as `$JOURNAL_STREAM` gives them.
fn dev_ino(f: &std::fs::File) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = f.metadata().unwrap();
    format!("{}:{}", m.dev(), m.ino())
}

#[test]
fn log_lines_carry_journald_priorities_only_when_stderr_is_the_journal_stream() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on these ports: the device and the broker stay away, which is logged as
    // warnings; a broken config at reload is logged as errors.
    let config = write_config(dir.path(), free_port(), free_port());
    with_health(&config);
    let run = |journal: bool| -> String {
        let log = dir.path().join(format!("stderr-{journal}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let stream = if journal {
            dev_ino(&file)
        } else {
            "1:1".into()
        };
        let mut child = Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("JOURNAL_STREAM", stream)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let good = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            good.replace("poll_interval_ms = 100", "poll_interval_ms = 0"),
        )
        .unwrap();
        signal(child.id(), SIGHUP);
        std::thread::sleep(Duration::from_millis(500));
        std::fs::write(&config, good).unwrap();
        signal(child.id(), SIGTERM);
        assert!(child.wait().unwrap().success());
        std::fs::read_to_string(&log).unwrap()
    };

    let journal = run(true);
    assert!(!journal.is_empty());
    for line in journal.lines() {
        let p = line.get(..3).unwrap_or_default();
        assert!(
            ["<3>", "<4>", "<6>", "<7>"].contains(&p),
            "no priority prefix: {line:?}\n{journal}"
        );
        // journald stamps lines itself: no timestamp of our own.
        assert!(!line[3..].starts_with("20"), "a timestamp: {line:?}");
    }
    assert!(
        journal.contains("<6> INFO mes_edge::runtime: running"),
        "{journal}"
    );
    assert!(
        journal.lines().any(|l| l.starts_with("<4> WARN")),
        "warnings: {journal}"
    );
    assert!(
        journal
            .lines()
            .any(|l| l.starts_with("<3>ERROR") && l.contains("poll interval")),
        "errors: {journal}"
    );

    // JOURNAL_STREAM left over from a parent, stderr elsewhere: plain, stamped lines.
    let plain = run(false);
    assert!(plain.lines().all(|l| !l.starts_with('<')), "{plain}");
    assert!(plain.lines().next().unwrap().starts_with("20"), "{plain}");
}
