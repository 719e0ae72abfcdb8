//! Readings from a device whose clock and counter can say anything (OPC UA source timestamps
//! of year 10000 or before 1970, counters anywhere in their range), through the engine and
//! the event encoder: every event encodes, nothing panics. A panic here would be a crash loop
//! in the field: the runtime would restart, read the same value and panic again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mes_edge::cell::{CellModel, CellState, Engine};
use mes_edge_drivers::{DeviceEvent, DeviceId, Quality, Sample, TagId, Value};

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
name = "good"
table = "holding"
address = 0
type = "u16"

[[devices.tags]]
name = "state"
table = "holding"
address = 1
type = "u16"

[signals.good_count]
tag = "good"
confirm_readings = 2
confirm_ms = 50
max_step = 1000

[signals.machine_state]
tag = "state"
states = { 0 = "idle", 1 = "running", 2 = "down" }

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1"
"#;

fn i64_at(data: &[u8], at: usize) -> i64 {
    let mut b = [0u8; 8];
    for (i, x) in b.iter_mut().enumerate() {
        *x = data.get(at + i).copied().unwrap_or(0);
    }
    i64::from_le_bytes(b)
}

fuzz_target!(|data: &[u8]| {
    let config = mes_edge::config::parse(std::path::Path::new("cell.toml"), CONFIG).unwrap();
    let mut engine = Engine::new(CellModel::from_config(&config), CellState::default());
    let mut out = Vec::new();
    // 20 bytes a reading: the runtime's clock (a step from the last reading, possibly back,
    // as NTP steps it), the device's clock (anything at all), the tag, its value.
    let mut ts_ms: i64 = 1_700_000_000_000;
    for chunk in data.chunks(20) {
        ts_ms += i64_at(chunk, 0) % 100_000_000;
        let source = i64_at(chunk, 8);
        let tag = TagId(u32::from(chunk.get(16).copied().unwrap_or(0) & 1));
        let value = u16::from_le_bytes([
            chunk.get(17).copied().unwrap_or(0),
            chunk.get(18).copied().unwrap_or(0),
        ]);
        let sample = Sample {
            tag,
            value: Some(Value::UInt(u64::from(value))),
            quality: Quality::Good,
            ts_ms,
            source_ts_ms: mes_edge_drivers::plausible_ts(source),
        };
        let ev = DeviceEvent::Samples {
            device: DeviceId(0),
            samples: vec![sample],
        };
        engine.apply(&ev, &mut out);
        if chunk.get(19).is_some_and(|b| b & 1 == 1) {
            engine.tick(ts_ms, &mut out);
        }
    }
    for (seq, ev) in out.iter().enumerate() {
        let payload = ev.to_payload(
            seq as u64 + 1,
            "01a231f2-8776-704c-9569-294130d23ed1",
            "e/s/a/l/c",
        );
        serde_json::from_slice::<serde_json::Value>(&payload).expect("an event encodes as JSON");
    }
});
