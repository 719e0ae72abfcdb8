//! Process values (docs/VALUES.md) against a pymodbus PLC and Mosquitto: deadband and heartbeat
//! value by value, one message per device and poll, a bad-quality value, the value class
//! dropped at its cap while no event is, and a flood of 2,000 values/s against a stopped broker
//! (with a kill -9 in it) that never delays or loses a part count. The truth is what the PLC
//! served; what is checked is what MOM received.

mod common;

use common::cell::{write_config_with, Delivery, COMMAND_TOPIC, GOOD, TOPIC_FILTER};
use common::{mqtt_publish, Collector, ModbusPeer, Mosquitto, Plc, Received, RuntimeProcess};
use rumqttc::QoS;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");
const DIE_TEMP: u16 = 30;
const OIL: u16 = 31;
const ZONES: u16 = 40;

fn tag(name: &str, address: u16, kind: &str, more: &str) -> String {
    format!("\n[[devices.tags]]\nname = \"{name}\"\ntable = \"holding\"\naddress = {address}\ntype = \"{kind}\"\n{more}\n")
}

/// The lab press with `tags` added to its PLC, `[[process_values]]` groups and `values_max_count`.
fn config(dir: &Path, plc: u16, broker: u16, tags: &str, groups: &str, cap: Option<u64>) -> PathBuf {
    let path = write_config_with(dir, plc, broker, "");
    let mut text = std::fs::read_to_string(&path).unwrap();
    if let Some(cap) = cap {
        text = text.replace("[store]\n", &format!("[store]\nvalues_max_count = {cap}\n"));
    }
    // Tables after [mqtt]: `[[devices.tags]]` adds to the last (only) device.
    std::fs::write(&path, format!("{text}\n{tags}\n{groups}\n")).unwrap();
    path
}

fn zone_names(n: u16) -> Vec<String> {
    (0..n).map(|i| format!("zone_{i}")).collect()
}

fn zone_tags(n: u16, first: u16) -> String {
    (0..n).map(|i| tag(&format!("zone_{i}"), first + i, "u16", "")).collect()
}

/// Value batches as MOM received them, each once (a re-send repeats its batch number).
fn batches(msgs: &[Received]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    msgs.iter()
        .filter(|m| m.topic.contains("/values/"))
        .filter(|m| seen.insert(m.payload["batch"].as_u64().unwrap()))
        .map(|m| {
            assert!(m.topic.ends_with("/values/plc"), "topic {}", m.topic);
            m.payload.clone()
        })
        .collect()
}

/// The records of `tag`, in the order they were published.
fn records(msgs: &[Received], tag: &str) -> Vec<Value> {
    batches(msgs)
        .iter()
        .flat_map(|b| b["values"].as_array().unwrap().clone())
        .filter(|v| v["tag"] == tag)
        .collect()
}

fn run(config: &Path) -> RuntimeProcess {
    RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()])
}

async fn wait(c: &Collector, what: &str, rt: &RuntimeProcess, f: impl Fn(&[Received]) -> bool + Send + Sync + 'static) {
    let ok = c.wait_for(f, Duration::from_secs(60)).await;
    assert!(ok, "waited in vain for {what}; runtime log:\n{}", rt.logs());
}

