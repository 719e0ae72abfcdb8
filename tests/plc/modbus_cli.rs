//! The commissioning commands against pymodbus: `mes-edge modbus read` shows what pymodbus
//! encoded, `modbus write` sets what pymodbus reads back, and `modbus plan` prints a config's
//! requests.

use crate::common;

use common::modbus_lab::{pymodbus_decode, LabOptions, LabPeer};
use serde_json::json;
use std::process::{Command, Output};

fn mes_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mes-edge"))
        .args(args)
        .output()
        .unwrap()
}

fn values(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with('['))
        .map(str::to_string)
        .collect()
}

#[test]
fn read_and_write_like_mbpoll() {
    let peer = LabPeer::start(LabOptions {
        tcp: true,
        rtu_over_tcp: true,
        unit_ids: vec![1, 5],
        init: Some(json!({
            "typed": [
                {"address": 10, "type": "f32", "order": "CDAB", "value": 1.75},
                {"address": 12, "type": "f32", "order": "CDAB", "value": -0.5},
                {"address": 20, "type": "string", "order": "BADC", "value": "LOT-42", "length": 4},
            ],
            "coils": {"2": true},
            "missing": [30],
        })),
        ..Default::default()
    });
    let host = format!("127.0.0.1:{}", peer.tcp_port);
    let out = mes_edge(&[
        "modbus", "read", &host, "10", "--type", "f32", "--order", "CDAB", "--count", "2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(values(&out), ["[10]: \t1.75", "[12]: \t-0.5"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Protocol configuration: Modbus TCP"),
        "{stdout}"
    );

    let out = mes_edge(&[
        "modbus", "read", &host, "20", "-t", "string", "--length", "4", "-o", "BADC",
    ]);
    assert_eq!(values(&out), ["[20]: \t\"LOT-42\""]);
    let out = mes_edge(&["modbus", "read", &host, "0", "--table", "coil", "-c", "3"]);
    assert_eq!(values(&out), ["[0]: \t0", "[1]: \t0", "[2]: \t1"]);
    // The same through RTU frames over TCP, unit 5.
    let gateway = format!("127.0.0.1:{}", peer.rtu_over_tcp_port);
    let out = mes_edge(&[
        "modbus",
        "read",
        &gateway,
        "10",
        "-t",
        "f32",
        "-o",
        "CDAB",
        "--rtu-over-tcp",
        "--unit",
        "5",
    ]);
    assert_eq!(
        values(&out),
        ["[10]: \t1.75"],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = mes_edge(&[
        "modbus", "write", &host, "40", "-1234567", "-7", "--type", "i32", "--order", "DCBA",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Written 2 references."));
    let out = mes_edge(&["modbus", "write", &host, "50", "1", "--table", "coil"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = pymodbus_decode(
        peer.tcp_port,
        1,
        &json!([
            {"address": 40, "type": "i32", "order": "DCBA"},
            {"address": 42, "type": "i32", "order": "DCBA"},
            {"address": 50, "coil": true},
        ]),
    );
    assert_eq!(back, vec![json!(-1234567), json!(-7), json!(true)]);

    // An exception is an error with its name, and exit code 1.
    let out = mes_edge(&["modbus", "read", &host, "29", "-c", "3"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0x02 illegal data address"), "{stderr}");
    let out = mes_edge(&["modbus", "write", &host, "60", "70000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range for u16"));
}

#[test]
fn plan_prints_the_requests_of_a_config() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/line-modbus-rtu.toml");
    let out = mes_edge(&["modbus", "plan", config]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "line modbus-rtu /dev/ttyUSB0 19200 8E1",
        "  device \"press_drive\", unit 3",
        "    every 200 ms: 2 requests",
        "      FC 3 holding 0..21 (22 registers): good_count, state_word, fault_code, target_quantity",
        "      FC 3 holding 10..17 (8 registers): recipe_name",
        "line modbus-rtu-over-tcp 192.168.10.40:4001",
        "      FC 4 input 100..100 (1 register): scrap_count",
    ] {
        assert!(text.lines().any(|l| l == line), "no line {line:?} in:\n{text}");
    }
}
