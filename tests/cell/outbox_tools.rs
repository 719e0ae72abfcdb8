//! `mes-edge outbox tail | replay | verify` on a running cell, against Mosquitto and pymodbus:
//! a replay re-publishes the range byte for byte, to a running forwarder within seconds and to
//! a stopped one at its next start.

use crate::common;

use common::cell::{write_config_with, Delivery, GOOD, TOPIC_FILTER};
use common::{Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn outbox(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("outbox")
        .args(args)
        .args(["--config", config.to_str().unwrap()])
        .output()
        .unwrap()
}

fn copies(msgs: &[common::Received], seq: u64) -> usize {
    msgs.iter()
        .filter(|m| m.payload["seq"] == seq && m.topic.contains("/events/"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_replay_and_verify_on_a_running_cell() {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(
        dir.path(),
        peer.port(),
        broker.port(),
        "[health]\nenabled = false\n",
    );
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    assert!(
        collector
            // Parts count from the runtime's first reading of the PLC: make them after it.
            .wait_for(
                |m| m.iter().any(|m| m.topic.ends_with("/device_status")),
                Duration::from_secs(20)
            )
            .await,
        "{}",
        rt.logs()
    );
    let mut plc = Plc::connect(peer.port(), 1).await;
    for good in 1..=8 {
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        collector
            .wait_for(
                |m| Delivery::of(m).parts("good") == 8,
                Duration::from_secs(20)
            )
            .await
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let tail = outbox(&config, &["tail", "-n", "3", "--status"]);
    assert!(tail.status.success());
    let lines: Vec<String> = String::from_utf8_lossy(&tail.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for l in &lines {
        let (seq, rest) = l.split_once(' ').unwrap();
        let (state, json) = rest.split_once(' ').unwrap();
        assert_eq!(state, "delivered");
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["seq"].as_u64().unwrap().to_string(), seq);
    }

    // Replay 2..=5 while running: each arrives once more, the same bytes.
    let before: Vec<usize> = (2..=5).map(|s| copies(&collector.snapshot(), s)).collect();
    let out = outbox(&config, &["replay", "--from", "2", "--to", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("4 events put back") && said.contains("the running service publishes"),
        "asked of the running service's store owner: {said}"
    );
    let again = collector
        .wait_for(
            |m| (2..=5).zip(&before).all(|(s, b)| copies(m, s) > *b),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        again,
        "the running forwarder re-published 2..=5\n{}",
        rt.logs()
    );
    // Delivery::of checks every copy is byte-identical.
    assert!(Delivery::of(&collector.snapshot()).duplicates >= 4);

    // Replay while stopped: sent at the next start.
    assert!(rt.terminate().success());
    let before = copies(&collector.snapshot(), 1);
    let out = outbox(&config, &["replay", "--from", "1", "--to", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the service is stopped"),
        "written by the tool, holding the store: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let stats = String::from_utf8_lossy(&outbox(&config, &["stats"]).stdout).to_string();
    assert!(stats.contains("depth (undelivered): 1"), "{stats}");
    rt.start_again();
    assert!(
        collector
            .wait_for(|m| copies(m, 1) > before, Duration::from_secs(15))
            .await,
        "{}",
        rt.logs()
    );

    // A range beyond the store is refused; verify passes.
    let out = outbox(&config, &["replay", "--from", "1", "--to", "100000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to"));
    assert!(rt.terminate().success());
    let out = outbox(&config, &["verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).ends_with("ok\n"));
}
