//! DCMD: a host application writing a device's tags. Each metric is named (by name or alias)
//! to one of the device's tags and goes to the engine as a `write_tag` command, through the
//! same door as every other command: the engine accepts it only for a tag marked
//! `write = true`, answers it (a `command_response` event, committed), and the write reaches
//! the driver after the commit. Sparkplug has no reply to a command, so a refusal is logged
//! with its reason; a host sees it as a value that does not change.

use super::proto::payload::metric::Value as Wire;
use super::settings::SparkplugSettings;
use crate::cell::CommandIn;
use crate::orders::{CommandSource, Reply};
use serde_json::{json, Value as Json};

fn value(v: &Wire) -> Option<Json> {
    Some(match v {
        Wire::IntValue(i) => json!(i),
        Wire::LongValue(i) => json!(i),
        Wire::BooleanValue(b) => json!(b),
        Wire::FloatValue(f) => json!(f),
        Wire::DoubleValue(f) => json!(f),
        Wire::StringValue(s) => json!(s),
        _ => return None,
    })
}

/// Hands each metric of a DCMD for `device` to the engine as a write_tag command.
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
        let metric = m
            .name
            .clone()
            .or(m.alias.map(|a| format!("alias {a}")))
            .unwrap_or_default();
        let tag = spec
            .tags
            .iter()
            .find(|t| m.name.as_deref() == Some(t.name.as_str()) || m.alias == Some(t.alias));
        let Some(tag) = tag else {
            tracing::warn!(device, %metric, "DCMD refused: the device has no such metric");
            continue;
        };
        let Some(v) = m.value.as_ref().and_then(value) else {
            tracing::warn!(device, %metric, "DCMD refused: no value, or a type a tag cannot take");
            continue;
        };
        let Some(door) = &s.writes else {
            tracing::warn!(device, %metric, "DCMD refused: this runtime takes no commands");
            continue;
        };
        let payload = json!({
            "correlation_id": format!("dcmd-{}", uuid::Uuid::now_v7()),
            "command": "write_tag",
            "tag": tag.name,
            "value": v,
        });
        let (device, name) = (device.to_string(), tag.name.clone());
        let done = move |r: &Reply| match (r.accepted, &r.reason) {
            (true, _) => tracing::info!(%device, tag = %name, "DCMD write accepted"),
            (false, why) => tracing::warn!(
                %device,
                tag = %name,
                "DCMD refused: {}",
                why.as_deref().unwrap_or("rejected")
            ),
        };
        let cmd = CommandIn::new(payload.to_string().into_bytes(), CommandSource::Sparkplug)
            .on_reply(done);
        if let Err(e) = door.try_send(cmd) {
            tracing::warn!(%metric, "DCMD dropped, the engine's command queue is full: {e}");
        }
    }
}
