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
