//! OPC UA nodes among the cell's tag names and signals: names unique with the Modbus tags, and
//! the types the signals that read a node need.

use super::check::nodes;
use super::keys::OpcUaKeys;
use crate::config::tag::name_taken;
use crate::config::*;
use crate::config::{Problem, Seg};
use std::collections::HashMap;

/// Tag names are unique across Modbus tags and OPC UA nodes; Modbus-only clashes are reported
/// with the Modbus tags.
pub fn check_names(c: &CellFile, p: &mut Vec<Problem>) {
    let numbered = c.numbered_tags();
    // Device `d`'s Modbus tags (the other protocols check their names against the nodes).
    let registers = |d: usize| {
        numbered
            .iter()
            .filter(move |(_, e, t)| *e == d && t.list == "tags")
            .map(|(_, _, t)| t)
    };
    let mut seen: HashMap<&str, (usize, bool)> = HashMap::new();
    for (d, dev) in c.devices.iter().enumerate() {
        for t in registers(d) {
            seen.entry(t.name()).or_insert((d, false));
        }
        for (n, node) in OpcUaKeys::nodes(dev).iter().enumerate() {
            if node.name.trim().is_empty() {
                continue;
            }
            if let Some((first, _)) = seen.get(node.name.as_str()) {
                p.push(name_taken(
                    path!["devices", d, "nodes", n, "name"],
                    &node.name,
                    &c.devices[*first].name,
                ));
            } else {
                seen.insert(&node.name, (d, true));
            }
        }
    }
    // A Modbus tag defined after a node of the same name.
    for d in 0..c.devices.len() {
        for tag in registers(d) {
            if let Some((first, true)) = seen.get(tag.name()) {
                if *first < d {
                    p.push(name_taken(
                        path!["devices", d, "tags", tag.index, "name"],
                        tag.name(),
                        &c.devices[*first].name,
                    ));
                }
            }
        }
    }
}

/// OPC UA nodes named by the cell's signals: a counter must be an unsigned integer of a known
/// width, a state word or fault code an integer.
pub fn check_signal_nodes(c: &CellFile, p: &mut Vec<Problem>) {
    let nodes = nodes(c);
    for (key, counter) in [
        ("good_count", &c.signals.good_count),
        ("scrap_count", &c.signals.scrap_count),
    ] {
        let Some(counter) = counter else { continue };
        let Some(node) = nodes.get(counter.tag.as_str()) else {
            continue;
        };
        match node.data_type.map(|t| (t, t.counter_bits())) {
            None => p.push(Problem::at(
                path!["signals", key, "tag"],
                format!(
                    "OPC UA node {:?} counts parts: give it its type, u16, u32 or u64 (UInt16, \
                     UInt32, UInt64), e.g. `type = \"u32\"`; the width says where the counter rolls over",
                    node.name
                ),
            )),
            Some((t, None)) => p.push(Problem::at(
                path!["signals", key, "tag"],
                format!(
                    "a counter must be an unsigned integer tag (u16, u32 or u64); {:?} is {}",
                    node.name,
                    t.name()
                ),
            )),
            Some((_, Some(bits))) => crate::config::need::check_rollover_window(key, counter, bits, p),
        }
        if node.deadband_absolute.is_some() || node.deadband_percent.is_some() {
            p.push(Problem::at(
                path!["signals", key, "tag"],
                format!(
                    "counter node {:?} must not have a deadband: parts inside it would be counted late",
                    node.name
                ),
            ));
        }
    }
    if let Some(state) = &c.signals.machine_state {
        for (sub, name) in [
            ("tag", Some(&state.tag)),
            ("fault_tag", state.fault_tag.as_ref()),
        ] {
            let Some(node) = name.and_then(|n| nodes.get(n.as_str())) else {
                continue;
            };
            if let Some(t) = node.data_type.filter(|t| !t.is_integer()) {
                p.push(Problem::at(
                    path!["signals", "machine_state", sub],
                    format!(
                        "expected an integer or bool tag, {:?} is {}",
                        node.name,
                        t.name()
                    ),
                ));
            }
        }
    }
}
