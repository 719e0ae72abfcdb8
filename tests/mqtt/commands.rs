//! Commands that reach a machine (issue 22), on the real binary against Mosquitto (MQTT 5) and
//! a pymodbus PLC that records every write it receives: a flood is answered to the last
//! command with the PLC at the last accepted value and no write out of order; retained
//! commands are never applied; expired, out-of-range and mistyped writes are refused before
//! acceptance; the operator's socket may not write unless the config allows it; MQTT 5
//! request/response is answered on the Response Topic. The truth is the PLC's write log and
//! what an MQTT subscriber received.

use crate::common;

use common::order_cell::{Cell, T};
use rumqttc::v5::mqttbytes::v5::PublishProperties;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, Event, Incoming, MqttOptions};
use serde_json::{json, Value};
use std::time::Duration;

const COMMANDS: &str = common::cell::COMMAND_TOPIC;
/// Holding registers of the writable tags added to the lab press.
const SPEED: u64 = 30;
const OFFSET: u64 = 31;

/// A u16 `speed` (60 to 60000) and an i16 `offset`, both writable.
const TAGS: &str = r#"
[[devices.tags]]
name = "speed"
table = "holding"
address = 30
type = "u16"
write = true
min = 60
max = 60000

[[devices.tags]]
name = "offset"
table = "holding"
address = 31
type = "i16"
write = true
"#;

/// The writes the PLC received at `address`, in order, as raw register values.
fn writes_at(c: &Cell, address: u64) -> Vec<(f64, u64)> {
    c.peer
        .writes()
        .iter()
        .filter(|w| w["table"] == "registers" && w["address"] == address)
        .map(|w| {
            (
                w["t_ms"].as_f64().unwrap(),
                w["values"][0].as_u64().unwrap(),
            )
        })
        .collect()
}

fn write_tag(id: &str, tag: &str, value: Value) -> Value {
    json!({"correlation_id": id, "command": "write_tag", "tag": tag, "value": value})
}

/// An MQTT 5 client of MOM's, its event loop driven in the background.
async fn mom(c: &Cell) -> (AsyncClient, tokio::task::JoinHandle<()>) {
    let mut opts = MqttOptions::new(
        format!("mom-{}", std::process::id()),
        "127.0.0.1",
        c.broker.port(),
    );
    opts.set_keep_alive(Duration::from_secs(5));
    opts.set_outgoing_inflight_upper_limit(200);
    let (client, mut eventloop) = AsyncClient::new(opts, 20_000);
    let task = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    (client, task)
}

