//! Every register encoding against pymodbus: values laid out by pymodbus's own
//! `convert_to_registers` (tests/peers/modbus_lab.py) decode to those values through the runtime's
//! Modbus drivers, and values the drivers write read back through pymodbus's
//! `convert_from_registers`.

use crate::common;

use common::modbus_lab::{cell_config, pymodbus_decode, Drivers, LabOptions, LabPeer};
use mes_edge_drivers::{ErrorKind, Quality, Text, Value};
use serde_json::json;
use std::time::Duration;

const ORDERS: [&str; 4] = ["ABCD", "BADC", "CDAB", "DCBA"];

/// (type, registers, value as pymodbus gets it, value the driver must report)
fn samples() -> Vec<(&'static str, u16, serde_json::Value, Value)> {
    vec![
        ("u16", 1, json!(54321), Value::UInt(54321)),
        ("i16", 1, json!(-12345), Value::Int(-12345)),
        (
            "u32",
            2,
            json!(3_000_000_123u32),
            Value::UInt(3_000_000_123),
        ),
        ("i32", 2, json!(-2_000_000_123), Value::Int(-2_000_000_123)),
        (
            "u64",
            4,
            json!(12_345_678_901_234_567_890u64),
            Value::UInt(12_345_678_901_234_567_890),
        ),
        (
            "i64",
            4,
            json!(-1_234_567_890_123_456_789i64),
            Value::Int(-1_234_567_890_123_456_789),
        ),
        ("f32", 2, json!(1.23456), Value::Float(1.23456f32 as f64)),
        (
            "f64",
            4,
            json!(-1234.567890123456),
            Value::Float(-1234.567890123456),
        ),
        (
            "string",
            5,
            json!("PRESS-7"),
            Value::Text(Text::new("PRESS-7").unwrap()),
        ),
    ]
}

