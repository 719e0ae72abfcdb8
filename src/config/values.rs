//! Process values in the config: which tags are published to MOM, and how (docs/VALUES.md).
//!
//! Per tag: `publish = true`, or `publish = { deadband = 0.5, max_interval_ms = 60000 }`.
//! Per group: a `[[process_values]]` table naming `tags` or a `device`, with the same settings.
//! A tag's own `publish` table wins over a group's settings; `publish = false` takes a tag out
//! of its group (a device group with exceptions).

use mes_edge_drivers::TagId;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::HashMap;

/// How a tag is reported by exception; every key may be left out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishSettings {
    /// A number is published when it moved more than this from the last published value.
    pub deadband: Option<f64>,
    /// ... or more than this percentage of the last published value.
    pub deadband_percent: Option<f64>,
    /// Heartbeat: the latest reading is published again after this long without a publish.
    pub max_interval_ms: Option<u64>,
    /// A tag is published at most once per this interval; the latest change goes out at its end.
    pub min_interval_ms: Option<u64>,
}

/// A tag's `publish` key: `true`/`false`, or a table of settings (which means `true`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Publish {
    /// None when the key is left out: the tag's group (if any) decides.
    pub on: Option<bool>,
    /// Given as a table: these settings win over a group's.
    pub own: Option<PublishSettings>,
}

impl<'de> Deserialize<'de> for Publish {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Publish;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "true, false or a table like { deadband = 0.5, max_interval_ms = 60000 }",
                )
            }
            fn visit_bool<E: de::Error>(self, on: bool) -> Result<Publish, E> {
                Ok(Publish {
                    on: Some(on),
                    own: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Publish, A::Error> {
                let own = PublishSettings::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Publish {
                    on: Some(true),
                    own: Some(own),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[process_values]]`: tags published with shared settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessValueGroup {
    /// These tags, by name...
    pub tags: Option<Vec<String>>,
    /// ... or every tag of this device.
    pub device: Option<String>,
    pub deadband: Option<f64>,
    pub deadband_percent: Option<f64>,
    pub max_interval_ms: Option<u64>,
    pub min_interval_ms: Option<u64>,
}

impl ProcessValueGroup {
    pub fn settings(&self) -> PublishSettings {
        PublishSettings {
            deadband: self.deadband,
            deadband_percent: self.deadband_percent,
            max_interval_ms: self.max_interval_ms,
            min_interval_ms: self.min_interval_ms,
        }
    }
}

/// When a number has moved enough to be published.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Deadband {
    /// Any change.
    None,
    Absolute(f64),
    /// Percent of the last published value's magnitude (any change away from 0).
    Percent(f64),
}

/// One published tag, resolved: its name and device for the payload, its rules.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRule {
    pub tag: String,
    pub device: String,
    pub deadband: Deadband,
    pub max_interval_ms: Option<i64>,
    pub min_interval_ms: i64,
}

impl ValueRule {
    pub fn new(tag: &str, device: &str, s: &PublishSettings) -> ValueRule {
        let deadband = match (s.deadband, s.deadband_percent) {
            (Some(a), _) => Deadband::Absolute(a),
            (None, Some(p)) => Deadband::Percent(p),
            (None, None) => Deadband::None,
        };
        ValueRule {
            tag: tag.to_string(),
            device: device.to_string(),
            deadband,
            max_interval_ms: s.max_interval_ms.map(|m| m as i64),
            min_interval_ms: s.min_interval_ms.unwrap_or(0) as i64,
        }
    }
}

/// Every published tag of the cell, by tag id.
pub type ValuePlan = HashMap<TagId, ValueRule>;