fn tag_writes(c: &Cell, tag: &str) -> Vec<Value> {
    c.delivery()
        .of_type("tag_write")
        .filter(|e| e["data"]["tag"] == tag)
        .map(|e| e["data"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_writes_is_answered_to_the_last_with_the_plc_at_the_last_accepted_value() {
    let mut c = Cell::start(TAGS).await;
    const N: u64 = 2_000;
    let (client, task) = mom(&c).await;
    for i in 1..=N {
        let cmd = write_tag(&format!("f{i}"), "speed", json!(100 + i));
        client
            .publish(COMMANDS, QoS::AtLeastOnce, false, cmd.to_string())
            .await
            .unwrap();
    }
    let answered = c
        .collector
        .wait_for(
            |m| {
                common::cell::Delivery::of(m)
                    .of_type("command_response")
                    .filter(|e| {
                        e["data"]["correlation_id"]
                            .as_str()
                            .is_some_and(|s| s.starts_with('f'))
                    })
                    .count() as u64
                    >= N
            },
            Duration::from_secs(120),
        )
        .await;
    task.abort();
    let replies = c.replies();
    let flood: Vec<&Value> = replies
        .iter()
        .filter(|r| {
            r["correlation_id"]
                .as_str()
                .is_some_and(|s| s.starts_with('f'))
        })
        .collect();
    assert!(answered, "{} of {N} answered", flood.len());
    let accepted: Vec<u64> = flood
        .iter()
        .filter(|r| r["status"] == "accepted")
        .map(|r| r["correlation_id"].as_str().unwrap()[1..].parse().unwrap())
        .collect();
    assert_eq!(
        accepted.len() as u64,
        N,
        "every write accepted: {:?}",
        &flood[..3]
    );
    let last = 100 + accepted.iter().max().unwrap();

    // The PLC's own record: the last value it got is the last accepted, and never an older
    // value after a newer one.
    let mut settled = false;
    for _ in 0..100 {
        if c.plc.read_u16(SPEED as u16).await as u64 == last {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = writes_at(&c, SPEED);
    assert!(
        settled,
        "the PLC ends at {last}; it got {:?}",
        received.last()
    );
    assert_eq!(received.last().map(|w| w.1), Some(last));
    let out_of_order = received.windows(2).filter(|w| w[1].1 < w[0].1).count();
    assert_eq!(out_of_order, 0, "no write applied after a newer one");

    // Every accepted write ends in a tag_write event: written for what the PLC got,
    // superseded for the rest, nothing lost and nothing twice.
    let done = c
        .collector
        .wait_for(
            |m| {
                common::cell::Delivery::of(m)
                    .of_type("tag_write")
                    .filter(|e| e["data"]["tag"] == "speed")
                    .count() as u64
                    >= N
            },
            T,
        )
        .await;
    let events = tag_writes(&c, "speed");
    assert!(done, "{} tag_write events of {N}", events.len());
    let written: Vec<u64> = events
        .iter()
        .filter(|e| e["result"] == "written")
        .map(|e| e["value"].as_u64().unwrap())
        .collect();
    let superseded = events
        .iter()
        .filter(|e| e["result"] == "superseded")
        .count();
    assert_eq!(
        written.len() + superseded,
        N as usize,
        "{:?}",
        events
            .iter()
            .find(|e| e["result"] != "written" && e["result"] != "superseded")
    );
    assert_eq!(
        written,
        received.iter().map(|w| w.1).collect::<Vec<_>>(),
        "the written events are the PLC's writes, in its order"
    );
    eprintln!(
        "flood of {N}: PLC got {} writes, {superseded} superseded",
        received.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_replayed_and_unchecked_writes_never_reach_the_plc() {
    let mut c = Cell::start(TAGS).await;
    // A retained write: the runtime is subscribed, so it arrives as a live command and is
    // applied once. It stays on the topic, and every new subscription is handed it again.
    common::mqtt_publish(
        c.broker.port(),
        COMMANDS,
        write_tag("r1", "speed", json!(777)).to_string(),
        rumqttc::QoS::AtLeastOnce,
        true,
        T,
    )
    .await;
    let now = mes_edge_drivers::now_ms();
    let checks = [
        (
            write_tag("x1", "speed", json!(70000)),
            "rejected",
            "out of range",
        ),
        (
            write_tag("x2", "speed", json!(true)),
            "rejected",
            "expected",
        ),
        (write_tag("x3", "speed", json!(50)), "rejected", "min"),
        (
            write_tag("x4", "speed", json!("fast")),
            "rejected",
            "expected",
        ),
        (
            json!({"correlation_id": "x5", "command": "write_tag", "tag": "speed", "value": 900, "issued_at": now - 120_000}),
            "expired",
            "maximum age",
        ),
        (
            json!({"correlation_id": "x6", "command": "write_tag", "tag": "speed", "value": 901, "expires_at": now - 1_000}),
            "expired",
            "expires_at",
        ),
        (
            write_tag("x7", "temperature", json!(5)),
            "rejected",
            "no tag",
        ),
    ];
    for (cmd, status, why) in &checks {
        let r = c.command(cmd.clone()).await;
        assert_eq!(r["status"], *status, "{cmd}: {r}");
        assert_eq!(r["accepted"], false, "{r}");
        assert!(r["reason"].as_str().unwrap().contains(why), "{cmd}: {r}");
    }
    // Int16 -5 reaches the PLC as -5 (65531 in the register).
    let r = c.command(write_tag("ok1", "offset", json!(-5))).await;
    assert_eq!(r["status"], "accepted", "{r}");
    assert!(
        common::eventually(T, || writes_at(&c, OFFSET).iter().any(|w| w.1 == 65531)).await,
        "{:?}",
        c.peer.writes()
    );
    assert_eq!(c.plc.read_u16(OFFSET as u16).await as i16, -5);
    let r = c.command(write_tag("ok2", "speed", json!(1200))).await;
    assert_eq!(r["status"], "accepted", "{r}");

    // Restarts subscribe again, under MQTT 5 (retain handling "do not send") and then under
    // 3.1.1 (the broker sends it with the retain flag): it is not applied either time.
    for (i, version) in ["5", "3.1.1"].into_iter().enumerate() {
        c.runtime.terminate();
        if version == "3.1.1" {
            let text = std::fs::read_to_string(&c.config).unwrap();
            let text = text.replace("[mqtt]\n", "[mqtt]\nprotocol_version = \"3.1.1\"\n");
            std::fs::write(&c.config, text).unwrap();
        }
        c.runtime.start_again();
        let value = 1300 + i as u64;
        let r = c
            .command(write_tag(&format!("ok{value}"), "speed", json!(value)))
            .await;
        assert_eq!(r["status"], "accepted", "{r}");
        assert!(
            common::eventually(T, || writes_at(&c, SPEED).iter().any(|w| w.1 == value)).await,
            "{:?}",
            writes_at(&c, SPEED)
        );
    }
    let speeds: Vec<u64> = writes_at(&c, SPEED).iter().map(|w| w.1).collect();
    assert_eq!(
        speeds,
        vec![777, 1200, 1300, 1301],
        "the retained write reached the PLC once, when it was sent"
    );
    let r1 = c
        .replies()
        .iter()
        .filter(|r| r["correlation_id"] == "r1")
        .count();
    assert_eq!(r1, 1, "the retained command was answered once");
    let logs = c.runtime.stderr();
    assert!(
        logs.contains("retained message on the command topic is not applied"),
        "{}",
        c.runtime.logs()
    );
    // The audit trail: what was written, with the value before it.
    let offset = tag_writes(&c, "offset");
    assert_eq!(offset.len(), 1, "{offset:?}");
    assert_eq!(
        (
            offset[0]["result"].clone(),
            offset[0]["value"].clone(),
            offset[0]["by"].clone()
        ),
        (json!("written"), json!(-5), json!("mqtt"))
    );
    assert_eq!(offset[0]["correlation_id"], "ok1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_socket_writes_only_where_the_config_allows_it() {
    async fn over_socket(c: &Cell, cmd: Value) -> Value {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = c.config.with_file_name("cell.sock");
        let mut s = tokio::net::UnixStream::connect(&socket).await.unwrap();
        s.write_all(cmd.to_string().as_bytes()).await.unwrap();
        s.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(T, s.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        serde_json::from_slice(&answer).unwrap()
    }
    let c = Cell::start(TAGS).await;
    let r = over_socket(&c, write_tag("o1", "speed", json!(900))).await;
    assert_eq!(r["status"], "rejected", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("[commands.allow]"),
        "{r}"
    );
    // Order commands stay open to the operator.
    let r = over_socket(&c, json!({"correlation_id": "o2", "command": "store", "order": {"id": "WO-1", "material": "m"}})).await;
    assert_eq!(r["status"], "accepted", "{r}");
    drop(c);

    // Allowed for the operator, but `offset` names MOM only as its writer.
    let extra = format!(
        "{}write_sources = [\"mqtt\"]\n\n[commands.allow]\noperator = [\"all\"]\n",
        TAGS
    );
    let c = Cell::start(&extra).await;
    let r = over_socket(&c, write_tag("o3", "offset", json!(3))).await;
    assert_eq!(r["status"], "rejected", "{r}");
    assert!(
        r["reason"].as_str().unwrap().contains("write_sources"),
        "{r}"
    );
    let r = over_socket(&c, write_tag("o4", "speed", json!(900))).await;
    assert_eq!(r["status"], "accepted", "{r}");
    assert!(
        common::eventually(T, || writes_at(&c, SPEED).last().map(|w| w.1) == Some(900)).await,
        "{:?}",
        writes_at(&c, SPEED)
    );
    assert!(writes_at(&c, OFFSET).is_empty(), "{:?}", c.peer.writes());
    let ev = common::eventually(T, || {
        tag_writes(&c, "speed")
            .iter()
            .any(|e| e["result"] == "written")
    })
    .await;
    assert!(ev, "{:?}", tag_writes(&c, "speed"));
    let by: Vec<Value> = c
        .delivery()
        .of_type("tag_write")
        .map(|e| json!([e["data"]["by"], e["user"].is_string()]))
        .collect();
    assert!(by.iter().all(|b| *b == json!(["operator", true])), "{by:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_5_request_response_answers_on_the_response_topic() {
    let c = Cell::start(TAGS).await;
    let mut opts = MqttOptions::new("mom-requester", "127.0.0.1", c.broker.port());
    opts.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    client
        .subscribe("mom/replies/7", QoS::AtLeastOnce)
        .await
        .unwrap();
    let props = PublishProperties {
        response_topic: Some("mom/replies/7".into()),
        correlation_data: Some(vec![0xca, 0xfe].into()),
        user_properties: vec![("user".into(), "scheduler".into())],
        ..Default::default()
    };
    let mut sent = false;
    let answer = tokio::time::timeout(T, async {
        loop {
            match eventloop.poll().await.unwrap() {
                Event::Incoming(Incoming::SubAck(_)) if !sent => {
                    sent = true;
                    client
                        .publish_with_properties(
                            COMMANDS,
                            QoS::AtLeastOnce,
                            false,
                            write_tag("rr1", "speed", json!(1500)).to_string(),
                            props.clone(),
                        )
                        .await
                        .unwrap();
                }
                Event::Incoming(Incoming::Publish(p)) => return p,
                _ => {}
            }
        }
    })
    .await
    .expect("a reply on the Response Topic");
    let reply: Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(
        (reply["correlation_id"].clone(), reply["status"].clone()),
        (json!("rr1"), json!("accepted")),
        "{reply}"
    );
    let data = answer.properties.and_then(|p| p.correlation_data);
    assert_eq!(data.as_deref(), Some(&[0xca, 0xfe][..]));
    // The event MOM's other subscribers see names the sender the request gave.
    let r = c.reply("rr1").await;
    assert_eq!(r["response_topic"], "mom/replies/7");
    let d = c.delivery();
    let ev = d
        .of_type("command_response")
        .find(|e| e["data"]["correlation_id"] == "rr1")
        .unwrap();
    assert_eq!(ev["user"], "scheduler");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_retained_command_costs_no_reconnect_loop_under_3_1_1() {
    let c = Cell::start_edited(
        |doc| doc["mqtt"]["protocol_version"] = toml_edit::value("3.1.1"),
        TAGS,
    )
    .await;
    // 300 KB: over the 256 KiB the cell once took under 3.1.1, retained so that every new
    // connection would be handed it again.
    let big = json!({"correlation_id": "big", "command": "write_tag", "tag": "speed",
        "value": 100, "pad": "x".repeat(300_000)});
    common::mqtt_publish(
        c.broker.port(),
        COMMANDS,
        big.to_string(),
        rumqttc::QoS::AtLeastOnce,
        true,
        T,
    )
    .await;
    // Rejected unread: its correlation id is past the part the cell keeps.
    let over = |m: &[common::Received]| {
        common::cell::Delivery::of(m)
            .of_type("command_response")
            .filter(|e| {
                e["data"]["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("over the limit"))
            })
            .count()
    };
    assert!(
        c.collector.wait_for(|m| over(m) == 1, T).await,
        "{:?}",
        c.replies()
    );
    // A command after it is applied: the connection that took the big one is still up.
    let r = c.command(write_tag("after", "speed", json!(2400))).await;
    assert_eq!(r["status"], "accepted", "{r}");
    assert!(
        common::eventually(T, || writes_at(&c, SPEED).iter().any(|w| w.1 == 2400)).await,
        "{:?}",
        writes_at(&c, SPEED)
    );
    let connects = c.broker.logs().matches("as mes-edge-under-test").count();
    assert_eq!(connects, 1, "one connection, no loop: {}", c.broker.logs());
    assert_eq!(over(&c.collector.snapshot()), 1, "answered once");
}
