//! What a signal needs of its tag, judged on the tag's common description, whichever protocol
//! reads it.

use crate::config::tag::{TagDescription, ValueType};

/// What a signal needs of its tag.
#[derive(Clone, Copy, PartialEq)]
pub(in crate::config) enum Need {
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
