//! Work orders end to end: MOM's commands over Mosquitto, the PLC (pymodbus) making parts and
//! driving orders with its own signals, the operator's CLI, and kill -9 in the middle of it.

use crate::common;

use common::cell::*;
use common::order_cell::{cmd_ok, Cell, T};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_lifecycle_driven_by_mom_while_the_machine_makes_parts() {
    let mut c = Cell::start("").await;
    let store = json!({"correlation_id": "c1", "command": "store",
        "order": {"id": "WO-1", "material": "BRK-220", "quantity": 100, "ideal_cycle_s": 0.5, "lot": "L-7"}});
    let r = c.command(store).await;
    assert_eq!(
        (r["accepted"].clone(), r["state"].clone()),
        (json!(true), json!("NotAllowedToStart")),
        "{r}"
    );
    let r = c
        .command(json!({"correlation_id": "c2", "command": "start", "order_id": "WO-1"}))
        .await;
    assert_eq!(
        r["state"], "Running",
        "the cell is free, so the order begins at once: {r}"
    );

    c.make(20, 3).await;
    let r = c.command(json!({"correlation_id": "c3", "command": "pause", "order_id": "WO-1", "reason": "material shortage"})).await;
    assert_eq!(r["state"], "Interrupted", "{r}");
    c.make(5, 0).await;
    let r = c
        .command(json!({"correlation_id": "c4", "command": "resume", "order_id": "WO-1"}))
        .await;
    assert_eq!(r["state"], "Running", "{r}");
    c.make(10, 0).await;
    let r = c
        .command(json!({"correlation_id": "c5", "command": "stop", "order_id": "WO-1"}))
        .await;
    assert_eq!(r["state"], "Ended", "{r}");

    let jr = c.job_response("WO-1").await;
    assert_eq!(
        (jr["good"].as_u64(), jr["scrap"].as_u64()),
        (Some(30), Some(3)),
        "parts made while Running: {jr}"
    );
    assert_eq!(
        (jr["state"].as_str(), jr["substate"].as_str()),
        (Some("Ended"), Some("Closed"))
    );
    assert_eq!(c.parts_of(json!("WO-1")), (30, 3));
    assert_eq!(
        c.parts_of(Value::Null),
        (5, 0),
        "the 5 made while paused went to the no-order bucket"
    );
    assert_eq!(
        c.order_states("WO-1"),
        [
            ("Store", "NotAllowedToStart"),
            ("Start", "AllowedToStart"),
            ("Begin", "Running"),
            ("Pause", "Interrupted"),
            ("Resume", "Running"),
            ("Stop", "Ended")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert!(jr["oee"]["quality"].as_f64().unwrap() - 30.0 / 33.0 < 1e-9);
    c.delivery().assert_gap_free();
    assert!(c.runtime.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_duplicate_and_malformed_commands_get_replies_and_change_nothing() {
    let mut c = Cell::start("").await;
    let store = json!({"correlation_id": "d1", "command": "store", "order": {"id": "WO-2", "material": "m"}});
    assert_eq!(c.command(store.clone()).await["accepted"], true);
    let r = c
        .command(json!({"correlation_id": "d2", "command": "resume", "order_id": "WO-2"}))
        .await;
    assert_eq!(r["accepted"], false);
    assert_eq!(
        r["reason"],
        "Resume is not allowed in state NotAllowedToStart (allowed: Update, Start, Abort, Cancel)"
    );
    assert_eq!(r["state"], "NotAllowedToStart");

    // QoS 1 may deliver a command twice: applied once, answered twice.
    c.send(store).await;
    let found = c
        .collector
        .wait_for(
            |m| {
                Delivery::of(m)
                    .of_type("command_response")
                    .filter(|e| e["data"]["correlation_id"] == "d1")
                    .count()
                    == 2
            },
            T,
        )
        .await;
    assert!(found);
    let second = c.reply("d1").await;
    assert_eq!(
        (second["accepted"].clone(), second["duplicate"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(c.order_states("WO-2").len(), 1, "stored once");

    c.send_raw(b"{not json".to_vec()).await;
    c.send(json!({"correlation_id": "d3", "command": "store", "order": {"material": "m"}}))
        .await;
    c.send(json!({"correlation_id": "d4", "command": "pause", "order_id": 42}))
        .await;
    c.send_raw(
        format!(
            r#"{{"correlation_id":"d5","command":"pause","order_id":"{}"}}"#,
            "x".repeat(70_000)
        )
        .into_bytes(),
    )
    .await;
    c.send(json!({"correlation_id": "d6", "command": "start", "order_id": "WO-2", "extra": 1}))
        .await;
    assert!(c.reply("d3").await["reason"]
        .as_str()
        .unwrap()
        .contains("missing field `id`"));
    assert!(c.reply("d4").await["reason"]
        .as_str()
        .unwrap()
        .contains("invalid type"));
    assert!(c.reply("d6").await["reason"]
        .as_str()
        .unwrap()
        .contains("unknown field `extra`"));
    let anonymous: Vec<Value> = c
        .replies()
        .into_iter()
        .filter(|r| r["correlation_id"].is_null())
        .collect();
    assert_eq!(
        anonymous.len(),
        2,
        "bad JSON and the oversized payload: {anonymous:?}"
    );
    assert!(anonymous
        .iter()
        .any(|r| r["reason"].as_str().unwrap().starts_with("not JSON")));
    assert!(anonymous
        .iter()
        .any(|r| r["reason"].as_str().unwrap().contains("over the limit")));
    assert!(c
        .replies()
        .iter()
        .all(|r| r["accepted"] == false || r["correlation_id"] == "d1"));

    // And the runtime carries on.
    assert!(c.runtime.is_running());
    assert_eq!(
        c.command(json!({"correlation_id": "d7", "command": "start", "order_id": "WO-2"}))
            .await["state"],
        "Running"
    );
    c.make(3, 0).await;
    assert_eq!(c.parts_of(json!("WO-2")), (3, 0));
    c.delivery().assert_gap_free();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plc_starts_and_ends_an_order_and_the_operator_pauses_it_and_explains_a_stop() {
    let extra = "[signals.orders]\nstart_tag = \"order_start\"\nnumber_tag = \"order_number\"\nend_tag = \"order_end\"\n";
    let mut c = Cell::start(extra).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // the bits' first reading is no edge
    c.plc.write_u32(ORDER_NUMBER, 4711).await;
    c.plc.write_coil(ORDER_START, true).await;
    let started = c
        .collector
        .wait_for(
            |m| {
                Delivery::of(m)
                    .of_type("order_state")
                    .any(|e| e["data"]["order_id"] == "4711" && e["data"]["state"] == "Running")
            },
            T,
        )
        .await;
    assert!(started, "the PLC's start bit started order 4711");
    c.make(8, 1).await;

    // A jam; the operator names the stop's reason from the CLI.
    c.plc.write_u16(FAULT, 17).await;
    c.plc.write_u16(STATE, 2).await;
    let down = c
        .collector
        .wait_for(
            |m| {
                Delivery::of(m)
                    .of_type("machine_state")
                    .any(|e| e["data"]["state"] == "down")
            },
            T,
        )
        .await;
    assert!(down);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = cmd_ok(&c.cli(&["downtime", "reason", "JAM-7"]));
    assert_eq!(
        (r["accepted"].clone(), r["order_id"].clone()),
        (json!(true), json!("4711")),
        "{r}"
    );
    c.plc.write_u16(FAULT, 0).await;
    c.plc.write_u16(STATE, 1).await;
    c.make(4, 0).await;

    let r = cmd_ok(&c.cli(&["orders", "pause", "4711", "--reason", "material shortage"]));
    assert_eq!(r["state"], "Interrupted", "{r}");
    let r = cmd_ok(&c.cli(&["orders", "resume", "4711"]));
    assert_eq!(r["state"], "Running", "{r}");
    let refused = c.cli(&["orders", "resume", "4711"]);
    assert_eq!(
        refused.status.code(),
        Some(1),
        "an invalid command from the CLI is refused"
    );

    c.plc.write_coil(ORDER_END, true).await;
    let jr = c.job_response("4711").await;
    assert_eq!(
        (jr["good"].as_u64(), jr["scrap"].as_u64()),
        (Some(12), Some(1)),
        "{jr}"
    );
    assert!(
        jr["downtime_ms"]["JAM-7"].as_i64().unwrap() > 0,
        "the stop's time moved to the operator's reason: {jr}"
    );
    assert!(jr["downtime_ms"].get("die jam").is_none(), "{jr}");
    let reason = c.delivery().of_type("downtime_reason").next().unwrap()["data"].clone();
    assert_eq!(
        (
            reason["reason"].as_str(),
            reason["state"].as_str(),
            reason["by"].as_str()
        ),
        (Some("JAM-7"), Some("down"), Some("operator"))
    );
    let states = c.order_states("4711");
    assert_eq!(states.first().unwrap().0, "StoreAndStart");
    assert_eq!(
        states.last().unwrap(),
        &("Stop".to_string(), "Ended".to_string())
    );
    let list = c.cli(&["orders", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("4711"),
        "{}",
        String::from_utf8_lossy(&list.stdout)
    );
    c.delivery().assert_gap_free();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_order_resumes_the_same_order_with_the_same_counts() {
    let mut c = Cell::start("").await;
    let r = c.command(json!({"correlation_id": "k1", "command": "store_and_start", "order": {"id": "WO-9", "material": "m", "quantity": 500}})).await;
    assert_eq!(r["state"], "Running");
    c.make(15, 2).await;
    c.runtime.kill9();
    // Parts made while the runtime is dead are counted when it is back, for the same order.
    for _ in 0..5 {
        c.good += 1;
        c.plc.write_u32(GOOD, c.good).await;
    }
    c.runtime.start_again();
    c.make(5, 0).await;
    let shown = cmd_ok_json(&c.cli(&["orders", "show", "WO-9"]));
    assert_eq!(
        (
            shown["state"].as_str(),
            shown["good"].as_u64(),
            shown["scrap"].as_u64()
        ),
        (Some("Running"), Some(25), Some(2)),
        "{shown}"
    );
    let r = c
        .command(json!({"correlation_id": "k2", "command": "stop", "order_id": "WO-9"}))
        .await;
    assert_eq!(r["state"], "Ended");
    let jr = c.job_response("WO-9").await;
    assert_eq!(
        (jr["good"].as_u64(), jr["scrap"].as_u64()),
        (Some(25), Some(2))
    );
    assert_eq!(
        c.order_states("WO-9")
            .iter()
            .filter(|(_, s)| s == "Running")
            .count(),
        1,
        "began once, not again after the restart"
    );
    c.delivery().assert_gap_free();
}

fn cmd_ok_json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_active_order_is_written_back_to_the_plc() {
    let extra = "[orders.write_back]\norder_number_tag = \"active_order\"\ntarget_tag = \"active_target\"\n";
    let mut c = Cell::start(extra).await;
    let r = c.command(json!({"correlation_id": "w1", "command": "store_and_start", "order": {"id": "5150", "material": "m", "quantity": 250}})).await;
    assert_eq!(r["state"], "Running");
    let mut written = (0, 0);
    for _ in 0..50 {
        written = (
            c.plc.read_u32(ACTIVE_ORDER).await,
            c.plc.read_u32(ACTIVE_TARGET).await,
        );
        if written == (5150, 250) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        written,
        (5150, 250),
        "the PLC holds the active order and its target"
    );
    let r = c
        .command(json!({"correlation_id": "w2", "command": "stop", "order_id": "5150"}))
        .await;
    assert_eq!(r["state"], "Ended");
    for _ in 0..50 {
        written = (
            c.plc.read_u32(ACTIVE_ORDER).await,
            c.plc.read_u32(ACTIVE_TARGET).await,
        );
        if written == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(written, (0, 0), "no active order: zeros");
}
