//! A `[[devices]]` entry of the cell config: the keys every device has, parsed with the file
//! (so serde gives their errors their exact line and column), and the keys of the protocol the
//! device speaks, which that protocol's folder parses from the same table
//! (`device_keys.rs` hands them over; serde's `flatten` would lose the line and column).

use super::defaults;
use super::own_keys::OwnKeys;
use serde::Deserialize;

/// Unknown keys are not refused by serde here: `device_keys.rs` refuses them, knowing which
/// protocol's keys they are.
#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    pub name: String,
    /// A name one protocol of `crate::protocols` answers to (`modbus-tcp`, `opcua`, `s7`, ...).
    pub protocol: String,
    pub host: Option<String>,
    /// Default: the protocol's own (502 for Modbus, 102 for S7); see [`Device::port`].
    #[serde(rename = "port")]
    pub port_set: Option<u16>,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// A source timestamp (OPC UA) further than this from the runtime's clock raises a
    /// `clock_skew` warning. Time is always accounted on the runtime's clock.
    #[serde(default = "defaults::clock_tolerance_ms")]
    pub clock_tolerance_ms: u64,
    /// Optional tags of this device that tell its restarts to the counter rules (docs/EVENTS.md
    /// rule 7): a count that grows while the PLC runs (going back is a restart), and a count of
    /// its restarts (going up is one). Unscaled integers.
    pub uptime_tag: Option<String>,
    pub restart_count_tag: Option<String>,
    /// The keys of the device's protocol, parsed by its folder: see [`OwnKeys`].
    #[serde(skip)]
    pub own: OwnKeys,
}
