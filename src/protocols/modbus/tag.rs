//! The `[[devices.tags]]` entries of a Modbus device, and what each resolves to: the common
//! description the rest of the runtime reads, and the driver's encoding of a writable tag.

use crate::config::tag::{TagDescription, ValueType};
use crate::config::locate::{Problem, Seg};
use crate::config::writes::{check_limits, Limits, ValueKind, WriteEncoding, WriteSpec};
use mes_edge_drivers::modbus::{ByteOrder, DataType, ModbusTag, Table};
use mes_edge_drivers::TagId;
use serde::Deserialize;
use std::sync::Arc;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagConfig {
    pub name: String,
    pub table: Table,
    pub address: u16,
    #[serde(rename = "type")]
    pub data_type: DataType,
    #[serde(default)]
    pub order: ByteOrder,
    pub bit: Option<u8>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    /// Registers of a `type = "string"` tag (two characters each).
    pub length: Option<u16>,
    /// Read this tag at its own interval instead of the device's `poll_interval_ms`.
    pub poll_interval_ms: Option<u64>,
    /// Whether write-back may set it (holding registers and coils only).
    #[serde(default)]
    pub write: bool,
    /// Engineering limits of a writable tag: a write_tag outside them is rejected.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The only values a write_tag may set.
    pub allowed: Option<Vec<crate::config::AllowedValue>>,
    /// The sources (`mqtt`, `operator`, `sparkplug`) whose write_tag may set this tag; every
    /// source allowed write_tag if left out.
    pub write_sources: Option<Vec<String>>,
    /// Publish the tag as a process value (docs/VALUES.md).
    #[serde(default)]
    pub publish: crate::config::values::Publish,
}

impl TagConfig {
    /// Addresses the tag occupies in its table.
    pub fn span(&self) -> u16 {
        if self.table.is_bits() {
            1
        } else {
            self.data_type.span(self.length)
        }
    }

    /// The tag as the rest of the runtime sees it, numbered `id`, `index` in its device's list.
    pub fn describe(&self, device: &str, id: TagId, index: usize) -> TagDescription {
        TagDescription {
            name: self.name.clone(),
            identity: format!(
                "{device}/{}:{}/{}/{:?}",
                self.table.name(),
                self.address,
                self.data_type.name(),
                self.order
            ),
            value_type: Some(self.value_type()),
            type_checked: true,
            counter_bits: self.data_type.counter_bits(),
            write: self.write_spec(id),
            publish: self.publish.clone(),
            list: "tags",
            index,
        }
    }

    /// A scaled number is a double; a bool or a string keeps its type (a scaled one is refused
    /// by the checks, and judged as what it is meanwhile).
    fn value_type(&self) -> ValueType {
        let scaled = self.scale.is_some() || self.offset.is_some();
        match self.data_type {
            DataType::Bool => ValueType::Bool,
            DataType::String => ValueType::Text,
            _ if scaled => ValueType::Double,
            DataType::U16 => ValueType::UInt16,
            DataType::I16 => ValueType::Int16,
            DataType::U32 => ValueType::UInt32,
            DataType::I32 => ValueType::Int32,
            DataType::U64 => ValueType::UInt64,
            DataType::I64 => ValueType::Int64,
            DataType::F32 => ValueType::Float,
            DataType::F64 => ValueType::Double,
        }
    }

    /// The checks of the tag's write limits (config/writes.rs), tag `i` of device `d`.
    pub fn check_write_limits(&self, d: usize, i: usize, p: &mut Vec<Problem>) {
        let limits = Limits {
            min: self.min,
            max: self.max,
            allowed: self.allowed.as_deref(),
            write_sources: self.write_sources.as_deref(),
        };
        let spec = self.write_spec(TagId(0));
        let entry = path!["devices", d, "tags", i];
        let encoding = spec.as_ref().map(|s| &*s.encoding);
        check_limits(&entry, &self.name, self.write, limits, encoding, p);
    }

    /// What a write_tag may set on the tag (numbered `id`), if it has `write = true`.
    fn write_spec(&self, id: TagId) -> Option<WriteSpec> {
        if !self.write {
            return None;
        }
        let mut encoding = ModbusTag::new(id, self.table, self.address, self.data_type);
        encoding.order = self.order;
        encoding.bit = self.bit;
        encoding.length = self.length;
        encoding.scale = self.scale;
        encoding.offset = self.offset;
        encoding.writable = true;
        Some(WriteSpec {
            encoding: Arc::new(encoding),
            min: self.min,
            max: self.max,
            allowed: self.allowed.clone(),
            write_sources: self.write_sources.clone(),
        })
    }
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

    fn encodes(&self, value: mes_edge_drivers::Value) -> Result<(), String> {
        self.encode_registers(value)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}
