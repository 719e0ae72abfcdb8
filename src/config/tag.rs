//! One tag of the cell as the rest of the runtime sees it, whichever protocol reads it: each
//! protocol's folder describes its tags in these words ([`super::protocol::DeviceProtocol::tags`]),
//! so the engine, the signal checks, process values, Sparkplug and the write path read one
//! description and never ask which protocol a tag came from.

use super::locate::{Problem, Seg};
use super::values::Publish;
use super::writes::WriteSpec;

/// The type of the values a tag delivers, as the runtime carries them (a scaled integer is a
/// `Double`: the scaling makes it one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Bool,
    Int8,
    UInt8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float,
    Double,
    Text,
    /// A point in time carried as a time (OPC UA DateTime).
    DateTime,
    /// A point in time the driver hands over as ISO text (S7 DATE_AND_TIME): text on the wire
    /// to MOM, but no lot number or serial.
    DateTimeText,
}

impl ValueType {
    /// An unscaled integer: a count, a code, a state word.
    pub fn is_integer(self) -> bool {
        use ValueType::*;
        matches!(
            self,
            Int8 | UInt8 | Int16 | UInt16 | Int32 | UInt32 | Int64 | UInt64
        )
    }

    /// A number a summary can be made of (not a bool, a text or a time).
    pub fn is_number(self) -> bool {
        self.is_integer() || matches!(self, ValueType::Float | ValueType::Double)
    }
}

/// One tag, resolved once from its protocol's config.
#[derive(Debug, Clone)]
pub struct TagDescription {
    pub name: String,
    /// What the tag reads (device, address, type, byte order...), for a counter's baseline: a
    /// counter moved to another device, address or type starts a new baseline rather than being
    /// diffed against the old tag's last value.
    pub identity: String,
    /// None when the config does not say (an OPC UA node without `type`): Sparkplug leaves the
    /// tag out of the device's birth, which needs a type.
    pub value_type: Option<ValueType>,
    /// Whether the signal checks judge `value_type`. False where the device, not the config,
    /// has the last word on the type (OPC UA nodes carry their own; a wrong one shows as a bad
    /// value at run time).
    pub type_checked: bool,
    /// Width of the unsigned counter this tag can hold, if it can hold one: where it rolls over.
    pub counter_bits: Option<u32>,
    /// What a write_tag may set on it: Some only for `write = true` tags.
    pub write: Option<WriteSpec>,
    /// Its `publish` key (docs/VALUES.md).
    pub publish: Publish,
    /// Where it is written in the file: the device's list (`tags`, `nodes`, `s7_tags`) and its
    /// index there, for the location of a problem with its `publish`.
    pub list: &'static str,
    pub index: usize,
}

impl TagDescription {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A tag name the cell already has, first on device `first`: a signal names its tag alone, so
/// a name is unique across the tags of every protocol.
pub(crate) fn name_taken(at: Vec<Seg>, name: &str, first: &str) -> Problem {
    Problem::at(
        at,
        format!("tag name {name:?} is already used on device {first:?}; expected a name unique in the cell"),
    )
}
