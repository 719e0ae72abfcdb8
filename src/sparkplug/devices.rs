//! The cell's PLCs as Sparkplug devices: each one's birth certificate lists its tags (by name,
//! alias and type), born when the device comes online and dead when it goes offline; its
//! process values (docs/VALUES.md) go out as its DDATA, and a birth carries the last of them.

use super::metrics::MetricValue;
use super::payload::{encode, metric};
use super::proto::{payload, DataType};
use crate::cell::ValueRecord;
use crate::config::{CellConfig, ValueType};
use mes_edge_drivers::{Quality, TagId, Value};
use std::collections::BTreeMap;

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

/// The Sparkplug type of a tag's values.
fn sparkplug_type(t: ValueType) -> DataType {
    match t {
        ValueType::Bool => DataType::Boolean,
        ValueType::Int8 => DataType::Int8,
        ValueType::UInt8 => DataType::UInt8,
        ValueType::Int16 => DataType::Int16,
        ValueType::UInt16 => DataType::UInt16,
        ValueType::Int32 => DataType::Int32,
        ValueType::UInt32 => DataType::UInt32,
        ValueType::Int64 => DataType::Int64,
        ValueType::UInt64 => DataType::UInt64,
        ValueType::Float => DataType::Float,
        ValueType::Double => DataType::Double,
        ValueType::Text | ValueType::DateTimeText => DataType::String,
        ValueType::DateTime => DataType::DateTime,
    }
}

impl Devices {
    /// Every configured device with its tags of a declared type.
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
            // A tag of no declared type is not listed: a birth needs a type.
            let Some(value_type) = tag.value_type else {
                continue;
            };
            let (datatype, writable) = (sparkplug_type(value_type), tag.write.is_some());
            devices[d].tags.push(TagSpec {
                tag: id,
                name: tag.name().to_string(),
                alias: FIRST_TAG_ALIAS + id.0 as u64,
                datatype,
                writable,
            });
        }
        Devices(devices)
    }

    pub fn get(&self, name: &str) -> Option<&DeviceSpec> {
        self.0.iter().find(|d| d.name == name)
    }

    /// DBIRTH: the device's tags by name, alias and type, each with the last value published
    /// for it (`last`, by alias), null before the first.
    /// The metrics go in time order, as the spec wants them.
    pub fn birth(&self, device: &str, last: Option<&LastValues>, seq: u8, ts: u64) -> Vec<u8> {
        let tags = self
            .get(device)
            .map(|d| d.tags.as_slice())
            .unwrap_or_default();
        let mut metrics: Vec<_> = tags
            .iter()
            .map(|t| match last.and_then(|l| l.get(&t.alias)) {
                Some(m) => payload::Metric {
                    name: Some(t.name.clone()),
                    is_historical: None,
                    ..m.clone()
                },
                None => metric(
                    Some(&t.name),
                    Some(t.alias),
                    t.datatype,
                    &MetricValue::Null,
                    ts,
                    false,
                ),
            })
            .collect();
        metrics.sort_by_key(|m| m.timestamp);
        encode(metrics, Some(seq as u64), ts)
    }

    /// DDEATH: no metrics, only the seq.
    pub fn death(seq: u8, ts: u64) -> Vec<u8> {
        encode(Vec::new(), Some(seq as u64), ts)
    }

    /// A device's process values as DDATA metrics, by alias, each at its reading's time. Tags
    /// the device does not list (OPC UA nodes) are left out.
    pub fn data(
        &self,
        device: &str,
        values: &[ValueRecord],
        historical: bool,
    ) -> Vec<payload::Metric> {
        let Some(d) = self.get(device) else {
            return Vec::new();
        };
        values
            .iter()
            .filter_map(|v| {
                let t = d.tags.iter().find(|t| t.name == v.tag)?;
                Some(value_metric(t, v, historical))
            })
            .collect()
    }
}

/// The last metric published per tag alias: a birth carries them.
pub type LastValues = BTreeMap<u64, payload::Metric>;

/// Sparkplug 3.0's `Quality` property codes (the only ones it allows): 0 bad, 192 good, 500
/// stale.
pub const QUALITY_BAD: u32 = 0;
pub const QUALITY_STALE: u32 = 500;

/// The `Quality` property (Int32) with `code`.
pub fn quality(code: u32) -> payload::PropertySet {
    payload::PropertySet {
        keys: vec!["Quality".into()],
        values: vec![payload::PropertyValue {
            r#type: Some(DataType::Int32 as u32),
            is_null: None,
            value: Some(payload::property_value::Value::IntValue(code)),
        }],
    }
}

/// One process value as a metric: typed as the birth says; a reading of bad quality (no value)
/// is null. A value that is not good carries the `Quality` property: bad (0), also for an
/// OPC UA uncertain reading, whose value is kept (the spec has no code for uncertain, and a
/// value MOM cannot trust is not good). A good one carries none: good is the default.
fn value_metric(t: &TagSpec, v: &ValueRecord, historical: bool) -> payload::Metric {
    let value = match (v.value, v.quality) {
        (_, Quality::Bad) | (None, _) => MetricValue::Null,
        (Some(x), _) => typed(t.datatype, x),
    };
    let mut m = metric(
        None,
        Some(t.alias),
        t.datatype,
        &value,
        v.ts as u64,
        historical,
    );
    if v.quality != Quality::Good {
        m.properties = Some(quality(QUALITY_BAD));
    }
    m
}

