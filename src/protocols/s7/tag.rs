//! The `[[devices.s7_tags]]` entries of the cell config, and what each resolves to.

use crate::config::tag::{TagDescription, ValueType};
use mes_edge_drivers::s7::{Address, S7Tag, S7Type};
use mes_edge_drivers::TagId;
use serde::Deserialize;
use std::time::Duration;

/// ISO-on-TCP's port (RFC 1006).
pub const DEFAULT_PORT: u16 = 102;
/// The PDU size offered; S7-1500 CPUs accept 960, the others answer with less.
pub const DEFAULT_PDU: u16 = 960;
/// Our TSAP: a PG connection, as STEP 7 and snap7 connect.
pub const DEFAULT_LOCAL_TSAP: u16 = 0x0100;
/// Unused bytes read to save an item: reading a few more bytes costs less than an item header.
pub const MAX_GAP: u32 = 16;

/// One S7 value of the cell: `address = "DB10.DBW4"`, `type = "int"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S7TagConfig {
    pub name: String,
    pub address: String,
    /// bool, byte, word, dword, int, dint, real, lreal, string, date_and_time or dtl; default
    /// from the address's width (X bool, B byte, W word, D dword).
    #[serde(rename = "type")]
    pub data_type: Option<String>,
    /// A string's declared length (STRING[20] has 20).
    pub length: Option<u8>,
    /// Read this tag at its own interval instead of the device's `poll_interval_ms`.
    pub poll_interval_ms: Option<u64>,
    /// Whether write_tag and the write-back may set it.
    #[serde(default)]
    pub write: bool,
    /// Engineering limits of a writable tag: a write_tag outside them is rejected.
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The only values a write_tag may set.
    pub allowed: Option<Vec<crate::config::AllowedValue>>,
    /// The sources (`mqtt`, `operator`, `sparkplug`) whose write_tag may set this tag.
    pub write_sources: Option<Vec<String>>,
    /// Publish the tag as a process value (docs/VALUES.md).
    #[serde(default)]
    pub publish: crate::config::values::Publish,
}

impl S7TagConfig {
    /// The parsed address and type, or what is wrong with them (key, message).
    pub fn parsed(&self) -> Result<(Address, S7Type), (&'static str, String)> {
        let address: Address = self.address.parse().map_err(|e| ("address", e))?;
        let ty = match &self.data_type {
            Some(name) => S7Type::parse(name, self.length).map_err(|e| ("type", e))?,
            None => S7Type::default_for(address.width),
        };
        ty.fits(address.width)
            .map_err(|e| ("address", format!("{}: {e}", self.address)))?;
        Ok((address, ty))
    }

    pub fn s7_type(&self) -> Option<S7Type> {
        self.parsed().ok().map(|(_, t)| t)
    }

    /// The tag as the rest of the runtime sees it, numbered `id`, `index` in its device's
    /// `s7_tags`.
    pub fn describe(&self, device: &str, id: TagId, index: usize) -> TagDescription {
        let ty = self.s7_type();
        TagDescription {
            name: self.name.clone(),
            identity: match self.parsed() {
                Ok((a, t)) => format!("{device}/s7:{a}/{}", t.name()),
                Err(_) => format!("{device}/s7:{}/?", self.address),
            },
            value_type: ty.map(value_type),
            type_checked: true,
            counter_bits: ty.and_then(S7Type::counter_bits),
            write: self.write_spec(id),
            publish: self.publish.clone(),
            list: "s7_tags",
            index,
        }
    }

    /// The driver's tag, numbered `id`, read every `interval` unless it has its own.
    pub fn driver_tag(&self, id: TagId, interval: Duration) -> Option<S7Tag> {
        let (address, data_type) = self.parsed().ok()?;
        let mut tag = S7Tag::new(id, address, data_type);
        tag.poll_interval = self
            .poll_interval_ms
            .map_or(interval, Duration::from_millis);
        tag.writable = self.write;
        Some(tag)
    }
}

impl crate::config::writes::WriteEncoding for S7Tag {
    fn kind(&self) -> crate::config::writes::ValueKind {
        use crate::config::writes::ValueKind;
        match self.data_type {
            S7Type::Bool => ValueKind::Bool,
            S7Type::String { .. } | S7Type::DateAndTime | S7Type::Dtl => ValueKind::Text,
            S7Type::Real | S7Type::LReal => ValueKind::Float,
            _ => ValueKind::Int,
        }
    }

    fn type_name(&self) -> String {
        self.data_type.name().to_string()
    }

    fn encodes(&self, value: mes_edge_drivers::Value) -> Result<(), String> {
        self.encode(value).map(|_| ())
    }
}

impl S7TagConfig {
    /// The checks of the tag's write limits (config/writes.rs), tag `t` of device `d`: the same
    /// as a Modbus tag's.
    pub fn check_write_limits(&self, d: usize, t: usize, p: &mut Vec<crate::config::Problem>) {
        use crate::config::locate::Seg;
        let limits = crate::config::writes::Limits {
            min: self.min,
            max: self.max,
            allowed: self.allowed.as_deref(),
            write_sources: self.write_sources.as_deref(),
        };
        let spec = self.write_spec(TagId(0));
        let entry = path!["devices", d, "s7_tags", t];
        let encoding = spec.as_ref().map(|s| &*s.encoding);
        crate::config::writes::check_limits(&entry, &self.name, self.write, limits, encoding, p);
    }

    /// What a write_tag may set on the tag, if it is writable.
    fn write_spec(&self, id: TagId) -> Option<crate::config::writes::WriteSpec> {
        let tag = self.driver_tag(id, Duration::ZERO).filter(|t| t.writable)?;
        Some(crate::config::writes::WriteSpec {
            encoding: std::sync::Arc::new(tag),
            min: self.min,
            max: self.max,
            allowed: self.allowed.clone(),
            write_sources: self.write_sources.clone(),
        })
    }
}

/// The runtime's type of an S7 type's values.
pub fn value_type(t: S7Type) -> ValueType {
    match t {
        S7Type::Bool => ValueType::Bool,
        S7Type::Byte => ValueType::UInt8,
        S7Type::Word => ValueType::UInt16,
        S7Type::DWord => ValueType::UInt32,
        S7Type::Int => ValueType::Int16,
        S7Type::DInt => ValueType::Int32,
        S7Type::Real => ValueType::Float,
        S7Type::LReal => ValueType::Double,
        S7Type::String { .. } => ValueType::Text,
        S7Type::DateAndTime | S7Type::Dtl => ValueType::DateTimeText,
    }
}
