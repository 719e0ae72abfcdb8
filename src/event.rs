//! Production events: what the cell reports to MOM. Each is committed to the outbox with a stable
//! id and the next number of the cell's sequence, and published exactly as committed.

use crate::cell::MachineState;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    Good,
    Scrap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmLevel {
    /// The store has passed 90% of its size cap.
    Warning,
    /// The store is at its cap with undelivered events; it keeps growing rather than drop any.
    Full,
    /// Back under 80% of the cap.
    Cleared,
}

/// What happened. Serialized as `"type": "...", "data": {...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventBody {
    /// Parts made since the last count, from the difference of two counter readings.
    PartCount {
        counter: CounterKind,
        quantity: u64,
        counter_value: u64,
        previous_value: u64,
        rolled_over: bool,
    },
    /// The PLC's counter went back (restart, manual reset): nothing was counted for that step.
    CounterReset {
        counter: CounterKind,
        from: u64,
        to: u64,
    },
    MachineState {
        state: MachineState,
        previous: MachineState,
        /// When the previous state began (none for the first state seen), and how long it lasted.
        previous_since: Option<i64>,
        previous_duration_ms: i64,
        state_word: Option<i64>,
        fault_code: Option<i64>,
    },
    DeviceStatus {
        device: String,
        online: bool,
        reason: Option<String>,
    },
    StoreAlarm {
        level: AlarmLevel,
        used_bytes: u64,
        cap_bytes: u64,
        undelivered: u64,
    },
}

impl EventBody {
    /// The event type, as in the payload and the topic.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::PartCount { .. } => "part_count",
            EventBody::CounterReset { .. } => "counter_reset",
            EventBody::MachineState { .. } => "machine_state",
            EventBody::DeviceStatus { .. } => "device_status",
            EventBody::StoreAlarm { .. } => "store_alarm",
        }
    }
}

/// An event not yet committed: it has no sequence number yet.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    /// When it happened (the reading's timestamp), UTC ms.
    pub ts_ms: i64,
    /// The tags (or device) it was derived from.
    pub source: Vec<String>,
    pub body: EventBody,
}

impl NewEvent {
    pub fn new(ts_ms: i64, source: Vec<String>, body: EventBody) -> Self {
        NewEvent {
            id: Uuid::now_v7(),
            ts_ms,
            source,
            body,
        }
    }
}

/// The JSON payload as published: the envelope every event type shares.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub event_id: Uuid,
    pub seq: u64,
    pub ts: i64,
    pub time: String,
    pub cell: &'a str,
    #[serde(flatten)]
    pub body: &'a EventBody,
    pub source: &'a [String],
}

impl NewEvent {
    pub fn to_payload(&self, seq: u64, cell: &str) -> Vec<u8> {
        let env = Envelope {
            event_id: self.id,
            seq,
            ts: self.ts_ms,
            time: rfc3339_ms(self.ts_ms),
            cell,
            body: &self.body,
            source: &self.source,
        };
        serde_json::to_vec(&env).expect("an event always serializes")
    }
}

pub fn rfc3339_ms(ts_ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ts_ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}
