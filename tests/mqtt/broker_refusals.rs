//! A broker that refuses the cell's events: Mosquitto with an ACL that denies the cell's event
//! topics, the routine misconfiguration of a plant broker. Under MQTT 5 (the default) each
//! refused publish comes back as PUBACK 0x87 "not authorized": the events stay in the outbox,
//! `/health` says why with a 503, `/metrics` counts the refusals by reason, the status topic
//! says `refused: …`; once the ACL allows the topics every event arrives, nothing lost.
//! Under MQTT 3.1.1 the same broker acknowledges and drops them: the second test pins down that
//! limit (documented in docs/RELIABILITY.md) so that nobody mistakes it for a guarantee. The
//! third checks that the MQTT 5 session outlives the connection (a command queued while the
//! runtime is down is answered after its restart).

use crate::common;
use crate::ops_support;

use common::cell::{write_config_with, Delivery, GOOD};
use common::{Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use ops_support::{outbox_stats, sample, scrape, statuses, with_health, BIN};
use std::time::Duration;

const CELL: &str = "mes/acme/plant1/pressing/line2/press4";

/// Anonymous clients (the cell and the MOM-side collector) may read everything and write the
/// cell's status topic and responses, but not its events.
fn acl_denying_events() -> String {
    format!("topic read mes/#\ntopic write {CELL}/status\ntopic write {CELL}/responses\n")
}

fn acl_allowing_all() -> String {
    "topic readwrite mes/#\n".to_string()
}

/// A broker whose `acl_file` lives in a folder of its own (kept while the broker runs).
fn broker_with_acl(acl: &str) -> (Mosquitto, tempfile::TempDir) {
    let dir = tempfile::Builder::new()
        .prefix("mes-edge-acl-")
        .tempdir()
        .unwrap();
    {
        // Mosquitto reads the ACL file as the `mosquitto` user (it drops root first).
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = dir.path().join("acl");
    std::fs::write(&path, acl).unwrap();
    let broker = Mosquitto::start_with_config(&format!("acl_file {}\n", path.display()));
    (broker, dir)
}

fn part_events(c: &Collector) -> usize {
    c.snapshot()
        .iter()
        .filter(|m| m.topic.contains("/events/part_count"))
        .count()
}

async fn make_parts(plc: &mut Plc, from: u32, n: u32) -> u32 {
    for i in 1..=n {
        plc.write_u32(GOOD, from + i).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    from + n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_broker_refuses_stay_in_the_outbox_show_in_health_and_arrive_once_allowed() {
    let (broker, acl_dir) = broker_with_acl(&acl_denying_events());
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), "mes/#").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), "");
    let health = with_health(&config);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);

    // Parts made while the broker refuses every event.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let good = make_parts(&mut plc, 0, 12).await;

    let mut h = scrape(health, "/health", false);
    for _ in 0..100 {
        if h.status == 503 && h.body.contains("refused") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        h = scrape(health, "/health", false);
    }
    assert_eq!(
        h.status,
        503,
        "/health while refused: {}\n{}",
        h.body,
        rt.logs()
    );
    let problems = h.json["problems"].to_string();
    assert!(
        problems.contains("the broker refused") && problems.contains("not authorized (0x87)"),
        "/health names the reason: {problems}"
    );
    assert!(h.json["broker"]["refused_held"].as_u64().unwrap() > 0);
    let (depth, last_seq) = outbox_stats(&config);
    assert!(
        depth >= 12 && depth == last_seq,
        "every event undelivered in the store: depth {depth}, last seq {last_seq}"
    );
    assert_eq!(part_events(&collector), 0, "the broker dropped them");
    let m = scrape(health, "/metrics", true);
    let refused = sample(
        &m.families,
        "mes_edge_events_refused_total",
        &[("reason", "not_authorized"), ("code", "0x87")],
    )
    .unwrap_or_else(|| panic!("refusal metric in {}", m.body));
    assert!(refused >= 12.0, "refusals counted: {refused}");
    let said_refused = collector
        .wait_for(
            |m| statuses(m).iter().any(|(s, _)| s.starts_with("refused: ")),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        said_refused,
        "status topic: {:?}",
        statuses(&collector.snapshot())
    );
    let log = rt.logs();
    assert!(
        log.contains("the broker refused an event") && log.contains("not authorized (0x87)"),
        "the refusal is in the log:\n{log}"
    );
    // The re-sends back off and probe: after a backoff (1 s, 2 s, 4 s, …) the first held event
    // of each type goes again, not every held event; in 6 s that is fewer than the held events.
    let before = scrape(health, "/metrics", true);
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = scrape(health, "/metrics", true);
    let count = |s: &ops_support::Scrape| {
        sample(
            &s.families,
            "mes_edge_events_refused_total",
            &[("reason", "not_authorized"), ("code", "0x87")],
        )
        .unwrap()
    };
    let resent = count(&after) - count(&before);
    println!("refusals in 6 s of backoff: {resent} (depth {depth})");
    assert!(
        resent >= 1.0 && resent < depth as f64,
        "re-sends back off: {resent} refusals in 6 s for {depth} held events"
    );

    // The plant fixes its ACL; Mosquitto reads it again at SIGHUP.
    std::fs::write(acl_dir.path().join("acl"), acl_allowing_all()).unwrap();
    broker.reload();
    let good = make_parts(&mut plc, good, 5).await;
    let all = collector
        .wait_for(
            |m| Delivery::of(m).parts("good") >= good as u64,
            Duration::from_secs(90),
        )
        .await;
    let d = Delivery::of(&collector.snapshot());
    assert!(
        all,
        "every part once allowed: {} of {good}\n{}\n{}",
        d.parts("good"),
        rt.logs(),
        broker.logs()
    );
    d.assert_gap_free();
    assert_eq!(
        d.parts("good"),
        good as u64,
        "nothing lost, nothing counted twice"
    );
    let mut h = scrape(health, "/health", false);
    for _ in 0..50 {
        if h.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        h = scrape(health, "/health", false);
    }
    assert_eq!(h.status, 200, "healthy again: {}", h.body);
    let mut depth = outbox_stats(&config).0;
    for _ in 0..50 {
        if depth == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        depth = outbox_stats(&config).0;
    }
    assert_eq!(depth, 0, "all delivered");
    let online_again = collector
        .wait_for(
            |m| statuses(m).last().is_some_and(|(s, _)| s == "online"),
            Duration::from_secs(10),
        )
        .await;
    assert!(online_again, "{:?}", statuses(&collector.snapshot()));
    assert!(rt.terminate().success(), "clean exit\n{}", rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_mqtt_3_1_1_a_refusal_is_invisible_and_the_events_are_lost() {
    let (broker, _acl_dir) = broker_with_acl(&acl_denying_events());
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), "mes/#").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), "");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "keep_alive_s = 5",
        "keep_alive_s = 5\nprotocol_version = \"3.1.1\"",
    );
    std::fs::write(&config, text).unwrap();
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    make_parts(&mut plc, 0, 5).await;

    // The broker acknowledges what it drops: the store counts it delivered.
    let mut stats = outbox_stats(&config);
    for _ in 0..50 {
        if stats.1 >= 5 && stats.0 == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stats = outbox_stats(&config);
    }
    assert_eq!(stats.0, 0, "depth 0 under 3.1.1 (last seq {})", stats.1);
    assert!(stats.1 >= 5);
    assert_eq!(part_events(&collector), 0, "and MOM got none of them");
    assert!(rt.terminate().success(), "clean exit\n{}", rt.logs());
}

