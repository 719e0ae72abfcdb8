//! Checks of S7 devices and their `[[devices.s7_tags]]`: which keys go with the protocol,
//! addresses and types (with what was expected), writable areas, names, and S7 tags used as
//! the cell's signals.

use super::keys::S7Keys;
use super::tag::S7TagConfig;
use crate::config::need::Need;
use crate::config::tag::name_taken;
use crate::config::*;
use crate::config::{Problem, Seg};
use mes_edge_drivers::s7::plan::{item_capacity, MIN_PDU};
use mes_edge_drivers::s7::{Area, S7Type};
use std::collections::HashMap;

/// The S7 tags of the cell by name, first definition wins.
pub fn tags(c: &CellFile) -> HashMap<&str, &S7TagConfig> {
    let mut out = HashMap::new();
    for t in c.devices.iter().flat_map(S7Keys::tags) {
        out.entry(t.name.as_str()).or_insert(t);
    }
    out
}

/// The checks of an S7 device; its keys on another protocol's device were refused when they
/// were handed out (`device_keys.rs`).
pub fn check_device(d: usize, dev: &Device, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, key];
    let Some(keys) = S7Keys::of(dev) else {
        return;
    };
    if dev.host.as_deref().is_none_or(|h| h.trim().is_empty()) {
        p.push(Problem::at(
            path!["devices", d],
            "an s7 device needs `host` (name or IP address of the CPU)",
        ));
    }
    if keys.remote_tsap.is_some() && (keys.rack.is_some() || keys.slot.is_some()) {
        p.push(Problem::at(
            at("remote_tsap"),
            "expected either `rack` and `slot` or `remote_tsap`, not both (the TSAP names the rack and slot)",
        ));
    }
    if keys.rack.is_some_and(|r| r > 7) {
        p.push(Problem::at(at("rack"), "expected a rack from 0 to 7"));
    }
    if keys.slot.is_some_and(|s| s > 31) {
        p.push(Problem::at(at("slot"), "expected a slot from 0 to 31"));
    }
    if let Some(pdu) = keys.pdu_size.filter(|&s| !(MIN_PDU..=960).contains(&s)) {
        p.push(Problem::at(
            at("pdu_size"),
            format!("expected a PDU size from {MIN_PDU} to 960 bytes, found {pdu}"),
        ));
    }
    for (t, tag) in keys.s7_tags.iter().enumerate() {
        check_tag(d, t, tag, p);
    }
}

fn check_tag(d: usize, t: usize, tag: &S7TagConfig, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, "s7_tags", t, key];
    let (address, ty) = match tag.parsed() {
        Ok(parsed) => parsed,
        Err((key, why)) => return p.push(Problem::at(at(key), why)),
    };
    if let S7Type::String { max } = ty {
        let most = item_capacity(MIN_PDU) - 2;
        if max as u32 > most {
            p.push(Problem::at(
                at("length"),
                format!("expected a string length of at most {most} (one read of the smallest PDU, {MIN_PDU} bytes), found {max}"),
            ));
        }
    } else if tag.length.is_some() {
        p.push(Problem::at(
            at("length"),
            "`length` is a string's declared length; this tag is not a string",
        ));
    }
    if address.byte + ty.size() > mes_edge_drivers::s7::address::MAX_BYTE + 1 {
        p.push(Problem::at(
            at("address"),
            format!("a {} at {address} runs past the last byte", ty.name()),
        ));
    }
    if tag.poll_interval_ms == Some(0) {
        p.push(Problem::at(
            at("poll_interval_ms"),
            "expected a poll interval of at least 1 ms, found 0",
        ));
    }
    if tag.write && address.area == Area::Inputs {
        p.push(Problem::at(
            at("write"),
            format!("{address} is in the input image, which the CPU overwrites from its inputs every cycle; expected a DB, M or Q address for a writable tag"),
        ));
    }
    tag.check_write_limits(d, t, p);
}

/// S7 tag names unique in the cell, also against Modbus tags and OPC UA nodes.
pub fn check_names(c: &CellFile, p: &mut Vec<Problem>) {
    let others = c.numbered_tags();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (_, d, tag) in others.iter().filter(|(_, _, t)| t.list != "s7_tags") {
        seen.entry(tag.name()).or_insert(*d);
    }
    for (d, dev) in c.devices.iter().enumerate() {
        for (t, tag) in S7Keys::tags(dev).iter().enumerate() {
            let at = path!["devices", d, "s7_tags", t, "name"];
            if tag.name.trim().is_empty() {
                p.push(Problem::at(at, "expected a non-empty tag name"));
            } else if let Some(first) = seen.get(tag.name.as_str()) {
                p.push(name_taken(at, &tag.name, &c.devices[*first].name));
            } else {
                seen.insert(&tag.name, d);
            }
        }
    }
}

/// Counters and machine states read from S7 tags: the types they need.
pub fn check_signal_tags(c: &CellFile, p: &mut Vec<Problem>) {
    let tags = tags(c);
    for (key, counter) in [
        ("good_count", &c.signals.good_count),
        ("scrap_count", &c.signals.scrap_count),
    ] {
        let Some(counter) = counter else { continue };
        let Some(tag) = tags.get(counter.tag.as_str()) else {
            continue;
        };
        let Some(ty) = tag.s7_type() else { continue };
        match ty.counter_bits() {
            Some(bits) if !matches!(ty, S7Type::Int | S7Type::DInt) => crate::config::need::check_rollover_window(key, counter, bits, p),
            _ => p.push(Problem::at(
                path!["signals", key, "tag"],
                format!(
                    "a counter must be an unsigned integer tag (byte, word or dword); {:?} is {} \
                     (an INT or DINT counter is read as word or dword: the same bits, counted without a sign)",
                    tag.name,
                    ty.name()
                ),
            )),
        }
    }
    if let Some(state) = &c.signals.machine_state {
        for (sub, name) in [
            ("tag", Some(&state.tag)),
            ("fault_tag", state.fault_tag.as_ref()),
        ] {
            let Some(tag) = name.and_then(|n| tags.get(n.as_str())) else {
                continue;
            };
            if let Some(ty) = tag.s7_type().filter(|&t| {
                Need::Flag
                    .problem_with(super::tag::value_type(t), false)
                    .is_some()
            }) {
                p.push(Problem::at(
                    path!["signals", "machine_state", sub],
                    format!(
                        "expected an integer or bool tag, {:?} is {}",
                        tag.name,
                        ty.name()
                    ),
                ));
            }
        }
    }
}
