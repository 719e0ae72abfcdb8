//! The S7 driver against python-snap7's server (tests/peers/s7_server.py), an independent
//! implementation of the CPU side of S7comm: every type and area read as the peer holds it, a
//! refused DB or address isolated to its own tag, a write_tag command landing in the PLC's
//! memory, the CPU going away and coming back without disturbing another device, and a press
//! counted exactly through a kill -9 of the runtime. The truth is the peer's memory and what an
//! MQTT subscriber received.

use crate::common;

use common::cell::Delivery;
use common::modbus_lab::{cell_config, Drivers};
use common::s7::S7Peer;
use common::{mqtt_publish, Collector, Mosquitto, RuntimeProcess};
use mes_edge_drivers::{ErrorKind, Quality, Text, Value};
use rumqttc::QoS;
use serde_json::json;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

/// An `[[devices]]` entry for the CPU on `port`, and its tags (name, address, type).
fn device(name: &str, port: u16, tags: &[(&str, &str, &str)]) -> String {
    let mut out = format!(
        "[[devices]]\nname = \"{name}\"\nprotocol = \"s7\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         poll_interval_ms = 100\ntimeout_ms = 500\n\n"
    );
    for (tag, address, ty) in tags {
        out.push_str(&format!(
            "[[devices.s7_tags]]\nname = \"{tag}\"\naddress = \"{address}\"\n"
        ));
        match ty.split_once('[') {
            Some((t, len)) => out.push_str(&format!(
                "type = \"{t}\"\nlength = {}\n",
                len.trim_end_matches(']')
            )),
            None if !ty.is_empty() => out.push_str(&format!("type = \"{ty}\"\n")),
            None => {}
        }
        out.push('\n');
    }
    out
}

