//! What a write_tag may set on a `write = true` tag, whichever protocol writes it: the kind of
//! value it takes, and the driver's own check that it can encode one. The engine checks a
//! command with it before it answers `accepted`, so `accepted` means the driver can write it.

use super::commands::AllowedValue;
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
