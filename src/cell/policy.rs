//! What the cell lets each source command, how old a command may be when it is applied, and
//! what a write_tag may set on each writable tag: the checks a command passes before the
//! engine answers `accepted` (docs/COMMANDS.md).

use crate::config::writes::{ValueKind, WriteEncoding};
use crate::config::{AllowedValue, CellConfig, CommandsConfig};
use crate::orders::{CommandName, CommandSource};
use mes_edge_drivers::{TagId, Text, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How long a write_tag may have travelled and waited before it is too old to reach a machine:
/// a setpoint meant for the machine as it was half a minute ago may be wrong for it now.
const WRITE_TAG_MAX_AGE_MS: i64 = 30_000;

#[derive(Debug, Clone)]
pub struct CommandPolicy {
    allow: HashMap<CommandSource, HashSet<CommandName>>,
    max_age_ms: HashMap<CommandName, i64>,
    default_max_age_ms: Option<i64>,
}

fn name_of(c: CommandName) -> String {
    serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn command_of(name: &str) -> Option<CommandName> {
    serde_json::from_value(serde_json::Value::String(name.into())).ok()
}

fn set_of(names: &[&str]) -> HashSet<CommandName> {
    names.iter().filter_map(|n| command_of(n)).collect()
}

impl CommandPolicy {
    /// The defaults: MOM over MQTT may send everything; the operator's socket everything but
    /// tag writes; a Sparkplug host nothing (its DCMDs are writes); the PLC's order signals
    /// the order commands. The config changes each source's list as a whole.
    pub fn from_config(c: &CommandsConfig) -> CommandPolicy {
        use crate::config::commands_names::{expand, COMMAND_NAMES, ORDER_COMMANDS};
        let all_but_writes: Vec<&str> = COMMAND_NAMES
            .iter()
            .copied()
            .filter(|n| *n != "write_tag")
            .collect();
        let list = |given: Option<&Vec<String>>, default: &[&str]| match given {
            Some(l) => set_of(&expand(l).unwrap_or_default()),
            None => set_of(default),
        };
        let a = &c.allow;
        let allow = HashMap::from([
            (CommandSource::Mqtt, list(a.mqtt.as_ref(), COMMAND_NAMES)),
            (
                CommandSource::Operator,
                list(a.operator.as_ref(), &all_but_writes),
            ),
            (CommandSource::Sparkplug, list(a.sparkplug.as_ref(), &[])),
            (CommandSource::Plc, list(a.plc.as_ref(), ORDER_COMMANDS)),
            (CommandSource::Cell, set_of(COMMAND_NAMES)),
        ]);
        let mut max_age_ms = HashMap::from([(CommandName::WriteTag, WRITE_TAG_MAX_AGE_MS)]);
        let mut default_max_age_ms = None;
        for (name, &s) in &c.max_age_s {
            let ms = s.saturating_mul(1000).min(i64::MAX as u64) as i64;
            match command_of(name) {
                Some(cmd) => {
                    max_age_ms.insert(cmd, ms);
                }
                None => default_max_age_ms = Some(ms),
            }
        }
        CommandPolicy {
            allow,
            max_age_ms,
            default_max_age_ms,
        }
    }

    pub fn allows(&self, by: CommandSource, cmd: CommandName) -> bool {
        self.allow.get(&by).is_some_and(|s| s.contains(&cmd))
    }

    /// Why `by` may not send `cmd`, for the rejection.
    pub fn refusal(&self, by: CommandSource, cmd: CommandName) -> String {
        format!(
            "{} may not send {}: the cell config's [commands.allow] {} does not list it",
            crate::orders::by_name(by),
            name_of(cmd),
            crate::orders::by_name(by)
        )
    }

    pub fn max_age_ms(&self, cmd: CommandName) -> Option<i64> {
        self.max_age_ms
            .get(&cmd)
            .copied()
            .or(self.default_max_age_ms)
    }
}

/// A tag a write_tag may set, with everything the engine checks before it accepts a write.
#[derive(Debug, Clone)]
pub struct WritableTag {
    pub id: TagId,
    /// The driver's own description of the tag: the value is encoded with it before the
    /// write is accepted, so `accepted` means the driver can write exactly that.
    encoding: Arc<dyn WriteEncoding>,
    min: Option<f64>,
    max: Option<f64>,
    allowed: Option<Vec<AllowedValue>>,
    /// None: every source that may send write_tag.
    sources: Option<HashSet<CommandSource>>,
}

impl WritableTag {
    /// Every `write = true` tag of the config, by name, whichever protocol writes it.
    pub fn all(c: &CellConfig) -> HashMap<String, WritableTag> {
        let mut out = HashMap::new();
        for (id, _, tag) in c.numbered_tags() {
            let Some(spec) = tag.write.clone() else {
                continue;
            };
            let sources = spec.write_sources.as_ref().map(|l| {
                l.iter()
                    .filter_map(|s| serde_json::from_value(serde_json::json!(s)).ok())
                    .collect()
            });
            out.insert(
                tag.name().to_string(),
                WritableTag {
                    id,
                    encoding: spec.encoding,
                    min: spec.min,
                    max: spec.max,
                    allowed: spec.allowed,
                    sources,
                },
            );
        }
        out
    }

    pub fn writable_by(&self, by: CommandSource) -> bool {
        self.sources.as_ref().is_none_or(|s| s.contains(&by))
    }

    /// The value `v` asks for, as the tag's type holds it, within its limits; or why not.
    pub fn check(&self, v: &serde_json::Value) -> Result<Value, String> {
        use serde_json::Value as J;
        let kind = self.encoding.kind();
        let value = match (v, kind) {
            (J::Bool(b), ValueKind::Bool) => Value::Bool(*b),
            (J::Number(n), ValueKind::Bool) => match n.as_u64() {
                Some(0) => Value::Bool(false),
                Some(1) => Value::Bool(true),
                _ => return Err(format!("expected true or false, found {n}")),
            },
            (_, ValueKind::Bool) => return Err(format!("expected true or false, found {v}")),
            (J::String(s), ValueKind::Text) => Value::Text(
                Text::new(s).ok_or_else(|| format!("text of {} bytes is too long", s.len()))?,
            ),
            (J::Number(n), ValueKind::Text) => {
                return Err(format!("expected text for a string tag, found {n}"))
            }
            (J::Number(n), ValueKind::Float) => {
                Value::Float(n.as_f64().ok_or("expected a number")?)
            }
            (J::Number(n), ValueKind::Int) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Value::Int(i),
                (_, Some(u), _) => Value::UInt(u),
                (_, _, Some(f)) if f.fract() == 0.0 => Value::Float(f),
                _ => {
                    return Err(format!(
                        "expected a whole number for {}, found {n}",
                        self.encoding.type_name()
                    ))
                }
            },
            (other, _) => {
                return Err(format!(
                    "expected a value of the tag's type ({}), found {other}",
                    self.encoding.type_name()
                ))
            }
        };
        if kind != ValueKind::Bool {
            self.encoding.encodes(value)?;
        }
        self.within_limits(&value)?;
        Ok(value)
    }

    fn within_limits(&self, value: &Value) -> Result<(), String> {
        let number = match value {
            Value::Text(_) | Value::Bool(_) => None,
            other => Some(other.as_f64()),
        };
        if let (Some(x), Some(lo)) = (number, self.min) {
            if x < lo {
                return Err(format!("{x} is below the tag's min ({lo})"));
            }
        }
        if let (Some(x), Some(hi)) = (number, self.max) {
            if x > hi {
                return Err(format!("{x} is above the tag's max ({hi})"));
            }
        }
        if let Some(allowed) = &self.allowed {
            let ok = allowed.iter().any(|a| match (a, value) {
                (AllowedValue::Bool(a), Value::Bool(b)) => a == b,
                (AllowedValue::Text(a), Value::Text(t)) => a == t.as_str(),
                (AllowedValue::Number(a), v) => number.is_some() && v.as_f64() == *a,
                _ => false,
            });
            if !ok {
                return Err(format!(
                    "{} is not one of the tag's allowed values",
                    show(value)
                ));
            }
        }
        Ok(())
    }
}

/// A value as a person reads it in a reply.
pub fn show(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Text(t) => format!("{:?}", t.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_name_is_known_to_the_config() {
        use crate::config::commands_names::COMMAND_NAMES;
        let all = [
            CommandName::Store,
            CommandName::StoreAndStart,
            CommandName::Start,
            CommandName::Update,
            CommandName::Pause,
            CommandName::Resume,
            CommandName::Stop,
            CommandName::Abort,
            CommandName::Cancel,
            CommandName::Clear,
            CommandName::RevokeStart,
            CommandName::DowntimeReason,
            CommandName::ScrapReason,
            CommandName::ConsumeMaterial,
            CommandName::WriteTag,
        ];
        let names: Vec<String> = all.iter().map(|c| name_of(*c)).collect();
        assert_eq!(names, COMMAND_NAMES);
        let orders: Vec<&str> = all
            .iter()
            .zip(COMMAND_NAMES)
            .filter(|(c, _)| c.job_command().is_some())
            .map(|(_, n)| *n)
            .collect();
        assert_eq!(orders, crate::config::commands_names::ORDER_COMMANDS);
    }

    #[test]
    fn defaults_keep_writes_to_mom_until_the_config_says_otherwise() {
        let p = CommandPolicy::from_config(&CommandsConfig::default());
        assert!(p.allows(CommandSource::Mqtt, CommandName::WriteTag));
        assert!(!p.allows(CommandSource::Operator, CommandName::WriteTag));
        assert!(p.allows(CommandSource::Operator, CommandName::Start));
        assert!(!p.allows(CommandSource::Sparkplug, CommandName::WriteTag));
        assert!(p.allows(CommandSource::Plc, CommandName::StoreAndStart));
        assert!(!p.allows(CommandSource::Plc, CommandName::WriteTag));
        assert_eq!(p.max_age_ms(CommandName::WriteTag), Some(30_000));
        assert_eq!(p.max_age_ms(CommandName::Store), None);
    }

    use mes_edge_drivers::modbus::{DataType, ModbusTag};

    fn tag(ty: DataType) -> WritableTag {
        encoded(ModbusTag::new(
            TagId(0),
            mes_edge_drivers::modbus::Table::Holding,
            0,
            ty,
        ))
    }

    fn encoded(encoding: impl WriteEncoding + 'static) -> WritableTag {
        WritableTag {
            id: TagId(0),
            encoding: Arc::new(encoding),
            min: None,
            max: None,
            allowed: None,
            sources: None,
        }
    }

    #[test]
    fn a_value_is_checked_against_the_tag_before_it_is_accepted() {
        use serde_json::json;
        let u16 = tag(DataType::U16);
        assert!(u16
            .check(&json!(70000))
            .unwrap_err()
            .contains("out of range"));
        assert!(u16.check(&json!(true)).is_err(), "a bool is not a number");
        assert!(u16.check(&json!(-1)).is_err());
        assert!(u16.check(&json!(2.5)).is_err());
        assert_eq!(u16.check(&json!(65535)).unwrap(), Value::Int(65535));
        let i16 = tag(DataType::I16);
        assert_eq!(i16.check(&json!(-5)).unwrap(), Value::Int(-5));
        let mut limited = tag(DataType::I32);
        limited.min = Some(0.0);
        limited.max = Some(120.0);
        assert!(limited.check(&json!(121)).unwrap_err().contains("max"));
        assert!(limited.check(&json!(-1)).unwrap_err().contains("min"));
        limited.allowed = Some(vec![AllowedValue::Number(10.0), AllowedValue::Number(20.0)]);
        assert!(limited.check(&json!(15)).unwrap_err().contains("allowed"));
        assert_eq!(limited.check(&json!(20)).unwrap(), Value::Int(20));
        let text = tag(DataType::String);
        assert!(text.check(&json!(5)).is_err());
    }

    #[test]
    fn an_s7_tag_is_checked_by_its_own_encoding() {
        use mes_edge_drivers::s7::{S7Tag, S7Type};
        use serde_json::json;
        let s7 = |addr: &str, ty| encoded(S7Tag::new(TagId(0), addr.parse().unwrap(), ty));
        let int = s7("DB10.DBW4", S7Type::Int);
        assert_eq!(int.check(&json!(-5)).unwrap(), Value::Int(-5));
        assert!(int.check(&json!(40000)).unwrap_err().contains("range"));
        let bit = s7("DB10.DBX2.3", S7Type::Bool);
        assert_eq!(bit.check(&json!(1)).unwrap(), Value::Bool(true));
        assert!(bit.check(&json!(2)).is_err());
        let name = s7("DB10.DBB20", S7Type::String { max: 4 });
        assert!(name
            .check(&json!("ABCDE"))
            .unwrap_err()
            .contains("STRING[4]"));
        let real = s7("MD4", S7Type::Real);
        assert_eq!(real.check(&json!(2.5)).unwrap(), Value::Float(2.5));
    }
}
