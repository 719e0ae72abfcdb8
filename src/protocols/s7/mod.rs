//! Siemens S7 in the cell config: its tags (`tag.rs`), its checks (`check.rs`) and its devices
//! resolved for the driver (`device.rs`); see docs/S7.md.

mod check;
pub mod commissioning;
pub mod device;
pub mod keys;
pub mod tag;

use crate::config::locate::Problem;
use crate::config::own_keys::KeysOf;
use crate::config::parsed::Parsed;
use crate::config::protocol::DeviceProtocol;
use crate::config::tag::TagDescription;
use crate::config::types::{CellFile, Device};
use keys::S7Keys;
use mes_edge_drivers::{DriverSpec, TagId};
use std::path::Path;

/// S7 asks for no log filters: its driver is ours.
pub const LOG_FILTERS: &[&str] = &[];

pub(crate) struct S7;

impl DeviceProtocol for S7 {
    fn names(&self) -> &'static [&'static str] {
        &["s7"]
    }

    fn device_kind(&self) -> &'static str {
        "an S7 device"
    }

    fn own_keys(&self) -> Option<KeysOf> {
        Some(KeysOf::of::<S7Keys>())
    }

    fn default_port(&self) -> u16 {
        tag::DEFAULT_PORT
    }

    fn tags(&self, dev: &Device, first_id: u32) -> Vec<TagDescription> {
        S7Keys::tags(dev)
            .iter()
            .enumerate()
            .map(|(i, t)| t.describe(&dev.name, TagId(first_id + i as u32), i))
            .collect()
    }

    fn check_device(&self, d: usize, dev: &Device, _: &mut Parsed, p: &mut Vec<Problem>) {
        check::check_device(d, dev, p);
    }

    fn check_cell(&self, c: &CellFile, p: &mut Vec<Problem>) {
        check::check_names(c, p);
        check::check_signal_tags(c, p);
    }

    fn tag_names<'a>(&self, c: &'a CellFile) -> Vec<&'a str> {
        check::tags(c).into_keys().collect()
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
        specs.push(device::driver(d, dev, first_id));
        Ok(())
    }
}

impl crate::config::CellConfig {
    /// The S7 devices among [`crate::config::CellConfig::drivers`].
    pub fn s7_devices(&self) -> impl Iterator<Item = &mes_edge_drivers::s7::S7Device> {
        self.drivers.iter().filter_map(|d| d.get())
    }
}
