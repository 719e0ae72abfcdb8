//! `[mqtt]`: its brokers (brokers.rs) and the session's settings, the same on every broker.

use super::brokers;
use crate::config::{Broker, CellFile, Problem, Seg};

/// The brokers whose entries check, in order, and a problem for every setting that does not.
pub(super) fn check(c: &CellFile, p: &mut Vec<Problem>) -> Vec<Broker> {
    let m = &c.mqtt;
    let brokers = brokers::brokers(m, p);
    if m.qos == 2 {
        // Decided after reading rumqttc 0.25's source (docs/RELIABILITY.md, "Why not QoS 2").
        p.push(Problem::at(
            path!["mqtt", "qos"],
            "QoS 2 is refused: the MQTT client (rumqttc 0.25) keeps the packet ids awaiting PUBCOMP in memory only, so after a restart it cannot re-send their PUBRELs and may reuse an id the broker still holds; the broker then drops the new event as a duplicate while its PUBCOMP marks it delivered. Use qos = 1 (MOM de-duplicates on event_id)",
        ));
    } else if m.qos != 1 {
        p.push(Problem::at(
            path!["mqtt", "qos"],
            format!(
                "expected QoS 1 (delivery is at-least-once and needs an acknowledgement), found {}",
                m.qos
            ),
        ));
    }
    if m.protocol_version == crate::config::MqttVersion::V5 && m.session_expiry_s == 0 {
        p.push(Problem::at(
            path!["mqtt", "session_expiry_s"],
            "expected at least 1 s: with 0 an MQTT 5 broker ends the cell's session, and drops the commands queued for it, at every disconnect",
        ));
    }
    if let Some(id) = &m.client_id {
        if id.is_empty() || id.len() > 128 {
            p.push(Problem::at(
                path!["mqtt", "client_id"],
                "expected a client id of 1 to 128 characters",
            ));
        }
    }
    if m.topic_root.is_empty()
        || m.topic_root
            .split('/')
            .any(|l| super::topic_level_problem(l).is_some())
    {
        p.push(Problem::at(
            path!["mqtt", "topic_root"],
            "expected topic levels separated by '/', none empty, no wildcards",
        ));
    }
    if m.inflight == 0 {
        p.push(Problem::at(
            path!["mqtt", "inflight"],
            "expected at least 1 publish in flight",
        ));
    }
    if m.keep_alive_s < 5 {
        p.push(Problem::at(
            path!["mqtt", "keep_alive_s"],
            "expected a keep-alive of at least 5 s (rumqttc's minimum)",
        ));
    } else if m.keep_alive_s > u16::MAX as u64 {
        // The CONNECT packet carries it in 16 bits: more would be cut to a different value.
        p.push(Problem::at(
            path!["mqtt", "keep_alive_s"],
            format!(
                "expected a keep-alive of at most 65535 s, found {}",
                m.keep_alive_s
            ),
        ));
    }
    brokers
}
