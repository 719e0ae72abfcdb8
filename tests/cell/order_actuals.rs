//! What an order used and measured, end to end: the PLC's reject codes with its scrap counter,
//! the lot loaded at the machine and the die temperature (pymodbus), scrap reasons and material
//! given by MOM over Mosquitto and by the operator's CLI, a kill -9 in the middle, all ending in
//! the job response. The truth is what the test served at the PLC.

use crate::common;

use common::cell::*;
use common::order_cell::{cmd_ok, Cell, T};
use serde_json::{json, Value};
use std::time::Duration;
use toml_edit::{value, Array, Table};

const REJECT: u16 = 30;
const LOT: u16 = 32;
const TEMP: u16 = 40;
const PER_PART: f64 = 0.5;

fn edit(doc: &mut toml_edit::DocumentMut) {
    let scrap = &mut doc["signals"]["scrap_count"];
    scrap["reason_tag"] = value("reject_code");
    let mut reasons = toml_edit::InlineTable::new();
    reasons.insert("3", "burr".into());
    reasons.insert("7", "crack".into());
    scrap["reasons"] = value(reasons);
    let mut orders = Table::new();
    let mut stats = Array::new();
    stats.push("die_temperature");
    orders["statistics"] = value(stats);
    doc["orders"] = toml_edit::Item::Table(orders);
}

fn extra() -> String {
    format!(
        r#"
[[devices.tags]]
name = "reject_code"
table = "holding"
address = {REJECT}
type = "u16"

[[devices.tags]]
name = "coil_lot"
table = "holding"
address = {LOT}
type = "u32"

[[devices.tags]]
name = "die_temperature"
table = "holding"
address = {TEMP}
type = "i16"
scale = 0.1

[signals.material]
lot_tag = "coil_lot"
material = "DC04 coil"
quantity_per_part = {PER_PART}
unit = "kg"
"#
    )
}

