//! The protocols a cell config knows: one line each, which declares the protocol's folder (a
//! module of `config`, re-exported by `mod.rs`) and lists it. A device's `protocol` picks the
//! one whose names hold it; every other part of the config asks all of them, in this order
//! (which is also the order a device's tags are numbered in).

use super::protocol::DeviceProtocol;
use super::types::{CellFile, Device};

/// `folder/mod.rs module::Protocol`: declares the folder's module and lists its protocol.
macro_rules! protocols {
    ($($folder:literal $module:ident::$protocol:ident),* $(,)?) => {
        $(#[path = $folder] pub mod $module;)*

        pub(in crate::config) static ALL: &[&dyn DeviceProtocol] = &[$(&$module::$protocol),*];
    };
}

protocols! {
    "modbus/mod.rs" modbus::Modbus,
    "opcua/mod.rs" opcua::OpcUa,
    "s7/mod.rs" s7::S7,
}

/// The protocol a device's `protocol = "..."` names, if one does.
pub(in crate::config) fn named(name: &str) -> Option<&'static dyn DeviceProtocol> {
    ALL.iter().copied().find(|p| p.names().contains(&name))
}

/// The protocol device `dev` speaks. Its name was checked when its keys were handed out
/// (`device_keys.rs`), before anything else asks.
pub(in crate::config) fn of(dev: &Device) -> &'static dyn DeviceProtocol {
    named(&dev.protocol).expect("a device's protocol is checked before its keys are handed out")
}

impl Device {
    /// The TCP port: as set, else the protocol's own.
    pub fn port(&self) -> u16 {
        self.port_set.unwrap_or_else(|| of(self).default_port())
    }
}

impl CellFile {
    /// Every tag with the device it belongs to, numbered for [`mes_edge_drivers::TagId`]: for
    /// each device the tags of each protocol in `protocols.rs` order (Modbus `tags`, OPC UA
    /// `nodes`, S7 `s7_tags`), in config order. The cell model and the drivers both number with
    /// this, so a tag id means the same on both sides.
    pub fn numbered_tags(
        &self,
    ) -> Vec<(mes_edge_drivers::TagId, usize, super::tag::TagDescription)> {
        let mut out = Vec::new();
        for (d, dev) in self.devices.iter().enumerate() {
            for protocol in ALL {
                let first = out.len() as u32;
                let tags = protocol.tags(dev, first);
                out.extend(
                    tags.into_iter()
                        .enumerate()
                        .map(|(i, t)| (mes_edge_drivers::TagId(first + i as u32), d, t)),
                );
            }
        }
        out
    }
}
