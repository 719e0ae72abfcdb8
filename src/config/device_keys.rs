//! Each device's keys beyond the common ones ([`Device`]), handed to the protocol its
//! `protocol` names, which parses them into a struct of its own. A key no protocol knows is
//! refused at the key, a key of another protocol at its value, both naming what was expected;
//! the checks still run after them. An unknown protocol, or a protocol's key of the wrong type,
//! stops there (nothing can be checked of that device).

use super::locate::{Problem, Seg};
use super::protocols::named;
use super::types::{CellFile, Device};
use crate::protocols::ALL;

/// The devices' tables as written, for the keys the common [`Device`] does not read.
#[derive(serde::Deserialize)]
struct Tables {
    #[serde(default)]
    devices: Vec<toml::Table>,
}

/// What handing out the keys found, and whether the checks can still run on the devices.
pub(super) struct Handed {
    pub problems: Vec<Problem>,
    pub fatal: bool,
}

pub(super) fn hand_out(file: &mut CellFile, text: &str) -> Handed {
    let mut handed = Handed {
        problems: Vec::new(),
        fatal: false,
    };
    let tables: Tables = match toml::from_str(text) {
        Ok(t) => t,
        Err(e) => {
            let problem = Problem::at_span(e.span(), e.message().trim_end().to_string());
            handed.problems.push(problem);
            handed.fatal = true;
            return handed;
        }
    };
    let common = super::serde_keys::of::<Device>();
    for (d, (dev, table)) in file.devices.iter_mut().zip(tables.devices).enumerate() {
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
        let mut own = toml::Table::new();
        for (key, value) in table {
            if common.contains(&key.as_str()) {
                continue;
            }
            if own_names.contains(&key.as_str()) {
                own.insert(key, value);
                continue;
            }
            handed.problems.push(misplaced(d, &key, common, own_names));
        }
        let Some(own_keys) = own_keys else { continue };
        match (own_keys.parse)(own) {
            Ok(keys) => dev.own = keys,
            Err((below, message)) => {
                let mut at = path!["devices", d];
                at.extend(below);
                handed
                    .problems
                    .push(if message.starts_with("unknown field") {
                        Problem::at_key(at, message)
                    } else {
                        Problem::at(at, message)
                    });
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