/// Serves temperatures (raw tenths of a degree), each held long enough to be read.
async fn serve_temperatures(c: &mut Cell, raw: &[i16], served: &mut Vec<f64>) {
    for r in raw {
        c.plc.write_u16(TEMP, *r as u16).await;
        served.push(*r as f64 * 0.1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Scrap parts with the reject code the PLC sets first.
async fn scrap_with_code(c: &mut Cell, code: u16, parts: u16) {
    c.plc.write_u16(REJECT, code).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.make(0, parts).await;
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrap_reasons_material_and_process_data_end_in_the_job_response_across_kill_9() {
    let mut c = Cell::start_edited(edit, &extra()).await;
    c.plc.write_u32(LOT, 4711).await;
    let r = c
        .command(json!({"correlation_id": "o1", "command": "store_and_start",
            "order": {"id": "WO-7", "material": "BRK-220", "quantity": 0, "lot": "L-7"}}))
        .await;
    assert_eq!(r["state"], "Running", "{r}");
    let mut served = Vec::new();
    serve_temperatures(&mut c, &[2105, 2110, 2098], &mut served).await;

    c.make(10, 0).await;
    scrap_with_code(&mut c, 3, 2).await;
    scrap_with_code(&mut c, 7, 1).await;
    scrap_with_code(&mut c, 0, 2).await;

    // MOM explains one of the two unexplained parts; more than there are is refused.
    let r = c
        .command(json!({"correlation_id": "s1", "command": "scrap_reason", "reason": "dent", "quantity": 1}))
        .await;
    assert_eq!(r["accepted"], true, "{r}");
    let r = c
        .command(json!({"correlation_id": "s2", "command": "scrap_reason", "reason": "dent", "quantity": 5}))
        .await;
    assert_eq!(r["accepted"], false, "{r}");
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("1 scrap parts without a reason"),
        "{r}"
    );
    let r = c
        .command(json!({"correlation_id": "m0", "command": "consume_material", "material": {"material": "grease"}}))
        .await;
    assert_eq!(
        r["accepted"], false,
        "a malformed material command is refused: {r}"
    );
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .contains("missing field `lot`"),
        "{r}"
    );
    let r = c
        .command(
            json!({"correlation_id": "m1", "command": "consume_material",
            "material": {"material": "grease", "lot": "G-1", "quantity": 0.2, "unit": "kg"}}),
        )
        .await;
    assert_eq!(r["accepted"], true, "{r}");

    // kill -9: what the order used and measured so far is committed with its counts.
    c.runtime.kill9();
    c.runtime.start_again();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The operator, after the restart, through the CLI.
    let reply = cmd_ok(&c.cli(&["scrap", "reason", "scratch", "--quantity", "1"]));
    assert_eq!(reply["accepted"], true, "{reply}");
    let reply = cmd_ok(&c.cli(&[
        "material",
        "consume",
        "--material",
        "label",
        "--lot",
        "LB-9",
        "--quantity",
        "12",
    ]));
    assert_eq!(reply["accepted"], true, "{reply}");

    serve_temperatures(&mut c, &[2120, 2087], &mut served).await;
    // A new coil: the old lot's consumption is published, the new one's starts.
    c.plc.write_u32(LOT, 4712).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    c.make(4, 0).await;
    let r = c
        .command(json!({"correlation_id": "o2", "command": "stop", "order_id": "WO-7"}))
        .await;
    assert_eq!(r["state"], "Ended", "{r}");

    let jr = c.job_response("WO-7").await;
    assert_eq!(
        (jr["good"].as_u64(), jr["scrap"].as_u64()),
        (Some(14), Some(5)),
        "{jr}"
    );
    assert_eq!(
        jr["scrap_by_reason"],
        json!({"burr": 2, "crack": 1, "dent": 1, "scratch": 1}),
        "{jr}"
    );
    let actual = |material: &str, lot: &str| -> Value {
        jr["material_actuals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["material"] == material && a["lot"] == lot)
            .unwrap_or_else(|| panic!("no {material} lot {lot} in {jr}"))
            .clone()
    };
    let coil = actual("DC04 coil", "4711");
    assert!(
        close(&coil["quantity"], 15.0 * PER_PART) && coil["use"] == "consumed",
        "{coil}"
    );
    assert!(
        close(&actual("DC04 coil", "4712")["quantity"], 4.0 * PER_PART),
        "{jr}"
    );
    assert!(close(&actual("grease", "G-1")["quantity"], 0.2), "{jr}");
    assert_eq!(actual("label", "LB-9")["unit"], "pcs", "{jr}");
    let produced = actual("BRK-220", "L-7");
    assert_eq!(
        (produced["quantity"].as_f64(), produced["use"].as_str()),
        (Some(14.0), Some("produced"))
    );

    let t = &jr["process_data"]["die_temperature"];
    let n = served.len() as f64;
    let mean = served.iter().sum::<f64>() / n;
    let sd = (served.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let min = served.iter().cloned().fold(f64::MAX, f64::min);
    let max = served.iter().cloned().fold(f64::MIN, f64::max);
    assert_eq!(
        t["count"].as_u64(),
        Some(served.len() as u64),
        "{t} vs served {served:?}"
    );
    assert!(
        close(&t["min"], min) && close(&t["max"], max),
        "{t} vs {served:?}"
    );
    assert!(
        close(&t["mean"], mean) && close(&t["sd"], sd),
        "{t} vs {served:?}"
    );

    // The events say the same, each once.
    let d = c.delivery();
    d.assert_gap_free();
    let scrap: Vec<(Value, u64)> = d
        .of_type("part_count")
        .filter(|e| e["data"]["counter"] == "scrap")
        .map(|e| {
            (
                e["data"]["reason"].clone(),
                e["data"]["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    let with = |r: Value| {
        scrap
            .iter()
            .filter(|(x, _)| *x == r)
            .map(|(_, q)| q)
            .sum::<u64>()
    };
    assert_eq!(
        (with(json!("burr")), with(json!("crack")), with(Value::Null)),
        (2, 1, 2),
        "{scrap:?}"
    );
    let consumed: Vec<(String, f64)> = d
        .of_type("material_consumed")
        .map(|e| {
            (
                e["data"]["lot"].as_str().unwrap().to_string(),
                e["data"]["quantity"].as_f64().unwrap(),
            )
        })
        .collect();
    let of_lot = |lot: &str| {
        consumed
            .iter()
            .filter(|(l, _)| l == lot)
            .map(|(_, q)| q)
            .sum::<f64>()
    };
    assert!((of_lot("4711") - 7.5).abs() < 1e-9, "{consumed:?}");
    let published_4712 = c
        .collector
        .wait_for(
            |m| {
                Delivery::of(m)
                    .of_type("material_consumed")
                    .any(|e| e["data"]["lot"] == "4712")
            },
            T,
        )
        .await;
    assert!(
        published_4712,
        "the last lot's use is published once the order stops: {consumed:?}"
    );
    assert_eq!(d.of_type("scrap_reason").count(), 2);
}

/// Part records: each good part the PLC counts carries the serial number and the die
/// temperature the PLC held when it counted it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_part_carries_its_serial_number_and_the_values_it_was_made_with() {
    const SERIAL: u16 = 50;
    let extra = format!(
        r#"
[[devices.tags]]
name = "die_temperature"
table = "holding"
address = {TEMP}
type = "i16"
scale = 0.1

[[devices.tags]]
name = "serial"
table = "holding"
address = {SERIAL}
type = "u32"

[part_record]
trigger = "good_count"
serial_tag = "serial"
tags = ["die_temperature"]
"#
    );
    let mut c = Cell::start(&extra).await;
    let r = c
        .command(json!({"correlation_id": "o1", "command": "store_and_start",
            "order": {"id": "WO-9", "material": "BRK-220", "lot": "L-9"}}))
        .await;
    assert_eq!(r["state"], "Running", "{r}");
    let mut made = Vec::new();
    for (serial, raw) in [(5001u32, 2101i16), (5002, 2093), (5003, 2117)] {
        // The PLC stamps the part, then counts it: one register write each, as a PLC scan would.
        c.plc.write_u32(SERIAL, serial).await;
        c.plc.write_u16(TEMP, raw as u16).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        c.make(1, 0).await;
        made.push((serial.to_string(), raw as f64 * 0.1));
    }
    let have_all = c
        .collector
        .wait_for(|m| Delivery::of(m).of_type("part_record").count() >= 3, T)
        .await;
    assert!(have_all, "three part records");
    let records: Vec<Value> = c
        .delivery()
        .of_type("part_record")
        .map(|e| e["data"].clone())
        .collect();
    assert_eq!(records.len(), 3, "one record per part: {records:?}");
    for (r, (serial, temp)) in records.iter().zip(&made) {
        assert_eq!(r["serial"], json!(serial), "{r}");
        assert_eq!(
            (r["order_id"].as_str(), r["lot"].as_str()),
            (Some("WO-9"), Some("L-9")),
            "{r}"
        );
        assert_eq!(
            (r["counter"].as_str(), r["parts"].as_u64()),
            (Some("good"), Some(1)),
            "{r}"
        );
        assert!(
            close(&r["values"]["die_temperature"]["value"], *temp),
            "{r} vs {temp}"
        );
        assert_eq!(r["values"]["die_temperature"]["quality"], "good", "{r}");
    }
}
