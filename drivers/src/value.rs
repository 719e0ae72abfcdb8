use std::time::{SystemTime, UNIX_EPOCH};

/// Index of a tag in the cell's tag list; the runtime assigns them, drivers only echo them back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagId(pub u32);

/// Index of a device in the cell's device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub u32);

/// A decoded value. Integers stay integers so that counters never pass through a float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
}

impl Value {
    /// The value as an unsigned integer, if it is one exactly (counters, state words).
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::UInt(v) => Some(v),
            Value::Int(v) if v >= 0 => Some(v as u64),
            Value::Bool(b) => Some(b as u64),
            Value::Float(f) if f >= 0.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => {
                Some(f as u64)
            }
            _ => None,
        }
    }

    pub fn as_f64(&self) -> f64 {
        match *self {
            Value::Bool(b) => b as u8 as f64,
            Value::Int(v) => v as f64,
            Value::UInt(v) => v as f64,
            Value::Float(v) => v,
        }
    }
}

/// OPC UA's three quality classes; Modbus only ever produces Good or Bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Good,
    Uncertain,
    Bad,
}

/// One observation of one tag. A bad sample may carry no value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub tag: TagId,
    pub value: Option<Value>,
    pub quality: Quality,
    /// When the value was read (or the source timestamp, where the protocol has one), UTC ms.
    pub ts_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    Online,
    Offline { reason: String },
}

/// Everything a driver says, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum DeviceEvent {
    Samples {
        device: DeviceId,
        samples: Vec<Sample>,
    },
    Status {
        device: DeviceId,
        status: DeviceStatus,
        ts_ms: i64,
    },
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A write the runtime asks a driver to make (the work-order write-back: the active order's
/// number, its target quantity, acknowledge bits). The driver makes it on its own connection,
/// between its reads, and answers on `reply`.
#[derive(Debug)]
pub struct WriteRequest {
    pub tag: TagId,
    pub value: Value,
    pub reply: tokio::sync::oneshot::Sender<Result<(), String>>,
}
