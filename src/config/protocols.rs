//! The protocols a cell config knows: one line each. A device's `protocol` picks the one that
//! speaks it; every other part of the config asks all of them, in this order (which is also
//! the order a device's tags are numbered in).

use super::protocol::DeviceProtocol;
use super::types::Protocol;

pub(in crate::config) static ALL: [&dyn DeviceProtocol; 3] =
    [&super::modbus::Modbus, &super::opcua::OpcUa, &super::s7::S7];

/// The protocol a device's `protocol = "..."` names.
pub(in crate::config) fn of(p: Protocol) -> &'static dyn DeviceProtocol {
    ALL.iter()
        .copied()
        .find(|x| x.speaks(p))
        .expect("every protocol of the config is registered in protocols.rs")
}
