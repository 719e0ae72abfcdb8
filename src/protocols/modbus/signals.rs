//! Modbus tags among the cell's tag names and signals: names unique in the cell, and what a
//! counter or a machine state needs of a Modbus tag.

use super::keys::ModbusKeysOf;
use super::tag::TagConfig;
use crate::config::locate::{Problem, Seg};
use crate::config::need::check_rollover_window;
use crate::config::protocol::SignalTag;
use crate::config::tag::name_taken;
use crate::config::types::CellFile;
use mes_edge_drivers::modbus::DataType;
use std::collections::HashMap;

/// Modbus tag names unique in the cell, first definition wins (the nodes and S7 tags are
/// checked against them in their own folders).
pub fn check_names(c: &CellFile, p: &mut Vec<Problem>) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (d, dev) in c.devices.iter().enumerate() {
        for (t, tag) in dev.modbus().tags.iter().enumerate() {
            if tag.name.trim().is_empty() {
                p.push(Problem::at(
                    path!["devices", d, "tags", t, "name"],
                    "expected a non-empty tag name",
                ));
            } else if let Some(first) = seen.get(tag.name.as_str()) {
                p.push(name_taken(
                    path!["devices", d, "tags", t, "name"],
                    &tag.name,
                    &c.devices[*first].name,
                ));
            } else {
                seen.insert(&tag.name, d);
            }
        }
    }
}

/// The Modbus tag a signal reads, if `name` is one: the first of that name (a blank name is
/// refused with its device, and names none).
fn tag<'a>(c: &'a CellFile, name: &str) -> Option<&'a TagConfig> {
    c.devices
        .iter()
        .flat_map(|d| d.modbus().tags.iter())
        .find(|t| t.name == name && !t.name.trim().is_empty())
}

/// A counter counts whole parts in an unsigned register; a state word or fault code is an
/// unscaled integer or bool.
pub fn check_signal_tag(c: &CellFile, signal: SignalTag, p: &mut Vec<Problem>) {
    match signal {
        SignalTag::Counter { key, counter } => {
            let Some(tag) = tag(c, &counter.tag) else {
                return;
            };
            match tag.data_type.counter_bits() {
                None => p.push(Problem::at(
                    path!["signals", key, "tag"],
                    format!(
                        "a counter must be an unsigned integer tag (u16, u32 or u64); {:?} is {}",
                        tag.name,
                        format!("{:?}", tag.data_type).to_lowercase()
                    ),
                )),
                Some(bits) => check_rollover_window(key, counter, bits, p),
            }
            if tag.scale.is_some() || tag.offset.is_some() {
                p.push(Problem::at(
                    path!["signals", key, "tag"],
                    format!("counter tag {:?} must not be scaled", tag.name),
                ));
            }
        }
        SignalTag::MachineState { sub, name } => {
            let Some(tag) = tag(c, name) else {
                return;
            };
            let integer = !matches!(
                tag.data_type,
                DataType::F32 | DataType::F64 | DataType::String
            ) && tag.scale.is_none()
                && tag.offset.is_none();
            if !integer {
                p.push(Problem::at(
                    path!["signals", "machine_state", sub],
                    format!(
                        "expected an unscaled integer or bool tag, {:?} is {:?}",
                        tag.name, tag.data_type
                    ),
                ));
            }
        }
    }
}
