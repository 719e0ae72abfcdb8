//! Production events: what the cell reports to MOM. Each is committed to the outbox with a stable
//! id and the next number of the cell's sequence, and published exactly as committed.

pub use crate::orders::JobResponse;
use crate::orders::{CommandSource, JobCommand, JobState, Oee, Reply, StateTimes, SubState};
pub use crate::vocabulary::CounterKind;
use crate::vocabulary::{Evidence, MachineState, Rule};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

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
        /// The order Running when the parts were made; null: the "no order" bucket.
        order_id: Option<String>,
        /// The rule that counted them, when not a plain step forward, and the evidence it
        /// used (docs/EVENTS.md): `"rule"` and `"evidence"` in the payload.
        #[serde(flatten)]
        rule: Option<Counted>,
        /// The device's own timestamp of the reading (OPC UA), for information: the event's
        /// time is the runtime's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_ts: Option<i64>,
        /// Scrap only: the reason the PLC's reject code gave the parts.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The PLC took parts back (a small step back of its counter): `quantity` is negative, so
    /// that the sum of `part_count` and `count_correction` quantities is the PLC's net.
    CountCorrection {
        counter: CounterKind,
        quantity: i64,
        counter_value: u64,
        previous_value: u64,
        order_id: Option<String>,
    },
    /// The counter's baseline moved without the step being counted as parts: a confirmed
    /// restart or jump (`to` is the first reading after it; `counted` parts, up to the reading
    /// that confirmed it, follow as a `part_count`), or a counter signal mapped to another tag.
    CounterReset {
        counter: CounterKind,
        from: u64,
        to: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rule: Option<Rule>,
        /// What told the rule it was a restart (the counter's readings, a sibling counter, the
        /// device's session); none for a changed tag.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<Evidence>,
        #[serde(default)]
        counted: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_tag: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    /// A reading that did not fit (a drop, or a jump past `max_step`) came back within the
    /// confirmation window: nothing was counted for it.
    CounterGlitch {
        counter: CounterKind,
        /// The baseline the counter came back to (or passed).
        value: u64,
        low: u64,
        high: u64,
        readings: u32,
        duration_ms: i64,
    },
    /// A device's clock went further from the runtime's than its `clock_tolerance_ms`
    /// (`within_tolerance: false`), or came back within it.
    ClockSkew {
        device: String,
        /// The device's timestamp minus the runtime's clock, ms.
        skew_ms: i64,
        tolerance_ms: i64,
        within_tolerance: bool,
    },
    MachineState {
        state: MachineState,
        previous: MachineState,
        /// When the previous state began (none for the first state seen), and how long it lasted.
        previous_since: Option<i64>,
        previous_duration_ms: i64,
        state_word: Option<i64>,
        fault_code: Option<i64>,
        /// Why the cell is stopped (from the fault code's reason, or "device offline").
        reason: Option<String>,
        /// The reason of the interval that just ended, as it stood then.
        previous_reason: Option<String>,
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
    /// Process values were dropped unsent (docs/VALUES.md): over the store's cap for values
    /// (`cap`, oldest first) or older than their retention (`age`). One event per 10 s at most,
    /// summing the drops since the last.
    ValuesDropped {
        reason: String,
        values: u64,
        batches: u64,
        /// Values dropped, by tag.
        by_tag: BTreeMap<String, u64>,
        /// Values still held undelivered, and the cap.
        held: u64,
        cap: u64,
    },
    /// The first event of a store (of a `store_id`): its sequence starts here. MOM learns that
    /// a new store took over the cell, and from which store where the runtime knows it.
    StoreCreated {
        store_id: String,
        /// `new` (an empty store), `migrated` (a store of the previous release that got its
        /// identity now; its events continue the old sequence) or `rewound` (a store whose
        /// sequence went back, as after a restored backup: it gets a new `store_id`).
        origin: String,
        /// The cell's store before this one, from the identity file next to the store.
        previous_store_id: Option<String>,
        /// The last sequence number that store was known to have committed.
        previous_last_seq: Option<u64>,
    },
    /// An order was received or changed state.
    OrderState {
        order_id: String,
        material: String,
        state: JobState,
        substate: Option<SubState>,
        /// Null when the order was just received.
        previous: Option<JobState>,
        command: JobCommand,
        by: CommandSource,
        reason: Option<String>,
        good: u64,
        scrap: u64,
    },
    /// Cancel or Clear took an order off the cell's list.
    OrderRemoved {
        order_id: String,
        previous: JobState,
        command: JobCommand,
        by: CommandSource,
    },
    /// The reply to a command; published on the cell's response topic.
    CommandResponse(Reply),
    /// The summary of an order that reached Ended or Aborted.
    JobResponse(JobResponse),
    /// OEE so far of the running order or the current shift; `final` at a shift's end.
    Oee {
        scope: OeeScope,
        /// The order id, or the shift's name.
        id: String,
        from: i64,
        to: i64,
        #[serde(rename = "final")]
        is_final: bool,
        time_in_state_ms: StateTimes,
        downtime_ms: BTreeMap<String, i64>,
        /// Scrap by reason ("unexplained" for parts given none).
        #[serde(default)]
        scrap_by_reason: BTreeMap<String, u64>,
        /// Shift scope only: time and parts with no order running.
        no_order_ms: Option<i64>,
        no_order_good: Option<u64>,
        no_order_scrap: Option<u64>,
        figures: Oee,
    },
    /// Scrap parts of an order given a reason after they were counted (operator or MOM).
    ScrapReason {
        order_id: String,
        reason: String,
        quantity: u64,
        by: CommandSource,
    },
    /// Material consumed by an order: reported by command, or the PLC's loaded lot (published
    /// at a lot change and when the order stops running).
    MaterialConsumed {
        order_id: Option<String>,
        material: String,
        lot: String,
        quantity: f64,
        unit: String,
        by: CommandSource,
    },
    /// A part made (a trigger: a counter's step or a bool tag's rising edge) with the values
    /// of the configured tags when it was made: traceability at the cell.
    PartRecord {
        order_id: Option<String>,
        lot: Option<String>,
        /// From the serial tag, if one is configured and read good.
        serial: Option<String>,
        /// The counter whose step triggered it (with `parts` > 1 when a read saw several);
        /// null for a trigger bit.
        counter: Option<CounterKind>,
        parts: u64,
        values: BTreeMap<String, RecordedValue>,
    },
    /// What became of a write to a tag (a write_tag command, a DCMD, the order write-back):
    /// written, failed with the driver's reason, superseded by a newer write to the same tag,
    /// or unknown (the runtime stopped before the driver answered).
    TagWrite {
        tag: String,
        value: serde_json::Value,
        /// The tag's last reading before the write, if it had one.
        previous: Option<serde_json::Value>,
        by: CommandSource,
        correlation_id: Option<String>,
        result: WriteStatus,
        reason: Option<String>,
        /// When the write was accepted, UTC ms.
        accepted_ts: i64,
    },
    /// A reason attached to a stop, during it or afterwards.
    DowntimeReason {
        state: MachineState,
        since: i64,
        until: Option<i64>,
        reason: String,
        by: CommandSource,
        order_id: Option<String>,
    },
}

/// The result as the `tag_write` event names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteStatus {
    Written,
    Failed,
    Superseded,
    Unknown,
}

