//! Commands from MOM: the cell subscribes to its command topic and hands every message to the
//! engine. A message is acknowledged to the broker only once the engine has committed its effect
//! and reply; if the process dies first, the broker delivers it again (persistent session) and
//! the engine answers the repeat without applying it twice.
//!
//! What the cell cannot take yet should stay with the broker: under MQTT 5 the CONNECT's
//! Receive Maximum ([`RECEIVE_MAXIMUM`]) asks the broker to send no more unacknowledged
//! commands than that, and the engine's queue holds more. Under 3.1.1 only the broker's own
//! in-flight limit bounds them, and Mosquitto 2.0.11 was measured sending a 2,000-command flood
//! past the Receive Maximum too (tests/mqtt/commands.rs). So commands the engine's queue has no room
//! for wait here, in order, in a backlog bounded in bytes ([`BACKLOG_BYTES`]); one that finds
//! it full is answered `busy` and acknowledged, never dropped without a word.
//!
//! A retained message is never applied: it is an old command the broker hands to every new
//! subscriber. MQTT 5 subscribes with "do not send retained"; under 3.1.1 the flag is checked.

use super::link::{Client, Message};
use crate::cell::CommandIn;
use crate::logging::{field, field_bytes, Throttle};
use crate::orders::{CommandSource, Reply, ReplyStatus, ResponseRoute, MAX_PAYLOAD};
use rumqttc::QoS;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

/// MQTT 5 Receive Maximum: the commands the broker may have sent and the cell not yet
/// acknowledged. Below the engine's command queue, which the operator's socket and Sparkplug
/// share, so that the queue always has room for what the broker sends.
pub const RECEIVE_MAXIMUM: u16 = 32;

/// Payload bytes of the commands held here while the engine's queue is full (each at most
/// 64 KiB). Over it a command is answered `busy`.
const BACKLOG_BYTES: usize = 16 << 20;

/// A committed command's message, to acknowledge on the connection it came from, and its reply
/// (a copy goes to an MQTT 5 Response Topic).
pub struct Ack {
    generation: u64,
    publish: Message,
    reply: Reply,
}

#[derive(Clone)]
pub struct CommandIntake {
    pub topic: String,
    /// Where a `busy` answer goes: not the response topic, whose messages are all events
    /// with a sequence number (docs/COMMANDS.md).
    pub busy: String,
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
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            unacked: VecDeque::new(),
        }
    }
}

/// Retained commands already reported, so that each is logged once, not at every reconnect.
static RETAINED_SEEN: Mutex<Vec<u64>> = Mutex::new(Vec::new());
static WARNINGS: Mutex<Throttle> = Mutex::new(Throttle::new(Duration::from_secs(60), 10));

/// The intake for one connection. Packet ids belong to a connection: an acknowledgement for a
/// message of an earlier connection is dropped (the broker re-sends that message anyway).
pub struct SessionIntake {
    intake: CommandIntake,
    generation: u64,
    acks: mpsc::UnboundedSender<Ack>,
    /// Commands the engine's queue had no room for, in the order they came, and their bytes.
    backlog: VecDeque<CommandIn>,
    backlog_bytes: usize,
    /// Committed commands whose acknowledgement found the client's request queue full: sent
    /// at the next turn, so that the broker is not left holding them until a reconnect.
    unacked: VecDeque<Message>,
}

impl SessionIntake {
    pub(super) fn subscribe(&self, client: &Client) -> Result<(), String> {
        client
            .try_subscribe_commands(self.intake.topic.clone())
            .map_err(|e| format!("subscribing to commands: {e}"))
    }

    pub(super) fn received(&mut self, publish: Message, client: &Client) {
        let topic = publish.topic();
        if topic != self.intake.topic {
            warn(
                || tracing::warn!(topic = %field(&topic), "message on a topic the cell does not take"),
            );
            self.unacked.push_back(publish);
            self.hand_on(client);
            return;
        }
        if publish.retained() {
            retained_once(publish.payload());
            self.unacked.push_back(publish);
            self.hand_on(client);
            return;
        }
        let cmd = self.command_of(publish);
        self.backlog_bytes += cmd.payload.len();
        self.backlog.push_back(cmd);
        self.hand_on(client);
    }

    /// A command as the engine takes it, with what MQTT 5 says of it.
    fn command_of(&self, publish: Message) -> CommandIn {
        let payload = publish.payload();
        // Over the limit is rejected by the engine unread: it needs only to know that.
        let kept = payload.len().min(MAX_PAYLOAD + 1);
        let mut cmd = CommandIn::new(payload[..kept].to_vec(), CommandSource::Mqtt);
        let props = publish.properties();
        cmd.expires_ms = props
            .expiry_s
            .map(|s| cmd.received_ms.saturating_add(i64::from(s) * 1000));
        cmd.user = props.user.as_deref().map(field);
        cmd.respond_to = props.response_topic.and_then(|topic| {
            match response_topic_refusal(&topic, &self.intake.topic) {
                None => Some(ResponseRoute {
                    topic,
                    correlation_data: props.correlation_data.clone(),
                }),
                Some(why) => {
                    warn(
                        || tracing::warn!(topic = %field(&topic), "Response Topic not used: {why}"),
                    );
                    None
                }
            }
        });
        let (acks, generation) = (self.acks.clone(), self.generation);
        let publish = publish.emptied();
        cmd.on_reply(move |reply: &Reply| {
            let _ = acks.send(Ack {
                generation,
                publish,
                reply: reply.clone(),
            });
        })
    }

