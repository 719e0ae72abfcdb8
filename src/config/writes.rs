//! What a write_tag may set on a `write = true` tag, whichever protocol writes it: the kind of
//! value it takes, and the driver's own check that it can encode one. The engine checks a
//! command with it before it answers `accepted`, so `accepted` means the driver can write it.

use super::commands::AllowedValue;
use mes_edge_drivers::modbus::{DataType, ModbusTag};
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

impl WriteEncoding for ModbusTag {
    fn kind(&self) -> ValueKind {
        if self.table.is_bits() || self.bit.is_some() || self.data_type == DataType::Bool {
            ValueKind::Bool
        } else if self.data_type == DataType::String {
            ValueKind::Text
        } else if matches!(self.data_type, DataType::F32 | DataType::F64)
            || self.scale.is_some()
            || self.offset.is_some()
        {
            ValueKind::Float
        } else {
            ValueKind::Int
        }
    }

    fn type_name(&self) -> String {
        self.data_type.name().to_string()
    }

    fn encodes(&self, value: Value) -> Result<(), String> {
        self.encode_registers(value)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
