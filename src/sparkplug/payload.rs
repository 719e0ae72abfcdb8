//! Sparkplug B payloads: births, data and deaths, encoded with the generated protobuf code.

use super::metrics::{Figures, MetricValue, BD_SEQ, NODE_METRICS, REBIRTH};
use super::proto::{payload, DataType, Payload};
use prost::Message;

/// One metric: named and aliased in births, by alias alone in data (the spec allows either;
/// aliases keep NDATA small).
pub fn metric(
    name: Option<&str>,
    alias: Option<u64>,
    datatype: DataType,
    value: &MetricValue,
    ts: u64,
    historical: bool,
) -> payload::Metric {
    use payload::metric::Value;
    // The spec's fields by type: 32 bits and less in `int_value`, 64 in `long_value`, signed
    // ones as their two's complement; Float in `float_value`.
    let small = matches!(
        datatype,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    );
    let v = match value {
        MetricValue::Bool(b) => Some(Value::BooleanValue(*b)),
        MetricValue::U64(v) if small => Some(Value::IntValue(*v as u32)),
        MetricValue::U64(v) => Some(Value::LongValue(*v)),
        MetricValue::I64(v) if small => Some(Value::IntValue(*v as i32 as u32)),
        MetricValue::I64(v) => Some(Value::LongValue(*v as u64)),
        MetricValue::F64(v) if datatype == DataType::Float => Some(Value::FloatValue(*v as f32)),
        MetricValue::F64(v) => Some(Value::DoubleValue(*v)),
        MetricValue::Text(s) => Some(Value::StringValue(s.clone())),
        MetricValue::Null => None,
    };
    payload::Metric {
        name: name.map(str::to_string),
        alias,
        timestamp: Some(ts),
        datatype: Some(datatype as u32),
        is_historical: historical.then_some(true),
        is_null: v.is_none().then_some(true),
        value: v,
        ..Default::default()
    }
}

fn bd_seq_metric(bd_seq: u8, ts: u64) -> payload::Metric {
    // bdSeq goes by name only: the host pairs NDEATH with NBIRTH on it before aliases apply.
    metric(
        Some(BD_SEQ),
        None,
        DataType::Int64,
        &MetricValue::U64(bd_seq as u64),
        ts,
        false,
    )
}

/// NBIRTH: every node metric by name, alias and type, with the figures' values. The rebirth
/// control goes by name only (Sparkplug 3.0: no alias for it, so that any host can ask).
pub fn node_birth(figures: &Figures, bd_seq: u8, ts: u64) -> Vec<u8> {
    let mut metrics = vec![bd_seq_metric(bd_seq, ts)];
    for (alias, def) in NODE_METRICS.iter().enumerate().skip(1) {
        let alias = alias as u64;
        let (value, alias) = if def.name == REBIRTH {
            (MetricValue::Bool(false), None)
        } else {
            (figures.value(alias), Some(alias))
        };
        metrics.push(metric(
            Some(def.name),
            alias,
            def.datatype,
            &value,
            ts,
            false,
        ));
    }
    encode(metrics, Some(0), ts)
}

/// NDEATH, the connection's will: bdSeq only, and no seq.
pub fn node_death(bd_seq: u8, ts: u64) -> Vec<u8> {
    encode(vec![bd_seq_metric(bd_seq, ts)], None, ts)
}

pub fn encode(metrics: Vec<payload::Metric>, seq: Option<u64>, ts: u64) -> Vec<u8> {
    Payload {
        timestamp: Some(ts),
        metrics,
        seq,
        ..Default::default()
    }
    .encode_to_vec()
}

/// The metrics of a received command (NCMD, DCMD), or None if the payload does not decode.
pub fn decode(bytes: &[u8]) -> Option<Payload> {
    Payload::decode(bytes).ok()
}
