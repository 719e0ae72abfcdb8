//! Process values (docs/VALUES.md) against a pymodbus PLC and Mosquitto: deadband and heartbeat
//! value by value, one message per device and poll, a bad-quality value, the value class
//! dropped at its cap while no event is, and a flood of 2,000 values/s against a stopped broker
//! (with a kill -9 in it) that never delays or loses a part count. The truth is what the PLC
//! served; what is checked is what MOM received.

use crate::common;
use crate::ops_support;

use common::cell::{write_config_with, Delivery, COMMAND_TOPIC, GOOD, TOPIC_FILTER};
use common::opcua::{device_section, node, write_cell_config, OpcUaOptions, OpcUaPeer};
use common::{mqtt_publish, Collector, ModbusPeer, Mosquitto, Plc, Received, RuntimeProcess};
use rumqttc::QoS;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");
const DIE_TEMP: u16 = 30;
const OIL: u16 = 31;
const ZONES: u16 = 40;

fn tag(name: &str, address: u16, kind: &str, more: &str) -> String {
    format!("\n[[devices.tags]]\nname = \"{name}\"\ntable = \"holding\"\naddress = {address}\ntype = \"{kind}\"\n{more}\n")
}

/// The lab press with `tags` added to its PLC, `[[process_values]]` groups and `values_max_count`.
fn config(
    dir: &Path,
    plc: u16,
    broker: u16,
    tags: &str,
    groups: &str,
    cap: Option<u64>,
) -> PathBuf {
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
    (0..n)
        .map(|i| tag(&format!("zone_{i}"), first + i, "u16", ""))
        .collect()
}

