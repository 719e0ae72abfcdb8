//! The write path through the engine with a clock the test controls: a write is checked,
//! accepted, held as pending in the committed state, and ends in exactly one `tag_write` event,
//! also when the runtime stops before its driver answers.

use super::{CellModel, CellState, Engine, WriteOutcome, WriteResult};
use crate::event::{EventBody, NewEvent};
use crate::orders::CommandSource;
use serde_json::json;

const CONFIG: &str = r#"
[cell]
enterprise = "e"
site = "s"
area = "a"
line = "l"
cell = "c"

[[devices]]
name = "plc"
protocol = "modbus-tcp"
host = "127.0.0.1"

[[devices.tags]]
name = "speed"
table = "holding"
address = 0
type = "u16"
write = true
max = 1000

[[devices.tags]]
name = "target"
table = "holding"
address = 2
type = "u32"
write = true
write_sources = []

[orders.write_back]
target_tag = "target"

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1"

[commands.allow]
sparkplug = ["write_tag"]
"#;

fn engine(state: CellState) -> Engine {
    let config = crate::config::parse(std::path::Path::new("cell.toml"), CONFIG).unwrap();
    Engine::new(CellModel::from_config(&config), state)
}

fn write(
    e: &mut Engine,
    id: &str,
    value: serde_json::Value,
    by: CommandSource,
) -> serde_json::Value {
    let cmd = json!({"correlation_id": id, "command": "write_tag", "tag": "speed", "value": value});
    let mut out = Vec::new();
    let r = e.command(cmd.to_string().as_bytes(), by, 1_000, &mut out);
    serde_json::to_value(r).unwrap()
}

fn tag_writes(out: &[NewEvent]) -> Vec<serde_json::Value> {
    out.iter()
        .filter(|e| matches!(e.body, EventBody::TagWrite { .. }))
        .map(|e| serde_json::to_value(&e.body).unwrap()["data"].clone())
        .collect()
}

#[test]
fn every_accepted_write_ends_in_one_tag_write_event() {
    let mut e = engine(CellState::default());
    assert_eq!(
        write(&mut e, "w1", json!(100), CommandSource::Mqtt)["status"],
        "accepted"
    );
    assert_eq!(
        write(&mut e, "w2", json!(200), CommandSource::Sparkplug)["status"],
        "accepted"
    );
    assert_eq!(
        write(&mut e, "w3", json!(2000), CommandSource::Mqtt)["status"],
        "rejected"
    );
    assert_eq!(
        write(&mut e, "w4", json!(5), CommandSource::Operator)["status"],
        "rejected",
        "the operator may not write by default"
    );
    let writes = e.take_writes();
    assert_eq!(writes.len(), 2);
    assert_eq!(
        e.state.pending_writes.len(),
        2,
        "pending until the driver answers"
    );
    let mut out = Vec::new();
    let superseded = WriteOutcome {
        id: writes[0].id,
        result: WriteResult::Superseded { by: writes[1].id },
        ts_ms: 2_000,
    };
    e.write_done(&superseded, &mut out);
    let written = WriteOutcome {
        id: writes[1].id,
        result: WriteResult::Written,
        ts_ms: 2_001,
    };
    e.write_done(&written, &mut out);
    // An outcome seen twice (a batch applied again after a failed commit rolls the state
    // back with it) makes no second event.
    e.write_done(&written, &mut out);
    let ev = tag_writes(&out);
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(
        (ev[0]["result"].clone(), ev[0]["value"].clone()),
        (json!("superseded"), json!(100))
    );
    assert!(
        ev[0]["reason"].as_str().unwrap().contains("w2"),
        "{}",
        ev[0]
    );
    assert_eq!(
        (ev[1]["result"].clone(), ev[1]["by"].clone()),
        (json!("written"), json!("sparkplug"))
    );
    assert!(e.state.pending_writes.is_empty());
    let cmd = json!({"correlation_id": "w5", "command": "write_tag", "tag": "target", "value": 1});
    let r = e.command(
        cmd.to_string().as_bytes(),
        CommandSource::Mqtt,
        1_000,
        &mut out,
    );
    assert!(
        r.reason.unwrap().contains("write_sources"),
        "the write-back's tag takes no command"
    );
}

#[test]
fn a_write_never_answered_before_a_restart_is_reported_unknown_and_not_sent_again() {
    let mut e = engine(CellState::default());
    write(&mut e, "w1", json!(300), CommandSource::Mqtt);
    assert_eq!(e.take_writes().len(), 1);
    // The state as committed with the reply; the process dies before the driver answers.
    let committed: CellState =
        serde_json::from_value(serde_json::to_value(&e.state).unwrap()).unwrap();
    let mut again = engine(committed);
    let mut out = Vec::new();
    again.writes_left_unanswered(5_000, &mut out);
    let ev = tag_writes(&out);
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0]["result"].clone(), ev[0]["correlation_id"].clone()),
        (json!("unknown"), json!("w1"))
    );
    assert!(
        again.take_writes().is_empty(),
        "a stale write is not sent again"
    );
    assert!(again.state.pending_writes.is_empty());
}

#[test]
fn the_order_write_back_is_written_once_per_change_and_again_after_a_failed_commit() {
    let mut e = engine(CellState::default());
    e.order_write_back();
    let first = e.take_writes();
    assert_eq!(
        first.len(),
        1,
        "zeros at start: the PLC may have restarted too"
    );
    e.order_write_back();
    assert!(e.take_writes().is_empty(), "nothing changed");
    e.forget_write_back();
    e.order_write_back();
    assert_eq!(
        e.take_writes().len(),
        1,
        "decided again after a failed commit"
    );
    assert_eq!(
        e.state.pending_writes.values().last().unwrap().by,
        CommandSource::Cell
    );
}
