//! The S7 commissioning commands against python-snap7's server: `mes-edge s7 read` shows what
//! snap7.util encoded, `s7 write` sets what the peer then holds, a refused DB is named, and
//! `s7 plan` prints a config's requests at a PDU size.

use crate::common;

use common::s7::S7Peer;
use std::process::{Command, Output};

fn mes_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mes-edge"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn read_write_and_plan_as_a_commissioning_engineer_uses_them() {
    let mut peer = S7Peer::start(0);
    let host = format!("127.0.0.1:{}", peer.port());
    let out = mes_edge(&[
        "s7",
        "read",
        &host,
        "DB10.DBD14:real",
        "DB10.DBB26:string[10]",
        "MW20",
        "I0.1",
        "DB10.DBW8:int",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    for line in [
        "DB10.DBD14 (real): 21.5",
        "DB10.DBB26 (string): \"PART-42\"",
        "MW20 (word): 4242",
        "I0.1 (bool): 1",
        "DB10.DBW8 (int): -1234",
        "PDU size..: 480 bytes (offered 960)",
    ] {
        assert!(text.contains(line), "{line:?} missing in:\n{text}");
    }

    let out = mes_edge(&["s7", "write", &host, "DB10.DBW46:int", "-7"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        peer.get("DB", 10, "int", 46),
        "-7",
        "the PLC holds what was written"
    );
    let out = mes_edge(&["s7", "write", &host, "MD4:real", "2.5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(peer.get("M", 0, "real", 4), "2.5");

    // A DB the CPU does not have: said per address, and the command fails.
    let out = mes_edge(&["s7", "read", &host, "DB99.DBW0", "MW20"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("DB99.DBW0 (word): BAD, refused: object does not exist"),
        "{text}"
    );
    assert!(text.contains("MW20 (word): 4242"), "{text}");

    // A mistyped address says what was expected, before connecting.
    let out = mes_edge(&["s7", "read", &host, "DB10.W4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected an S7 address like"));
}

#[test]
fn plan_shows_the_items_of_each_request() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/press-s7.toml");
    let out = mes_edge(&["s7", "plan", config.to_str().unwrap(), "--pdu", "240"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.contains("device \"press_cpu\" at 192.168.10.31:102, PDU 240 bytes"),
        "{text}"
    );
    assert!(
        text.contains("DB10 bytes 0..15 (16 bytes): good_count, scrap_count, state_word, fault_code, die_temperature"),
        "{text}"
    );
    assert!(
        text.contains("I bytes 0..0 (1 byte): guard_closed"),
        "{text}"
    );
}
