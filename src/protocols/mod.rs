//! The protocols the runtime speaks: one line each, which declares the protocol's folder and
//! lists it. A folder holds all of its protocol: its device keys, checks and tags in the cell
//! config ([`DeviceProtocol`]). A device's `protocol` picks the one whose names hold it; every
//! other part of the config asks all of them, in this order (which is also the order a device's
//! tags are numbered in).

use crate::config::protocol::DeviceProtocol;

/// `module::Protocol`: declares the folder's module and lists its protocol.
macro_rules! protocols {
    ($($module:ident::$protocol:ident),* $(,)?) => {
        $(pub mod $module;)*

        pub(crate) static ALL: &[&dyn DeviceProtocol] = &[$(&$module::$protocol),*];
    };
}

protocols! {
    modbus::Modbus,
    opcua::OpcUa,
    s7::S7,
}
