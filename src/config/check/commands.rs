//! Checks of `[commands]` and of the write limits on tags (docs/COMMANDS.md).

use super::super::commands::{expand, AllowedValue, COMMAND_NAMES, WRITE_SOURCES};
use super::super::locate::{Problem, Seg};
use super::CellFile;
use crate::protocols::modbus::keys::ModbusKeysOf;
use mes_edge_drivers::modbus::DataType;

pub(super) fn check(c: &CellFile, p: &mut Vec<Problem>) {
    for (source, list) in c.commands.allow.lists() {
        let Some(list) = list else { continue };
        if let Err(bad) = expand(list) {
            p.push(Problem::at(
                path!["commands", "allow", source],
                format!("expected command names, \"orders\" or \"all\", found {bad:?}"),
            ));
        }
    }
    if let Some(plc) = &c.commands.allow.plc {
        if let Some(bad) = expand(plc)
            .unwrap_or_default()
            .into_iter()
            .find(|n| !super::super::commands::ORDER_COMMANDS.contains(n))
        {
            p.push(Problem::at(
                path!["commands", "allow", "plc"],
                format!("the PLC's order signals send order commands only, found {bad:?}"),
            ));
        }
    }
    for (name, &secs) in &c.commands.max_age_s {
        if name != "default" && !COMMAND_NAMES.contains(&name.as_str()) {
            p.push(Problem::at(
                path!["commands", "max_age_s", name.as_str()],
                format!("expected a command name or \"default\", found {name:?}"),
            ));
        } else if secs == 0 {
            p.push(Problem::at(
                path!["commands", "max_age_s", name.as_str()],
                "expected at least 1 s (leave it out for the default)",
            ));
        }
    }
    for (d, dev) in c.devices.iter().enumerate() {
        for (i, t) in dev.modbus().tags.iter().enumerate() {
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
                continue;
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
    }
}