/// MQTT 5 ends a session at the disconnect unless the client asks for an expiry interval: the
/// runtime asks for `session_expiry_s` (a day by default), so a command MOM sends while the
/// runtime is down (kill -9) is queued by the broker and answered after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_sent_while_the_runtime_is_down_is_answered_after_the_restart() {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let collector = Collector::start(broker.port(), "mes/#").await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with(dir.path(), peer.port(), broker.port(), "");
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let online = collector
        .wait_for(
            |m| m.iter().any(|r| r.topic.ends_with("/events/device_status")),
            Duration::from_secs(20),
        )
        .await;
    assert!(online, "the runtime came up\n{}", rt.logs());
    // Subscribed by now (the subscription follows the CONNACK at once); give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    rt.kill9();
    let cmd = serde_json::json!({
        "correlation_id": "while-away",
        "command": "store_and_start",
        "order": {"id": "WO-77", "material": "BRK-220", "quantity": 5}
    });
    common::mqtt_publish(
        broker.port(),
        common::cell::COMMAND_TOPIC,
        cmd.to_string(),
        rumqttc::QoS::AtLeastOnce,
        false,
        Duration::from_secs(10),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rt.start_again();
    let answered = collector
        .wait_for(
            |m| {
                Delivery::of(m)
                    .of_type("command_response")
                    .any(|e| e["data"]["correlation_id"] == "while-away")
            },
            Duration::from_secs(20),
        )
        .await;
    assert!(
        answered,
        "the queued command answered after the restart\n{}\n{}",
        rt.logs(),
        broker.logs()
    );
    let reply = Delivery::of(&collector.snapshot())
        .of_type("command_response")
        .find(|e| e["data"]["correlation_id"] == "while-away")
        .unwrap()["data"]
        .clone();
    assert_eq!(reply["accepted"], true, "{reply}");
    assert!(
        rt.stderr().contains("session_present=true"),
        "the broker resumed the session:\n{}",
        rt.logs()
    );
    assert!(rt.terminate().success(), "clean exit\n{}", rt.logs());
}

