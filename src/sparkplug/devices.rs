//! The cell's PLCs as Sparkplug devices: each one's birth certificate lists its tags (by name,
//! alias and type), born when the device comes online and dead when it goes offline.
//!
//! Process values (issue 15) are not in the outbox yet: the tags are born with null values,
//! and [`Devices::data`] is the seam that turns a batch of a device's values into its DDATA
//! once they are (see docs/SPARKPLUG.md, "Process values").

use super::metrics::MetricValue;
use super::payload::{encode, metric};
use super::proto::DataType;
use crate::config::{CellConfig, CellTag};
use mes_edge_drivers::modbus::DataType as Modbus;
use mes_edge_drivers::TagId;

/// Device metric aliases start here, above the node's own.
const FIRST_TAG_ALIAS: u64 = 1000;

#[derive(Debug, Clone, Default)]
pub struct Devices(pub Vec<DeviceSpec>);

#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub name: String,
    pub tags: Vec<TagSpec>,
}

#[derive(Debug, Clone)]
pub struct TagSpec {
    pub tag: TagId,
    pub name: String,
    pub alias: u64,
    pub datatype: DataType,
    /// `write = true` in the config: the only tags a DCMD may set.
    pub writable: bool,
}

fn sparkplug_type(t: Modbus, scaled: bool) -> DataType {
    match t {
        _ if scaled => DataType::Double,
        Modbus::Bool => DataType::Boolean,
        Modbus::U16 => DataType::UInt16,
        Modbus::I16 => DataType::Int16,
        Modbus::U32 => DataType::UInt32,
        Modbus::I32 => DataType::Int32,
        Modbus::U64 => DataType::UInt64,
        Modbus::I64 => DataType::Int64,
        Modbus::F32 => DataType::Float,
        Modbus::F64 => DataType::Double,
        Modbus::String => DataType::String,
    }
}

impl Devices {
    /// Every configured device with its Modbus tags (OPC UA nodes are not listed yet).
    pub fn from_config(c: &CellConfig) -> Devices {
        let mut devices: Vec<DeviceSpec> = c
            .devices
            .iter()
            .map(|d| DeviceSpec {
                name: d.name.clone(),
                tags: Vec::new(),
            })
            .collect();
        for (id, d, tag) in c.numbered_tags() {
            if let CellTag::Modbus(t) = tag {
                devices[d].tags.push(TagSpec {
                    tag: id,
                    name: t.name.clone(),
                    alias: FIRST_TAG_ALIAS + id.0 as u64,
                    datatype: sparkplug_type(t.data_type, t.scale.is_some() || t.offset.is_some()),
                    writable: t.write,
                });
            }
        }
        Devices(devices)
    }

    pub fn get(&self, name: &str) -> Option<&DeviceSpec> {
        self.0.iter().find(|d| d.name == name)
    }

    /// DBIRTH: the device's tags by name, alias and type; values null until process values
    /// are published.
    pub fn birth(&self, device: &str, seq: u8, ts: u64) -> Vec<u8> {
        let tags = self
            .get(device)
            .map(|d| d.tags.as_slice())
            .unwrap_or_default();
        let metrics = tags
            .iter()
            .map(|t| {
                metric(
                    Some(&t.name),
                    Some(t.alias),
                    t.datatype,
                    &MetricValue::Null,
                    ts,
                    false,
                )
            })
            .collect();
        encode(metrics, Some(seq as u64), ts)
    }

    /// DDEATH: no metrics, only the seq.
    pub fn death(seq: u8, ts: u64) -> Vec<u8> {
        encode(Vec::new(), Some(seq as u64), ts)
    }

    /// DDATA for a batch of one device's values (tag, value, when read): the seam for process
    /// values. Tags the device does not have are left out.
    pub fn data(
        &self,
        device: &str,
        values: &[(TagId, MetricValue, u64)],
        seq: u8,
        ts: u64,
        historical: bool,
    ) -> Option<Vec<u8>> {
        let d = self.get(device)?;
        let metrics: Vec<_> = values
            .iter()
            .filter_map(|(tag, v, at)| {
                let t = d.tags.iter().find(|t| t.tag == *tag)?;
                Some(metric(None, Some(t.alias), t.datatype, v, *at, historical))
            })
            .collect();
        (!metrics.is_empty()).then(|| encode(metrics, Some(seq as u64), ts))
    }
}
