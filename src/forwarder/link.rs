//! One face for rumqttc's two clients: MQTT 5 (`rumqttc::v5`, the default) and MQTT 3.1.1
//! (`rumqttc`, for old brokers). The session sees only what it needs: connects, commands,
//! publishes written, acknowledgements, and, under MQTT 5, the broker's refusals.
//!
//! Under MQTT 5 a PUBACK (or PUBREC) carries a reason code; 0x80 and above means the broker
//! did not take the message (not authorized, quota exceeded, …). rumqttc logs such a reason
//! and yields the packet as it came, so the refusal is read here. MQTT 3.1.1 has no way to say
//! "refused": a broker acknowledges a publish it drops (Mosquitto does so for a publish its ACL
//! denies), and nothing in the client can tell.

use rumqttc::v5::mqttbytes::v5 as p5;
use rumqttc::{Outgoing, QoS};

/// The client options of either protocol. One value per runtime, cloned once per connection:
/// the size difference between the variants does not matter.
#[derive(Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Options {
    V5(rumqttc::v5::MqttOptions),
    V311(rumqttc::MqttOptions),
}

impl Options {
    /// The Last Will's topic: the cell's status topic.
    pub fn status_topic(&self) -> Option<String> {
        let topic = match self {
            Options::V5(o) => o.last_will()?.topic,
            Options::V311(o) => o.last_will()?.topic.into(),
        };
        Some(String::from_utf8_lossy(&topic).into_owned())
    }

    pub fn is_v5(&self) -> bool {
        matches!(self, Options::V5(_))
    }
}

pub enum Client {
    V5(rumqttc::v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

pub enum EventLoop {
    V5(Box<rumqttc::v5::EventLoop>),
    V311(Box<rumqttc::EventLoop>),
}

/// A broker's "no" to a publish: a reason code of 0x80 or above in a PUBACK or PUBREC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: u8,
    /// snake_case, for the metric's label.
    pub name: &'static str,
    /// The broker's own words (MQTT 5 reason string), if it sent any.
    pub reason_string: Option<String>,
}

impl Refusal {
    /// "not authorized (0x87)".
    pub fn describe(&self) -> String {
        format!("{} (0x{:02x})", self.name.replace('_', " "), self.code)
    }
}

/// An incoming command message, with what it takes to acknowledge it.
pub enum Message {
    V5(p5::Publish),
    V311(rumqttc::Publish),
}

impl Message {
    pub fn topic(&self) -> String {
        match self {
            Message::V5(p) => String::from_utf8_lossy(&p.topic).into_owned(),
            Message::V311(p) => p.topic.clone(),
        }
    }

    pub fn payload(&self) -> &[u8] {
        match self {
            Message::V5(p) => &p.payload,
            Message::V311(p) => &p.payload,
        }
    }

    /// The message without its payload: what its acknowledgement needs (packet id, QoS), so a
    /// command waiting for its commit holds its payload once, not twice.
    pub fn emptied(self) -> Message {
        match self {
            Message::V5(mut p) => {
                p.payload = Default::default();
                Message::V5(p)
            }
            Message::V311(mut p) => {
                p.payload = Default::default();
                Message::V311(p)
            }
        }
    }

    /// Sent because it was retained on the topic, not as it was published.
    pub fn retained(&self) -> bool {
        match self {
            Message::V5(p) => p.retain,
            Message::V311(p) => p.retain,
        }
    }

