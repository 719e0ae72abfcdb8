//! What a signal needs of its tag, judged on the tag's common description, whichever protocol
//! reads it. The general checks and each protocol's folder share these rules, so they sit
//! below both.

use super::locate::{Problem, Seg};
use super::tag::{TagDescription, ValueType};
use super::types::CounterSignal;
use mes_edge_drivers::TagId;

/// What a signal needs of its tag.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Need {
    Bool,
    Integer,
    WritableInteger,
    /// A number to summarize: not a bool or a string.
    Number,
    /// A lot number: an unscaled integer or a string.
    Lot,
    /// Any tag.
    Any,
    /// A bool or an unscaled integer: a flag raised, or a count kept.
    Flag,
}

impl Need {
    /// What is wrong with `tag` for this need, if anything.
    pub fn problem(self, tag: &TagDescription) -> Option<&'static str> {
        if !tag.type_checked {
            return None;
        }
        self.problem_with(tag.value_type?, tag.write.is_some())
    }

    /// What is wrong with a tag of type `ty` (writable or not) for this need, if anything.
    pub fn problem_with(self, ty: ValueType, writable: bool) -> Option<&'static str> {
        let int = ty.is_integer();
        match self {
            Need::Bool if ty != ValueType::Bool => Some("expected a bool tag"),
            Need::Integer | Need::WritableInteger if !int => {
                Some("expected an unscaled integer tag")
            }
            Need::WritableInteger if !writable => Some("expected a tag with `write = true`"),
            Need::Number if !ty.is_number() => Some("expected a numeric tag"),
            Need::Flag if !int && ty != ValueType::Bool => {
                Some("expected a bool or an unscaled integer tag")
            }
            Need::Lot if !int && ty != ValueType::Text => {
                Some("expected an unscaled integer or a string tag")
            }
            _ => None,
        }
    }
}

/// A tag a signal names: it exists and is what the signal needs.
pub(crate) fn signal_tag(
    tags: &[(TagId, usize, TagDescription)],
    at: Vec<Seg>,
    name: &str,
    need: Need,
    p: &mut Vec<Problem>,
) {
    match tags.iter().find(|(_, _, t)| t.name() == name) {
        None => p.push(Problem::at(at, format!("unknown tag {name:?}"))),
        Some((_, _, t)) => {
            if let Some(problem) = need.problem(t) {
                p.push(Problem::at(at, format!("{problem}; {name:?} is not")));
            }
        }
    }
}

/// A rollover window must fit in half the counter's range, whichever protocol reads it.
pub(crate) fn check_rollover_window(
    key: &'static str,
    c: &CounterSignal,
    bits: u32,
    p: &mut Vec<Problem>,
) {
    let half = if bits >= 64 {
        u64::MAX / 2
    } else {
        1u64 << (bits - 1)
    };
    if c.rollover_window == 0 || c.rollover_window >= half {
        p.push(Problem::at(
            path!["signals", key, "rollover_window"],
            format!(
                "expected 1 to {} for a {bits}-bit counter, found {}",
                half - 1,
                c.rollover_window
            ),
        ));
    }
}
