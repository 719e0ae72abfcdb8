//! The seam between the cell config and one protocol. Each protocol's folder
//! (`crate::protocols::modbus`, `opcua`, `s7`) implements [`DeviceProtocol`]; the registry
//! (`crate::protocols`) lists them, one line each.
//! Everything else in the runtime works on [`TagDescription`]s and [`DriverSpec`]s and never
//! asks which protocol a device speaks.
//!
//! A `[[devices]]` table holds the keys every device has ([`Device`]) and the keys of its
//! protocol, which the protocol parses into a struct of its own (`device_keys.rs` hands them
//! over, and refuses the keys of another protocol or of none).

use super::locate::Problem;
use super::own_keys::KeysOf;
use super::parsed::Parsed;
use super::tag::TagDescription;
use super::types::{CellFile, CounterSignal, Device};
use mes_edge_drivers::DriverSpec;
use std::path::Path;

pub(crate) trait DeviceProtocol: Sync {
    /// The names `protocol = "..."` gives this protocol, the usual one first.
    fn names(&self) -> &'static [&'static str];

    /// A device of this protocol, in a message: "an S7 device".
    fn device_kind(&self) -> &'static str;

    /// This protocol's own keys in a `[[devices]]` table (beyond [`Device`]'s), if it has
    /// any: `Some(KeysOf::of::<Keys>())`, its own struct. Only keys it names are handed over.
    fn own_keys(&self) -> Option<KeysOf> {
        None
    }

    /// Makes the device's relative paths (certificates, key files) relative to `base`, the
    /// config file's folder. Asked of the device's own protocol only.
    fn resolve_paths(&self, _dev: &mut Device, _base: &Path) {}

    /// Files of a device that hold secrets (a password, a private key), by key: `check` warns
    /// when others can read them.
    fn secret_files<'a>(&self, _dev: &'a Device) -> Vec<(&'static str, &'a Path)> {
        Vec::new()
    }

    /// The TCP port a device of this protocol gets when it sets none.
    fn default_port(&self) -> u16;

    /// This protocol's tags on `dev`, described for the rest of the runtime, in the order the
    /// driver numbers them from `first_id`. Asked of every device, whatever it speaks: a tag
    /// list on a device of another protocol is refused by the checks, but is numbered all the
    /// same so that the other checks report on it and tag ids stay put.
    fn tags(&self, dev: &Device, first_id: u32) -> Vec<TagDescription>;

    /// The checks of one device (`d` is its index in the file), whatever protocol it speaks:
    /// keys of this protocol on another protocol's device are this protocol's to refuse.
    fn check_device(&self, d: usize, dev: &Device, parsed: &mut Parsed, p: &mut Vec<Problem>);

    /// The checks across the cell (several devices on one line, names, this protocol's tags
    /// used as signals), after the general checks of the signals.
    fn check_cell(&self, c: &CellFile, p: &mut Vec<Problem>);

    /// What a signal needs of its tag, if the tag is one of this protocol's: asked during the
    /// general checks of the signals, each signal's tag after it was found to be a known one.
    fn check_signal_tag(&self, _c: &CellFile, _signal: SignalTag, _p: &mut Vec<Problem>) {}

    /// Names of this protocol's tags in the cell, for the general lookup of a signal's tag.
    fn tag_names<'a>(&self, c: &'a CellFile) -> Vec<&'a str>;

    /// Adds the driver of device `d` (whose tags are numbered from `first_id`) to `specs`, or
    /// to a spec already there that shares its connection. The config was checked.
    fn add_driver(
        &self,
        d: usize,
        dev: &Device,
        first_id: u32,
        parsed: &Parsed,
        state_dir: &Path,
        specs: &mut Vec<DriverSpec>,
    ) -> Result<(), Problem>;

    /// Warnings of a config that passed its checks.
    fn warnings(&self, _c: &super::CellConfig, _w: &mut Vec<Problem>) {}
}

/// A signal's tag, as the general checks of the signals meet it.
#[derive(Clone, Copy)]
pub(crate) enum SignalTag<'a> {
    /// `[signals.<key>] tag` of a counter (`good_count`, `scrap_count`).
    Counter {
        key: &'static str,
        counter: &'a CounterSignal,
    },
    /// `[signals.machine_state] <sub>` (`tag` or `fault_tag`) names tag `name`.
    MachineState { sub: &'static str, name: &'a str },
}
