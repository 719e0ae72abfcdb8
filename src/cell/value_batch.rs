//! A process value as it leaves the cell, and the batch that carries a device's values: the
//! payload of `{root}/{cell path}/values/{device}` (docs/EVENTS.md "Process values").

use mes_edge_drivers::{Quality, Value};
use serde::{Deserialize, Serialize, Serializer};

/// One value of one tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueRecord {
    pub tag: String,
    /// None when a bad reading carried no value.
    #[serde(serialize_with = "value_json", deserialize_with = "value_from_json")]
    pub value: Option<Value>,
    pub quality: Quality,
    /// When it was read, by the runtime's clock, UTC ms (for a heartbeat: when it was
    /// confirmed unchanged).
    pub ts: i64,
    /// The device's own timestamp, where the protocol has one (OPC UA).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub source_ts: Option<i64>,
    /// The order running (or interrupted) at the cell when it was read, and its lot.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub order_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lot: Option<String>,
}

/// A device's values of one turn of the engine, not yet committed (no batch number yet).
#[derive(Debug, Clone, PartialEq)]
pub struct ValueBatch {
    pub device: String,
    /// When the batch was made, UTC ms.
    pub ts_ms: i64,
    pub values: Vec<ValueRecord>,
}

/// The published form.
#[derive(Debug, Serialize, Deserialize)]
pub struct ValuePayload<'a> {
    /// The values' own sequence in the store (not the events' `seq`): gaps mean values
    /// dropped at the cap or by age.
    pub batch: u64,
    pub store_id: std::borrow::Cow<'a, str>,
    pub cell: std::borrow::Cow<'a, str>,
    pub device: std::borrow::Cow<'a, str>,
    pub ts: i64,
    pub time: String,
    pub values: Vec<ValueRecord>,
}

impl ValueBatch {
    pub fn to_payload(&self, batch: u64, store_id: &str, cell: &str) -> Vec<u8> {
        let p = ValuePayload {
            batch,
            store_id: store_id.into(),
            cell: cell.into(),
            device: self.device.as_str().into(),
            ts: self.ts_ms,
            time: crate::event::rfc3339_ms(self.ts_ms),
            values: self.values.clone(),
        };
        serde_json::to_vec(&p).expect("a value batch always serializes")
    }
}

fn value_json<S: Serializer>(v: &Option<Value>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(Value::Bool(b)) => s.serialize_bool(*b),
        Some(Value::Int(i)) => s.serialize_i64(*i),
        Some(Value::UInt(u)) => s.serialize_u64(*u),
        // NaN and infinities have no JSON form: null, with the quality the device gave.
        Some(Value::Float(f)) if !f.is_finite() => s.serialize_none(),
        Some(Value::Float(f)) => s.serialize_f64(*f),
        Some(Value::Text(t)) => s.serialize_str(t.as_str()),
    }
}

/// Reads a value back (dropping batches counts their tags; tests read payloads).
fn value_from_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(match v {
        serde_json::Value::Bool(b) => Some(Value::Bool(b)),
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Value::UInt)
            .or(n.as_i64().map(Value::Int))
            .or(n.as_f64().map(Value::Float)),
        serde_json::Value::String(s) => Some(Value::Text(mes_edge_drivers::Text::truncated(&s))),
        _ => None,
    })
}
