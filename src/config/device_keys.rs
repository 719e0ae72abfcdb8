//! Each device's keys beyond the common ones ([`Device`]), handed to the protocol its
//! `protocol` names, which parses them into a struct of its own. A key no protocol knows is
//! refused at the key, a key of another protocol at its value, both naming what was expected;
//! the checks still run after them. An unknown protocol, or a protocol's key of the wrong type,
//! stops there (nothing can be checked of that device).

use super::device::OwnKeys;
use super::locate::{Problem, Seg};
use super::protocols::{named, ALL};
use super::types::{CellFile, Device};
use serde::de::DeserializeOwned;

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
        let mut own = toml::Table::new();
        for (key, value) in table {
            if common.contains(&key.as_str()) {
                continue;
            }
            if protocol.keys().contains(&key.as_str()) {
                own.insert(key, value);
                continue;
            }
            let at = path!["devices", d, key.as_str()];
            handed.problems.push(
                match ALL.iter().find(|p| p.keys().contains(&key.as_str())) {
                    Some(other) => Problem::at(
                        at,
                        format!(
                            "`{key}` belongs to {} (protocol = \"{}\")",
                            other.device_kind(),
                            other.names()[0]
                        ),
                    ),
                    None => Problem::at_key(
                        at,
                        format!(
                            "unknown field `{key}`, expected one of {}",
                            quoted(common.iter().chain(protocol.keys()))
                        ),
                    ),
                },
            );
        }
        match protocol.parse_keys(own) {
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

/// A protocol's own keys parsed into its `T`, or where below the device and what is wrong.
pub(super) fn parse<T: DeserializeOwned + Send + Sync + 'static>(
    keys: toml::Table,
) -> Result<OwnKeys, (Vec<Seg>, String)> {
    serde_path_to_error::deserialize(toml::Value::Table(keys))
        .map(OwnKeys::new::<T>)
        .map_err(|e| {
            use serde_path_to_error::Segment;
            let at = e
                .path()
                .iter()
                .filter_map(|s| match s {
                    Segment::Seq { index } => Some(Seg::Index(*index)),
                    Segment::Map { key } => Some(Seg::Key(key.clone())),
                    _ => None,
                })
                .collect();
            (at, e.into_inner().message().trim_end().to_string())
        })
}

/// `a`, `b`, `c`: names as serde lists what it expected.
fn quoted<'a>(names: impl Iterator<Item = &'a &'static str>) -> String {
    names
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
