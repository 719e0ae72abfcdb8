//! DCMD: a host application writing a device's tag. Only tags marked `write = true` take a
//! write; any other metric is refused, with the reason in the log (Sparkplug has no reply to a
//! command: the host sees the refusal as a value that does not change).

use super::proto::payload::metric::Value as Wire;
use super::sink::SparkplugSettings;
use mes_edge_drivers::{TagId, Value};
use tokio::sync::mpsc;

/// A write a DCMD asks for, on its way to the driver of the tag.
#[derive(Debug)]
pub struct DeviceWrite {
    pub tag: TagId,
    pub name: String,
    pub value: Value,
}

pub type Writes = mpsc::Sender<DeviceWrite>;

fn value(v: &Wire) -> Option<Value> {
    Some(match v {
        Wire::IntValue(i) => Value::UInt(*i as u64),
        Wire::LongValue(i) => Value::UInt(*i),
        Wire::BooleanValue(b) => Value::Bool(*b),
        Wire::FloatValue(f) => Value::Float(*f as f64),
        Wire::DoubleValue(f) => Value::Float(*f),
        Wire::StringValue(s) => Value::Text(mes_edge_drivers::Text::new(s)?),
        _ => return None,
    })
}

/// Checks each metric of a DCMD for `device` and hands the allowed writes on.
pub(super) fn device_command(s: &SparkplugSettings, device: &str, bytes: &[u8]) {
    let Some(payload) = super::payload::decode(bytes) else {
        tracing::warn!(
            device,
            "DCMD refused: the payload is not a Sparkplug B payload"
        );
        return;
    };
    let Some(spec) = s.devices.get(device) else {
        tracing::warn!(device, "DCMD refused: no such device on this edge node");
        return;
    };
    for m in &payload.metrics {
        let tag = spec
            .tags
            .iter()
            .find(|t| m.name.as_deref() == Some(t.name.as_str()) || m.alias == Some(t.alias));
        let metric = m
            .name
            .clone()
            .or(m.alias.map(|a| format!("alias {a}")))
            .unwrap_or_default();
        let refuse = |why: &str| tracing::warn!(device, %metric, "DCMD refused: {why}");
        let Some(tag) = tag else {
            refuse("the device has no such metric");
            continue;
        };
        if !tag.writable {
            refuse("the tag is not writable (it needs write = true in the cell config)");
            continue;
        }
        let Some(v) = m.value.as_ref().and_then(value) else {
            refuse("no value, or a type a tag cannot take");
            continue;
        };
        let Some(writes) = &s.writes else {
            refuse("this runtime takes no writes");
            continue;
        };
        let w = DeviceWrite {
            tag: tag.tag,
            name: tag.name.clone(),
            value: v,
        };
        if let Err(e) = writes.try_send(w) {
            tracing::warn!(device, %metric, "DCMD dropped: {e}");
        }
    }
}
