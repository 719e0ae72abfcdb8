//! What one connection of the sink hears from its MQTT event loop, what each publish carries to
//! its acknowledgement, and how a connection ends.

use super::metrics::REBIRTH;
use super::payload;
use rumqttc::{Event, EventLoop, Outgoing, Packet};
use std::collections::HashMap;
use tokio::sync::mpsc;

pub(super) enum Ended {
    Shutdown,
    /// The primary host went offline: NDEATH sent, reconnect and wait for it.
    HostOffline,
    Lost(String),
    /// The broker was never reached (TCP or TLS failed): no CONNECT packet went out, so its
    /// bdSeq was not used (Sparkplug 3.0: bdSeq increments "on every new MQTT CONNECT packet").
    Unreached(String),
}

/// Whether an event loop error came before any CONNECT packet could be written: the socket or
/// the TLS handshake failed.
fn before_connect(e: &rumqttc::ConnectionError) -> bool {
    use std::io::ErrorKind::*;
    match e {
        rumqttc::ConnectionError::Tls(_) => true,
        rumqttc::ConnectionError::Io(io) => matches!(
            io.kind(),
            ConnectionRefused | NotFound | AddrNotAvailable | HostUnreachable | NetworkUnreachable
        ),
        _ => false,
    }
}

/// Drives the event loop, handing on what the session needs, until its first error.
pub(super) async fn poll(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Result<Ev, String>>) {
    let mut acked = false;
    loop {
        let ev = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                acked = true;
                Ev::ConnAck
            }
            Ok(Event::Incoming(Packet::PubAck(a))) => Ev::Acked(a.pkid),
            Ok(Event::Incoming(Packet::Publish(p))) => Ev::Message(Incoming {
                retained: p.retain,
                topic: p.topic,
                payload: p.payload.to_vec(),
            }),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Ev::Written(pkid),
            Ok(Event::Incoming(Packet::Disconnect)) => Ev::Closed,
            Ok(_) => continue,
            Err(e) if !acked && before_connect(&e) => {
                let _ = tx.send(Ok(Ev::Unreached(e.to_string())));
                return;
            }
            Err(e) => {
                let _ = tx.send(Err(e.to_string()));
                return;
            }
        };
        if tx.send(Ok(ev)).is_err() {
            return;
        }
    }
}

/// What the session hears from its event loop.
pub(super) enum Ev {
    ConnAck,
    /// The event loop ended before a CONNECT went out (see [`Ended::Unreached`]).
    Unreached(String),
    Written(u16),
    Acked(u16),
    Message(Incoming),
    Closed,
}

/// A publish from the broker. Under MQTT 3.1.1 a broker sets `retain` only on a message it
/// sends because of a new subscription (a stored one), never on one forwarded live.
pub(super) struct Incoming {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retained: bool,
}

/// What a publish carries, to be marked done at its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Row {
    /// An event, by `seq`.
    Event(u64),
    /// A batch of process values, by `batch`.
    Values(u64),
}

/// A publish handed to the client: the row it carries, if any (births carry none).
pub(super) type Queued = Option<Row>;

/// Publishes written and waiting for their PUBACK, by packet id.
pub(super) type Inflight = HashMap<u16, Queued>;

/// Is this NCMD a rebirth request?
pub(super) fn asks_rebirth(bytes: &[u8]) -> bool {
    payload::decode(bytes).is_some_and(|p| {
        p.metrics.iter().any(|m| {
            m.name.as_deref() == Some(REBIRTH)
                && matches!(
                    m.value,
                    Some(super::proto::payload::metric::Value::BooleanValue(true))
                )
        })
    })
}

/// A primary host's STATE message (Sparkplug 3.0: `{"online": bool, "timestamp": ms}`).
pub(super) fn host_state(bytes: &[u8]) -> Option<(bool, i64)> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    Some((v["online"].as_bool()?, v["timestamp"].as_i64().unwrap_or(0)))
}
