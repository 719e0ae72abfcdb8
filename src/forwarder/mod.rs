//! The forwarder: publishes the outbox to the broker in sequence order, QoS 1, and marks an
//! event delivered only at the broker's acknowledgement. MQTT 5 by default (`link.rs` wraps
//! rumqttc's two clients): a PUBACK whose reason code is 0x80 or above is a refusal, not a
//! delivery; the event stays undelivered and is sent again after a backoff (session.rs).
//!
//! rumqttc keeps unacknowledged publishes in memory only and drops them when a session is not
//! resumed, so the outbox, not the client, owns re-delivery: every connection starts from a
//! fresh client and re-publishes every unacknowledged row from the start, with the same event id
//! and sequence number. MOM de-duplicates on the event id.

mod commands;
pub mod failover;
pub mod link;
mod marker;
pub(crate) mod options;
mod session;
mod values;
pub mod window;

pub use commands::{CommandIntake, RECEIVE_MAXIMUM};
pub use failover::Brokers;
pub use link::Options;
pub use options::{client_id, mqtt_options, values_options};
pub use session::{run, ForwarderSettings};
pub use values::{run as run_values, ValueSettings, SINK as VALUES_SINK};

use crate::config::CellPath;

/// `{topic_root}/{enterprise}/{site}/{area}/{line}/{cell}/events/{type}`: the cell's place in the
/// plant's unified namespace, then what kind of event it is. Replies to commands go to the
/// cell's `responses` topic instead.
pub fn event_topic(topic_root: &str, cell: &CellPath, kind: &str) -> String {
    if kind == "command_response" {
        return format!("{}/{}/responses", topic_root, cell.joined());
    }
    format!("{}/{}/events/{}", topic_root, cell.joined(), kind)
}

/// `{topic_root}/{enterprise}/{site}/{area}/{line}/{cell}/values/{device}`: a device's process
/// values, in batches (docs/EVENTS.md "Process values").
pub fn values_topic(topic_root: &str, cell: &CellPath, device: &str) -> String {
    format!("{}/{}/values/{}", topic_root, cell.joined(), device)
}

/// Where MOM sends the cell its commands.
pub fn command_topic(topic_root: &str, cell: &CellPath) -> String {
    format!("{}/{}/commands", topic_root, cell.joined())
}
