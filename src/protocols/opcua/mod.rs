//! OPC UA in the cell config: its nodes and subscriptions (`node.rs`), its checks (`check.rs`,
//! `signals.rs`) and its devices resolved for the driver (`device.rs`); see docs/OPCUA.md.

mod check;
pub mod commissioning;
mod device;
pub mod keys;
pub mod node;
mod signals;

use crate::config::locate::Problem;
use crate::config::own_keys::KeysOf;
use crate::config::parsed::Parsed;
use crate::config::protocol::DeviceProtocol;
use crate::config::tag::TagDescription;
use crate::config::types::{CellFile, Device};
use keys::OpcUaKeys;
use mes_edge_drivers::DriverSpec;
use std::path::Path;

/// OPC UA's name in `protocol = "..."`.
const NAME: &str = "opcua";

/// async-opcua warns at every connect that we keep no endpoint list in its config.
pub const LOG_FILTERS: &[&str] = &["opcua_client::config=error"];

pub(crate) struct OpcUa;

impl DeviceProtocol for OpcUa {
    fn names(&self) -> &'static [&'static str] {
        &[NAME]
    }

    fn device_kind(&self) -> &'static str {
        "an OPC UA device"
    }

    fn own_keys(&self) -> Option<KeysOf> {
        Some(KeysOf::of::<OpcUaKeys>())
    }

    fn resolve_paths(&self, dev: &mut Device, base: &Path) {
        let Some(keys) = dev.own.get_mut::<OpcUaKeys>() else {
            return;
        };
        let files = [
            &mut keys.pki_dir,
            &mut keys.password_file,
            &mut keys.user_cert_file,
            &mut keys.user_key_file,
        ];
        for p in files.into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }

    fn secret_files<'a>(&self, dev: &'a Device) -> Vec<(&'static str, &'a Path)> {
        let Some(keys) = OpcUaKeys::of(dev) else {
            return Vec::new();
        };
        [
            ("password_file", &keys.password_file),
            ("user_key_file", &keys.user_key_file),
        ]
        .into_iter()
        .filter_map(|(key, file)| Some((key, file.as_deref()?)))
        .collect()
    }

    /// An OPC UA device is reached through its `endpoint` url, which carries its port.
    fn default_port(&self) -> u16 {
        4840
    }

    fn tags(&self, dev: &Device, _first_id: u32) -> Vec<TagDescription> {
        OpcUaKeys::nodes(dev)
            .iter()
            .enumerate()
            .map(|(i, n)| n.describe(&dev.name, i))
            .collect()
    }

    fn check_device(&self, d: usize, dev: &Device, parsed: &mut Parsed, p: &mut Vec<Problem>) {
        check::check_device(d, dev, parsed, p);
    }

    fn check_cell(&self, c: &CellFile, p: &mut Vec<Problem>) {
        signals::check_names(c, p);
        signals::check_signal_nodes(c, p);
    }

    fn tag_names<'a>(&self, c: &'a CellFile) -> Vec<&'a str> {
        check::nodes(c).into_keys().collect()
    }

    fn add_driver(
        &self,
        d: usize,
        dev: &Device,
        first_id: u32,
        parsed: &Parsed,
        state_dir: &Path,
        specs: &mut Vec<DriverSpec>,
    ) -> Result<(), Problem> {
        let none = device::NodeTargets::default();
        let targets = parsed.own::<device::NodeTargets>().unwrap_or(&none);
        let device = device::opcua_device(d, dev, first_id, targets, state_dir)?;
        specs.push(DriverSpec::new(device));
        Ok(())
    }

    fn warnings(&self, c: &crate::config::CellConfig, w: &mut Vec<Problem>) {
        check::warnings(c, w);
    }
}

impl crate::config::CellConfig {
    /// The OPC UA devices among [`crate::config::CellConfig::drivers`].
    pub fn opcua_devices(&self) -> impl Iterator<Item = &mes_edge_drivers::opcua::OpcUaDevice> {
        self.drivers.iter().filter_map(|d| d.get())
    }
}
