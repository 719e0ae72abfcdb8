//! Siemens S7 in the cell config: its tags (`tag.rs`), its checks (`check.rs`) and its devices
//! resolved for the driver (`device.rs`); see docs/S7.md.

mod check;
pub mod device;
pub mod tag;

use super::locate::Problem;
use super::parsed::Parsed;
use super::protocol::DeviceProtocol;
use super::tag::TagDescription;
use super::types::{CellFile, Device, Protocol};
use mes_edge_drivers::{DriverSpec, TagId};
use std::path::Path;

pub(in crate::config) struct S7;

impl DeviceProtocol for S7 {
    fn speaks(&self, protocol: Protocol) -> bool {
        protocol == Protocol::S7
    }

    fn default_port(&self) -> u16 {
        tag::DEFAULT_PORT
    }

    fn tags(&self, dev: &Device, first_id: u32) -> Vec<TagDescription> {
        dev.s7_tags
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

impl super::CellConfig {
    /// The S7 devices among [`super::CellConfig::drivers`].
    pub fn s7_devices(&self) -> impl Iterator<Item = &mes_edge_drivers::s7::S7Device> {
        self.drivers.iter().filter_map(|d| d.get())
    }
}
