//! The protocols a cell config knows: one line each. A device's `protocol` picks the one that
//! speaks it; every other part of the config asks all of them, in this order (which is also
//! the order a device's tags are numbered in).

use super::protocol::DeviceProtocol;
use super::types::{CellFile, Device, Protocol};

pub(in crate::config) static ALL: &[&dyn DeviceProtocol] =
    &[&super::modbus::Modbus, &super::opcua::OpcUa, &super::s7::S7];

/// The protocol a device's `protocol = "..."` names.
pub(in crate::config) fn of(p: Protocol) -> &'static dyn DeviceProtocol {
    ALL.iter()
        .copied()
        .find(|x| x.speaks(p))
        .expect("every protocol of the config is registered in protocols.rs")
}

impl Device {
    /// The TCP port: as set, else the protocol's own.
    pub fn port(&self) -> u16 {
        self.port_set
            .unwrap_or_else(|| of(self.protocol).default_port())
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
