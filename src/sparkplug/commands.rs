//! DCMD: a host application writing a device's tags. Each metric is named (by name or alias)
//! to one of the device's tags, its value read by its datatype and held against the tag's
//! birth (command_value.rs), and goes to the engine as a `write_tag` command through the
//! node's own queue (command_queue.rs) into the same door as every other command: the engine
//! accepts it only for a tag marked `write = true` that `[commands.allow]` opens to Sparkplug,
//! answers it (a `command_response` event, committed), and the write reaches the driver after
//! the commit. Sparkplug has no reply to a command, so a refusal is logged with its reason
//! (throttled: a flood of bad commands is not a flood of log lines) and counted in /metrics; a
//! host sees it as a value that does not change.

use super::command_queue::CommandQueue;
use super::command_value::command_value;
use super::settings::SparkplugSettings;
use crate::cell::CommandIn;
use crate::logging::{field, Throttle};
use crate::ops::SparkplugProbe;
use crate::orders::{CommandSource, Reply, ReplyStatus};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A command older than this when the engine reaches it is answered expired, not applied: a
/// host (or the person behind it) that saw nothing change for this long has moved on, and a
/// late write would overwrite what was set since.
const MAX_AGE_MS: i64 = 10_000;

/// Refusal lines: a burst, then a count of those held back.
fn throttle() -> Throttle {
    Throttle::new(Duration::from_secs(10), 20)
}

pub(super) struct Intake {
    queue: Option<CommandQueue>,
    probe: SparkplugProbe,
    refusals: Arc<Mutex<Throttle>>,
}

impl Intake {
    /// Starts the node's command queue in front of the engine's door, if it has one.
    pub fn start(s: &SparkplugSettings) -> Intake {
        Intake {
            queue: s.writes.clone().map(CommandQueue::start),
            probe: s.probe.clone(),
            refusals: Arc::new(Mutex::new(throttle())),
        }
    }

    /// A command refused before it reached the engine, said (throttled) and counted.
    pub fn refuse(&self, device: &str, metric: &str, why: &str) {
        self.probe.command_refused();
        say(&self.refusals, device, metric, why);
    }

    /// Hands each metric of a DCMD for `device` to the engine as a write_tag command.
    pub fn device_command(&self, s: &SparkplugSettings, device: &str, bytes: &[u8]) {
        let Some(payload) = super::payload::decode(bytes) else {
            return self.refuse(device, "", "the payload is not a Sparkplug B payload");
        };
        let Some(spec) = s.devices.get(device) else {
            return self.refuse(device, "", "no such device on this edge node");
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
                self.refuse(device, &metric, "the device has no such metric");
                continue;
            };
            let v = match command_value(m, tag.datatype) {
                Ok(v) => v,
                Err(why) => {
                    self.refuse(device, &metric, &why);
                    continue;
                }
            };
            let Some(queue) = &self.queue else {
                self.refuse(device, &metric, "this runtime takes no commands");
                continue;
            };
            let payload = json!({
                "correlation_id": format!("dcmd-{}", uuid::Uuid::now_v7()),
                "command": "write_tag",
                "tag": tag.name,
                "value": v,
            });
            let mut cmd =
                CommandIn::new(payload.to_string().into_bytes(), CommandSource::Sparkplug)
                    .on_reply(self.on_reply(device, &tag.name));
            // Sparkplug names no sender: any client of the broker may publish a DCMD.
            cmd.user = Some("sparkplug host".into());
            cmd.expires_ms = Some(cmd.received_ms + MAX_AGE_MS);
            match queue.offer(cmd) {
                true => self.probe.command_queued(),
                false => {
                    self.probe.command_dropped();
                    say(
                        &self.refusals,
                        device,
                        &metric,
                        "the node's command queue is full",
                    );
                }
            }
        }
    }

    /// What the engine's answer does: logged, and counted if it is not accepted.
    fn on_reply(&self, device: &str, tag: &str) -> impl FnOnce(&Reply) + Send + 'static {
        let (device, tag) = (device.to_string(), tag.to_string());
        let (probe, refusals) = (self.probe.clone(), self.refusals.clone());
        move |r: &Reply| {
            let status = r.status();
            match status {
                ReplyStatus::Accepted => {
                    tracing::info!(device = %field(&device), tag = %field(&tag), "DCMD write accepted");
                    return;
                }
                ReplyStatus::Expired => probe.command_expired(),
                ReplyStatus::Rejected | ReplyStatus::Busy => probe.command_refused(),
            }
            let why = format!("{status:?}: {}", r.reason.as_deref().unwrap_or("rejected"));
            say(&refusals, &device, &tag, &why);
        }
    }
}

/// A command not applied, said in the log unless a flood of them is being held back.
fn say(t: &Mutex<Throttle>, device: &str, metric: &str, why: &str) {
    let allowed = t.lock().unwrap_or_else(|e| e.into_inner()).allow();
    if let Some(held_back) = allowed {
        tracing::warn!(
            device = %field(device),
            metric = %field(metric),
            held_back,
            "DCMD refused: {}",
            field(why)
        );
    }
}
