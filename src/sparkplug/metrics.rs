//! The edge node's metrics: what the cell's committed events say, folded into figures. The
//! Sparkplug sink keeps two folds: what it has published (births are made from it) and what
//! the broker has acknowledged (stored with its cursor, so a restart resumes exactly).

use super::proto::DataType;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use std::collections::BTreeMap;

/// A metric's value as the sink hands it to the encoder.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricValue {
    Bool(bool),
    U64(u64),
    /// A signed tag's value (process values; no node metric is signed).
    I64(i64),
    F64(f64),
    Text(String),
    Null,
}

/// A node metric: its name, alias (its index in [`NODE_METRICS`]) and type.
pub struct MetricDef {
    pub name: &'static str,
    pub datatype: DataType,
}

pub const BD_SEQ: &str = "bdSeq";
pub const REBIRTH: &str = "Node Control/Rebirth";

/// The node's metrics; a metric's alias is its index here. bdSeq (index 0) and the rebirth
/// control (index 1) are the protocol's and go by name only; the rest are the cell's
/// production figures.
pub const NODE_METRICS: &[MetricDef] = &[
    MetricDef {
        name: BD_SEQ,
        datatype: DataType::Int64,
    },
    MetricDef {
        name: REBIRTH,
        datatype: DataType::Boolean,
    },
    MetricDef {
        name: "Production/Good Total",
        datatype: DataType::UInt64,
    },
    MetricDef {
        name: "Production/Scrap Total",
        datatype: DataType::UInt64,
    },
    MetricDef {
        name: "Machine/State",
        datatype: DataType::String,
    },
    MetricDef {
        name: "Order/Id",
        datatype: DataType::String,
    },
    MetricDef {
        name: "Order/State",
        datatype: DataType::String,
    },
    MetricDef {
        name: "Order/Good",
        datatype: DataType::UInt64,
    },
    MetricDef {
        name: "Order/Scrap",
        datatype: DataType::UInt64,
    },
    MetricDef {
        name: "OEE/Order/Availability",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "OEE/Order/Performance",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "OEE/Order/Quality",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "OEE/Order/OEE",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "OEE/Shift/Availability",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "OEE/Shift/Performance",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "OEE/Shift/Quality",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "OEE/Shift/OEE",
        datatype: DataType::Double,
    },
    MetricDef {
        name: "Events/Job Response",
        datatype: DataType::String,
    },
];

const GOOD: u64 = 2;
const ORDER_ID: u64 = 5;
const OEE_ORDER: u64 = 9;
const OEE_SHIFT: u64 = 13;
const JOB_RESPONSE: u64 = 17;

/// The production figures the node's metrics show (aliases 2 and up), and which devices are
/// online. Serialized with the sink's cursor.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Indexed by alias - 2: the values of the production metrics.
    values: Vec<Option<StoredValue>>,
    pub devices: BTreeMap<String, bool>,
}

/// [`MetricValue`] as the cursor stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum StoredValue {
    U64(u64),
    F64(f64),
    Text(String),
}

/// What one event does to the node.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Nothing,
    /// Node metrics that changed: (alias, value).
    Node(Vec<(u64, MetricValue)>),
    DeviceOnline(String),
    DeviceOffline(String),
}

impl Figures {
    /// The figures the cell state committed at the cursor's start holds: the engine's totals
    /// and machine state (the order metrics fill in at the next order event).
    pub fn from_cell(cell: &crate::cell::CellState) -> Figures {
        let mut f = Figures::default();
        f.set(GOOD, MetricValue::U64(cell.good_total));
        f.set(GOOD + 1, MetricValue::U64(cell.scrap_total));
        if let Ok(Json::String(s)) = serde_json::to_value(cell.machine_state) {
            f.set(4, MetricValue::Text(s));
        }
        f
    }

