//! Protocol drivers for mes-edge.
//!
//! A driver talks to one device and hands on what it sees as [`Sample`]s (a value, a quality and
//! the time it was read) and [`DeviceStatus`] changes. It knows nothing of work orders, storage or
//! MQTT: the runtime decides what a value means. This keeps every protocol interchangeable behind
//! one small contract, which is what lets the cell engine ignore where a count came from.
//!
//! A protocol is a folder (`modbus/`, `opcua/`, `s7/`) implementing [`ProtocolDriver`] for
//! what its driver is built from, registered by its `pub mod` line here.

mod backoff;
pub mod clock;
pub mod driver;
mod error;
mod metrics;
pub mod modbus;
pub mod opcua;
mod presence;
pub mod s7;
mod schedule;
mod value;

pub use backoff::Backoff;
pub use driver::{Driver, DriverSpec, ProtocolDriver};
pub use error::{DriverError, ErrorKind};
pub use metrics::{DeviceMetrics, DeviceMetricsSnapshot, LATENCY_BUCKETS_S};

pub use value::{
    now_ms, plausible_ts, DeviceEvent, DeviceId, DeviceStatus, MethodCall, Quality, Sample, TagId,
    Text, Value, WriteRequest, MAX_TS_MS,
};
