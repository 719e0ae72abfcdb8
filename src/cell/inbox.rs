//! The engine's inbox for commands: what a command carries on its way in from MQTT, the
//! control socket or the CLI, and where its reply goes once its effects are committed.

use crate::orders::{CommandSource, Reply};

/// A command on its way to the engine, from MQTT, the control socket or the CLI. `done` is
/// called with the reply once the command's effects are committed (for MQTT: acknowledge the
/// message, so a crash before the commit makes the broker deliver it again).
pub struct CommandIn {
    pub payload: Vec<u8>,
    pub by: CommandSource,
    /// When it reached the runtime, by the runtime's clock: the engine applies it after the
    /// readings taken before then and before those taken after, however far behind it is.
    pub received_ms: i64,
    /// The Unix user who sent it over the control socket (SO_PEERCRED), if it came that way:
    /// recorded in the events the command makes.
    pub user: Option<String>,
    pub done: Option<ReplyTo>,
}

/// Where a command's reply goes once its effects are committed.
pub type ReplyTo = Box<dyn FnOnce(&Reply) + Send>;