fn online(m: &[Received]) -> bool {
    Delivery::of(m)
        .of_type("device_status")
        .any(|e| e["data"]["online"] == true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadband_heartbeat_batching_and_bad_quality_value_by_value() {
    let broker = Mosquitto::start();
    let zones: Vec<u16> = (0..20).collect();
    let init = json!({ "holding": { "0": [0, 0, 0, 1, 0], "30": [1000, 200], "40": zones } });
    let mut peer = ModbusPeer::start_with_init(init);
    let mut plc = Plc::connect(peer.port(), 1).await;
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let tags = format!(
        "{}{}{}{}",
        tag("die_temp", DIE_TEMP, "i16", "scale = 0.1\npublish = { deadband = 0.5, max_interval_ms = 2000 }"),
        tag("oil_pressure", OIL, "u16", ""),
        zone_tags(20, ZONES),
        // Beyond the PLC's last register: never read.
        tag("ghost", 9999, "u32", "publish = true"),
    );
    let mut names = zone_names(20);
    names.push("oil_pressure".into());
    let groups = format!("[[process_values]]\ntags = {names:?}\ndeadband_percent = 5.0\n");
    let path = config(dir.path(), peer.port(), broker.port(), &tags, &groups, None);
    let mut rt = run(&path);
    wait(&collector, "the PLC online", &rt, online).await;

    // An order with its lot: values read while it runs carry both.
    let start = r#"{"correlation_id":"pv-1","command":"store_and_start","order":{"id":"WO-1","material":"M","lot":"L-7"}}"#;
    mqtt_publish(broker.port(), COMMAND_TOPIC, start, QoS::AtLeastOnce, false, Duration::from_secs(10)).await;
    wait(&collector, "the order started", &rt, |m| {
        Delivery::of(m).of_type("order_state").any(|e| e["data"]["state"] == "Running")
    })
    .await;
    // Deadband 0.5 °C from the last published value: 100.3 no, 100.6 yes, 100.2 no, 99.9 yes.
    for raw in [1003u16, 1006, 1002, 999] {
        plc.write_u16(DIE_TEMP, raw).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // No change for 4.5 s: heartbeats every 2 s.
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    // Oil pressure +50% and every zone +100 in one write, so in one poll: one message.
    let mut block = vec![300u16];
    block.extend(std::iter::repeat_n(0, (ZONES - OIL - 1) as usize));
    block.extend((0..20).map(|i| 100 + i));
    plc.write_u16s(OIL, &block).await;
    wait(&collector, "the batch", &rt, |m| records(m, "oil_pressure").iter().any(|r| r["value"] == 300)).await;
    // The PLC goes away: every value that was read turns bad, once.
    peer.stop();
    wait(&collector, "bad die_temp", &rt, |m| records(m, "die_temp").iter().any(|r| r["quality"] == "bad")).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    peer.start_again();
    wait(&collector, "good die_temp again", &rt, |m| {
        records(m, "die_temp").last().is_some_and(|r| r["quality"] == "good" && r["value"] == 100.0)
    })
    .await;
    let msgs = collector.snapshot();

    // Value by value: the changes past the deadband, heartbeats repeating the last one.
    let temp = records(&msgs, "die_temp");
    let good: Vec<&Value> = temp.iter().take_while(|r| r["quality"] == "good").collect();
    let mut changes: Vec<f64> = good.iter().map(|r| r["value"].as_f64().unwrap()).collect();
    changes.dedup();
    let rounded: Vec<f64> = changes.iter().map(|v| (v * 10.0).round() / 10.0).collect();
    assert_eq!(rounded, vec![100.0, 100.6, 99.9], "die_temp published: {good:?}");
    for pair in good.windows(2) {
        let gap = pair[1]["ts"].as_i64().unwrap() - pair[0]["ts"].as_i64().unwrap();
        if pair[0]["value"] == pair[1]["value"] {
            assert!((1_900..=3_200).contains(&gap), "a heartbeat {gap} ms after the last publish: {pair:?}");
        }
    }
    let beats = good.iter().filter(|r| (r["value"].as_f64().unwrap() - 99.9).abs() < 1e-9).count();
    assert!(beats >= 3, "99.9 and at least two heartbeats in 4.5 s: {good:?}");
    let moved = good.iter().find(|r| (r["value"].as_f64().unwrap() - 100.6).abs() < 1e-9).unwrap();
    assert_eq!((&moved["order_id"], &moved["lot"]), (&json!("WO-1"), &json!("L-7")));

    // Batching: the write was one poll, and one message carries all 21 changes.
    let all = batches(&msgs);
    let carrying: Vec<&Value> = all
        .iter()
        .filter(|b| b["values"].as_array().unwrap().iter().any(|v| v["tag"] == "oil_pressure" && v["value"] == 300))
        .collect();
    assert_eq!(carrying.len(), 1, "one message for the poll");
    let in_it: BTreeMap<String, u64> = carrying[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["tag"] != "die_temp")
        .map(|v| (v["tag"].as_str().unwrap().to_string(), v["value"].as_u64().unwrap()))
        .collect();
    let mut expected: BTreeMap<String, u64> = (0..20).map(|i| (format!("zone_{i}"), 100 + i)).collect();
    expected.insert("oil_pressure".into(), 300);
    assert_eq!(in_it, expected);
    assert!(all.len() < 40, "never a message per value: {} messages", all.len());

    // Bad quality: once per change of quality, with no value; then good again.
    let qualities: Vec<&str> = temp.iter().map(|r| r["quality"].as_str().unwrap()).collect();
    assert_eq!(qualities.iter().filter(|q| **q == "bad").count(), 1, "{qualities:?}");
    let bad = temp.iter().find(|r| r["quality"] == "bad").unwrap();
    assert_eq!(bad["value"], Value::Null);
    // A tag never read publishes nothing.
    assert!(records(&msgs, "ghost").is_empty());
    // The events' sequence is untouched by values.
    Delivery::of(&msgs).assert_gap_free();
    assert!(rt.terminate().success());
}
