//! The protocols the runtime speaks: one line each, which declares the protocol's folder and
//! lists it. A folder holds all of its protocol: its device keys, checks and tags in the cell
//! config ([`DeviceProtocol`]), and its commissioning commands (`commissioning.rs`). A device's
//! `protocol` picks the one whose names hold it; every other part of the config asks all of
//! them, in this order (which is also the order a device's tags are numbered in).

use crate::config::protocol::DeviceProtocol;

pub(crate) mod commissioning;

/// `module::Protocol`: declares the folder's module, lists its protocol for the config and its
/// commissioning commands for the command line (`mes-edge <module> ...`). The folder's `mod.rs`
/// gives `pub const LOG_FILTERS: &[&str]`, the log filters every command starts from (for a
/// library of its that says too much). Its `commissioning.rs` gives `pub struct Args` (whose
/// help line is the subcommand's), `pub fn main(Args) -> anyhow::Result<()>` and
/// `pub const QUIET_LOGS: Option<&[&str]>`: the log filters it wants instead (its own messages
/// say what went wrong, a library's would repeat them). Declared here, the folders are out of
/// `cargo fmt`'s reach: `rustfmt --edition 2021 src/protocols/<module>/mod.rs` formats one.
macro_rules! protocols {
    ($($module:ident::$protocol:ident),* $(,)?) => {
        $(pub mod $module;)*

        pub(crate) static ALL: &[&dyn DeviceProtocol] = &[$(&$module::$protocol),*];

        /// The log filters every command starts from: each protocol's `LOG_FILTERS`.
        pub(crate) fn log_filters() -> Vec<&'static str> {
            [$($module::LOG_FILTERS),*].concat()
        }

        /// The protocols' commissioning commands, flattened into the command line's.
        #[derive(clap::Subcommand)]
        pub(crate) enum Commissioning {
            $(
                #[command(name = stringify!($module))]
                $protocol($module::commissioning::Args),
            )*
        }

        impl Commissioning {
            pub(crate) fn main(self) -> anyhow::Result<()> {
                match self {
                    $(Commissioning::$protocol(args) => $module::commissioning::main(args),)*
                }
            }

            pub(crate) fn quiet_logs(&self) -> Option<&'static [&'static str]> {
                match self {
                    $(Commissioning::$protocol(_) => $module::commissioning::QUIET_LOGS,)*
                }
            }
        }
    };
}

protocols! {
    modbus::Modbus,
    opcua::OpcUa,
    s7::S7,
}
