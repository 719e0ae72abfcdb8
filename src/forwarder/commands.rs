//! Commands from MOM: the cell subscribes to its command topic and hands every message to the
//! engine. A message is acknowledged to the broker only once the engine has committed its effect
//! and reply; if the process dies first, the broker delivers it again (persistent session) and
//! the engine answers the repeat without applying it twice.

use super::link::{Client, Message};
use crate::cell::CommandIn;
use crate::orders::CommandSource;
use rumqttc::QoS;
use tokio::sync::mpsc;

/// A committed command's message, to acknowledge on the connection it came from.
pub struct Ack {
    generation: u64,
    publish: Message,
}

#[derive(Clone)]
pub struct CommandIntake {
    pub topic: String,
    pub engine: mpsc::Sender<CommandIn>,
}

impl CommandIntake {
    pub(super) fn session(
        &self,
        generation: u64,
        acks: mpsc::UnboundedSender<Ack>,
    ) -> SessionIntake {
        SessionIntake {
            intake: self.clone(),
            generation,
            acks,
        }
    }
}

/// The intake for one connection. Packet ids belong to a connection: an acknowledgement for a
/// message of an earlier connection is dropped (the broker re-sends that message anyway).
pub struct SessionIntake {
    intake: CommandIntake,
    generation: u64,
    acks: mpsc::UnboundedSender<Ack>,
}

impl SessionIntake {
    pub(super) fn subscribe(&self, client: &Client) -> Result<(), String> {
        client
            .try_subscribe(self.intake.topic.clone(), QoS::AtLeastOnce)
            .map_err(|e| format!("subscribing to commands: {e}"))
    }

    pub(super) fn received(&self, publish: Message, client: &Client) {
        let topic = publish.topic();
        if topic != self.intake.topic {
            tracing::warn!(%topic, "message on a topic the cell does not take");
            let _ = client.try_ack(&publish);
            return;
        }
        let acks = self.acks.clone();
        let generation = self.generation;
        let payload = publish.payload().to_vec();
        let done = move |_: &crate::orders::Reply| {
            let _ = acks.send(Ack {
                generation,
                publish,
            });
        };
        let cmd = CommandIn::new(payload, CommandSource::Mqtt).on_reply(done);
        // The engine takes commands as fast as it commits; if it is that far behind, the
        // message stays unacknowledged and the broker holds it.
        if let Err(e) = self.intake.engine.try_send(cmd) {
            tracing::error!(
                "command dropped before the engine took it, the broker will re-send it: {e}"
            );
        }
    }

    pub(super) fn acknowledge(&self, ack: Ack, client: &Client) {
        if ack.generation == self.generation {
            if let Err(e) = client.try_ack(&ack.publish) {
                tracing::warn!("acknowledging a command: {e}");
            }
        }
    }
}
