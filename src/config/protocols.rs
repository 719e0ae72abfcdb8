//! Which protocol a device speaks, and what the config asks of all of them (its port, the
//! numbering of every tag), through the registry (`crate::protocols`).

use super::protocol::DeviceProtocol;
use super::types::{CellFile, Device};
use crate::protocols::ALL;

/// The protocol a device's `protocol = "..."` names, if one does.
pub(crate) fn named(name: &str) -> Option<&'static dyn DeviceProtocol> {
    ALL.iter().copied().find(|p| p.names().contains(&name))
}

/// The protocol device `dev` speaks. Its name was checked when its keys were handed out
/// (`device_keys.rs`), before anything else asks.
pub(crate) fn of(dev: &Device) -> &'static dyn DeviceProtocol {
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
    /// each device the tags of each protocol in the registry's order (Modbus `tags`, OPC UA
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