    /// Hands the backlog to the engine as far as its queue has room; what is over the backlog
    /// is answered `busy`.
    pub(super) fn hand_on(&mut self, client: &Client) {
        while let Some(msg) = self.unacked.pop_front() {
            if client.try_ack(&msg).is_err() {
                self.unacked.push_front(msg);
                break;
            }
        }
        while let Some(cmd) = self.backlog.pop_front() {
            let bytes = cmd.payload.len();
            match self.intake.engine.try_send(cmd) {
                Ok(()) => self.backlog_bytes -= bytes,
                Err(mpsc::error::TrySendError::Full(cmd)) => {
                    self.backlog.push_front(cmd);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
        while self.backlog_bytes > BACKLOG_BYTES {
            let cmd = self.backlog.pop_back().expect("over the backlog");
            self.backlog_bytes -= cmd.payload.len();
            self.busy(cmd, client);
        }
    }

    /// Answers `busy` on the response topic (QoS 0: it is not an event, and the command was
    /// not applied, so the sender's retry is the delivery) and acknowledges the message.
    fn busy(&self, cmd: CommandIn, client: &Client) {
        let id = crate::orders::parse_command(&cmd.payload)
            .ok()
            .map(|c| c.correlation_id);
        let mut reply = Reply::refused(
            None,
            ReplyStatus::Busy,
            "the cell's command queue is full; send it again later",
        );
        reply.correlation_id = id;
        warn(|| {
            tracing::warn!("command answered busy: the engine's queue and the backlog are full")
        });
        if let Some(route) = &cmd.respond_to {
            reply.response_topic = Some(route.topic.clone());
            reply.correlation_data = route
                .correlation_data
                .as_ref()
                .map(|d| d.iter().map(|b| format!("{b:02x}")).collect());
        }
        let text = serde_json::to_vec(&reply).expect("a reply serializes");
        let _ = client.try_publish(self.intake.busy.clone(), QoS::AtMostOnce, false, text);
        // Acknowledged with the answer given (the done callback also sends any Response Topic
        // copy).
        if let Some(done) = cmd.done {
            done(&reply);
        }
    }

    pub(super) fn acknowledge(&mut self, ack: Ack, client: &Client) {
        if ack.generation != self.generation {
            return;
        }
        if let Some(topic) = &ack.reply.response_topic {
            respond(client, topic, &ack.reply);
        }
        self.unacked.push_back(ack.publish);
        self.hand_on(client);
    }
}

/// MQTT 5 request/response: a copy of the reply on the request's Response Topic with its
/// Correlation Data, QoS 0 (the command_response event on the cell's response topic is the
/// one delivered at least once; a requester that missed the copy asks again with the same
/// correlation id and gets the same reply, marked duplicate).
fn respond(client: &Client, topic: &str, reply: &Reply) {
    let data = reply.correlation_data.as_deref().and_then(unhex);
    let mut copy = reply.clone();
    copy.response_topic = None;
    copy.correlation_data = None;
    let text = serde_json::to_vec(&copy).expect("a reply serializes");
    if let Err(e) = client.try_publish_response(topic.to_string(), text, data) {
        tracing::warn!(topic = %field(topic), "publishing a reply on the Response Topic: {e}");
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Why a Response Topic is not published to: anyone who may publish a command could
/// otherwise make the cell publish on any topic its login may write.
fn response_topic_refusal(topic: &str, commands: &str) -> Option<&'static str> {
    if topic.is_empty() || topic.len() > 256 {
        Some("expected 1 to 256 bytes")
    } else if topic.contains(['+', '#', '\0']) {
        Some("a topic name has no wildcards")
    } else if topic.starts_with('$') || topic.starts_with("spBv1.0/") {
        Some("not a topic for replies")
    } else if topic == commands {
        Some("that is the cell's command topic")
    } else {
        None
    }
}

fn retained_once(payload: &[u8]) {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut h);
    let key = h.finish();
    let mut seen = RETAINED_SEEN.lock().unwrap_or_else(|e| e.into_inner());
    if seen.contains(&key) {
        return;
    }
    if seen.len() >= 1024 {
        seen.remove(0);
    }
    seen.push(key);
    tracing::warn!(
        payload = %field_bytes(payload),
        "a retained message on the command topic is not applied: a command is taken only as it is sent (clear it with an empty retained publish)"
    );
}

fn warn(f: impl FnOnce()) {
    let held = WARNINGS.lock().unwrap_or_else(|e| e.into_inner()).allow();
    match held {
        Some(0) => f(),
        Some(n) => {
            f();
            tracing::warn!(
                held_back = n,
                "similar warnings about commands were held back"
            );
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_topic_cannot_aim_at_commands_or_wildcards() {
        let commands = "mes/e/s/a/l/c/commands";
        assert!(response_topic_refusal("mom/replies/42", commands).is_none());
        assert!(response_topic_refusal(commands, commands).is_some());
        assert!(response_topic_refusal("mom/#", commands).is_some());
        assert!(response_topic_refusal("$SYS/x", commands).is_some());
        assert!(response_topic_refusal("spBv1.0/g/NCMD/n", commands).is_some());
        assert_eq!(unhex("00ff10"), Some(vec![0, 255, 16]));
    }
}
