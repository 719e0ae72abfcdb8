//! Reload (SIGHUP, what `systemctl reload` sends): a good config is applied while the forwarder's
//! broker session, the counts and the running order carry on; a broken one is refused with its
//! errors in the log and the config in force keeps running. The real binary, against Mosquitto
//! and a pymodbus PLC.

use crate::common;
use crate::ops_support;

use common::cell::{write_config, Delivery, COMMAND_TOPIC, GOOD, STATE, TOPIC_FILTER};
use common::{mqtt_publish, Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use ops_support::{sample, scrape, signal, wait_online, with_health, BIN, SIGHUP};
use rumqttc::QoS;
use serde_json::{json, Value};
use std::time::Duration;

const T: Duration = Duration::from_secs(20);

async fn command(broker: &Mosquitto, c: &Collector, cmd: Value) -> Value {
    let id = cmd["correlation_id"].as_str().unwrap().to_string();
    mqtt_publish(
        broker.port(),
        COMMAND_TOPIC,
        cmd.to_string(),
        QoS::AtLeastOnce,
        false,
        T,
    )
    .await;
    let reply = |m: &[common::Received]| {
        Delivery::of(m)
            .of_type("command_response")
            .find(|e| e["data"]["correlation_id"] == id.as_str())
            .map(|e| e["data"].clone())
    };
    assert!(
        c.wait_for(|m| reply(m).is_some(), T).await,
        "no reply to {id}"
    );
    reply(&c.snapshot()).unwrap()
}

/// Makes `n` good parts at the PLC (counter from `*good`) and waits until all are delivered.
async fn make(plc: &mut Plc, good: &mut u32, n: u32, c: &Collector) {
    for _ in 0..n {
        *good += 1;
        plc.write_u32(GOOD, *good).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let want = *good as u64;
    let counted = c
        .wait_for(|m| Delivery::of(m).parts("good") >= want, T)
        .await;
    assert!(
        counted,
        "counted {} of {want}",
        Delivery::of(&c.snapshot()).parts("good")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_config_is_applied_without_losing_counts_or_the_order_and_a_bad_one_is_refused() {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    plc.write_u16(STATE, 1).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let health = with_health(&config);
    let original = std::fs::read_to_string(&config).unwrap();
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    wait_online(&collector, 1).await;
    let pid = rt.pid().unwrap();

    let r = command(
        &broker,
        &collector,
        json!({"correlation_id": "r1", "command": "store_and_start",
        "order": {"id": "WO-R", "material": "m", "quantity": 100}}),
    )
    .await;
    assert_eq!(r["state"], "Running", "{r}");
    let mut good = 0u32;
    make(&mut plc, &mut good, 10, &collector).await;

    // A good config: the device renamed, state 2 now means blocked.
    let renamed = original
        .replace("name = \"plc\"", "name = \"press_plc\"")
        .replace("2 = \"down\"", "2 = \"blocked\"");
    assert_ne!(renamed, original);
    std::fs::write(&config, &renamed).unwrap();
    signal(pid, SIGHUP);
    assert!(
        rt.wait_for_output("config reloaded", T).await,
        "reloaded\n{}",
        rt.logs()
    );
    let h = scrape(health, "/health", false);
    assert_eq!(h.json["devices"][0]["name"], "press_plc", "{}", h.body);

    make(&mut plc, &mut good, 10, &collector).await;
    plc.write_u16(STATE, 2).await;
    let blocked = collector
        .wait_for(
            |m| {
                Delivery::of(m)
                    .of_type("machine_state")
                    .any(|e| e["data"]["state"] == "blocked")
            },
            T,
        )
        .await;
    assert!(blocked, "the new state map is in force\n{}", rt.logs());
    let renamed_status = Delivery::of(&collector.snapshot())
        .of_type("device_status")
        .any(|e| e["data"]["device"] == "press_plc");
    assert!(
        renamed_status,
        "the rebuilt driver reports under its new name"
    );
    plc.write_u16(STATE, 1).await;

    // A broken config: refused, every problem logged with its place, the old config runs on.
    let broken = renamed
        .replace("poll_interval_ms = 100", "poll_interval_ms = 0")
        .replace("tag = \"good_count\"", "tag = \"good_cnt\"");
    std::fs::write(&config, &broken).unwrap();
    signal(pid, SIGHUP);
    assert!(
        rt.wait_for_output("reload refused", T).await,
        "refused\n{}",
        rt.logs()
    );
    let log = rt.stderr();
    assert!(
        log.contains("expected a poll interval of at least 1 ms, found 0"),
        "{log}"
    );
    assert!(log.contains("unknown tag \"good_cnt\""), "{log}");
    assert!(
        log.contains("cell.toml:"),
        "problems carry file:line:column\n{log}"
    );
    assert!(
        rt.is_running(),
        "a refused reload keeps the runtime running"
    );
    make(&mut plc, &mut good, 5, &collector).await;

    // The order ran on through both reloads, with every part; commands still reach the engine.
    let r = command(
        &broker,
        &collector,
        json!({"correlation_id": "r2", "command": "stop", "order_id": "WO-R"}),
    )
    .await;
    assert_eq!(r["state"], "Ended", "{r}");
    let job = collector
        .wait_for(
            |m| {
                Delivery::of(m)
                    .of_type("job_response")
                    .any(|e| e["data"]["order_id"] == "WO-R")
            },
            T,
        )
        .await;
    assert!(job, "job response");
    let d = Delivery::of(&collector.snapshot());
    let jr = d
        .of_type("job_response")
        .find(|e| e["data"]["order_id"] == "WO-R")
        .unwrap();
    assert_eq!(jr["data"]["good"].as_u64(), Some(25), "{jr}");
    assert_eq!(d.parts("good"), 25, "every part counted once");
    d.assert_gap_free();
    assert_eq!(
        d.of_type("order_state")
            .filter(|e| e["data"]["state"] == "Running")
            .count(),
        1,
        "the order began once"
    );

    // One broker session throughout: the forwarder was never restarted.
    let m = scrape(health, "/metrics", true);
    let f = &m.families;
    assert_eq!(
        sample(f, "mes_edge_broker_connects_total", &[]),
        Some(1.0),
        "{}",
        m.body
    );
    assert_eq!(
        sample(f, "mes_edge_config_reloads_total", &[("result", "applied")]),
        Some(1.0)
    );
    assert_eq!(
        sample(f, "mes_edge_config_reloads_total", &[("result", "refused")]),
        Some(1.0)
    );
    assert_eq!(
        rt.stderr().matches("connected to broker").count(),
        1,
        "{}",
        rt.logs()
    );

    assert!(rt.terminate().success(), "clean exit\n{}", rt.logs());
}

/// A reload that points `[signals.good_count]` at another register: the counter's baseline
/// belongs to the tag it was read from, so the new tag's first reading is a new baseline, never
/// a difference across two tags (old 12,005, new 250,000: no part_count of 237,995).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_moves_the_counter_to_another_tag_diffs_nothing_across_tags() {
    const NEW_GOOD: u16 = 30;
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let mut good = 12_000u32;
    plc.write_u32(GOOD, good).await;
    plc.write_u32(NEW_GOOD, 250_000).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), peer.port(), broker.port());
    let original = std::fs::read_to_string(&config).unwrap();
    let mut rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
    wait_online(&collector, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        good += 1;
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let made_before = 5;
    assert!(
        collector
            .wait_for(|m| Delivery::of(m).parts("good") >= made_before, T)
            .await
    );

    let moved = original.replace(
        "[signals.good_count]\ntag = \"good_count\"\n",
        &format!(
            "[[devices.tags]]\nname = \"good_count_b\"\ntable = \"holding\"\naddress = {NEW_GOOD}\ntype = \"u32\"\n\n\
             [signals.good_count]\ntag = \"good_count_b\"\n"
        ),
    );
    assert_ne!(moved, original);
    std::fs::write(&config, moved).unwrap();
    signal(rt.pid().unwrap(), SIGHUP);
    let reset = collector
        .wait_for(|m| Delivery::of(m).of_type("counter_reset").count() >= 1, T)
        .await;
    assert!(reset, "a counter_reset for the new tag\n{}", rt.logs());
    let mut new_good = 250_000u32;
    for _ in 0..3 {
        new_good += 1;
        plc.write_u32(NEW_GOOD, new_good).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let want = made_before + 3;
    collector
        .wait_for(|m| Delivery::of(m).parts("good") >= want, T)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let d = Delivery::of(&collector.snapshot());
    d.assert_gap_free();
    assert_eq!(
        d.parts("good"),
        want,
        "5 parts on the old tag, 3 on the new"
    );
    let r = d.of_type("counter_reset").next().unwrap();
    assert_eq!(r["data"]["rule"], "tag_changed");
    assert_eq!(r["data"]["from"], 12_005);
    assert_eq!(r["data"]["to"], 250_000);
    assert_eq!(r["data"]["counted"], 0);
    assert_eq!(r["data"]["previous_tag"], "plc/holding:0/u32/ABCD");
    assert_eq!(r["data"]["tag"], "plc/holding:30/u32/ABCD");
    assert!(rt.terminate().success());
}
