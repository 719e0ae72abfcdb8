//! A `[[devices]]` entry of the cell config: the keys every device has, parsed with the file
//! (so serde gives their errors their exact line and column), and the keys of the protocol the
//! device speaks, which that protocol's folder parses from the same table
//! (`device_keys.rs` hands them over; serde's `flatten` would lose the line and column).
//! Modbus keys are still parsed here with the common ones (docs/PROTOCOLS.md).

use super::own_keys::OwnKeys;
use super::types::{defaults, TagConfig};
use serde::Deserialize;

/// Unknown keys are not refused by serde here: `device_keys.rs` refuses them, knowing which
/// protocol's keys they are.
#[derive(Debug, Clone, Deserialize)]
pub struct Device {
    pub name: String,
    /// A name one protocol in `protocols.rs` answers to (`modbus-tcp`, `opcua`, `s7`, ...).
    pub protocol: String,
    pub host: Option<String>,
    /// Default: the protocol's own (502 for Modbus, 102 for S7); see [`Device::port`].
    #[serde(rename = "port")]
    pub port_set: Option<u16>,
    #[serde(default = "defaults::unit_id")]
    pub unit_id: u8,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Largest run of unused registers read to save a request.
    #[serde(default = "defaults::max_gap")]
    pub max_gap: u16,
    /// Largest read request in registers; some PLCs take fewer than the protocol's 125.
    #[serde(default = "defaults::max_registers")]
    pub max_registers: u16,
    /// Largest coil or discrete input read in bits (protocol ceiling 2000).
    #[serde(default = "defaults::max_bits")]
    pub max_bits: u16,
    /// Modbus: further attempts after a request got no answer or a broken reply.
    #[serde(default = "defaults::retries")]
    pub retries: u8,
    /// Modbus: least time between the end of one request and the next to this device.
    #[serde(default)]
    pub request_gap_ms: u64,
    /// Modbus: FC 5 / FC 6 for one coil or register; false sends FC 15 / FC 16 for those too.
    #[serde(default = "defaults::yes")]
    pub single_writes: bool,
    // Modbus RTU (`protocol = "modbus-rtu"`); devices on one port share its settings.
    /// e.g. `/dev/ttyUSB0`.
    pub serial_port: Option<String>,
    /// Default 19200.
    pub baud_rate: Option<u32>,
    /// 7 or 8; default 8.
    pub data_bits: Option<u8>,
    /// Default even (the Modbus serial line default).
    pub parity: Option<mes_edge_drivers::modbus::Parity>,
    /// 1 or 2; default 1.
    pub stop_bits: Option<u8>,
    /// Silence before each request; default 3.5 characters at the baud rate (1750 µs above 19200).
    pub inter_frame_delay_us: Option<u64>,
    #[serde(default)]
    pub tags: Vec<TagConfig>,
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