/// Anonymous clients may write the cell's events, status and responses, not its process values.
fn acl_denying_values() -> String {
    format!(
        "topic read mes/#\ntopic write {CELL}/events/#\ntopic write {CELL}/status\ntopic write {CELL}/responses\n"
    )
}

/// Process values the broker refuses (MQTT 5, PUBACK 0x87) are held by the values forwarder's
/// cursor, not lost and not holding back the values after them; once the ACL allows them they
/// are sent again on the same connection (no reconnect) and MOM has every value the PLC served,
/// each batch once, the batch numbers without a gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_the_broker_refuses_are_held_and_arrive_once_allowed() {
    const OIL: u16 = 31;
    let (broker, acl_dir) = broker_with_acl(&acl_denying_values());
    let peer = ModbusPeer::start_with_init(serde_json::json!({
        "holding": { "0": [0, 0, 0, 1, 0], "31": [100] }
    }));
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), "mes/#").await;
    let dir = tempfile::tempdir().unwrap();
    let tag = format!(
        "[[devices.tags]]\nname = \"oil_pressure\"\ntable = \"holding\"\naddress = {OIL}\ntype = \"u16\"\npublish = true\n"
    );
    let config = write_config_with(dir.path(), peer.port(), broker.port(), &tag);
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    let refused = rt
        .wait_for_output(
            "the broker refused a process value batch",
            Duration::from_secs(30),
        )
        .await;
    assert!(refused, "the first value refused:\n{}", rt.logs());
    // The PLC's truth: every value it serves from here on.
    let served: Vec<u16> = (101..=105).collect();
    for &v in &served {
        plc.write_u16(OIL, v).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let values_seen = |m: &[common::Received]| m.iter().any(|m| m.topic.contains("/values/"));
    assert!(
        !values_seen(&collector.snapshot()),
        "the broker took a value it refuses"
    );

    std::fs::write(acl_dir.path().join("acl"), acl_allowing_all()).unwrap();
    broker.reload();
    let oil = |m: &[common::Received]| -> Vec<u64> {
        let mut seen = std::collections::BTreeSet::new();
        m.iter()
            .filter(|m| m.topic.contains("/values/"))
            .filter(|m| seen.insert(m.payload["batch"].as_u64().unwrap()))
            .flat_map(|m| m.payload["values"].as_array().unwrap().clone())
            .filter(|v| v["tag"] == "oil_pressure")
            .filter_map(|v| v["value"].as_u64())
            .collect()
    };
    let all = collector
        .wait_for(
            move |m| {
                let got = oil(m);
                (100..=105).all(|v| got.contains(&v))
            },
            Duration::from_secs(40),
        )
        .await;
    let msgs = collector.snapshot();
    assert!(
        all,
        "every value the PLC served once allowed: {:?}\n{}",
        oil(&msgs),
        rt.logs()
    );
    let batches: std::collections::BTreeSet<u64> = msgs
        .iter()
        .filter(|m| m.topic.contains("/values/"))
        .map(|m| m.payload["batch"].as_u64().unwrap())
        .collect();
    let (first, last) = (*batches.first().unwrap(), *batches.last().unwrap());
    assert_eq!(
        batches.len() as u64,
        last - first + 1,
        "batch numbers without a gap: {batches:?}"
    );
    assert!(rt.terminate().success(), "clean exit\n{}", rt.logs());
}
