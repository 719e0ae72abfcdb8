//! Each device's keys beyond the common ones ([`Device`]), handed to the protocol its
//! `protocol` names, which parses them into a struct of its own. A key no protocol knows is
//! refused at the key, a key of another protocol at its value, both naming what was expected;
//! the checks still run after them. An unknown protocol, or a protocol's key of the wrong type,
//! stops there (nothing can be checked of that device).

use super::locate::{Problem, Seg};
use super::protocols::named;
use super::types::{CellFile, Device};
use crate::protocols::ALL;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// What handing out the keys found, and whether the checks can still run on the devices.
pub(super) struct Handed {
    pub problems: Vec<Problem>,
    pub fatal: bool,
}

/// Each device's keys beyond the common ones, taken out of the parsed file before the file is
/// deserialized ([`Device`] ignores keys it does not name), one table per `[[devices]]` entry.
/// The text is parsed once: a config of 50,000 OPC UA nodes parsed a second time for these
/// left some 20 MB of that parse's memory with the process (bench S6).
pub(super) fn take_own<'i>(doc: &mut DeTable<'i>) -> Vec<Spanned<DeTable<'i>>> {
    let common = super::serde_keys::of::<Device>();
    let Some(DeValue::Array(devices)) = doc.get_mut("devices").map(Spanned::get_mut) else {
        return Vec::new();
    };
    devices
        .iter_mut()
        .map(|dev| {
            let span = dev.span();
            let mut own = DeTable::new();
            if let DeValue::Table(table) = dev.get_mut() {
                for (key, value) in std::mem::take(table) {
                    if common.contains(&key.get_ref().as_ref()) {
                        table.insert(key, value);
                    } else {
                        own.insert(key, value);
                    }
                }
            }
            Spanned::new(span, own)
        })
        .collect()
}

/// Hands each device the keys [`take_own`] took out of its table.
pub(super) fn hand_out(file: &mut CellFile, tables: Vec<Spanned<DeTable<'_>>>) -> Handed {
    let mut handed = Handed {
        problems: Vec::new(),
        fatal: false,
    };
    let common = super::serde_keys::of::<Device>();
    for (d, (dev, table)) in file.devices.iter_mut().zip(tables).enumerate() {
        let Some(protocol) = named(&dev.protocol) else {
            let names = ALL.iter().flat_map(|p| p.names().iter());
            handed.problems.push(Problem::at(
                path!["devices", d, "protocol"],
                format!(
                    "unknown variant `{}`, expected one of {}",
                    dev.protocol,
                    quoted(names)
                ),
            ));
            handed.fatal = true;
            continue;
        };
        let own_keys = protocol.own_keys();
        let own_names = own_keys.as_ref().map_or(&[][..], |k| (k.names)());
        let span = table.span();
        let mut own = DeTable::new();
        for (key, value) in table.into_inner() {
            if own_names.contains(&key.get_ref().as_ref()) {
                own.insert(key, value);
                continue;
            }
            handed
                .problems
                .push(misplaced(d, key.get_ref(), common, own_names));
        }
        let Some(own_keys) = own_keys else { continue };
        match (own_keys.parse)(Spanned::new(span, own)) {
            Ok(keys) => dev.own = keys,
            Err((Some(span), message)) => {
                handed.problems.push(Problem::at_span(Some(span), message));
                handed.fatal = true;
            }
            Err((None, message)) => {
                handed
                    .problems
                    .push(Problem::at(path!["devices", d], message));
                handed.fatal = true;
            }
        }
    }
    handed
}

/// A key of device `d` that is neither common nor of its protocol: another protocol's, refused
/// at its value naming that protocol, or no protocol's, refused at the key naming the keys the
/// device may have.
fn misplaced(d: usize, key: &str, common: &[&'static str], own: &[&'static str]) -> Problem {
    let at = path!["devices", d, key];
    let owner = ALL
        .iter()
        .find(|p| p.own_keys().is_some_and(|k| (k.names)().contains(&key)));
    match owner {
        Some(other) => Problem::at(
            at,
            format!(
                "`{key}` belongs to {} (protocol = {})",
                other.device_kind(),
                either(other.names())
            ),
        ),
        None => Problem::at_key(
            at,
            format!(
                "unknown field `{key}`, expected one of {}",
                quoted(common.iter().chain(own))
            ),
        ),
    }
}

/// `"s7"`, or `"modbus-tcp", "modbus-rtu" or "modbus-rtu-over-tcp"`.
fn either(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    match quoted.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `a`, `b`, `c`: names as serde lists what it expected.
fn quoted<'a>(names: impl Iterator<Item = &'a &'static str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