/// How parts that were not a plain step forward were counted: the rule, and what told it.
/// Flattened into `part_count`, so a reader sees `"rule"` and `"evidence"` side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counted {
    pub rule: Rule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OeeScope {
    Order,
    Shift,
}

impl EventBody {
    /// The event type, as in the payload and the topic.
    pub fn kind(&self) -> &'static str {
        match self {
            EventBody::PartCount { .. } => "part_count",
            EventBody::CounterReset { .. } => "counter_reset",
            EventBody::CountCorrection { .. } => "count_correction",
            EventBody::CounterGlitch { .. } => "counter_glitch",
            EventBody::ClockSkew { .. } => "clock_skew",
            EventBody::MachineState { .. } => "machine_state",
            EventBody::DeviceStatus { .. } => "device_status",
            EventBody::StoreAlarm { .. } => "store_alarm",
            EventBody::ValuesDropped { .. } => "values_dropped",
            EventBody::StoreCreated { .. } => "store_created",
            EventBody::OrderState { .. } => "order_state",
            EventBody::OrderRemoved { .. } => "order_removed",
            EventBody::CommandResponse(_) => "command_response",
            EventBody::JobResponse(_) => "job_response",
            EventBody::Oee { .. } => "oee",
            EventBody::DowntimeReason { .. } => "downtime_reason",
            EventBody::ScrapReason { .. } => "scrap_reason",
            EventBody::PartRecord { .. } => "part_record",
            EventBody::MaterialConsumed { .. } => "material_consumed",
            EventBody::TagWrite { .. } => "tag_write",
        }
    }
}

/// A tag's value in a part record, with its quality (a bad reading may have no value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedValue {
    pub value: serde_json::Value,
    pub quality: mes_edge_drivers::Quality,
}

impl RecordedValue {
    pub fn of(v: Option<mes_edge_drivers::Value>, quality: mes_edge_drivers::Quality) -> Self {
        use mes_edge_drivers::Value;
        let value = match v {
            None => serde_json::Value::Null,
            Some(Value::Bool(b)) => b.into(),
            Some(Value::Int(i)) => i.into(),
            Some(Value::UInt(u)) => u.into(),
            Some(Value::Float(f)) => {
                serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
            }
            Some(Value::Text(t)) => t.as_str().into(),
        };
        RecordedValue { value, quality }
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
    /// The Unix user who gave the command it came from, over the control socket.
    pub user: Option<String>,
}

impl NewEvent {
    pub fn new(ts_ms: i64, source: Vec<String>, body: EventBody) -> Self {
        NewEvent {
            id: Uuid::now_v7(),
            ts_ms,
            source,
            body,
            user: None,
        }
    }
}

/// The JSON payload as published: the envelope every event type shares.
#[derive(Debug, Serialize)]
pub struct Envelope<'a> {
    pub event_id: Uuid,
    pub seq: u64,
    /// The store the event was committed in: (`store_id`, `seq`) names an event for good.
    pub store_id: &'a str,
    pub ts: i64,
    pub time: String,
    pub cell: &'a str,
    #[serde(flatten)]
    pub body: &'a EventBody,
    pub source: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
}

impl NewEvent {
    pub fn to_payload(&self, seq: u64, store_id: &str, cell: &str) -> Vec<u8> {
        let env = Envelope {
            event_id: self.id,
            seq,
            store_id,
            ts: self.ts_ms,
            time: rfc3339_ms(self.ts_ms),
            cell,
            body: &self.body,
            source: &self.source,
            user: self.user.as_deref(),
        };
        serde_json::to_vec(&env).expect("an event always serializes")
    }
}

/// RFC 3339 UTC with milliseconds. Any i64 formats: a time before 1970 or after 9999 (only a
/// device's clock can give one) is clamped to that range rather than failing the commit that
/// carries it.
pub fn rfc3339_ms(ts_ms: i64) -> String {
    let ms = ts_ms.clamp(0, mes_edge_drivers::MAX_TS_MS) as u64;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_timestamp_formats() {
        assert_eq!(rfc3339_ms(i64::MIN), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_ms(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
