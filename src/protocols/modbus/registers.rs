//! The register layout of Modbus tags: bits and bools, addresses in range, and two tags that
//! read the same registers as different types.

use super::keys::ModbusKeysOf;
use super::tag::TagConfig;
use crate::config::locate::{Problem, Seg};
use crate::config::types::Device;
use mes_edge_drivers::modbus::{ByteOrder, DataType};

pub(super) fn check_tag(d: usize, t: usize, tag: &TagConfig, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, "tags", t, key];
    if tag.table.is_bits() {
        if tag.data_type != DataType::Bool {
            p.push(Problem::at(
                at("type"),
                "coils and discrete inputs hold single bits: expected type \"bool\"",
            ));
        }
        if tag.bit.is_some() {
            p.push(Problem::at(
                at("bit"),
                "`bit` picks a bit of a register; expected no `bit` for a coil or discrete input",
            ));
        }
    } else if tag.data_type == DataType::Bool && tag.bit.is_none() {
        p.push(Problem::at(
            at("type"),
            "a bool in a register table needs `bit` (0 to 15)",
        ));
    }
    if let Some(bit) = tag.bit {
        if bit > 15 {
            p.push(Problem::at(
                at("bit"),
                format!("expected a bit number from 0 to 15, found {bit}"),
            ));
        }
        if tag.data_type != DataType::Bool {
            p.push(Problem::at(at("bit"), "`bit` goes with type \"bool\""));
        }
    }
    let span = tag.span() as u32;
    if tag.address as u32 + span > 65536 {
        p.push(Problem::at(
            at("address"),
            format!("the tag runs past address 65535 (it spans {span} registers)"),
        ));
    }
    if (tag.scale.is_some() || tag.offset.is_some()) && tag.data_type == DataType::Bool {
        p.push(Problem::at(at("scale"), "a bool cannot be scaled"));
    }
}

/// Two tags reading the same registers as different types is almost always a typo in an address.
pub(super) fn check_overlaps(d: usize, dev: &Device, p: &mut Vec<Problem>) {
    let is_bit = |t: &TagConfig| t.bit.is_some();
    for (i, a) in dev.modbus().tags.iter().enumerate() {
        for b in &dev.modbus().tags[..i] {
            if a.table != b.table || is_bit(a) || is_bit(b) || a.table.is_bits() {
                continue;
            }
            let (a0, a1) = (a.address as u32, a.address as u32 + a.span() as u32);
            let (b0, b1) = (b.address as u32, b.address as u32 + b.span() as u32);
            let same = a.address == b.address && a.data_type == b.data_type && a.order == b.order;
            if a0 < b1 && b0 < a1 && !same {
                p.push(Problem::at(
                    path!["devices", d, "tags", i, "address"],
                    format!(
                        "tag {:?} ({} at {}) overlaps tag {:?} ({} at {}) with a different type or order; \
                         expected separate addresses",
                        a.name,
                        type_name(a.data_type, a.order),
                        a.address,
                        b.name,
                        type_name(b.data_type, b.order),
                        b.address
                    ),
                ));
            }
        }
    }
}

fn type_name(t: DataType, o: ByteOrder) -> String {
    format!("{} {o:?}", format!("{t:?}").to_lowercase())
}