    pub fn from_json(text: &str) -> Figures {
        serde_json::from_str(text).unwrap_or_else(|e| {
            tracing::warn!("the Sparkplug cursor's figures do not read ({e}); starting from zero");
            Figures::default()
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("figures serialize")
    }

    /// The value of the metric with `alias` (2 and up), null if never set.
    pub fn value(&self, alias: u64) -> MetricValue {
        match self.values.get(alias as usize - 2).cloned().flatten() {
            None => MetricValue::Null,
            Some(StoredValue::U64(v)) => MetricValue::U64(v),
            Some(StoredValue::F64(v)) => MetricValue::F64(v),
            Some(StoredValue::Text(v)) => MetricValue::Text(v),
        }
    }

    fn set(&mut self, alias: u64, v: MetricValue) {
        let i = alias as usize - 2;
        if self.values.len() <= i {
            self.values.resize(i + 1, None);
        }
        self.values[i] = match v {
            MetricValue::U64(v) => Some(StoredValue::U64(v)),
            MetricValue::F64(v) => Some(StoredValue::F64(v)),
            MetricValue::Text(v) => Some(StoredValue::Text(v)),
            MetricValue::Bool(_) | MetricValue::I64(_) | MetricValue::Null => None,
        };
    }

    fn u64(&self, alias: u64) -> u64 {
        match self.value(alias) {
            MetricValue::U64(v) => v,
            _ => 0,
        }
    }

    /// Applies one committed event (its `type` and `data`), giving back what changed.
    pub fn apply(&mut self, kind: &str, data: &Json) -> Change {
        let mut changed = Vec::new();
        let mut put = |f: &mut Figures, alias: u64, v: MetricValue| {
            if f.value(alias) != v {
                f.set(alias, v.clone());
                changed.push((alias, v));
            }
        };
        match kind {
            "part_count" | "count_correction" => {
                let alias = match data["counter"].as_str() {
                    Some("good") => GOOD,
                    Some("scrap") => GOOD + 1,
                    _ => return Change::Nothing,
                };
                let q = data["quantity"].as_i64().unwrap_or(0);
                let total = self.u64(alias).saturating_add_signed(q);
                put(self, alias, MetricValue::U64(total));
                let order = data["order_id"].as_str();
                if order.is_some()
                    && self.value(ORDER_ID) == MetricValue::Text(order.unwrap_or_default().into())
                {
                    let a = ORDER_ID + 2 + (alias - GOOD);
                    let n = self.u64(a).saturating_add_signed(q);
                    put(self, a, MetricValue::U64(n));
                }
            }
            "machine_state" => {
                if let Some(s) = data["state"].as_str() {
                    put(self, 4, MetricValue::Text(s.into()));
                }
            }
            "order_state" => {
                let text = |k: &str| MetricValue::Text(data[k].as_str().unwrap_or_default().into());
                put(self, ORDER_ID, text("order_id"));
                put(self, ORDER_ID + 1, text("state"));
                put(
                    self,
                    ORDER_ID + 2,
                    MetricValue::U64(data["good"].as_u64().unwrap_or(0)),
                );
                put(
                    self,
                    ORDER_ID + 3,
                    MetricValue::U64(data["scrap"].as_u64().unwrap_or(0)),
                );
            }
            "order_removed"
                if self.value(ORDER_ID)
                    == MetricValue::Text(data["order_id"].as_str().unwrap_or_default().into()) =>
            {
                put(self, ORDER_ID + 1, MetricValue::Text("removed".into()));
            }
            "oee" => {
                let base = match data["scope"].as_str() {
                    Some("order") => OEE_ORDER,
                    Some("shift") => OEE_SHIFT,
                    _ => return Change::Nothing,
                };
                let figures = &data["figures"];
                for (i, k) in ["availability", "performance", "quality", "oee"]
                    .iter()
                    .enumerate()
                {
                    if let Some(v) = figures[k].as_f64() {
                        put(self, base + i as u64, MetricValue::F64(v));
                    }
                }
            }
            // A fact, not a value: the whole response as JSON text (docs/SPARKPLUG.md).
            "job_response" => put(self, JOB_RESPONSE, MetricValue::Text(data.to_string())),
            "device_status" => {
                let Some(device) = data["device"].as_str() else {
                    return Change::Nothing;
                };
                let online = data["online"].as_bool().unwrap_or(false);
                if self.devices.insert(device.to_string(), online) == Some(online) {
                    return Change::Nothing;
                }
                return if online {
                    Change::DeviceOnline(device.into())
                } else {
                    Change::DeviceOffline(device.into())
                };
            }
            _ => {}
        }
        if changed.is_empty() {
            Change::Nothing
        } else {
            Change::Node(changed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn totals_follow_counts_and_corrections_and_survive_the_cursor() {
        let mut f = Figures::default();
        f.apply("part_count", &json!({"counter":"good","quantity":5}));
        f.apply(
            "order_state",
            &json!({"order_id":"WO-1","state":"running","good":0,"scrap":0}),
        );
        let c = f.apply(
            "part_count",
            &json!({"counter":"good","quantity":2,"order_id":"WO-1"}),
        );
        assert_eq!(
            c,
            Change::Node(vec![(2, MetricValue::U64(7)), (7, MetricValue::U64(2))])
        );
        f.apply(
            "count_correction",
            &json!({"counter":"good","quantity":-1,"order_id":"WO-1"}),
        );
        assert_eq!(f.value(2), MetricValue::U64(6));
        let again = Figures::from_json(&f.to_json());
        assert_eq!(again, f);
        assert_eq!(
            f.apply("machine_state", &json!({"state":"idle"})),
            Change::Node(vec![(4, MetricValue::Text("idle".into()))])
        );
        assert_eq!(
            f.apply("machine_state", &json!({"state":"idle"})),
            Change::Nothing
        );
        assert_eq!(
            f.apply("device_status", &json!({"device":"plc","online":true})),
            Change::DeviceOnline("plc".into())
        );
        assert_eq!(
            f.apply("device_status", &json!({"device":"plc","online":true})),
            Change::Nothing
        );
    }
}