fn tag_toml(name: &str, table: &str, address: u16, ty: &str, order: &str, extra: &str) -> String {
    format!(
        "[[devices.tags]]\nname = \"{name}\"\ntable = \"{table}\"\naddress = {address}\n\
         type = \"{ty}\"\norder = \"{order}\"\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_in_every_byte_order_decodes_to_what_pymodbus_encoded() {
    let mut typed = Vec::new();
    let mut tags = String::new();
    let mut expected = Vec::new();
    let mut address = 0u16;
    for order in ORDERS {
        for (ty, regs, value, want) in samples() {
            let length = if ty == "string" {
                format!("length = {regs}")
            } else {
                String::new()
            };
            typed.push(json!({"address": address, "type": ty, "order": order, "value": value, "length": regs}));
            let name = format!("{ty}_{order}");
            tags += &tag_toml(&name, "holding", address, ty, order, &length);
            expected.push((name, want));
            // The same registers through FC 4: input registers mirror holding registers here.
            let name = format!("{ty}_{order}_input");
            tags += &tag_toml(&name, "input", address, ty, order, &length);
            expected.push((name, want));
            address += regs + 1;
        }
    }
    // Scaled: a raw i16 of -12345 in hundredths.
    typed.push(json!({"address": 500, "type": "i16", "order": "ABCD", "value": -12345}));
    tags += &tag_toml(
        "scaled",
        "holding",
        500,
        "i16",
        "ABCD",
        "scale = 0.01\noffset = 1.0",
    );
    expected.push(("scaled".into(), Value::Float(-12345.0 * 0.01 + 1.0)));
    // Bools: a coil, the discrete input that mirrors it, and bits of a register.
    tags += "[[devices.tags]]\nname = \"coil_3\"\ntable = \"coil\"\naddress = 3\ntype = \"bool\"\n\
             [[devices.tags]]\nname = \"input_3\"\ntable = \"discrete_input\"\naddress = 3\ntype = \"bool\"\n\
             [[devices.tags]]\nname = \"coil_4\"\ntable = \"coil\"\naddress = 4\ntype = \"bool\"\n";
    tags += &tag_toml("bit_5", "holding", 600, "bool", "ABCD", "bit = 5");
    tags += &tag_toml("bit_4", "holding", 600, "bool", "ABCD", "bit = 4");
    tags += &tag_toml("bit_13_badc", "holding", 600, "bool", "BADC", "bit = 13");
    expected.extend([
        ("coil_3".into(), Value::Bool(true)),
        ("input_3".into(), Value::Bool(true)),
        ("coil_4".into(), Value::Bool(false)),
        ("bit_5".into(), Value::Bool(true)),
        ("bit_4".into(), Value::Bool(false)),
        // 0x0020 with its bytes swapped is 0x2000: bit 13.
        ("bit_13_badc".into(), Value::Bool(true)),
    ]);
    let peer = LabPeer::start(LabOptions {
        tcp: true,
        init: Some(json!({"typed": typed, "coils": {"3": true}, "holding": {"600": 0x0020}})),
        ..Default::default()
    });
    let config = cell_config(&format!(
        "[[devices]]\nname = \"plc\"\nprotocol = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {}\n\
         poll_interval_ms = 100\ntimeout_ms = 1000\n\n{tags}",
        peer.tcp_port
    ));
    let drivers = Drivers::start(&config);
    let names: Vec<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        drivers.wait_all(&names, Duration::from_secs(15)).await,
        "not every tag was read"
    );
    let mut wrong = Vec::new();
    for (name, want) in &expected {
        let s = drivers.latest(name).unwrap();
        if s.quality != Quality::Good || s.value != Some(*want) {
            wrong.push(format!(
                "{name}: got {:?} {:?}, want {want:?}",
                s.quality, s.value
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "tags decoded wrong:\n{}",
        wrong.join("\n")
    );
    drivers.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_read_back_through_pymodbus() {
    let peer = LabPeer::start(LabOptions {
        tcp: true,
        unit_ids: vec![1, 2],
        init: Some(json!({"holding": {"210": 0x00F0}})),
        ..Default::default()
    });
    let mut tags = String::new();
    let mut spec = Vec::new();
    let mut writes = Vec::new();
    let mut address = 0u16;
    for order in ORDERS {
        for (ty, regs, value, v) in samples() {
            let name = format!("{ty}_{order}");
            let length = if ty == "string" {
                format!("length = {regs}\n")
            } else {
                String::new()
            };
            tags += &tag_toml(
                &name,
                "holding",
                address,
                ty,
                order,
                &format!("{length}write = true"),
            );
            spec.push(json!({"address": address, "type": ty, "order": order, "length": regs}));
            writes.push((name, v, value));
            address += regs;
        }
    }
    tags += &tag_toml(
        "setpoint",
        "holding",
        200,
        "i16",
        "ABCD",
        "scale = 0.1\nwrite = true",
    );
    tags += "[[devices.tags]]\nname = \"ack\"\ntable = \"coil\"\naddress = 7\ntype = \"bool\"\nwrite = true\n";
    tags += &tag_toml(
        "bit_2",
        "holding",
        210,
        "bool",
        "ABCD",
        "bit = 2\nwrite = true",
    );
    tags += &tag_toml(
        "bit_4",
        "holding",
        210,
        "bool",
        "ABCD",
        "bit = 4\nwrite = true",
    );
    tags += &tag_toml("read_only", "holding", 220, "u16", "ABCD", "");
    let config = cell_config(&format!(
        "[[devices]]\nname = \"plc\"\nprotocol = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {p}\n\
         poll_interval_ms = 100\n\n{tags}\n\
         [[devices]]\nname = \"multiple_only\"\nprotocol = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {p}\n\
         unit_id = 2\nsingle_writes = false\npoll_interval_ms = 100\n\n\
         [[devices.tags]]\nname = \"order_number\"\ntable = \"holding\"\naddress = 0\ntype = \"u16\"\nwrite = true\n\
         [[devices.tags]]\nname = \"start\"\ntable = \"coil\"\naddress = 0\ntype = \"bool\"\nwrite = true\n",
        p = peer.tcp_port
    ));
    let drivers = Drivers::start(&config);
    assert!(
        drivers
            .wait_all(&["read_only"], Duration::from_secs(10))
            .await
    );

    for (name, value, _) in &writes {
        drivers
            .write(name, *value)
            .await
            .unwrap_or_else(|e| panic!("write {name}: {e}"));
    }
    let back = pymodbus_decode(peer.tcp_port, 1, &json!(spec));
    for ((name, _, want), got) in writes.iter().zip(&back) {
        let same = match (want, got) {
            (serde_json::Value::Number(w), serde_json::Value::Number(g))
                if name.starts_with("f32") =>
            {
                (w.as_f64().unwrap() as f32) == (g.as_f64().unwrap() as f32)
            }
            _ => want == got,
        };
        assert!(same, "{name}: pymodbus read back {got}, written {want}");
    }
    // The driver reads its own writes back as good values too.
    for (name, value, _) in &writes {
        let ok = common::eventually(Duration::from_secs(5), || {
            drivers
                .latest(name)
                .is_some_and(|s| s.value == Some(*value))
        })
        .await;
        assert!(
            ok,
            "{name} not read back by the driver: {:?}",
            drivers.latest(name)
        );
    }

    drivers.write("setpoint", Value::Float(21.5)).await.unwrap();
    drivers.write("ack", Value::Bool(true)).await.unwrap();
    drivers.write("bit_2", Value::Bool(true)).await.unwrap();
    drivers.write("bit_4", Value::Bool(false)).await.unwrap();
    drivers
        .write("order_number", Value::UInt(4711))
        .await
        .unwrap();
    drivers.write("start", Value::Bool(true)).await.unwrap();
    let back = pymodbus_decode(
        peer.tcp_port,
        1,
        &json!([
            {"address": 200, "type": "i16", "order": "ABCD"},
            {"address": 7, "coil": true},
            {"address": 210, "type": "u16", "order": "ABCD"},
        ]),
    );
    // 21.5 at a scale of 0.1 is 215; bit 2 set and bit 4 cleared in 0x00F0 (FC 22) is 0x00E4.
    assert_eq!(back, vec![json!(215), json!(true), json!(0x00E4)]);
    let back = pymodbus_decode(
        peer.tcp_port,
        2,
        &json!([{"address": 0, "type": "u16", "order": "ABCD"}, {"address": 0, "coil": true}]),
    );
    assert_eq!(
        back,
        vec![json!(4711), json!(true)],
        "FC 16 / FC 15 writes of unit 2"
    );

    // Refused before anything reaches the PLC.
    let before = pymodbus_decode(peer.tcp_port, 1, &json!([{"address": 0, "type": "u16"}]));
    let err = drivers
        .write("u16_ABCD", Value::UInt(70_000))
        .await
        .unwrap_err();
    assert!(err.message.contains("out of range"), "{err}");
    assert_eq!(err.kind, ErrorKind::Configuration, "{err}");
    let err = drivers
        .write("f32_ABCD", Value::Text(Text::new("x").unwrap()))
        .await
        .unwrap_err();
    assert!(err.message.contains("expected a number"), "{err}");
    assert_eq!(err.kind, ErrorKind::Configuration, "{err}");
    assert_eq!(
        pymodbus_decode(peer.tcp_port, 1, &json!([{"address": 0, "type": "u16"}])),
        before
    );
    assert!(
        drivers.write("read_only", Value::UInt(1)).await.is_err(),
        "a tag without `write = true` has no write channel"
    );
    drivers.stop().await;
}
