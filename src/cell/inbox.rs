//! The engine's inbox for commands: what a command carries on its way in from MQTT, the
//! control socket, Sparkplug or the CLI, and where its reply goes once its effects are
//! committed.

use crate::orders::{CommandSource, Reply};

/// A command on its way to the engine. `done` is called with the reply once the command's
/// effects are committed (for MQTT: acknowledge the message, so a crash before the commit makes
/// the broker deliver it again).
pub struct CommandIn {
    pub payload: Vec<u8>,
    pub by: CommandSource,
    /// When it reached the runtime, by the runtime's clock: the engine applies it after the
    /// readings taken before then and before those taken after, however far behind it is.
    pub received_ms: i64,
    /// Who sent it, as far as the way it came can tell: the Unix user on the control socket
    /// (SO_PEERCRED), the MQTT 5 user property `user`, the Sparkplug host. Recorded in the
    /// events the command makes.
    pub user: Option<String>,
    /// The last moment the sender allows it to be applied, by the runtime's clock (MQTT 5
    /// Message Expiry counted from `received_ms`): later it is answered `expired`.
    pub expires_ms: Option<i64>,
    /// Where a copy of the reply goes besides the cell's response topic (MQTT 5 Response Topic
    /// and Correlation Data).
    pub respond_to: Option<crate::orders::ResponseRoute>,
    pub done: Option<ReplyTo>,
}

impl CommandIn {
    /// A command from `by` received now, with nothing else known of it.
    pub fn new(payload: Vec<u8>, by: CommandSource) -> CommandIn {
        CommandIn {
            payload,
            by,
            received_ms: mes_edge_drivers::now_ms(),
            user: None,
            expires_ms: None,
            respond_to: None,
            done: None,
        }
    }

    /// Calls `f` with the reply once the command's effects are committed.
    pub fn on_reply(mut self, f: impl FnOnce(&Reply) + Send + 'static) -> CommandIn {
        self.done = Some(Box::new(f));
        self
    }
}

/// Where a command's reply goes once its effects are committed.
pub type ReplyTo = Box<dyn FnOnce(&Reply) + Send>;
