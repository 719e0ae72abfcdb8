//! The `[[devices.nodes]]` and `[[devices.subscriptions]]` entries of an OPC UA device, and the
//! common description of a node.

use crate::config::tag::{TagDescription, ValueType};
use mes_edge_drivers::opcua::NodeType;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionConfig {
    pub name: String,
    pub publishing_interval_ms: u64,
}

/// An OPC UA node read as a tag.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub name: String,
    /// `ns=3;s=Line1.Press.Count`, `ns=2;i=1042`, `nsu=URI;s=...`
    pub node_id: Option<String>,
    /// `/2:Press/2:GoodCount` from the Objects folder, instead of `node_id`.
    pub browse_path: Option<String>,
    /// The type the node must hold; required for counters (their width decides rollover).
    #[serde(rename = "type")]
    pub data_type: Option<NodeType>,
    /// Default: the subscription's publishing interval.
    pub sampling_interval_ms: Option<u64>,
    /// Default 1: the latest value (a counter's latest value holds every part).
    pub queue_size: Option<u32>,
    /// Default true.
    pub discard_oldest: Option<bool>,
    pub deadband_absolute: Option<f64>,
    pub deadband_percent: Option<f64>,
    /// Read every `poll_interval_ms` instead of subscribing.
    #[serde(default)]
    pub poll: bool,
    /// One of the device's `[[devices.subscriptions]]`; default: the device's own.
    pub subscription: Option<String>,
    /// Publish the node as a process value (docs/VALUES.md).
    #[serde(default)]
    pub publish: crate::config::values::Publish,
}

impl NodeConfig {
    /// The node as the rest of the runtime sees it, `index` in its device's `nodes`. Nodes are
    /// not written by write_tag.
    pub fn describe(&self, device: &str, index: usize) -> TagDescription {
        TagDescription {
            name: self.name.clone(),
            identity: format!(
                "{device}/{}/{}",
                self.node_id
                    .as_deref()
                    .or(self.browse_path.as_deref())
                    .unwrap_or("?"),
                self.data_type.map_or("?", |t| t.name())
            ),
            value_type: self.data_type.map(value_type),
            // The server has the last word on a node's type: a wrong one shows as a bad value.
            type_checked: false,
            counter_bits: self.data_type.and_then(NodeType::counter_bits),
            write: None,
            publish: self.publish.clone(),
            list: "nodes",
            index,
        }
    }
}

fn value_type(t: NodeType) -> ValueType {
    match t {
        NodeType::Bool => ValueType::Bool,
        NodeType::I8 => ValueType::Int8,
        NodeType::U8 => ValueType::UInt8,
        NodeType::I16 => ValueType::Int16,
        NodeType::U16 => ValueType::UInt16,
        NodeType::I32 => ValueType::Int32,
        NodeType::U32 => ValueType::UInt32,
        NodeType::I64 => ValueType::Int64,
        NodeType::U64 => ValueType::UInt64,
        NodeType::F32 => ValueType::Float,
        NodeType::F64 => ValueType::Double,
        NodeType::String => ValueType::Text,
        NodeType::DateTime => ValueType::DateTime,
    }
}