/// Value batches as MOM received them, each once (a re-send repeats its batch number).
fn batches(msgs: &[Received]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    msgs.iter()
        .filter(|m| m.topic.contains("/values/"))
        .filter(|m| seen.insert(m.payload["batch"].as_u64().unwrap()))
        .map(|m| {
            let device = m.payload["device"].as_str().unwrap();
            assert!(
                m.topic.ends_with(&format!("/values/{device}")),
                "topic {}",
                m.topic
            );
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

async fn wait(
    c: &Collector,
    what: &str,
    rt: &RuntimeProcess,
    f: impl Fn(&[Received]) -> bool + Send + Sync + 'static,
) {
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
        tag(
            "die_temp",
            DIE_TEMP,
            "i16",
            "scale = 0.1\npublish = { deadband = 0.5, max_interval_ms = 2000 }"
        ),
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
    mqtt_publish(
        broker.port(),
        COMMAND_TOPIC,
        start,
        QoS::AtLeastOnce,
        false,
        Duration::from_secs(10),
    )
    .await;
    wait(&collector, "the order started", &rt, |m| {
        Delivery::of(m)
            .of_type("order_state")
            .any(|e| e["data"]["state"] == "Running")
    })
    .await;
    // Deadband 0.5 °C from the last published value: 100.3 no, 100.6 yes, 100.2 no, 99.9 yes.
    // A value within the deadband publishes nothing to wait for: each stands for four polls.
    for raw in [1003u16, 1006, 1002, 999] {
        plc.write_u16(DIE_TEMP, raw).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    // No change since: heartbeats every 2 s, two of them after the 99.9.
    wait(&collector, "99.9 and two heartbeats", &rt, |m| {
        records(m, "die_temp")
            .iter()
            .filter(|r| r["value"].as_f64().is_some_and(|v| (v - 99.9).abs() < 1e-9))
            .count()
            >= 3
    })
    .await;
    // Oil pressure +50% and every zone +100 in one write, so in one poll: one message.
    let mut block = vec![300u16];
    block.extend(std::iter::repeat_n(0, (ZONES - OIL - 1) as usize));
    block.extend((0..20).map(|i| 100 + i));
    plc.write_u16s(OIL, &block).await;
    wait(&collector, "the batch", &rt, |m| {
        records(m, "oil_pressure").iter().any(|r| r["value"] == 300)
    })
    .await;
    // The PLC goes away: every value that was read turns bad, once.
    peer.stop();
    wait(&collector, "bad die_temp", &rt, |m| {
        records(m, "die_temp").iter().any(|r| r["quality"] == "bad")
    })
    .await;
    // Away for longer than the 2 s heartbeat: the bad quality is published once all the same.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    peer.start_again();
    wait(&collector, "good die_temp again", &rt, |m| {
        records(m, "die_temp")
            .last()
            .is_some_and(|r| r["quality"] == "good" && r["value"] == 100.0)
    })
    .await;
    let msgs = collector.snapshot();

    // Value by value: the changes past the deadband, heartbeats repeating the last one.
    let temp = records(&msgs, "die_temp");
    let good: Vec<&Value> = temp.iter().take_while(|r| r["quality"] == "good").collect();
    let mut changes: Vec<f64> = good.iter().map(|r| r["value"].as_f64().unwrap()).collect();
    changes.dedup();
    let rounded: Vec<f64> = changes.iter().map(|v| (v * 10.0).round() / 10.0).collect();
    assert_eq!(
        rounded,
        vec![100.0, 100.6, 99.9],
        "die_temp published: {good:?}"
    );
    for pair in good.windows(2) {
        let gap = pair[1]["ts"].as_i64().unwrap() - pair[0]["ts"].as_i64().unwrap();
        if pair[0]["value"] == pair[1]["value"] {
            assert!(
                (1_900..=4_000).contains(&gap),
                "a heartbeat {gap} ms after the last publish: {pair:?}"
            );
        }
    }
    let beats = good
        .iter()
        .filter(|r| (r["value"].as_f64().unwrap() - 99.9).abs() < 1e-9)
        .count();
    assert!(
        beats >= 3,
        "99.9 and at least two heartbeats in 4.5 s: {good:?}"
    );
    let moved = good
        .iter()
        .find(|r| (r["value"].as_f64().unwrap() - 100.6).abs() < 1e-9)
        .unwrap();
    assert_eq!(
        (&moved["order_id"], &moved["lot"]),
        (&json!("WO-1"), &json!("L-7"))
    );

    // Batching: the write was one poll, and one message carries all 21 changes.
    let all = batches(&msgs);
    let carrying: Vec<&Value> = all
        .iter()
        .filter(|b| {
            b["values"]
                .as_array()
                .unwrap()
                .iter()
                .any(|v| v["tag"] == "oil_pressure" && v["value"] == 300)
        })
        .collect();
    assert_eq!(carrying.len(), 1, "one message for the poll");
    let in_it: BTreeMap<String, u64> = carrying[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["tag"] != "die_temp")
        .map(|v| {
            (
                v["tag"].as_str().unwrap().to_string(),
                v["value"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut expected: BTreeMap<String, u64> =
        (0..20).map(|i| (format!("zone_{i}"), 100 + i)).collect();
    expected.insert("oil_pressure".into(), 300);
    assert_eq!(in_it, expected);
    assert!(
        all.len() < 40,
        "never a message per value: {} messages",
        all.len()
    );

    // Bad quality: once per change of quality, with no value; then good again.
    let qualities: Vec<&str> = temp
        .iter()
        .map(|r| r["quality"].as_str().unwrap())
        .collect();
    assert_eq!(
        qualities.iter().filter(|q| **q == "bad").count(),
        1,
        "{qualities:?}"
    );
    let bad = temp.iter().find(|r| r["quality"] == "bad").unwrap();
    assert_eq!(bad["value"], Value::Null);
    // A tag never read publishes nothing.
    assert!(records(&msgs, "ghost").is_empty());
    // The events' sequence is untouched by values.
    Delivery::of(&msgs).assert_gap_free();
    assert!(rt.terminate().success());
}

/// A broker that keeps the MOM collector's session across its restart, and that collector.
async fn persistent_broker(state: &Path) -> (Mosquitto, Collector) {
    let conf = format!(
        "persistence true\npersistence_location {}/\n",
        state.display()
    );
    let broker = Mosquitto::start_with_config(&conf);
    let collector = Collector::start_persistent(broker.port(), TOPIC_FILTER, "mom-values").await;
    (broker, collector)
}

fn values_in(b: &Value) -> u64 {
    b["values"].as_array().unwrap().len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_over_their_cap_are_dropped_counted_and_alarmed_while_no_event_is_dropped() {
    let state = tempfile::tempdir().unwrap();
    let (mut broker, collector) = persistent_broker(state.path()).await;
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    let dir = tempfile::tempdir().unwrap();
    let groups = format!("[[process_values]]\ntags = {:?}\n", zone_names(20));
    let path = config(
        dir.path(),
        peer.port(),
        broker.port(),
        &zone_tags(20, ZONES),
        &groups,
        Some(100),
    );
    let health = ops_support::with_health(&path);
    let mut rt = run(&path);
    wait(&collector, "the PLC online", &rt, online).await;
    wait(&collector, "the first values", &rt, |m| {
        !batches(m).is_empty()
    })
    .await;

    broker.stop();
    let stopped_ms = mes_edge_drivers::now_ms();
    // 5 s of 20 changing values every 100 ms (about 1,000 values) and a part each time.
    let mut good = 0u32;
    for round in 1..=50u16 {
        let zones: Vec<u16> = (0..20).map(|i| round * 20 + i).collect();
        plc.write_u16s(ZONES, &zones).await;
        good += 1;
        plc.write_u32(GOOD, good).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Held at most 100: the oldest went, counted by tag on /metrics while the broker is away.
    let dropped_zone_0 = || {
        let m = ops_support::scrape(health, "/metrics", true);
        ops_support::sample(
            &m.families,
            "mes_edge_values_dropped_total",
            &[("tag", "zone_0")],
        )
    };
    let seen = common::eventually(Duration::from_secs(15), || {
        dropped_zone_0().unwrap_or(0.0) > 0.0
    })
    .await;
    assert!(seen, "zone_0 drops on /metrics\n{}", rt.logs());
    let returned_ms = mes_edge_drivers::now_ms();
    broker.start_again();

    // Every part arrives; the alarm reports what was dropped, the same as the metrics.
    wait(&collector, "every part", &rt, move |m| {
        Delivery::of(m).parts("good") >= good as u64
    })
    .await;
    let m = ops_support::scrape(health, "/metrics", true);
    let metric = |name: &str| ops_support::sample(&m.families, name, &[]).unwrap() as u64;
    let committed = metric("mes_edge_values_committed_total");
    let by_tag_metric: BTreeMap<String, u64> = zone_names(20)
        .into_iter()
        .map(|t| {
            let n =
                ops_support::sample(&m.families, "mes_edge_values_dropped_total", &[("tag", &t)]);
            (t, n.unwrap_or(0.0) as u64)
        })
        .collect();
    let dropped_metric: u64 = by_tag_metric.values().sum();
    let alarmed = move |m: &[Received]| -> (u64, u64, BTreeMap<String, u64>) {
        let d = Delivery::of(m);
        let mut by_tag = BTreeMap::new();
        let (mut values, mut batches) = (0, 0);
        for e in d.of_type("values_dropped") {
            assert_eq!(e["data"]["reason"], "cap");
            values += e["data"]["values"].as_u64().unwrap();
            batches += e["data"]["batches"].as_u64().unwrap();
            for (t, n) in e["data"]["by_tag"].as_object().unwrap() {
                *by_tag.entry(t.clone()).or_default() += n.as_u64().unwrap();
            }
        }
        (values, batches, by_tag)
    };
    // The alarm comes with the housekeeping, every 10 s.
    wait(&collector, "the values_dropped alarm", &rt, move |m| {
        alarmed(m).0 >= dropped_metric
    })
    .await;
    wait(&collector, "every value batch kept", &rt, move |m| {
        batches(m).iter().map(values_in).sum::<u64>() + dropped_metric >= committed
    })
    .await;
    let msgs = collector.snapshot();
    let d = Delivery::of(&msgs);
    d.assert_gap_free();
    assert_eq!(
        d.parts("good"),
        good as u64,
        "no part lost to the values' cap"
    );
    let (values, dropped_batches, by_tag) = alarmed(&msgs);
    assert_eq!(values, dropped_metric);
    assert_eq!(
        by_tag,
        by_tag_metric.into_iter().filter(|(_, n)| *n > 0).collect()
    );
    assert!(values > 0, "values dropped while the broker was away");
    // Delivered + dropped = committed, and the dropped batches are the gaps in `batch`.
    let got = batches(&msgs);
    let delivered: u64 = got.iter().map(values_in).sum();
    assert_eq!(delivered + values, committed);
    // Of what the outage made, the cap kept 100 values, and the newest batch whatever its size.
    let outage: Vec<&Value> = got
        .iter()
        .filter(|b| (stopped_ms..returned_ms).contains(&b["ts"].as_i64().unwrap()))
        .collect();
    let newest = outage
        .iter()
        .max_by_key(|b| b["batch"].as_u64())
        .map_or(0, |b| values_in(b));
    let kept: u64 = outage.iter().map(|b| values_in(b)).sum();
    assert!(
        kept - newest <= 100,
        "kept {kept} values of the outage, the newest batch {newest}"
    );
    let numbers: Vec<u64> = got.iter().map(|b| b["batch"].as_u64().unwrap()).collect();
    let gaps = numbers.iter().max().unwrap() - numbers.len() as u64;
    assert_eq!(
        gaps,
        dropped_batches,
        "batch numbers as they arrived: {numbers:?}\n{}",
        rt.logs()
    );
    assert!(rt.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_values_against_a_stopped_broker_never_delays_parts_and_survives_kill_9() {
    const FLOOD: u16 = 100;
    const TAGS: u16 = 200;
    let state = tempfile::tempdir().unwrap();
    let (mut broker, collector) = persistent_broker(state.path()).await;
    let peer = ModbusPeer::start();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = (0..TAGS).map(|i| format!("flood_{i}")).collect();
    let tags: String = (0..TAGS)
        .map(|i| tag(&format!("flood_{i}"), FLOOD + i, "u16", ""))
        .collect();
    let groups = format!("[[process_values]]\ntags = {names:?}\n");
    let path = config(dir.path(), peer.port(), broker.port(), &tags, &groups, None);
    let mut rt = run(&path);
    wait(&collector, "the PLC online", &rt, online).await;
    wait(&collector, "the first values", &rt, |m| {
        !batches(m).is_empty()
    })
    .await;

    // The machine: every 100 ms all 200 values change (2,000 values/s) and a part is made.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let machine = {
        let (stop, port) = (stop.clone(), peer.port());
        tokio::spawn(async move {
            let mut plc = Plc::connect(port, 1).await;
            let started = Instant::now();
            let mut every = tokio::time::interval(Duration::from_millis(100));
            let mut good = 0u32;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                good += 1;
                let values: Vec<u16> = (0..TAGS)
                    .map(|i| (good as u16).wrapping_mul(7).wrapping_add(i))
                    .collect();
                plc.write_u16s(FLOOD, &values[..100]).await;
                plc.write_u16s(FLOOD + 100, &values[100..]).await;
                plc.write_u32(GOOD, good).await;
                every.tick().await;
            }
            (good, started.elapsed())
        })
    };
    let before = collector.snapshot().len();
    broker.stop();
    let outage = Instant::now();
    let stopped_ms = mes_edge_drivers::now_ms();
    tokio::time::sleep(Duration::from_secs(5)).await;
    rt.kill9();
    rt.start_again();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (good, ran) = machine.await.unwrap();
    let offered = good as f64 * TAGS as f64 / ran.as_secs_f64();
    // Let the runtime commit the last readings before the broker returns.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let returned_ms = mes_edge_drivers::now_ms();
    let down = outage.elapsed().as_secs_f64();
    // Nothing arrives while the broker is away: what comes after this, came after the return.
    let at_return = collector.snapshot().len();
    broker.start_again();
    let back = Instant::now();
    wait(&collector, "every part", &rt, move |m| {
        Delivery::of(m).parts("good") >= good as u64
    })
    .await;
    let parts_after = back.elapsed();
    // The values made during the outage follow.
    let flood_values = |m: &[Received]| -> u64 {
        batches(&m[before..])
            .iter()
            .flat_map(|b| b["values"].as_array().unwrap().clone())
            .filter(|v| (stopped_ms..returned_ms).contains(&v["ts"].as_i64().unwrap()))
            .count() as u64
    };
    // Settled: no more of them for 2 s.
    let (mut last, mut since) = (0, Instant::now());
    while since.elapsed() < Duration::from_secs(2) && back.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = flood_values(&collector.snapshot());
        if n != last {
            (last, since) = (n, Instant::now());
        }
    }
    let settled = since.elapsed() >= Duration::from_secs(2);
    let values_after = since.duration_since(back);
    let msgs = collector.snapshot();
    let d = Delivery::of(&msgs);
    d.assert_gap_free();
    assert_eq!(
        d.parts("good"),
        good as u64,
        "nothing lost from the events across kill -9"
    );
    // Every event committed while the broker was away came before the first value batch.
    let after: Vec<&Received> = msgs[at_return..].iter().collect();
    // (A batch in flight when the broker stopped may come back from the broker's own queue for
    // the collector first: the first batch made during the outage is the one that counts.)
    let first_value = after
        .iter()
        .position(|m| {
            m.topic.contains("/values/") && m.payload["ts"].as_i64().unwrap() >= stopped_ms
        })
        .expect("values after the return");
    let late_events: Vec<u64> = after[first_value..]
        .iter()
        .filter(|m| m.topic.contains("/events/") && m.payload["ts"].as_i64().unwrap() < returned_ms)
        .map(|m| m.payload["seq"].as_u64().unwrap())
        .collect();
    assert!(
        late_events.is_empty(),
        "events of the outage after a value batch (batch {}, made {} ms after the stop): seq {late_events:?}",
        after[first_value].payload["batch"],
        after[first_value].payload["ts"].as_i64().unwrap() - stopped_ms
    );
    let n = flood_values(&msgs);
    eprintln!(
        "flood: the PLC changed {offered:.0} values/s; {good} parts and {n} values read in {down:.1} s ({:.0} values/s) with a kill -9; parts delivered {:.1} s after the broker returned, values {:.1} s (settled: {settled})",
        n as f64 / down,
        parts_after.as_secs_f64(),
        values_after.as_secs_f64()
    );
    // What the runtime reads of the flood depends on the machine's load (the figure above);
    // the PLC's own rate is the test's premise.
    assert!(
        offered >= 1_800.0,
        "the PLC changed only {offered:.0} values/s"
    );
    assert!(n >= 2_000, "only {n} values of the outage reached MOM");
    assert!(rt.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opcua_node_is_published_by_deadband_with_its_bad_status_once() {
    let broker = Mosquitto::start();
    let mut peer = OpcUaPeer::start(OpcUaOptions::default());
    peer.set("Temperature", 20.0);
    let collector = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let section = format!(
        "{}\n[[devices.nodes]]\nname = \"temperature\"\nnode_id = \"{}\"\ntype = \"f64\"\npublish = {{ deadband = 0.5 }}\n",
        device_section(&peer.endpoint(), ""),
        node("Temperature")
    );
    let path = write_cell_config(dir.path(), &section, 2, broker.port());
    let mut rt = run(&path);
    wait(&collector, "the first value", &rt, |m| {
        !records(m, "temperature").is_empty()
    })
    .await;
    for v in [20.3, 20.6, 20.2, 19.9] {
        peer.set("Temperature", v);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    peer.bad("Temperature");
    tokio::time::sleep(Duration::from_millis(600)).await;
    peer.set("Temperature", 19.9);
    wait(&collector, "good again", &rt, |m| {
        records(m, "temperature").len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The driver hands on a Bad reading without its value: null, with the quality.
    let got: Vec<(Option<f64>, String)> = records(&collector.snapshot(), "temperature")
        .iter()
        .map(|r| {
            (
                r["value"].as_f64(),
                r["quality"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(Option<f64>, String)> = [
        (Some(20.0), "good"),
        (Some(20.6), "good"),
        (Some(19.9), "good"),
        (None, "bad"),
        (Some(19.9), "good"),
    ]
    .iter()
    .map(|(v, q)| (*v, q.to_string()))
    .collect();
    assert_eq!(got, want);
    // OPC UA stamps its values: the device's own time travels with them.
    let first = &records(&collector.snapshot(), "temperature")[0];
    assert!(first["source_ts"].as_i64().is_some(), "{first}");
    assert!(rt.terminate().success());
}
