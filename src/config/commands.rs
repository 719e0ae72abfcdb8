//! `[commands]`: who may send which commands, and how old a command may be when it is applied
//! (docs/COMMANDS.md). Per tag, `min`, `max`, `allowed` and `write_sources` bound what a
//! write_tag may set.

use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandsConfig {
    #[serde(default)]
    pub allow: AllowConfig,
    /// Seconds, by command name or `default`: a command older than this when the engine comes
    /// to it (from its `issued_at`, or from its arrival) is answered `expired`.
    #[serde(default)]
    pub max_age_s: BTreeMap<String, u64>,
}

/// The commands each source may send: command names, `orders` (every order command) or `all`.
/// A source left out keeps its default (docs/COMMANDS.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowConfig {
    pub mqtt: Option<Vec<String>>,
    pub operator: Option<Vec<String>>,
    pub sparkplug: Option<Vec<String>>,
    pub plc: Option<Vec<String>>,
}

/// A value a tag's `allowed` list names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum AllowedValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

/// Every command name a `[commands]` list may hold (the engine's `CommandName`s; a test in
/// `cell::policy` keeps the two the same), the order commands first.
pub const COMMAND_NAMES: &[&str] = &[
    "store",
    "store_and_start",
    "start",
    "update",
    "pause",
    "resume",
    "stop",
    "abort",
    "cancel",
    "clear",
    "revoke_start",
    "downtime_reason",
    "scrap_reason",
    "consume_material",
    "write_tag",
];

/// The order commands, what `orders` in an allow list stands for: the first of
/// [`COMMAND_NAMES`].
pub const ORDER_COMMANDS: &[&str] = COMMAND_NAMES.split_at(11).0;

/// The sources a tag's `write_sources` may name: those that can send write_tag.
pub const WRITE_SOURCES: &[&str] = &["mqtt", "operator", "sparkplug"];

/// The command names an allow list stands for, `orders` and `all` expanded; Err(the first name
/// that is none).
pub fn expand(list: &[String]) -> Result<Vec<&'static str>, String> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in list {
        let names: &[&'static str] = match name.as_str() {
            "all" => COMMAND_NAMES,
            "orders" => ORDER_COMMANDS,
            other => match COMMAND_NAMES.iter().find(|n| **n == other) {
                Some(n) => std::slice::from_ref(n),
                None => return Err(name.clone()),
            },
        };
        for n in names {
            if !out.contains(n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

impl AllowConfig {
    /// Each source with its allow list as written, `None` where the config leaves it out.
    pub fn lists(&self) -> [(&'static str, Option<&Vec<String>>); 4] {
        [
            ("mqtt", self.mqtt.as_ref()),
            ("operator", self.operator.as_ref()),
            ("sparkplug", self.sparkplug.as_ref()),
            ("plc", self.plc.as_ref()),
        ]
    }
}
