//! What the integration tests know of mes-edge itself: a cell config for a test PLC and broker,
//! and checks of what MOM received (gap-free sequence, duplicates only as identical re-sends).

#![allow(dead_code)]

use super::Received;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Register map of the test PLC (pymodbus): good count u32 at 0-1, scrap u16 at 2, state at 3,
/// fault code at 4.
pub const GOOD: u16 = 0;
pub const SCRAP: u16 = 2;
pub const STATE: u16 = 3;
pub const FAULT: u16 = 4;
pub const TOPIC_FILTER: &str = "mes/#";

pub const ORDER_NUMBER: u16 = 10;
/// Where the runtime writes the active order's number and target (write-back).
pub const ACTIVE_ORDER: u16 = 20;
pub const ACTIVE_TARGET: u16 = 22;
/// Coils: the PLC's order start and end bits.
pub const ORDER_START: u16 = 0;
pub const ORDER_END: u16 = 1;
/// Where MOM sends the test cell its commands.
pub const COMMAND_TOPIC: &str = "mes/acme/plant1/pressing/line2/press4/commands";

/// Writes a cell config for a PLC on `modbus_port` and a broker on `mqtt_port` into `dir`.
pub fn write_config(dir: &Path, modbus_port: u16, mqtt_port: u16) -> PathBuf {
    write_config_with(dir, modbus_port, mqtt_port, "")
}

/// The same, with `extra` TOML appended (top-level tables such as `[signals.orders]`, or plain
/// lines, which land in `[mqtt]`, the fixture's last table).
pub fn write_config_with(dir: &Path, modbus_port: u16, mqtt_port: u16, extra: &str) -> PathBuf {
    write_config_edited(dir, modbus_port, mqtt_port, |_| {}, extra)
}

/// The same, the lab press first changed by `edit` (a key in a table the fixture defines).
pub fn write_config_edited(
    dir: &Path,
    modbus_port: u16,
    mqtt_port: u16,
    edit: impl FnOnce(&mut toml_edit::DocumentMut),
    extra: &str,
) -> PathBuf {
    let path = dir.join("cell.toml");
    let mut doc = mes_edge::config::lab::press(modbus_port, mqtt_port, Path::new("cell.db"));
    edit(&mut doc);
    std::fs::write(&path, format!("{doc}\n{extra}\n")).unwrap();
    path
}

/// Everything MOM received, by sequence number.
pub struct Delivery {
    pub by_seq: BTreeMap<u64, Value>,
    /// Sequence numbers in the order they first arrived.
    pub first_arrivals: Vec<u64>,
    pub duplicates: usize,
}

impl Delivery {
    /// Reads the events out of `msgs`, checking that every copy of a sequence number is the
    /// same event (same id, same bytes): a duplicate may only be a re-send.
    pub fn of(msgs: &[Received]) -> Delivery {
        let mut by_seq = BTreeMap::new();
        let mut raw_by_seq: BTreeMap<u64, &[u8]> = BTreeMap::new();
        let mut first_arrivals = Vec::new();
        let mut duplicates = 0;
        // The sequence runs across events and replies to commands alike.
        let ours = |m: &&Received| m.topic.contains("/events/") || m.topic.ends_with("/responses");
        for m in msgs.iter().filter(ours) {
            let seq = m.payload["seq"]
                .as_u64()
                .unwrap_or_else(|| panic!("no seq in {}", m.payload));
            let kind = m.payload["type"].as_str().unwrap();
            assert!(
                m.topic.ends_with(if kind == "command_response" {
                    "/responses"
                } else {
                    kind
                }),
                "topic {} for {}",
                m.topic,
                m.payload
            );
            if let Some(first) = raw_by_seq.get(&seq) {
                assert_eq!(
                    *first,
                    &m.raw[..],
                    "seq {seq} arrived twice with different content"
                );
                duplicates += 1;
            } else {
                raw_by_seq.insert(seq, &m.raw);
                by_seq.insert(seq, m.payload.clone());
                first_arrivals.push(seq);
            }
        }
        Delivery {
            by_seq,
            first_arrivals,
            duplicates,
        }
    }

    pub fn last_seq(&self) -> u64 {
        self.by_seq.keys().next_back().copied().unwrap_or(0)
    }

    /// Every sequence number from 1 to the last one arrived.
    pub fn assert_gap_free(&self) {
        let missing: Vec<u64> = (1..=self.last_seq())
            .filter(|s| !self.by_seq.contains_key(s))
            .collect();
        assert!(
            missing.is_empty(),
            "sequence numbers never delivered: {missing:?}"
        );
    }

    /// The net parts MOM computes for `counter` ("good" or "scrap"): the sum of part_count
    /// quantities and count_correction quantities (negative).
    pub fn parts(&self, counter: &str) -> u64 {
        let net: i64 = self
            .of_type("part_count")
            .chain(self.of_type("count_correction"))
            .filter(|e| e["data"]["counter"] == counter)
            .map(|e| e["data"]["quantity"].as_i64().unwrap())
            .sum();
        u64::try_from(net).expect("a net count below zero")
    }

    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.by_seq.values().filter(move |e| e["type"] == kind)
    }
}

/// Waits until the cell's first `device_status` has reached MOM: the runtime is up, connected
/// to the broker and has read its PLC. Panics with the runtime's log after 20 s.
pub async fn wait_first_device_status(collector: &super::Collector, rt: &super::RuntimeProcess) {
    assert!(
        collector
            .wait_for(
                |m| Delivery::of(m).of_type("device_status").count() == 1,
                std::time::Duration::from_secs(20)
            )
            .await,
        "{}",
        rt.logs()
    );
}
