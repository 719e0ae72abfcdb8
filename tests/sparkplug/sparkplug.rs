//! Sparkplug B end to end, against peers we did not write: Mosquitto as the broker, a pymodbus
//! server as the PLC and pysparkplug as the host application that decodes what the edge node
//! publishes. The runtime is the real binary, killed and restarted as a line-side PC would be.

#[path = "commands.rs"]
mod commands;
use crate::common;
use crate::host;
use crate::ops_support;

use common::cell::{write_config_with, Delivery, ACTIVE_TARGET, GOOD, TOPIC_FILTER};
use common::{Collector, ModbusPeer, Mosquitto, Plc, RuntimeProcess};
use host::{good_total, metric, of_type, seq_breaks, Host};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mes-edge");

fn config(dir: &Path, plc: u16, broker: u16, sparkplug: &str) -> std::path::PathBuf {
    // Tests run side by side: each runtime's health endpoint on a port of its own, not the
    // default (a bind error would be logged as one).
    let health = if sparkplug.contains("[health]") {
        String::new()
    } else {
        format!(
            "\n[health]\nlisten = \"127.0.0.1:{}\"\n",
            common::free_port()
        )
    };
    write_config_with(
        dir,
        plc,
        broker,
        &format!("[sparkplug]\nenabled = true\n{sparkplug}{health}"),
    )
}

fn run_cell(config: &Path) -> RuntimeProcess {
    RuntimeProcess::spawn(BIN, ["run", "--config", config.to_str().unwrap()])
}

fn bd_seq(msg: &Value) -> u64 {
    metric(msg, "bdSeq")
        .and_then(|m| m["value"].as_u64())
        .expect("bdSeq")
}