fn text(s: &str) -> Value {
    Value::Text(Text::new(s).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_and_area_reads_as_the_plc_holds_it() {
    let peer = S7Peer::start(0);
    // The values tests/peers/s7_server.py put there with snap7.util's setters.
    let expected: Vec<(&str, &str, &str, Value)> = vec![
        ("x00", "DB10.DBX0.0", "", Value::Bool(true)),
        ("x01", "DB10.DBX0.1", "", Value::Bool(false)),
        ("x02", "DB10.DBX0.2", "bool", Value::Bool(true)),
        ("x07", "DB10.DBX0.7", "", Value::Bool(true)),
        ("b1", "DB10.DBB1", "byte", Value::UInt(200)),
        ("w2", "DB10.DBW2", "word", Value::UInt(0xBEEF)),
        ("d4", "DB10.DBD4", "dword", Value::UInt(0xDEAD_BEEF)),
        ("i8", "DB10.DBW8", "int", Value::Int(-1234)),
        ("di10", "DB10.DBD10", "dint", Value::Int(-123_456_789)),
        ("r14", "DB10.DBD14", "real", Value::Float(21.5)),
        ("lr18", "DB10.DBB18", "lreal", Value::Float(-1234.5678)),
        ("s26", "DB10.DBB26", "string[10]", text("PART-42")),
        (
            "dt38",
            "DB10.DBB38",
            "date_and_time",
            text("2026-03-01T06:07:08.123"),
        ),
        ("m01", "M0.1", "", Value::Bool(true)),
        ("mb1", "MB1", "", Value::UInt(9)),
        ("md4", "MD4", "dint", Value::Int(77)),
        ("mw20", "MW20", "", Value::UInt(4242)),
        ("i01", "I0.1", "", Value::Bool(true)),
        ("iw2", "IW2", "", Value::UInt(555)),
        ("q00", "Q0.0", "", Value::Bool(true)),
        ("qb3", "QB3", "", Value::UInt(0x5A)),
    ];
    let tags: Vec<(&str, &str, &str)> = expected.iter().map(|(n, a, t, _)| (*n, *a, *t)).collect();
    let drivers = Drivers::start(&cell_config(&device("cpu", peer.port(), &tags)));
    let names: Vec<&str> = tags.iter().map(|t| t.0).collect();
    assert!(
        drivers.wait_all(&names, Duration::from_secs(10)).await,
        "every tag read\n{}",
        peer.logs()
    );
    for (name, address, _, value) in &expected {
        let s = drivers.latest(name).unwrap();
        assert_eq!(s.quality, Quality::Good, "{address}");
        assert_eq!(s.value.as_ref(), Some(value), "{address}");
    }
    assert_eq!(drivers.statuses(0), vec![true]);

    // A value the PLC program changes shows at the next poll.
    let mut peer = peer;
    peer.set("DB", 10, "real", 14, "-3.25");
    peer.set("M", 0, "word", 20, "17");
    let changed = common::eventually(Duration::from_secs(5), || {
        drivers.latest("r14").and_then(|s| s.value) == Some(Value::Float(-3.25))
            && drivers.latest("mw20").and_then(|s| s.value) == Some(Value::UInt(17))
    })
    .await;
    assert!(
        changed,
        "r14 {:?}, mw20 {:?}",
        drivers.latest("r14"),
        drivers.latest("mw20")
    );
    drivers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_db_or_address_turns_only_its_own_tag_bad() {
    let mut peer = S7Peer::start(0);
    // DB10 is 64 bytes: DBW62 is its last word and DBW64 lies past its end, so the item that
    // reads both is refused; DB99 does not exist at all.
    let tags = [
        ("w2", "DB10.DBW2", "word"),
        ("w62", "DB10.DBW62", "word"),
        ("past_end", "DB10.DBW64", "word"),
        ("no_db", "DB99.DBW0", "word"),
        ("mw20", "MW20", "word"),
    ];
    // no_db is writable too: a write to it is the CPU's to refuse.
    let config = device("cpu", peer.port(), &tags).replace(
        "address = \"DB99.DBW0\"\n",
        "address = \"DB99.DBW0\"\nwrite = true\n",
    );
    let drivers = Drivers::start(&cell_config(&config));
    let bad = ["past_end", "no_db"];
    let settled = common::eventually(Duration::from_secs(10), || {
        tags.iter().all(|(n, _, _)| {
            drivers.latest(n).is_some_and(|s| {
                s.quality
                    == if bad.contains(n) {
                        Quality::Bad
                    } else {
                        Quality::Good
                    }
            })
        })
    })
    .await;
    let now: Vec<_> = tags
        .iter()
        .map(|(n, _, _)| (n, drivers.latest(n)))
        .collect();
    assert!(settled, "expected only past_end and no_db bad: {now:#?}");
    assert_eq!(
        drivers.latest("w2").unwrap().value,
        Some(Value::UInt(0xBEEF))
    );
    assert_eq!(drivers.latest("w62").unwrap().value, Some(Value::UInt(0)));
    assert_eq!(drivers.statuses(0), vec![true], "the CPU stays online");
    // The good tags beside the refused one keep being read.
    peer.set("DB", 10, "word", 62, "4711");
    let updated = common::eventually(Duration::from_secs(5), || {
        drivers.latest("w62").and_then(|s| s.value) == Some(Value::UInt(4711))
    })
    .await;
    assert!(updated, "w62 {:?}", drivers.latest("w62"));
    let refused = drivers.write("no_db", Value::UInt(1)).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Refused, "{refused}");
    assert_eq!(
        drivers.statuses(0),
        vec![true],
        "a refused write leaves the CPU online"
    );
    drivers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_tags_are_read_in_requests_that_fit_the_smallest_pdu() {
    let peer = S7Peer::start(0);
    // Every other DINT of DB20 (which holds 1000 * k + 7 at byte 4k): 800 bytes with gaps, more
    // than one 240-byte reply carries, so the plan takes several requests of several items.
    let names: Vec<String> = (0..100).map(|k| format!("d{k}")).collect();
    let addresses: Vec<String> = (0..100).map(|k| format!("DB20.DBD{}", 8 * k)).collect();
    let tags: Vec<(&str, &str, &str)> = names
        .iter()
        .zip(&addresses)
        .map(|(n, a)| (n.as_str(), a.as_str(), "dint"))
        .collect();
    let config = device("cpu", peer.port(), &tags)
        .replace("timeout_ms = 500\n", "timeout_ms = 500\npdu_size = 240\n");
    let drivers = Drivers::start(&cell_config(&config));
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    assert!(
        drivers.wait_all(&all, Duration::from_secs(10)).await,
        "every tag read\n{}",
        peer.logs()
    );
    for k in 0..100 {
        let s = drivers.latest(&names[k]).unwrap();
        assert_eq!(s.quality, Quality::Good, "{}", addresses[k]);
        assert_eq!(
            s.value,
            Some(Value::Int(1000 * 2 * k as i64 + 7)),
            "{}",
            addresses[k]
        );
    }
    assert_eq!(drivers.statuses(0), vec![true]);
    drivers.stop().await;
    let plan = mes_edge_drivers::s7::plan::plan_groups(
        &mes_edge::config::parse(std::path::Path::new("cell.toml"), &cell_config(&config))
            .unwrap()
            .s7_devices()
            .next()
            .unwrap()
            .tags,
        16,
        240,
        &Default::default(),
    );
    assert!(plan[0].requests.len() > 1, "{plan:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_going_away_turns_its_tags_bad_and_leaves_the_other_device_alone() {
    let mut gone = S7Peer::start(0);
    let busy = S7Peer::start(20);
    let config = cell_config(&format!(
        "{}\n{}",
        device("cpu_a", gone.port(), &[("a_word", "DB10.DBW2", "word")]).replace(
            "address = \"DB10.DBW2\"\n",
            "address = \"DB10.DBW2\"\nwrite = true\n"
        ),
        device("cpu_b", busy.port(), &[("b_count", "DB1.DBD0", "dint")])
    ));
    let drivers = Drivers::start(&config);
    assert!(
        drivers
            .wait_all(&["a_word", "b_count"], Duration::from_secs(10))
            .await
    );
    gone.stop();
    let bad = common::eventually(Duration::from_secs(10), || {
        drivers
            .latest("a_word")
            .is_some_and(|s| s.quality == Quality::Bad)
    })
    .await;
    assert!(bad, "a_word {:?}", drivers.latest("a_word"));
    assert_eq!(drivers.statuses(0), vec![true, false]);
    // A write while it is away is refused at once, not left waiting for the next try.
    let asked = std::time::Instant::now();
    let refused = drivers.write("a_word", Value::UInt(5)).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.message.contains("not connected") && e.kind == ErrorKind::Transient),
        "{refused:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "answered after {:?}",
        asked.elapsed()
    );
    // While cpu_a is away, cpu_b's counter is read on: many new values in 2 s (one per poll).
    let before = drivers.samples("b_count").len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = drivers.samples("b_count").len() - before;
    assert!(
        during >= 10,
        "cpu_b read {during} new counts in 2 s while cpu_a was away"
    );
    assert!(drivers
        .samples("b_count")
        .iter()
        .all(|(_, s)| s.quality == Quality::Good));
    gone.start_again();
    let back = common::eventually(Duration::from_secs(35), || {
        drivers
            .latest("a_word")
            .is_some_and(|s| s.quality == Quality::Good && s.value == Some(Value::UInt(0xBEEF)))
    })
    .await;
    assert!(back, "a_word {:?}", drivers.latest("a_word"));
    assert_eq!(drivers.statuses(0), vec![true, false, true]);
    assert_eq!(drivers.statuses(1), vec![true], "cpu_b never went offline");
    drivers.stop().await;
}

/// The cell of the runtime tests: a press CPU and a broker.
fn runtime_config(dir: &std::path::Path, s7_port: u16, broker_port: u16) -> std::path::PathBuf {
    let tags = device(
        "press_cpu",
        s7_port,
        &[
            ("good_count", "DB1.DBD0", "dword"),
            ("state_word", "DB1.DBW4", "int"),
        ],
    );
    let text = format!(
        "[cell]\nenterprise = \"acme\"\nsite = \"plant1\"\narea = \"pressing\"\nline = \"line2\"\ncell = \"press5\"\n\n\
         {tags}\
         [[devices.s7_tags]]\nname = \"stroke_setpoint\"\naddress = \"DB10.DBW46\"\ntype = \"int\"\nwrite = true\nmin = -100\nmax = 120\n\n\
         [signals.good_count]\ntag = \"good_count\"\n\n\
         [signals.machine_state]\ntag = \"state_word\"\n[signals.machine_state.states]\n0 = \"idle\"\n1 = \"running\"\n\n\
         [store]\npath = \"cell.db\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{broker_port}\"\nclient_id = \"press5\"\n"
    );
    let path = dir.join("cell.toml");
    std::fs::write(&path, text).unwrap();
    path
}

const COMMANDS: &str = "mes/acme/plant1/pressing/line2/press5/commands";

/// The runtime reading a press CPU, with a broker and MOM's subscriber.
struct Cell {
    broker: Mosquitto,
    peer: S7Peer,
    collector: Collector,
    rt: RuntimeProcess,
    /// The good counter when the runtime started: the press stands until the test starts it.
    baseline: i64,
    _dir: tempfile::TempDir,
}

impl Cell {
    /// Returns once the runtime has reported the CPU and taken its baseline.
    async fn start(press_ms: u32) -> Cell {
        let broker = Mosquitto::start();
        let mut peer = S7Peer::start(press_ms);
        let baseline = peer.press(false);
        let collector = Collector::start(broker.port(), "mes/#").await;
        let dir = tempfile::tempdir().unwrap();
        let config = runtime_config(dir.path(), peer.port(), broker.port());
        let rt = RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()]);
        let online = collector
            .wait_for(
                |m| Delivery::of(m).of_type("device_status").count() >= 1,
                Duration::from_secs(30),
            )
            .await;
        assert!(
            online,
            "device_status expected; runtime log:\n{}",
            rt.stderr()
        );
        // A few polls (100 ms) more: the counter's baseline is taken.
        tokio::time::sleep(Duration::from_millis(500)).await;
        Cell {
            broker,
            peer,
            collector,
            rt,
            baseline,
            _dir: dir,
        }
    }

    fn delivered(&self) -> Delivery {
        Delivery::of(&self.collector.snapshot())
    }

    /// Waits until MOM's net good count is `n`, then a while longer to see that it stays there
    /// (nothing counted twice arrives late); the sequence is gap-free.
    async fn expect_good(&self, n: i64) -> Delivery {
        let n = n as u64;
        let all = self
            .collector
            .wait_for(
                |m| Delivery::of(m).parts("good") >= n,
                Duration::from_secs(30),
            )
            .await;
        let counted = self.delivered().parts("good");
        assert!(all, "MOM counted {counted} of {n}\n{}", self.rt.stderr());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let d = self.delivered();
        assert_eq!(
            d.parts("good"),
            n,
            "good parts at MOM equal the PLC's counter"
        );
        d.assert_gap_free();
        d
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_tag_command_lands_in_the_plc_and_one_out_of_range_does_not() {
    let mut c = Cell::start(0).await;
    for (id, value) in [("w1", json!(-42)), ("w2", json!(500))] {
        let cmd = json!({"correlation_id": id, "command": "write_tag", "tag": "stroke_setpoint", "value": value});
        mqtt_publish(
            c.broker.port(),
            COMMANDS,
            cmd.to_string(),
            QoS::AtLeastOnce,
            false,
            Duration::from_secs(10),
        )
        .await;
    }
    let answered = c
        .collector
        .wait_for(
            |m| Delivery::of(m).of_type("command_response").count() >= 2,
            Duration::from_secs(20),
        )
        .await;
    let replies: Vec<_> = c
        .delivered()
        .of_type("command_response")
        .map(|e| e["data"].clone())
        .collect();
    assert!(
        answered,
        "two replies expected: {replies:#?}\n{}",
        c.rt.stderr()
    );
    // The truth: what the PLC holds, and the writes it recorded.
    assert_eq!(
        c.peer.get("DB", 10, "int", 46),
        "-42",
        "replies {replies:#?}"
    );
    assert_eq!(
        c.peer.writes(),
        vec!["WRITE DB 10 46 ffd6".to_string()],
        "only the write within limits reached the PLC"
    );
    let refused = replies
        .iter()
        .find(|r| r["correlation_id"] == "w2")
        .unwrap();
    assert!(refused.to_string().contains("max"), "{refused}");
    assert!(c.rt.terminate().success(), "clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_on_s7_is_counted_exactly_through_a_kill_9() {
    let mut c = Cell::start(20).await;
    c.peer.press(true);
    let counting = c
        .collector
        .wait_for(
            |m| Delivery::of(m).parts("good") >= 20,
            Duration::from_secs(30),
        )
        .await;
    assert!(
        counting,
        "parts counted before the kill; runtime log:\n{}",
        c.rt.stderr()
    );
    c.rt.kill9();
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.rt.start_again();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let made = c.peer.press(false) - c.baseline;
    eprintln!("the press made {made} parts");
    assert!(made > 50, "the press made {made} parts");
    c.expect_good(made).await;
    assert!(c.rt.terminate().success(), "clean exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_cold_restart_resets_the_counter_and_every_part_after_it_is_counted() {
    let mut c = Cell::start(20).await;
    c.peer.press(true);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = c.peer.press(false) - c.baseline;
    c.expect_good(before).await;
    // A cold restart: the CPU is away, then back with its counter at 0 and the press running.
    c.peer.start_again();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = c.peer.press(false);
    eprintln!("{before} parts before the restart, {after} after");
    assert!(after > 20, "the press made {after} parts after the restart");
    let d = c.expect_good(before + after).await;
    assert_eq!(d.of_type("counter_reset").count(), 1, "one counter_reset");
    assert!(c.rt.terminate().success(), "clean exit");
}
