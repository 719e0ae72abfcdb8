//! Modbus (TCP, RTU, RTU over TCP) in the cell config: its tags (`tag.rs`), its checks
//! (`check.rs`, `registers.rs`) and its devices resolved into the driver's lines (`device.rs`).

mod check;
pub mod commissioning;
mod device;
pub mod keys;
mod registers;
mod signals;
pub mod tag;

use crate::config::locate::Problem;
use crate::config::own_keys::KeysOf;
use crate::config::parsed::Parsed;
use crate::config::protocol::{DeviceProtocol, SignalTag};
use crate::config::tag::TagDescription;
use crate::config::types::{CellFile, Device};
use keys::ModbusKeysOf;
use mes_edge_drivers::{DriverSpec, TagId};
use std::path::Path;

/// Modbus TCP's port.
const DEFAULT_PORT: u16 = 502;

/// Modbus asks for no log filters: its driver is ours.
pub const LOG_FILTERS: &[&str] = &[];

pub(crate) struct Modbus;

/// The names of Modbus in `protocol = "..."`: the framings, each its own name.
const TCP: &str = "modbus-tcp";
/// Modbus RTU over a serial port (`serial_port`, `baud_rate`, ...).
const RTU: &str = "modbus-rtu";
/// Modbus RTU frames over TCP (serial-to-Ethernet gateways in transparent mode).
const RTU_OVER_TCP: &str = "modbus-rtu-over-tcp";
const NAMES: &[&str] = &[TCP, RTU, RTU_OVER_TCP];

fn speaks(protocol: &str) -> bool {
    NAMES.contains(&protocol)
}

impl DeviceProtocol for Modbus {
    fn names(&self) -> &'static [&'static str] {
        NAMES
    }

    fn device_kind(&self) -> &'static str {
        "a Modbus device"
    }

    fn own_keys(&self) -> Option<KeysOf> {
        Some(KeysOf::of::<keys::ModbusKeys>())
    }

    fn default_port(&self) -> u16 {
        DEFAULT_PORT
    }

    fn tags(&self, dev: &Device, first_id: u32) -> Vec<TagDescription> {
        dev.modbus()
            .tags
            .iter()
            .enumerate()
            .map(|(i, t)| t.describe(&dev.name, TagId(first_id + i as u32), i))
            .collect()
    }

    fn check_device(&self, d: usize, dev: &Device, _: &mut Parsed, p: &mut Vec<Problem>) {
        check::check_device(d, dev, p);
        // Register layout: asked of every device, as `tags` are refused elsewhere on others.
        for (t, tag) in dev.modbus().tags.iter().enumerate() {
            registers::check_tag(d, t, tag, p);
            tag.check_write_limits(d, t, p);
        }
        registers::check_overlaps(d, dev, p);
    }

    fn check_cell(&self, c: &CellFile, p: &mut Vec<Problem>) {
        signals::check_names(c, p);
        check::check_lines(c, p);
    }

    fn check_signal_tag(&self, c: &CellFile, signal: SignalTag, p: &mut Vec<Problem>) {
        signals::check_signal_tag(c, signal, p);
    }

    fn tag_names<'a>(&self, c: &'a CellFile) -> Vec<&'a str> {
        c.devices
            .iter()
            .flat_map(|d| d.modbus().tags.iter().map(|t| t.name.as_str()))
            // An empty name is refused with the device, and no signal can read it.
            .filter(|n| !n.trim().is_empty())
            .collect()
    }

    fn add_driver(
        &self,
        d: usize,
        dev: &Device,
        first_id: u32,
        _: &Parsed,
        _: &Path,
        specs: &mut Vec<DriverSpec>,
    ) -> Result<(), Problem> {
        device::add_to_line(d, dev, first_id, specs);
        Ok(())
    }
}

impl crate::config::CellConfig {
    /// The Modbus lines among [`crate::config::CellConfig::drivers`].
    pub fn modbus_lines(&self) -> impl Iterator<Item = &mes_edge_drivers::modbus::ModbusLine> {
        self.drivers.iter().filter_map(|d| d.get())
    }
}