    /// What MQTT 5 says of the message besides its payload (nothing under 3.1.1).
    pub fn properties(&self) -> MessageProps {
        let Message::V5(p) = self else {
            return MessageProps::default();
        };
        let Some(props) = &p.properties else {
            return MessageProps::default();
        };
        MessageProps {
            expiry_s: props.message_expiry_interval,
            user: props
                .user_properties
                .iter()
                .find(|(k, _)| k == "user")
                .map(|(_, v)| v.clone()),
            response_topic: props.response_topic.clone(),
            correlation_data: props.correlation_data.as_ref().map(|d| d.to_vec()),
        }
    }
}

/// An incoming message's MQTT 5 properties that a command uses.
#[derive(Debug, Default)]
pub struct MessageProps {
    /// Message Expiry Interval: what is left of it when the broker sent the message.
    pub expiry_s: Option<u32>,
    /// The user property `user`: who the sender says it is.
    pub user: Option<String>,
    pub response_topic: Option<String>,
    pub correlation_data: Option<Vec<u8>>,
}

/// What the session acts on; everything else is `Other`.
pub enum Ev {
    ConnAck {
        session_present: bool,
    },
    Command(Message),
    /// A QoS 1/2 publish written to the connection, with the packet id it got (0: QoS 0).
    Written(u16),
    /// PUBACK: `refusal` is set when its reason code is 0x80 or above.
    PubAck {
        pkid: u16,
        refusal: Option<Refusal>,
    },
    /// PUBREC: the first half of QoS 2's handshake; a refusal ends it.
    PubRec {
        pkid: u16,
        refusal: Option<Refusal>,
    },
    PubComp {
        pkid: u16,
    },
    /// SUBACK: `refused` says why when the broker refused the subscription (the command topic).
    SubAck {
        refused: Option<String>,
    },
    Disconnect(String),
    Other,
}

pub fn new(options: &Options, cap: usize) -> (Client, EventLoop) {
    match options {
        Options::V5(o) => {
            let mut o = o.clone();
            o.set_network_options(no_delay());
            let (c, e) = rumqttc::v5::AsyncClient::new(o, cap);
            (Client::V5(c), EventLoop::V5(Box::new(e)))
        }
        Options::V311(o) => {
            let (c, mut e) = rumqttc::AsyncClient::new(o.clone(), cap);
            e.set_network_options(no_delay());
            (Client::V311(c), EventLoop::V311(Box::new(e)))
        }
    }
}

/// rumqttc leaves Nagle's algorithm on: a PUBLISH written while the broker's ACK of the previous
/// one is outstanding would wait for it (up to the peer's delayed-ACK timer, ~40 ms on Linux).
/// Events are small and each is written on its own, so latency pays for Nagle and nothing gains.
pub fn no_delay() -> rumqttc::NetworkOptions {
    let mut n = rumqttc::NetworkOptions::new();
    n.set_tcp_nodelay(true);
    n
}

fn qos5(q: QoS) -> rumqttc::v5::mqttbytes::QoS {
    match q {
        QoS::AtMostOnce => rumqttc::v5::mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
        QoS::ExactlyOnce => rumqttc::v5::mqttbytes::QoS::ExactlyOnce,
    }
}

impl Client {
    pub fn try_publish(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) -> Result<(), String> {
        let payload: Vec<u8> = payload.into();
        match self {
            Client::V5(c) => c
                .try_publish(topic, qos5(qos), retain, payload)
                .map_err(|e| e.to_string()),
            Client::V311(c) => c
                .try_publish(topic, qos, retain, payload)
                .map_err(|e| e.to_string()),
        }
    }

    /// The cell's retained status at QoS 0; under MQTT 5 with the user property `broker`
    /// naming the broker it goes to (3.1.1 has no properties).
    pub fn try_publish_status(
        &self,
        topic: String,
        status: String,
        broker: &str,
    ) -> Result<(), String> {
        match self {
            Client::V5(c) => {
                let props = p5::PublishProperties {
                    user_properties: vec![("broker".into(), broker.into())],
                    ..Default::default()
                };
                c.try_publish_with_properties(topic, qos5(QoS::AtMostOnce), true, status, props)
                    .map_err(|e| e.to_string())
            }
            Client::V311(_) => self.try_publish(topic, QoS::AtMostOnce, true, status),
        }
    }

    pub fn try_subscribe(&self, topic: String, qos: QoS) -> Result<(), String> {
        match self {
            Client::V5(c) => c.try_subscribe(topic, qos5(qos)).map_err(|e| e.to_string()),
            Client::V311(c) => c.try_subscribe(topic, qos).map_err(|e| e.to_string()),
        }
    }

    /// Subscribes to the command topic at QoS 1; under MQTT 5 asking the broker not to send
    /// the retained message (retain handling 2).
    pub fn try_subscribe_commands(&self, topic: String) -> Result<(), String> {
        match self {
            Client::V5(c) => {
                let filter = p5::Filter {
                    retain_forward_rule: p5::RetainForwardRule::Never,
                    ..p5::Filter::new(topic, qos5(QoS::AtLeastOnce))
                };
                c.try_subscribe_many([filter]).map_err(|e| e.to_string())
            }
            Client::V311(c) => c
                .try_subscribe(topic, QoS::AtLeastOnce)
                .map_err(|e| e.to_string()),
        }
    }

