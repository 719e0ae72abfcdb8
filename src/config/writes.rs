//! What a write_tag may set on a `write = true` tag, whichever protocol writes it: the kind of
//! value it takes, and the driver's own check that it can encode one. The engine checks a
//! command with it before it answers `accepted`, so `accepted` means the driver can write it.

use super::commands::AllowedValue;
use super::commands_names::WRITE_SOURCES;
use super::locate::{Problem, Seg};
use mes_edge_drivers::Value;
use std::sync::Arc;

/// The JSON value a write_tag gives for a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Bool,
    Text,
    Float,
    Int,
}

/// A writable tag as its driver encodes it.
pub trait WriteEncoding: std::fmt::Debug + Send + Sync {
    fn kind(&self) -> ValueKind;
    /// The type's name, for messages.
    fn type_name(&self) -> String;
    /// Ok if the driver can write `value` (in range, of a length that fits).
    fn encodes(&self, value: Value) -> Result<(), String>;
}

/// A `write = true` tag's encoding and the limits its config puts on writes.
#[derive(Debug, Clone)]
pub struct WriteSpec {
    pub encoding: Arc<dyn WriteEncoding>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub allowed: Option<Vec<AllowedValue>>,
    pub write_sources: Option<Vec<String>>,
}

/// The limits a tag's config puts on writes, as written (each protocol's tag table has the
/// same four keys).
#[derive(Debug, Clone, Copy)]
pub struct Limits<'a> {
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub allowed: Option<&'a [AllowedValue]>,
    pub write_sources: Option<&'a [String]>,
}

/// The checks of tag `name`'s write limits, whichever protocol it is on: `entry` is the path of
/// its table entry, `writable` its encoding if it is `write = true` and resolves (a tag whose
/// address or type is wrong has that problem reported already). The limits go only on a
/// writable tag, and of the kind of value it takes, so that a limit that could never pass or
/// never bind is an error at the check, not a write refused or let through in production.
pub fn check_limits(
    entry: &[Seg],
    name: &str,
    write: bool,
    limits: Limits<'_>,
    writable: Option<&dyn WriteEncoding>,
    p: &mut Vec<Problem>,
) {
    let at = |key: &str| {
        entry
            .iter()
            .cloned()
            .chain([Seg::from(key)])
            .collect::<Vec<_>>()
    };
    let set = [
        ("min", limits.min.is_some()),
        ("max", limits.max.is_some()),
        ("allowed", limits.allowed.is_some()),
        ("write_sources", limits.write_sources.is_some()),
    ];
    if !write {
        if let Some((key, _)) = set.iter().find(|(_, set)| *set) {
            p.push(Problem::at(
                at(key),
                format!("{key} bounds writes, and tag {name:?} is not `write = true`"),
            ));
        }
        return;
    }
    if let (Some(lo), Some(hi)) = (limits.min, limits.max) {
        if lo > hi {
            p.push(Problem::at(
                at("max"),
                format!("expected a max of at least min ({lo}), found {hi}"),
            ));
        }
    }
    if let Some(encoding) = writable {
        check_kind(at, limits, encoding, p);
    }
    for (k, s) in limits.write_sources.iter().copied().flatten().enumerate() {
        if !WRITE_SOURCES.contains(&s.as_str()) {
            p.push(Problem::at(
                at_index(&at("write_sources"), k),
                format!("expected one of {WRITE_SOURCES:?}, found {s:?}"),
            ));
        }
    }
}

/// `min` and `max` only on a tag that takes numbers, `allowed` values of the kind it takes.
fn check_kind(
    at: impl Fn(&str) -> Vec<Seg>,
    limits: Limits<'_>,
    encoding: &dyn WriteEncoding,
    p: &mut Vec<Problem>,
) {
    let kind = encoding.kind();
    if kind == ValueKind::Text && (limits.min.is_some() || limits.max.is_some()) {
        p.push(Problem::at(
            at(if limits.min.is_some() { "min" } else { "max" }),
            format!(
                "a {} tag takes text and has no numeric limits; use `allowed`",
                encoding.type_name()
            ),
        ));
    }
    for (k, v) in limits.allowed.iter().copied().flatten().enumerate() {
        let fits = match v {
            AllowedValue::Text(_) => kind == ValueKind::Text,
            AllowedValue::Bool(_) => kind == ValueKind::Bool,
            AllowedValue::Number(_) => kind != ValueKind::Text,
        };
        if !fits {
            let found = match v {
                AllowedValue::Bool(b) => b.to_string(),
                AllowedValue::Number(n) => n.to_string(),
                AllowedValue::Text(t) => format!("{t:?}"),
            };
            p.push(Problem::at(
                at_index(&at("allowed"), k),
                format!(
                    "expected a value of the tag's type ({}), found {found}",
                    encoding.type_name()
                ),
            ));
        }
    }
}

fn at_index(path: &[Seg], k: usize) -> Vec<Seg> {
    path.iter().cloned().chain([Seg::from(k)]).collect()
}
