//! The keys of a Modbus device (`protocol = "modbus-tcp"`, `"modbus-rtu"` or
//! `"modbus-rtu-over-tcp"`) beyond the common ones; see docs/MODBUS.md.

use super::tag::TagConfig;
use crate::config::Device;
use serde::Deserialize;
use std::sync::LazyLock;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusKeys {
    #[serde(default = "defaults::unit_id")]
    pub unit_id: u8,
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
}

/// What a device without Modbus keys reads as: every key at its default, no tags.
static NONE: LazyLock<ModbusKeys> = LazyLock::new(|| {
    toml::Table::new()
        .try_into()
        .expect("every Modbus key has a default")
});

/// A device's Modbus keys, as the Modbus folder reads them.
pub trait ModbusKeysOf {
    /// Its Modbus keys; a device of another protocol has the defaults and no tags.
    fn modbus(&self) -> &ModbusKeys;
}

impl ModbusKeysOf for Device {
    fn modbus(&self) -> &ModbusKeys {
        self.own.get().unwrap_or(&NONE)
    }
}

/// What a Modbus device has when it leaves a key out.
mod defaults {
    pub fn unit_id() -> u8 {
        1
    }
    pub fn max_gap() -> u16 {
        16
    }
    /// The protocol's ceiling for one read of registers.
    pub fn max_registers() -> u16 {
        125
    }
    /// The protocol's ceiling for one read of coils or discrete inputs.
    pub fn max_bits() -> u16 {
        2000
    }
    pub fn retries() -> u8 {
        1
    }
    pub fn yes() -> bool {
        true
    }
}
