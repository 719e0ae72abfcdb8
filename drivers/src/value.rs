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
    /// Text held in the device (a Modbus string over N registers: part or recipe names, serial
    /// numbers). Kept inline so that a value stays `Copy`.
    Text(Text),
}

/// Text of at most [`Text::CAPACITY`] bytes of UTF-8, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text {
    len: u8,
    bytes: [u8; Text::CAPACITY],
}

impl Text {
    pub const CAPACITY: usize = 64;

    /// None if `s` is longer than [`Text::CAPACITY`] bytes.
    pub fn new(s: &str) -> Option<Text> {
        if s.len() > Self::CAPACITY {
            return None;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Text {
            len: s.len() as u8,
            bytes,
        })
    }

    /// The longest prefix of `s` that fits, cut at a character boundary.
    pub fn truncated(s: &str) -> Text {
        let mut end = s.len().min(Self::CAPACITY);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Text::new(&s[..end]).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

impl Default for Text {
    fn default() -> Self {
        Text {
            len: 0,
            bytes: [0; Self::CAPACITY],
        }
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
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
            Value::Text(_) => f64::NAN,
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
    /// When the runtime received the value, by its own clock, UTC ms. Time is accounted on
    /// this clock only: a PLC's clock may be set to local time, or wrong by years.
    pub ts_ms: i64,
    /// The device's own timestamp of the value, where the protocol has one (OPC UA's source
    /// timestamp, else the server's), within years 1970 to 9999; for information and for the
    /// clock-skew warning.
    pub source_ts_ms: Option<i64>,
}

/// The latest timestamp an event can carry: 9999-12-31T23:59:59.999Z (RFC 3339 has four-digit
/// years).
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// A timestamp from outside (a device's clock) if it lies within 1970 to 9999, else None: an
/// absurd date is information lost, never a reason to fail.
pub fn plausible_ts(ms: i64) -> Option<i64> {
    (0..=MAX_TS_MS).contains(&ms).then_some(ms)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceStatus {
    Online,
    Offline {
        reason: crate::DriverError,
    },
    /// When the device's server says it started (OPC UA `ServerStatus/StartTime`), UTC ms,
    /// read at each connect and sent right after `Online`: a change between two readings is a
    /// restart of the server, also one the runtime did not see (it was down itself).
    Started {
        at_ms: i64,
    },
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

/// The wall clock, UTC ms; a test can step it (see `clock.rs`).
pub fn now_ms() -> i64 {
    crate::clock::now_ms()
}

/// A write the runtime asks a driver to make (the work-order write-back: the active order's
/// number, its target quantity, acknowledge bits). The driver makes it on its own connection,
/// between its reads, and answers on `reply`.
#[derive(Debug)]
pub struct WriteRequest {
    pub tag: TagId,
    pub value: Value,
    pub reply: tokio::sync::oneshot::Sender<Result<(), crate::DriverError>>,
}

/// A method call the runtime asks a driver to make (OPC UA `Call`: e.g. "start order" on the
/// machine's order object). Node ids are in the config's text forms (`ns=2;s=Press`,
/// `nsu=URI;s=Press.StartOrder`). Arguments are converted to the types the method declares.
/// The reply holds the output arguments; one the cell cannot hold (a structure, an array, text
/// longer than [`Text::CAPACITY`]) comes back as `None`.
#[derive(Debug)]
pub struct MethodCall {
    pub object: String,
    pub method: String,
    pub args: Vec<Value>,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<Option<Value>>, String>>,
}
