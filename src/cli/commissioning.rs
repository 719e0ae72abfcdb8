//! How a protocol's commissioning command (`mes-edge modbus|opcua|s7 ...`) is registered: one
//! line in `cli/mod.rs` names its module and arguments, and [`commissioning!`] makes from it the
//! module, the subcommand and its dispatch. A module gives `pub fn main(Args) -> Result<()>`
//! and `pub const QUIET_LOGS: Option<&[&str]>`: the log filters it wants instead of the
//! default (its own messages say what went wrong, a library's would repeat them).

macro_rules! commissioning {
    ($($(#[doc = $doc:literal])* $variant:ident($module:ident::$args:ident)),* $(,)?) => {
        $(mod $module;)*

        /// The protocols' commissioning commands, flattened into [`Command`]'s subcommands.
        #[derive(clap::Subcommand)]
        enum Commissioning {
            $($(#[doc = $doc])* $variant($module::$args),)*
        }

        impl Commissioning {
            fn main(self) -> anyhow::Result<()> {
                match self {
                    $(Commissioning::$variant(args) => $module::main(args),)*
                }
            }

            fn quiet_logs(&self) -> Option<&'static [&'static str]> {
                match self {
                    $(Commissioning::$variant(_) => $module::QUIET_LOGS,)*
                }
            }
        }
    };
}
