//! The limits on writes to a Modbus tag (`min`, `max`, `allowed`, `write_sources`;
//! docs/COMMANDS.md): only on a writable tag, and of the tag's type.

use super::tag::TagConfig;
use crate::config::commands_names::WRITE_SOURCES;
use crate::config::locate::{Problem, Seg};
use crate::config::AllowedValue;
use mes_edge_drivers::modbus::DataType;

/// The write limits of tag `i` of device `d`.
pub fn check_limits(d: usize, i: usize, t: &TagConfig, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, "tags", i, key];
    let limited = [
        ("min", t.min.is_some()),
        ("max", t.max.is_some()),
        ("allowed", t.allowed.is_some()),
        ("write_sources", t.write_sources.is_some()),
    ];
    if !t.write {
        if let Some((key, _)) = limited.iter().find(|(_, set)| *set) {
            p.push(Problem::at(
                at(key),
                format!(
                    "{key} bounds writes, and tag {:?} is not `write = true`",
                    t.name
                ),
            ));
        }
        return;
    }
    if let (Some(lo), Some(hi)) = (t.min, t.max) {
        if lo > hi {
            p.push(Problem::at(
                at("max"),
                format!("expected a max of at least min ({lo}), found {hi}"),
            ));
        }
    }
    let text = t.data_type == DataType::String;
    if text && (t.min.is_some() || t.max.is_some()) {
        p.push(Problem::at(
            at(if t.min.is_some() { "min" } else { "max" }),
            "a string tag has no numeric limits; use `allowed`",
        ));
    }
    for (k, v) in t.allowed.iter().flatten().enumerate() {
        let fits = match v {
            AllowedValue::Text(_) => text,
            AllowedValue::Bool(_) => t.data_type == DataType::Bool || t.table.is_bits(),
            AllowedValue::Number(_) => !text,
        };
        if !fits {
            p.push(Problem::at(
                path!["devices", d, "tags", i, "allowed", k],
                format!(
                    "expected a value of the tag's type ({}), found {}",
                    t.data_type.name(),
                    match v {
                        AllowedValue::Bool(b) => b.to_string(),
                        AllowedValue::Number(n) => n.to_string(),
                        AllowedValue::Text(t) => format!("{t:?}"),
                    }
                ),
            ));
        }
    }
    for (k, s) in t.write_sources.iter().flatten().enumerate() {
        if !WRITE_SOURCES.contains(&s.as_str()) {
            p.push(Problem::at(
                path!["devices", d, "tags", i, "write_sources", k],
                format!("expected one of {WRITE_SOURCES:?}, found {s:?}"),
            ));
        }
    }
}