async fn make_parts(plc: &mut Plc, from: u32, n: u32) -> u32 {
    let mut count = from;
    for _ in 0..n {
        count += 1;
        plc.write_u32(GOOD, count).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    count
}

/// The peers and the cell of one test: Mosquitto, a pymodbus PLC whose good counter starts at
/// `good`, the pysparkplug host, MOM's JSON collector and the runtime with `[sparkplug]` on.
struct Lab {
    _broker: Mosquitto,
    peer: ModbusPeer,
    plc: Plc,
    host: Host,
    mom: Collector,
    _dir: tempfile::TempDir,
    cfg: std::path::PathBuf,
    rt: RuntimeProcess,
}

impl Lab {
    /// Waits for the node's births and its PLC's (the `n`th DBIRTH); panics with what the host
    /// saw and the runtime's log.
    async fn wait_births(&self, n: usize) {
        assert!(
            self.host
                .wait(|m| of_type(m, "DBIRTH").count() >= n, 60)
                .await,
            "no DBIRTH #{n}: {:?}\n{}",
            self.host.messages(),
            self.rt.logs()
        );
    }

    /// Stops the runtime cleanly, and checks that no run of it (kill -9s included) logged an
    /// error: a cursor or value write that failed ("database is locked") would have lost the
    /// last values of its tick even where the totals came out right (issue 23).
    fn stop_without_errors(&mut self) {
        assert!(self.rt.terminate().success(), "{}", self.rt.logs());
        let logs = self.rt.logs();
        let errors: Vec<&str> = logs.lines().filter(|l| l.contains(" ERROR ")).collect();
        assert!(errors.is_empty(), "errors logged: {errors:#?}");
    }

    /// Whether the host's good total reaches `total` within `secs`.
    async fn good_total_reaches(&self, total: u64, secs: u64) -> bool {
        self.host
            .wait(
                |_| good_total(&self.host.node_messages()) == Some(total),
                secs,
            )
            .await
    }
}

async fn lab(good: u32, host_id: Option<&str>, sparkplug: &str) -> Lab {
    let broker = Mosquitto::start();
    let peer = ModbusPeer::start();
    let mut plc = Plc::connect(peer.port(), 1).await;
    plc.write_u32(GOOD, good).await;
    let host = Host::start(broker.port(), host_id).await;
    let mom = Collector::start(broker.port(), TOPIC_FILTER).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), peer.port(), broker.port(), sparkplug);
    let rt = run_cell(&cfg);
    Lab {
        _broker: broker,
        peer,
        plc,
        host,
        mom,
        _dir: dir,
        cfg,
        rt,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn births_name_alias_and_type_every_metric_and_data_follows_the_plc_in_seq() {
    let mut l = lab(100, None, "").await;

    l.wait_births(1).await;
    let msgs = l.host.node_messages();
    let nbirth = of_type(&msgs, "NBIRTH").next().unwrap().clone();
    assert_eq!(
        nbirth["group"],
        host::GROUP,
        "group id from the ISA-95 path"
    );
    assert_eq!(nbirth["seq"], 0);
    let expect = [
        ("bdSeq", "INT64", None),
        // By name only: Sparkplug 3.0 gives the rebirth control no alias.
        ("Node Control/Rebirth", "BOOLEAN", None),
        ("Production/Good Total", "UINT64", Some(2)),
        ("Production/Scrap Total", "UINT64", Some(3)),
        ("Machine/State", "STRING", Some(4)),
        ("Order/Id", "STRING", Some(5)),
        ("OEE/Order/OEE", "DOUBLE", Some(12)),
        ("Events/Job Response", "STRING", Some(17)),
    ];
    for (name, datatype, alias) in expect {
        let m = metric(&nbirth, name).unwrap_or_else(|| panic!("{name} not in NBIRTH: {nbirth}"));
        assert_eq!(m["datatype"], datatype, "{name}");
        assert_eq!(m["alias"].as_u64(), alias, "{name}");
    }
    assert_eq!(
        metric(&nbirth, "Node Control/Rebirth").unwrap()["value"],
        false
    );
    let dbirth = of_type(&msgs, "DBIRTH").next().unwrap().clone();
    assert_eq!(dbirth["device"], "plc");
    let good = metric(&dbirth, "good_count").expect("the PLC's tags in its DBIRTH");
    assert_eq!(good["datatype"], "UINT32");
    assert_eq!(good["alias"], 1000);
    assert_eq!(
        metric(&dbirth, "active_target").unwrap()["datatype"],
        "UINT32"
    );

    // Parts made at the PLC: the node's good total follows, one NDATA per counted step.
    let before = good_total(&l.host.node_messages()).unwrap_or(0);
    make_parts(&mut l.plc, 100, 7).await;
    assert!(
        l.good_total_reaches(before + 7, 15).await,
        "good total {:?}, expected {}\n{}",
        good_total(&l.host.node_messages()),
        before + 7,
        l.rt.logs()
    );

    // Rebirth on NCMD: a new NBIRTH with seq 0, the same bdSeq and the current figures.
    l.host.rebirth();
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 2, 10).await,
        "no rebirth\n{}",
        l.rt.logs()
    );
    make_parts(&mut l.plc, 107, 3).await;
    assert!(l.good_total_reaches(before + 10, 15).await);
    let msgs = l.host.node_messages();
    let births: Vec<&Value> = of_type(&msgs, "NBIRTH").collect();
    assert_eq!(
        bd_seq(births[0]),
        bd_seq(births[1]),
        "a rebirth keeps the connection's bdSeq"
    );
    assert_eq!(
        metric(births[1], "Production/Good Total").unwrap()["value"],
        before + 7,
        "the rebirth carries the current total"
    );
    assert!(
        of_type(&msgs, "DBIRTH").count() >= 2,
        "devices are reborn with the node"
    );
    assert_eq!(
        seq_breaks(&msgs),
        Vec::<Value>::new(),
        "seq continuity: {msgs:?}"
    );
    let ndata = of_type(&msgs, "NDATA").count();
    assert!(ndata >= 10, "one NDATA per counted step, got {ndata}");
    let status = l.rt.terminate();
    assert!(status.success(), "{status:?}\n{}", l.rt.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndeath_carries_the_births_bd_seq_after_kill_9_and_at_a_clean_stop() {
    let mut l = lab(0, None, "").await;
    let mut count = 0;
    for round in 1..=3usize {
        assert!(
            l.host
                .wait(|m| of_type(m, "NBIRTH").count() >= round, 60)
                .await,
            "no NBIRTH #{round}\n{}",
            l.rt.logs()
        );
        count = make_parts(&mut l.plc, count, 2).await;
        assert!(l.good_total_reaches(count as u64, 15).await);
        if round < 3 {
            l.rt.kill9();
            // The broker publishes the will once it notices the connection is gone.
            assert!(
                l.host
                    .wait(|m| of_type(m, "NDEATH").count() >= round, 10)
                    .await,
                "no NDEATH after kill -9 #{round}"
            );
            l.rt.start_again();
        } else {
            assert!(l.rt.terminate().success(), "{}", l.rt.logs());
            assert!(
                l.host.wait(|m| of_type(m, "NDEATH").count() >= 3, 10).await,
                "no NDEATH at a clean stop"
            );
        }
    }
    let msgs = l.host.node_messages();
    let births: Vec<u64> = of_type(&msgs, "NBIRTH").map(bd_seq).collect();
    let deaths: Vec<u64> = of_type(&msgs, "NDEATH").map(bd_seq).collect();
    assert_eq!(
        births, deaths,
        "each NDEATH pairs with the NBIRTH before it"
    );
    assert_eq!(births.len(), 3);
    assert!(
        births.windows(2).all(|w| w[1] == (w[0] + 1) % 256),
        "a new bdSeq per connect: {births:?}"
    );
    assert_eq!(seq_breaks(&msgs), Vec::<Value>::new());
    assert_eq!(
        good_total(&msgs),
        Some(6),
        "the total across kill -9 is the PLC's parts"
    );
    // Both outputs had every event: JSON's part counts are the same six parts.
    assert!(
        l.mom
            .wait_for(
                |m| Delivery::of(m).parts("good") >= 6,
                Duration::from_secs(10)
            )
            .await
    );
    let json = Delivery::of(&l.mom.snapshot());
    json.assert_gap_free();
    assert_eq!(json.parts("good"), 6);
    let verify = std::process::Command::new(BIN)
        .args(["outbox", "verify", "--config", l.cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

/// Sparkplug 3.0: bdSeq rises by one "on every new MQTT CONNECT packet". Attempts that never
/// reach the broker (it is down: the TCP connect is refused) send no CONNECT and use no number,
/// so the birth after an outage carries the next number after the one before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bd_seq_rises_by_one_per_connect_not_per_attempt() {
    let mut l = lab(0, None, "").await;
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 1, 60).await,
        "{}",
        l.rt.logs()
    );
    l._broker.stop();
    // Refused attempts at 0.5, 1 and 2 s of backoff.
    assert!(
        common::eventually(Duration::from_secs(20), || {
            l.rt.stderr()
                .matches("Sparkplug broker not reached")
                .count()
                >= 3
        })
        .await,
        "{}",
        l.rt.logs()
    );
    l._broker.start_again();
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 2, 60).await,
        "no NBIRTH after the outage\n{}",
        l.rt.logs()
    );
    let msgs = l.host.node_messages();
    let births: Vec<u64> = of_type(&msgs, "NBIRTH").map(bd_seq).collect();
    assert_eq!(
        births[1],
        (births[0] + 1) % 256,
        "one CONNECT since the last birth, whatever the attempts: {births:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dcmd_writes_a_writable_tag_and_refuses_another() {
    let mut l = lab(5, None, "[commands.allow]\nsparkplug = [\"write_tag\"]\n").await;
    l.wait_births(1).await;

    l.host.dcmd("plc", "active_target", "UINT32", json!(4242));
    l.host.dcmd("plc", "good_count", "UINT32", json!(9));
    let mut target = 0;
    for _ in 0..100 {
        target = l.plc.read_u32(ACTIVE_TARGET).await;
        if target == 4242 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        target,
        4242,
        "the DCMD reached the register\n{}",
        l.rt.logs()
    );
    assert!(
        l.rt.wait_for_output("DCMD refused", Duration::from_secs(5))
            .await,
        "no refusal logged\n{}",
        l.rt.logs()
    );
    assert!(l.rt.logs().contains("not writable"), "{}", l.rt.logs());
    assert_eq!(
        l.plc.read_u32(GOOD).await,
        5,
        "the non-writable tag is unchanged"
    );
    // Both came through the engine's command door: each has its reply, committed and published.
    let replies = |m: &[common::Received]| -> Vec<Value> {
        m.iter()
            .filter(|r| {
                r.topic.ends_with("/responses") && r.payload["data"]["command"] == "write_tag"
            })
            .map(|r| r.payload["data"].clone())
            .collect()
    };
    assert!(
        l.mom
            .wait_for(|m| replies(m).len() >= 2, Duration::from_secs(10))
            .await
    );
    let replies = replies(&l.mom.snapshot());
    assert!(replies.iter().any(|r| r["accepted"] == true), "{replies:?}");
    assert!(
        replies.iter().any(|r| r["accepted"] == false
            && r["reason"].as_str().unwrap_or("").contains("not writable")),
        "{replies:?}"
    );
    l.stop_without_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_made_while_the_primary_host_is_offline_arrives_as_history() {
    let mut l = lab(0, Some("scada"), "primary_host_id = \"scada\"\n").await;
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 1, 60).await,
        "{}",
        l.rt.logs()
    );
    let mut count = make_parts(&mut l.plc, 0, 3).await;
    assert!(l.good_total_reaches(3, 15).await, "{}", l.rt.logs());

    l.host.set_online(false);
    assert!(
        l.host.wait(|m| of_type(m, "NDEATH").count() >= 1, 10).await,
        "the node dies with its host\n{}",
        l.rt.logs()
    );
    let seen_before = l.host.node_messages().len();
    count = make_parts(&mut l.plc, count, 5).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let meanwhile = l.host.node_messages().len() - seen_before;
    assert_eq!(
        meanwhile, 0,
        "nothing after the NDEATH while the host is offline"
    );

    l.host.set_online(true);
    assert!(
        l.host.wait(|m| of_type(m, "NBIRTH").count() >= 2, 10).await,
        "{}",
        l.rt.logs()
    );
    assert!(l.good_total_reaches(count as u64, 15).await);
    let msgs = l.host.node_messages();
    let births: Vec<&Value> = of_type(&msgs, "NBIRTH").collect();
    assert_eq!(
        metric(births[1], "Production/Good Total").unwrap()["value"],
        8,
        "the birth shows now"
    );
    let after: Vec<&Value> = msgs.iter().skip_while(|m| *m != births[1]).collect();
    let history: Vec<u64> = after
        .iter()
        .filter(|m| m["type"] == "NDATA")
        .filter_map(|m| metric(m, "Production/Good Total"))
        .filter(|m| m["is_historical"] == true)
        .filter_map(|m| m["value"].as_u64())
        .collect();
    assert_eq!(
        history,
        vec![4, 5, 6, 7, 8],
        "every part made meanwhile, as history, in order"
    );

    // An offline STATE older than the online one the node has: stale, ignored (no NDEATH).
    let an_hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        - 3_600_000;
    l.host.send_state_at(false, an_hour_ago);
    assert!(
        l.host
            .wait(|m| m.iter().filter(|m| m["type"] == "DONE").count() >= 3, 5)
            .await,
        "the host did not send the old STATE"
    );
    count = make_parts(&mut l.plc, count, 2).await;
    assert!(
        l.good_total_reaches(count as u64, 15).await,
        "{}",
        l.rt.logs()
    );
    assert_eq!(
        of_type(&l.host.node_messages(), "NDEATH").count(),
        1,
        "a stale offline STATE kills nothing\n{}",
        l.rt.logs()
    );
    l.stop_without_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_good_total_stays_the_plcs_parts_across_a_counter_reset() {
    let mut l = lab(500, None, "").await;
    l.wait_births(1).await;
    make_parts(&mut l.plc, 500, 4).await;
    assert!(l.good_total_reaches(4, 15).await);
    // The PLC restarts its counter from zero (a shift change, a PLC restart).
    l.plc.write_u32(GOOD, 0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    make_parts(&mut l.plc, 0, 3).await;
    assert!(
        l.good_total_reaches(7, 15).await,
        "good total {:?}, the PLC made 7\n{}",
        good_total(&l.host.node_messages()),
        l.rt.logs()
    );
    l.stop_without_errors();
}

/// Holding registers of the process values the tests add to the lab press's PLC.
const DIE_TEMP: u16 = 30;
const OIL: u16 = 31;

/// Two process values on the PLC: the die temperature (i16, 0.1 °C, deadband 0.5) and the oil
/// pressure (u16, every change).
const VALUE_TAGS: &str = r#"
[[devices.tags]]
name = "die_temp"
table = "holding"
address = 30
type = "i16"
scale = 0.1
publish = { deadband = 0.5 }

[[devices.tags]]
name = "oil_pressure"
table = "holding"
address = 31
type = "u16"
publish = true
"#;

/// Whether a message's metrics are in time order.
fn in_time_order(msg: &Value) -> bool {
    let ts: Vec<u64> = msg["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["timestamp"].as_u64().unwrap())
        .collect();
    ts.windows(2).all(|w| w[0] <= w[1])
}

/// The values of the device metric `name` in the host's DDATA, in arrival order.
fn ddata_values(msgs: &[Value], name: &str) -> Vec<Value> {
    of_type(msgs, "DDATA")
        .filter_map(|m| metric(m, name).map(|v| v["value"].clone()))
        .collect()
}

/// The values of `name` as the host learnt them: the device's first birth's value (if it had
/// one: values read before the birth was published are in it) and then its DDATA. Whether the
/// PLC's first reading makes the birth or the first DDATA depends on which the runtime got to
/// first; what the host learns is the same.
fn host_values(msgs: &[Value], name: &str) -> Vec<Value> {
    let born = of_type(msgs, "DBIRTH")
        .next()
        .and_then(|b| metric(b, name))
        .filter(|m| m["is_null"] != true && !m["value"].is_null())
        .map(|m| m["value"].clone());
    born.into_iter().chain(ddata_values(msgs, name)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_values_are_ddata_equal_to_what_the_plc_served_and_births_carry_the_last() {
    let mut l = lab(0, None, VALUE_TAGS).await;
    l.wait_births(1).await;
    let msgs = l.host.node_messages();
    let dbirth = of_type(&msgs, "DBIRTH").next().unwrap().clone();
    assert_eq!(metric(&dbirth, "die_temp").unwrap()["datatype"], "DOUBLE");
    assert_eq!(
        metric(&dbirth, "oil_pressure").unwrap()["datatype"],
        "UINT16"
    );

    // What the PLC serves, step by step (raw registers), after the zeros it held when the cell
    // started (in the device's birth, or its first DDATA); the deadband keeps 100.2 back.
    // The first change waits until the host has learnt the zeros: under load the birth can go
    // out before the first poll, and a change made before that poll hid the zeros (seen once).
    let knows_zeros = |m: &[Value]| {
        !host_values(m, "die_temp").is_empty() && !host_values(m, "oil_pressure").is_empty()
    };
    assert!(
        l.host
            .wait(|_| knows_zeros(&l.host.node_messages()), 15)
            .await,
        "the PLC's first reading never reached the host\n{}",
        l.rt.logs()
    );
    let served: [(u16, u16); 5] = [(1000, 7), (1006, 7), (1002, 8), (999, 8), (999, 9)];
    for (temp, oil) in served {
        l.plc.write_u16s(DIE_TEMP, &[temp, oil]).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let want_temps = [0.0, 100.0, 100.6, 99.9];
    let want_oil = [0, 7, 8, 9];
    let done = |m: &[Value]| {
        host_values(m, "die_temp").len() >= want_temps.len()
            && host_values(m, "oil_pressure").len() >= want_oil.len()
    };
    assert!(
        l.host.wait(|_| done(&l.host.node_messages()), 15).await,
        "DDATA: {:?}\n{}",
        of_type(&l.host.node_messages(), "DDATA").collect::<Vec<_>>(),
        l.rt.logs()
    );
    let msgs = l.host.node_messages();
    let temps: Vec<f64> = host_values(&msgs, "die_temp")
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(temps.len(), want_temps.len(), "{temps:?}");
    for (got, want) in temps.iter().zip(want_temps) {
        assert!(
            (got - want).abs() < 1e-9,
            "die_temp {temps:?}, served {want_temps:?}"
        );
    }
    let oil: Vec<u64> = host_values(&msgs, "oil_pressure")
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(oil, want_oil, "oil_pressure: every change the PLC served");
    // The values carry the reading's time, not the publish's, and a message's metrics are in
    // time order (births too), as Sparkplug 3.0 asks.
    for m in of_type(&msgs, "DDATA") {
        for v in m["metrics"].as_array().unwrap() {
            assert!(v["timestamp"].as_u64().unwrap() <= m["timestamp"].as_u64().unwrap());
        }
    }
    for m in msgs
        .iter()
        .filter(|m| m["type"] == "DDATA" || m["type"] == "DBIRTH")
    {
        assert!(in_time_order(m), "metrics out of time order: {m}");
    }

    // JSON MOM got the same values on its own topic.
    assert!(
        l.mom
            .wait_for(
                |m| {
                    m.iter()
                        .filter(|m| m.topic.contains("/values/plc"))
                        .flat_map(|m| m.payload["values"].as_array().cloned().unwrap_or_default())
                        .filter(|v| v["tag"] == "oil_pressure")
                        .count()
                        >= 3
                },
                Duration::from_secs(10)
            )
            .await,
        "the JSON values forwarder still gets every batch"
    );

    // A rebirth: the device's birth shows the last values, not nulls.
    l.host.rebirth();
    assert!(
        l.host.wait(|m| of_type(m, "DBIRTH").count() >= 2, 10).await,
        "no rebirth\n{}",
        l.rt.logs()
    );
    let msgs = l.host.node_messages();
    let reborn = of_type(&msgs, "DBIRTH").nth(1).unwrap();
    assert!(
        (metric(reborn, "die_temp").unwrap()["value"]
            .as_f64()
            .unwrap()
            - 99.9)
            .abs()
            < 1e-9,
        "{reborn}"
    );
    assert_eq!(metric(reborn, "oil_pressure").unwrap()["value"], 9);
    assert!(in_time_order(reborn), "{reborn}");
    assert_eq!(seq_breaks(&msgs), Vec::<Value>::new(), "{msgs:?}");

    // kill -9 and a start: the first birth of the new process shows the values too (the stored
    // ones, marked stale, or the PLC's first readings if they came first), never nulls.
    l.rt.kill9();
    l.rt.start_again();
    assert!(
        l.host.wait(|m| of_type(m, "DBIRTH").count() >= 3, 60).await,
        "no DBIRTH after the restart\n{}",
        l.rt.logs()
    );
    let msgs = l.host.node_messages();
    let after_restart = of_type(&msgs, "DBIRTH").nth(2).unwrap();
    let temp = metric(after_restart, "die_temp").unwrap();
    assert!(
        (temp["value"].as_f64().expect("not null") - 99.9).abs() < 1e-9,
        "{after_restart}"
    );
    assert_eq!(metric(after_restart, "oil_pressure").unwrap()["value"], 9);
    assert!(in_time_order(after_restart), "{after_restart}");
    l.stop_without_errors();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_only_publishes_no_json_and_marks_what_its_broker_acknowledged() {
    let mut l = lab(0, None, &format!("json = false\n{VALUE_TAGS}")).await;
    l.wait_births(1).await;
    make_parts(&mut l.plc, 0, 3).await;
    for oil in [5, 6] {
        l.plc.write_u16(OIL, oil).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(l.good_total_reaches(3, 15).await, "{}", l.rt.logs());
    assert!(
        l.host
            .wait(
                |_| ddata_values(&l.host.node_messages(), "oil_pressure").len() >= 2,
                15
            )
            .await,
        "process values as DDATA without JSON\n{}",
        l.rt.logs()
    );
    l.stop_without_errors();
    assert!(
        l.mom
            .snapshot()
            .iter()
            .all(|m| !m.topic.contains("/events/") && !m.topic.contains("/values/")),
        "no JSON events or values in Sparkplug-only mode"
    );
    // What the Sparkplug sink had acknowledged is gone from the store: the values held are
    // those the PLC changed after its last acknowledgement, at most.
    let store = l.cfg.parent().unwrap().join("cell.db");
    let db = rusqlite::Connection::open(&store).unwrap();
    let (held, batches): (i64, i64) = db
        .query_row(
            "SELECT (SELECT held FROM value_count), (SELECT count(*) FROM value_batch)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((held, batches), (0, 0), "value batches left in the store");
    let stats = std::process::Command::new(BIN)
        .args(["outbox", "stats", "--config", l.cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&stats.stdout).to_string();
    assert!(
        stats.contains("depth (undelivered): 0"),
        "the Sparkplug sink marks rows delivered:\n{stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plc_restart_kills_and_rebirths_its_device_and_the_total_counts_on() {
    let mut l = lab(300, None, "").await;
    l.wait_births(1).await;
    make_parts(&mut l.plc, 300, 4).await;
    assert!(l.good_total_reaches(4, 15).await);

    // The PLC goes away: its device dies; it comes back with every counter at zero.
    l.plc.disconnect();
    l.peer.stop();
    assert!(
        l.host.wait(|m| of_type(m, "DDEATH").count() >= 1, 20).await,
        "no DDEATH\n{}",
        l.rt.logs()
    );
    l.peer.start_again();
    assert!(
        l.host.wait(|m| of_type(m, "DBIRTH").count() >= 2, 30).await,
        "no DBIRTH after the PLC came back\n{}",
        l.rt.logs()
    );
    l.plc = Plc::connect(l.peer.port(), 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    make_parts(&mut l.plc, 0, 3).await;
    assert!(
        l.good_total_reaches(7, 20).await,
        "good total {:?}, the PLC made 7\n{}",
        good_total(&l.host.node_messages()),
        l.rt.logs()
    );
    let msgs = l.host.node_messages();
    let death = of_type(&msgs, "DDEATH").next().unwrap();
    assert_eq!(death["device"], "plc");
    assert_eq!(seq_breaks(&msgs), Vec::<Value>::new());
    l.stop_without_errors();
}