    /// A reply at QoS 0 on a request's Response Topic, with its Correlation Data (MQTT 5).
    pub fn try_publish_response(
        &self,
        topic: String,
        payload: Vec<u8>,
        correlation_data: Option<Vec<u8>>,
    ) -> Result<(), String> {
        let Client::V5(c) = self else {
            return Err("a Response Topic is MQTT 5".into());
        };
        let props = p5::PublishProperties {
            correlation_data: correlation_data.map(Into::into),
            ..Default::default()
        };
        c.try_publish_with_properties(topic, qos5(QoS::AtMostOnce), false, payload, props)
            .map_err(|e| e.to_string())
    }

    pub fn try_ack(&self, msg: &Message) -> Result<(), String> {
        match (self, msg) {
            (Client::V5(c), Message::V5(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            (Client::V311(c), Message::V311(p)) => c.try_ack(p).map_err(|e| e.to_string()),
            _ => Err("a message acknowledged on a client of the other protocol".into()),
        }
    }

    pub async fn disconnect(&self) {
        let _ = match self {
            Client::V5(c) => c.disconnect().await.map_err(|e| e.to_string()),
            Client::V311(c) => c.disconnect().await.map_err(|e| e.to_string()),
        };
    }
}

impl EventLoop {
    /// Drives the event loop, handing on every event, until its first error (which is handed
    /// on too) or until nobody listens.
    pub async fn drive(mut self, tx: tokio::sync::mpsc::UnboundedSender<Result<Ev, String>>) {
        loop {
            let ev = self.poll().await;
            let failed = ev.is_err();
            if tx.send(ev).is_err() || failed {
                return;
            }
        }
    }

    pub async fn poll(&mut self) -> Result<Ev, String> {
        match self {
            EventLoop::V5(e) => e.poll().await.map(ev5).map_err(|e| e.to_string()),
            EventLoop::V311(e) => e.poll().await.map(ev311).map_err(|e| e.to_string()),
        }
    }
}

fn ev311(ev: rumqttc::Event) -> Ev {
    use rumqttc::{Event, Packet};
    match ev {
        Event::Incoming(Packet::ConnAck(a)) => Ev::ConnAck {
            session_present: a.session_present,
        },
        Event::Incoming(Packet::Publish(p)) => Ev::Command(Message::V311(p)),
        Event::Outgoing(Outgoing::Publish(pkid)) => Ev::Written(pkid),
        Event::Incoming(Packet::PubAck(a)) => Ev::PubAck {
            pkid: a.pkid,
            refusal: None,
        },
        Event::Incoming(Packet::PubRec(r)) => Ev::PubRec {
            pkid: r.pkid,
            refusal: None,
        },
        Event::Incoming(Packet::PubComp(c)) => Ev::PubComp { pkid: c.pkid },
        Event::Incoming(Packet::SubAck(a)) => Ev::SubAck {
            refused: a
                .return_codes
                .iter()
                .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                .then(|| "failure (0x80)".to_string()),
        },
        Event::Incoming(Packet::Disconnect) => Ev::Disconnect("broker sent DISCONNECT".into()),
        _ => Ev::Other,
    }
}

fn ev5(ev: rumqttc::v5::Event) -> Ev {
    use rumqttc::v5::{Event, Incoming};
    match ev {
        Event::Incoming(Incoming::ConnAck(a)) => Ev::ConnAck {
            session_present: a.session_present,
        },
        Event::Incoming(Incoming::Publish(p)) => Ev::Command(Message::V5(p)),
        Event::Outgoing(Outgoing::Publish(pkid)) => Ev::Written(pkid),
        Event::Incoming(Incoming::PubAck(a)) => Ev::PubAck {
            pkid: a.pkid,
            refusal: puback_refusal(&a.reason).map(|(code, name)| Refusal {
                code,
                name,
                reason_string: broker_words(a.properties.and_then(|p| p.reason_string)),
            }),
        },
        Event::Incoming(Incoming::PubRec(r)) => Ev::PubRec {
            pkid: r.pkid,
            refusal: pubrec_refusal(&r.reason).map(|(code, name)| Refusal {
                code,
                name,
                reason_string: broker_words(r.properties.and_then(|p| p.reason_string)),
            }),
        },
        Event::Incoming(Incoming::PubComp(c)) => Ev::PubComp { pkid: c.pkid },
        Event::Incoming(Incoming::SubAck(a)) => Ev::SubAck {
            refused: a.return_codes.iter().find_map(suback_refusal).map(|why| {
                match broker_words(a.properties.and_then(|p| p.reason_string)) {
                    Some(words) => format!("{why} \"{words}\""),
                    None => why.to_string(),
                }
            }),
        },
        Event::Incoming(Incoming::Disconnect(d)) => Ev::Disconnect(format!(
            "broker sent DISCONNECT: {:?}{}",
            d.reason_code,
            broker_words(d.properties.and_then(|p| p.reason_string))
                .map(|s| format!(" ({s})"))
                .unwrap_or_default()
        )),
        _ => Ev::Other,
    }
}

/// An MQTT 5 reason string, the broker's own words: they end up in log lines, the status topic
/// and /health, so escaped and cut like any text from the network.
fn broker_words(s: Option<String>) -> Option<String> {
    s.map(|s| crate::logging::field(&s))
}

/// The code and name of a PUBACK reason of 0x80 or above (MQTT 5, 3.4.2.1); None for success
/// and "no matching subscribers" (0x10: taken, just nobody listening).
pub fn puback_refusal(r: &p5::PubAckReason) -> Option<(u8, &'static str)> {
    use p5::PubAckReason as R;
    Some(match r {
        R::Success | R::NoMatchingSubscribers => return None,
        R::UnspecifiedError => (0x80, "unspecified_error"),
        R::ImplementationSpecificError => (0x83, "implementation_specific_error"),
        R::NotAuthorized => (0x87, "not_authorized"),
        R::TopicNameInvalid => (0x90, "topic_name_invalid"),
        R::PacketIdentifierInUse => (0x91, "packet_identifier_in_use"),
        R::QuotaExceeded => (0x97, "quota_exceeded"),
        R::PayloadFormatInvalid => (0x99, "payload_format_invalid"),
    })
}

/// A SUBACK reason code of 0x80 or above, said for a person (MQTT 5, 3.9.3).
fn suback_refusal(r: &p5::SubscribeReasonCode) -> Option<&'static str> {
    use p5::SubscribeReasonCode as R;
    Some(match r {
        R::Success(_) => return None,
        R::Failure | R::Unspecified => "unspecified error (0x80)",
        R::ImplementationSpecific => "implementation specific error (0x83)",
        R::NotAuthorized => "not authorized (0x87)",
        R::TopicFilterInvalid => "topic filter invalid (0x8f)",
        R::PkidInUse => "packet identifier in use (0x91)",
        R::QuotaExceeded => "quota exceeded (0x97)",
        R::SharedSubscriptionsNotSupported => "shared subscriptions not supported (0x9e)",
        R::SubscriptionIdNotSupported => "subscription identifiers not supported (0xa1)",
        R::WildcardSubscriptionsNotSupported => "wildcard subscriptions not supported (0xa2)",
    })
}

/// The same for a PUBREC (its reason codes are those of PUBACK).
pub fn pubrec_refusal(r: &p5::PubRecReason) -> Option<(u8, &'static str)> {
    use p5::PubRecReason as R;
    Some(match r {
        R::Success | R::NoMatchingSubscribers => return None,
        R::UnspecifiedError => (0x80, "unspecified_error"),
        R::ImplementationSpecificError => (0x83, "implementation_specific_error"),
        R::NotAuthorized => (0x87, "not_authorized"),
        R::TopicNameInvalid => (0x90, "topic_name_invalid"),
        R::PacketIdentifierInUse => (0x91, "packet_identifier_in_use"),
        R::QuotaExceeded => (0x97, "quota_exceeded"),
        R::PayloadFormatInvalid => (0x99, "payload_format_invalid"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_of_0x80_and_above_are_refusals() {
        assert_eq!(puback_refusal(&p5::PubAckReason::Success), None);
        assert_eq!(
            puback_refusal(&p5::PubAckReason::NoMatchingSubscribers),
            None
        );
        assert_eq!(
            puback_refusal(&p5::PubAckReason::NotAuthorized),
            Some((0x87, "not_authorized"))
        );
        assert_eq!(
            pubrec_refusal(&p5::PubRecReason::QuotaExceeded),
            Some((0x97, "quota_exceeded"))
        );
        let r = Refusal {
            code: 0x87,
            name: "not_authorized",
            reason_string: None,
        };
        assert_eq!(r.describe(), "not authorized (0x87)");
    }
}