/// A tag's value in the type its birth declares (the driver decoded it as that type; a value
/// of another shape is converted, not dropped).
fn typed(t: DataType, v: Value) -> MetricValue {
    match (t, v) {
        (DataType::Boolean, v) => MetricValue::Bool(v.as_f64() != 0.0),
        (DataType::String | DataType::Text, Value::Text(s)) => MetricValue::Text(s.as_str().into()),
        (DataType::String | DataType::Text, v) => MetricValue::Text(format!("{}", v.as_f64())),
        // Text for a number: no value of the born type to give.
        (_, Value::Text(_)) => MetricValue::Null,
        (DataType::Float | DataType::Double, v) => MetricValue::F64(v.as_f64()),
        (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64, Value::Int(i)) => {
            MetricValue::I64(i)
        }
        (DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64, v) => {
            MetricValue::I64(v.as_f64() as i64)
        }
        (_, Value::UInt(u)) => MetricValue::U64(u),
        (_, v) => MetricValue::U64(v.as_f64().max(0.0) as u64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparkplug::proto::payload::metric::Value as V;

    fn spec(datatype: DataType) -> TagSpec {
        TagSpec {
            tag: TagId(3),
            name: "t".into(),
            alias: 1003,
            datatype,
            writable: false,
        }
    }

    fn record(value: Option<Value>, quality: Quality) -> ValueRecord {
        ValueRecord {
            tag: "t".into(),
            value,
            quality,
            ts: 1_000,
            source_ts: None,
            order_id: None,
            lot: None,
        }
    }

    #[test]
    fn values_go_in_the_field_their_born_type_names() {
        let cases = [
            (DataType::Int16, Value::Int(-2), V::IntValue(-2i32 as u32)),
            (DataType::UInt16, Value::UInt(7), V::IntValue(7)),
            (DataType::UInt32, Value::UInt(70_000), V::IntValue(70_000)),
            (DataType::Int64, Value::Int(-5), V::LongValue(-5i64 as u64)),
            (
                DataType::UInt64,
                Value::UInt(1 << 40),
                V::LongValue(1 << 40),
            ),
            (DataType::Float, Value::Float(1.5), V::FloatValue(1.5)),
            (DataType::Double, Value::Float(99.9), V::DoubleValue(99.9)),
            // A scaled integer tag is born Double; the driver hands a float.
            (DataType::Double, Value::Int(3), V::DoubleValue(3.0)),
            (DataType::Boolean, Value::Bool(true), V::BooleanValue(true)),
        ];
        for (t, v, want) in cases {
            let m = value_metric(&spec(t), &record(Some(v), Quality::Good), false);
            assert_eq!(m.value, Some(want), "{t:?} {v:?}");
            assert_eq!(m.datatype, Some(t as u32));
            assert_eq!((m.alias, m.timestamp), (Some(1003), Some(1_000)));
            assert!(m.properties.is_none(), "a good value carries no quality");
        }
    }

    #[test]
    fn a_bad_reading_is_null_with_its_quality_and_an_uncertain_one_keeps_its_value() {
        let bad = value_metric(&spec(DataType::Double), &record(None, Quality::Bad), true);
        assert_eq!((bad.value, bad.is_null), (None, Some(true)));
        assert_eq!(bad.is_historical, Some(true));
        let q = bad.properties.expect("quality");
        assert_eq!(q.keys, vec!["Quality".to_string()]);
        assert_eq!(
            q.values[0].value,
            Some(payload::property_value::Value::IntValue(0))
        );
        let unsure = value_metric(
            &spec(DataType::Double),
            &record(Some(Value::Float(2.0)), Quality::Uncertain),
            false,
        );
        assert_eq!(unsure.value, Some(V::DoubleValue(2.0)));
        assert_eq!(
            unsure.properties.unwrap().values[0].value,
            Some(payload::property_value::Value::IntValue(0)),
            "Sparkplug has no code for uncertain: bad, its value kept"
        );
        assert_eq!(q.values[0].r#type, Some(DataType::Int32 as u32));
    }

    #[test]
    fn s7_tags_are_born_with_their_s7_types_and_writable_as_configured() {
        let text = r#"
[cell]
enterprise = "acme"
site = "plant1"
area = "a"
line = "l"
cell = "c"

[[devices]]
name = "cpu"
protocol = "s7"
host = "10.0.0.5"

[[devices.s7_tags]]
name = "count"
address = "DB1.DBD0"

[[devices.s7_tags]]
name = "setpoint"
address = "DB1.DBW4"
type = "int"
write = true

[[devices.s7_tags]]
name = "temperature"
address = "MD8"
type = "real"

[[devices.s7_tags]]
name = "guard"
address = "I0.1"

[[devices.s7_tags]]
name = "stamp"
address = "DB1.DBB20"
type = "date_and_time"

[store]
path = "cell.db"

[mqtt]
url = "mqtt://127.0.0.1"
"#;
        let c = crate::config::parse(std::path::Path::new("cell.toml"), text).unwrap();
        let devices = Devices::from_config(&c);
        let tags: Vec<(&str, DataType, bool)> = devices
            .get("cpu")
            .unwrap()
            .tags
            .iter()
            .map(|t| (t.name.as_str(), t.datatype, t.writable))
            .collect();
        assert_eq!(
            tags,
            vec![
                ("count", DataType::UInt32, false),
                ("setpoint", DataType::Int16, true),
                ("temperature", DataType::Float, false),
                ("guard", DataType::Boolean, false),
                ("stamp", DataType::String, false),
            ]
        );
    }
}
