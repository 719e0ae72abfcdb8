//! The cell's outputs to MOM, each a sink the store delivers through: the JSON events, the JSON
//! process values and the Sparkplug B session. `/health`, `/metrics` and the status line show
//! each sink the config turns on (and only those): connected, how much waits for it, when its
//! broker last acknowledged something, what it refused.

use super::Ops;
use crate::config::CellConfig;
use crate::event::rfc3339_ms;
use serde_json::{json, Value};

/// Which sinks a config turns on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Enabled {
    /// The JSON events forwarder (and MOM's commands): off only in Sparkplug-only mode.
    pub events: bool,
    /// The JSON process values forwarder: with JSON on and a value to publish.
    pub values: bool,
    pub sparkplug: bool,
}

impl Enabled {
    pub fn of(config: &CellConfig) -> Enabled {
        let sparkplug = config.sparkplug.as_ref().is_some_and(|s| s.enabled);
        let events = config
            .sparkplug
            .as_ref()
            .is_none_or(|s| !s.enabled || s.json);
        Enabled {
            events,
            values: events && !config.values.is_empty(),
            sparkplug,
        }
    }
}

/// One sink as the supervisor last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    pub name: &'static str,
    pub connected: bool,
    /// What waits for this sink: events (JSON events, Sparkplug), values (JSON values). None
    /// until the store has been read.
    pub depth: Option<u64>,
    pub depth_unit: &'static str,
    /// When the first event waiting was made (UTC ms).
    pub oldest_waiting_ms: Option<i64>,
    /// When the sink's broker last acknowledged a publication (UTC ms), since the start.
    pub last_ack_ms: Option<i64>,
    /// Publications the broker refused that wait to be sent again (MQTT 5 only).
    pub refused_held: u64,
    /// The url of the broker (Sparkplug: server) of the sink's last connection; None for the
    /// values, which follow the events' broker.
    pub broker: Option<String>,
}

/// The enabled sinks, from the probes and the supervisor's last reading of the store.
pub fn sinks(ops: &Ops) -> Vec<Sink> {
    let on = ops.sinks_enabled();
    let view = ops.store();
    let mut out = Vec::new();
    if on.events {
        let fwd = ops.forwarder();
        out.push(Sink {
            name: "events",
            connected: fwd.counts().connected,
            depth: view.as_ref().map(|v| v.stats.depth),
            depth_unit: "events",
            oldest_waiting_ms: view.as_ref().and_then(|v| v.stats.oldest_undelivered_ts),
            last_ack_ms: fwd.last_ack_ms(),
            refused_held: fwd.refusal().map_or(0, |r| r.0),
            broker: fwd.broker().map(|b| b.0),
        });
    }
    if on.values {
        out.push(Sink {
            name: "values",
            connected: ops.values().connected(),
            depth: view.as_ref().map(|v| v.stats.values_held),
            depth_unit: "values",
            oldest_waiting_ms: None,
            last_ack_ms: ops.values().last_ack_ms(),
            refused_held: 0,
            broker: None,
        });
    }
    if on.sparkplug {
        let sp = ops.sparkplug();
        let behind = view.as_ref().and_then(|v| v.sparkplug_behind);
        out.push(Sink {
            name: "sparkplug",
            connected: sp.counts().connected,
            depth: behind.map(|b| b.0),
            depth_unit: "events",
            oldest_waiting_ms: behind.and_then(|b| b.1),
            last_ack_ms: sp.last_ack_ms(),
            refused_held: 0,
            broker: sp.server().map(|s| s.0),
        });
    }
    out
}

/// The sinks in `/health`, and a problem for a sink whose oldest waiting event is older than
/// the limit (the JSON events' is the outbox's, said there already).
pub fn health(ops: &Ops, now_ms: i64, problems: &mut Vec<String>) -> Value {
    let limit = ops.max_undelivered_age().as_secs_f64();
    let sinks = sinks(ops);
    let list: Vec<Value> = sinks
        .iter()
        .map(|s| {
            let age = s.oldest_waiting_ms.map(|t| (now_ms - t).max(0) as f64 / 1000.0);
            if let Some(a) = age.filter(|a| *a > limit && s.name != "events") {
                problems.push(format!(
                    "sink {}: the oldest event its broker has not acknowledged is {a:.0} s old (limit {limit:.0} s)",
                    s.name
                ));
            }
            let mut sink = json!({
                "name": s.name,
                "connected": s.connected,
                "depth": s.depth,
                "depth_unit": s.depth_unit,
                "oldest_waiting_age_s": age,
                "last_acknowledged": s.last_ack_ms.map(rfc3339_ms),
                "refused_held": s.refused_held,
            });
            if let Some(url) = &s.broker {
                sink["broker"] = json!(url);
            }
            sink
        })
        .collect();
    Value::Array(list)
}

/// The sinks in the status line (STATUS=), beside the JSON events' broker and outbox.
pub fn status(ops: &Ops) -> String {
    sinks(ops)
        .iter()
        .filter(|s| s.name != "events")
        .map(|s| {
            let depth = s.depth.map_or("?".into(), |d| d.to_string());
            let link = if s.connected {
                "connected"
            } else {
                "NOT CONNECTED"
            };
            format!(", {} {link}, {depth} {} waiting", s.name, s.depth_unit)
        })
        .collect()
}

/// The sinks in `/metrics`: (family, help, value of each sink that has it).
pub type Figure = (&'static str, &'static str, fn(&Sink) -> Option<f64>);

pub const FIGURES: [Figure; 3] = [
    (
        "mes_edge_sink_connected",
        "1 while the sink's broker connection is up.",
        |s| Some(if s.connected { 1.0 } else { 0.0 }),
    ),
    (
        "mes_edge_sink_depth",
        "What waits for the sink: events (events, sparkplug) or values (values).",
        |s| s.depth.map(|d| d as f64),
    ),
    (
        "mes_edge_sink_last_ack_timestamp_seconds",
        "When the sink's broker last acknowledged a publication (Unix time); absent if never since the start.",
        |s| s.last_ack_ms.map(|t| t as f64 / 1000.0),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled(publish: &str, sparkplug: &str) -> Enabled {
        Enabled::of(&crate::config::test_cell(publish, sparkplug))
    }

    #[test]
    fn the_sinks_are_those_the_config_turns_on() {
        let on = |events, values, sparkplug| Enabled {
            events,
            values,
            sparkplug,
        };
        assert_eq!(enabled("", ""), on(true, false, false));
        assert_eq!(enabled("publish = true", ""), on(true, true, false));
        let spb = "\n[sparkplug]\nenabled = true\n";
        assert_eq!(enabled("publish = true", spb), on(true, true, true));
        let only = "\n[sparkplug]\nenabled = true\njson = false\n";
        assert_eq!(enabled("publish = true", only), on(false, false, true));
        let off = "\n[sparkplug]\nenabled = false\njson = false\n";
        assert_eq!(enabled("", off), on(true, false, false));
    }
}
