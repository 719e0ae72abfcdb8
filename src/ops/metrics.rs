//! `/metrics` in the Prometheus text exposition format (version 0.0.4), written by hand: a few
//! dozen lines, where a client library would bring a registry we would only fill from ours.

use super::Ops;
use mes_edge_drivers::{DeviceMetricsSnapshot, LATENCY_BUCKETS_S};
use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub fn render(ops: &Ops, now_ms: i64) -> String {
    let mut out = String::with_capacity(4096);
    let o = &mut out;
    family(
        o,
        "mes_edge_build_info",
        "gauge",
        "The running mes-edge version.",
    );
    sample(
        o,
        "mes_edge_build_info",
        &[("version", env!("CARGO_PKG_VERSION")), ("cell", ops.cell())],
        1.0,
    );
    devices(o, &ops.devices());
    delivery(o, ops);
    brokers(o, ops);
    values(o, ops);
    sinks(o, ops);
    for (name, kind, help, v) in super::sparkplug::metrics(ops.sparkplug()) {
        family(o, name, kind, help);
        sample(o, name, &[], v);
    }
    if let Some((url, role)) = super::sparkplug::server_info(ops.sparkplug()) {
        let name = "mes_edge_sparkplug_server_info";
        family(o, name, "gauge", "1 for the Sparkplug B session's server of the last connection (role primary: the first of [mqtt] urls).");
        sample(o, name, &[("url", &url), ("role", role)], 1.0);
    }
    housekeeping(o, ops);
    store(o, ops, now_ms);
    reloads(o, ops);
    out
}

type Device = (String, DeviceMetricsSnapshot);

/// Each device's connection and reads: one family per figure, a sample per device (absent
/// where the device has no such figure).
fn devices(o: &mut String, devices: &[Device]) {
    type Figure = fn(&DeviceMetricsSnapshot) -> Option<f64>;
    let figures: [(&str, &str, &str, Figure); 7] = [
        ("mes_edge_device_connected", "gauge",
            "1 while the device answers, 0 while it is offline.",
            |m| Some(bool_f(m.connected))),
        ("mes_edge_device_last_good_read_timestamp_seconds", "gauge",
            "When values last came back from the device (Unix time); absent if never.",
            |m| m.last_good_read_ms.map(|ts| ts as f64 / 1000.0)),
        ("mes_edge_device_clock_skew_ms", "gauge",
            "The device's clock minus the runtime's at its last stamped value (OPC UA source timestamps); absent for devices that stamp nothing.",
            |m| m.clock_skew_ms.map(|skew| skew as f64)),
        ("mes_edge_device_requests_total", "counter",
            "Requests sent to the device.",
            |m| Some(m.requests as f64)),
        ("mes_edge_device_errors_total", "counter",
            "Failed connects, timeouts, broken connections and protocol exceptions.",
            |m| Some(m.errors as f64)),
        ("mes_edge_device_connects_total", "counter",
            "Connections established to the device.",
            |m| Some(m.connects as f64)),
        ("mes_edge_device_samples_total", "counter",
            "Changed values the driver handed to the engine (OPC UA; not counted for Modbus yet).",
            |m| Some(m.samples as f64)),
    ];
    for (name, kind, help, figure) in figures {
        family(o, name, kind, help);
        for (device, m) in devices {
            if let Some(v) = figure(m) {
                sample(o, name, &[("device", device)], v);
            }
        }
    }
    last_offline(o, devices);
    poll_durations(o, devices);
}

/// When each device last went offline, labelled with the kind of its reason (transient,
/// configuration, refused): an alert can tell a cable from a config mistake.
fn last_offline(o: &mut String, devices: &[Device]) {
    let name = "mes_edge_device_last_offline_timestamp_seconds";
    family(
        o,
        name,
        "gauge",
        "When the device last went offline (Unix time), with the kind of its reason; absent if never.",
    );
    for (device, m) in devices {
        if let Some((reason, ts_ms)) = &m.last_offline {
            let labels = [("device", device.as_str()), ("kind", reason.kind.name())];
            sample(o, name, &labels, *ts_ms as f64 / 1000.0);
        }
    }
}

fn poll_durations(o: &mut String, devices: &[Device]) {
    let h = "mes_edge_device_poll_duration_seconds";
    family(
        o,
        h,
        "histogram",
        "Time to read one poll group of the device's tags (one poll).",
    );
    for (name, m) in devices {
        let mut cumulative = 0;
        for (i, count) in m.latency_buckets.iter().enumerate() {
            cumulative += count;
            let le = LATENCY_BUCKETS_S
                .get(i)
                .map(|b| b.to_string())
                .unwrap_or_else(|| "+Inf".into());
            sample(
                o,
                &format!("{h}_bucket"),
                &[("device", name), ("le", &le)],
                cumulative as f64,
            );
        }
        sample(o, &format!("{h}_sum"), &[("device", name)], m.latency_sum_s);
        sample(
            o,
            &format!("{h}_count"),
            &[("device", name)],
            m.latency_count as f64,
        );
    }
}

/// The JSON events' way to the broker: what was produced, published, acknowledged, refused.
fn delivery(o: &mut String, ops: &Ops) {
    let fwd = ops.forwarder().counts();
    let counters = [
        (
            "mes_edge_events_produced_total",
            "Events committed to the outbox since start.",
            ops.produced(),
        ),
        (
            "mes_edge_events_published_total",
            "Event publishes written to the broker, re-sends included.",
            fwd.published,
        ),
        (
            "mes_edge_events_acknowledged_total",
            "Events the broker acknowledged.",
            fwd.acknowledged,
        ),
        (
            "mes_edge_store_commit_failures_total",
            "Commits to the store that failed (each retried); see /health while they go on.",
            ops.engine().commit_failures(),
        ),
        (
            "mes_edge_broker_connects_total",
            "Connections to the broker (CONNACKs).",
            fwd.connects,
        ),
        (
            "mes_edge_broker_reconnects_total",
            "Connections to the broker after the first.",
            fwd.connects.saturating_sub(1),
        ),
    ];
    for (name, help, v) in counters {
        family(o, name, "counter", help);
        sample(o, name, &[], v as f64);
    }
    family(
        o,
        "mes_edge_events_refused_total",
        "counter",
        "Publishes the broker refused (MQTT 5 PUBACK/PUBREC reason code 0x80 or above), by reason; the events stay in the outbox.",
    );
    for (reason, code, n) in ops.forwarder().refusals() {
        sample(
            o,
            "mes_edge_events_refused_total",
            &[("reason", reason), ("code", &format!("0x{code:02x}"))],
            n as f64,
        );
    }
    family(
        o,
        "mes_edge_events_refused_held",
        "gauge",
        "Events the broker refused that are not delivered yet.",
    );
    sample(
        o,
        "mes_edge_events_refused_held",
        &[],
        ops.forwarder().refusal().map_or(0, |r| r.0) as f64,
    );
    family(
        o,
        "mes_edge_broker_connected",
        "gauge",
        "1 while connected to the broker.",
    );
    sample(o, "mes_edge_broker_connected", &[], bool_f(fwd.connected));
}

/// Each sink the config turns on, labelled by its name.
fn sinks(o: &mut String, ops: &Ops) {
    let sinks = super::sinks::sinks(ops);
    for (name, help, figure) in super::sinks::FIGURES {
        family(o, name, "gauge", help);
        for s in &sinks {
            if let Some(v) = figure(s) {
                sample(o, name, &[("sink", s.name)], v);
            }
        }
    }
}

fn housekeeping(o: &mut String, ops: &Ops) {
    let (steps, longest, pruned) = ops.engine().housekeeping();
    let housekeeping = [
        (
            "mes_edge_housekeeping_steps_total",
            "counter",
            "Housekeeping steps (pruning, store alarm) run on the engine thread.",
            steps as f64,
        ),
        (
            "mes_edge_housekeeping_longest_step_seconds",
            "gauge",
            "The longest time one housekeeping step held the engine thread since start.",
            longest.as_secs_f64(),
        ),
        (
            "mes_edge_events_pruned_total",
            "counter",
            "Delivered events pruned from the store (retention or size cap) since start.",
            pruned as f64,
        ),
    ];
    for (name, kind, help, v) in housekeeping {
        family(o, name, kind, help);
        sample(o, name, &[], v);
    }
}

/// The store's figures as the supervisor last read them (absent before its first read).
fn store(o: &mut String, ops: &Ops, now_ms: i64) {
    let Some(view) = ops.store() else { return };
    let s = &view.stats;
    let gauges = [
        (
            "mes_edge_outbox_depth",
            "Committed events the broker has not acknowledged.",
            s.depth as f64,
        ),
        (
            "mes_edge_outbox_oldest_undelivered_age_seconds",
            "Age of the oldest unacknowledged event; 0 when there is none.",
            s.oldest_undelivered_ts
                .map(|t| (now_ms - t).max(0) as f64 / 1000.0)
                .unwrap_or(0.0),
        ),
        (
            "mes_edge_outbox_last_seq",
            "Sequence number of the last committed event.",
            s.last_seq as f64,
        ),
        (
            "mes_edge_store_used_bytes",
            "Bytes of the store in use (pages minus free pages).",
            s.used_bytes as f64,
        ),
        (
            "mes_edge_store_file_bytes",
            "Size of the store's database and WAL files.",
            view.file_bytes as f64,
        ),
    ];
    for (name, help, v) in gauges {
        family(o, name, "gauge", help);
        sample(o, name, &[], v);
    }
}

fn reloads(o: &mut String, ops: &Ops) {
    let (applied, refused) = ops.reloads();
    let name = "mes_edge_config_reloads_total";
    family(o, name, "counter", "Config reloads (SIGHUP) by result.");
    sample(o, name, &[("result", "applied")], applied as f64);
    sample(o, name, &[("result", "refused")], refused as f64);
}

/// Which broker the cell is on, and its moves between brokers (`[mqtt] urls`).
fn brokers(o: &mut String, ops: &Ops) {
    let fwd = ops.forwarder();
    family(
        o,
        "mes_edge_broker_info",
        "gauge",
        "1 for the broker of the last connection (role primary: the first of [mqtt] urls).",
    );
    if let Some((url, primary)) = fwd.broker() {
        let role = if primary { "primary" } else { "standby" };
        sample(
            o,
            "mes_edge_broker_info",
            &[("url", &url), ("role", role)],
            1.0,
        );
    }
    family(
        o,
        "mes_edge_broker_failovers_total",
        "counter",
        "Moves to another broker since start: reason lost (not back within failover_after_s) or primary_back.",
    );
    for (reason, n) in fwd.failovers() {
        sample(
            o,
            "mes_edge_broker_failovers_total",
            &[("reason", reason)],
            n as f64,
        );
    }
    family(
        o,
        "mes_edge_broker_resent_total",
        "counter",
        "Events the lost broker had acknowledged, published again after failovers (resend_window_s).",
    );
    sample(
        o,
        "mes_edge_broker_resent_total",
        &[],
        fwd.resent_total() as f64,
    );
}

/// Process values: a lower class than events, with their own counts.
fn values(o: &mut String, ops: &Ops) {
    let (committed, delivered, dropped) = ops.values().counts();
    for (name, help, v) in [
        (
            "mes_edge_values_committed_total",
            "Process values committed to the store since start.",
            committed,
        ),
        (
            "mes_edge_values_delivered_total",
            "Process values the broker acknowledged since start.",
            delivered,
        ),
    ] {
        family(o, name, "counter", help);
        sample(o, name, &[], v as f64);
    }
    let name = "mes_edge_values_dropped_total";
    family(
        o,
        name,
        "counter",
        "Process values dropped unsent since start, by tag: over [store] values_max_count or older than values_retention_hours.",
    );
    for (tag, n) in &dropped {
        sample(o, name, &[("tag", tag)], *n as f64);
    }
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

fn sample(o: &mut String, name: &str, labels: &[(&str, &str)], value: f64) {
    o.push_str(name);
    if !labels.is_empty() {
        o.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{k}=\"{}\"", escape(v));
        }
        o.push('}');
    }
    let _ = writeln!(o, " {value}");
}

fn bool_f(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// Label values: backslash, double quote and line feed are escaped, nothing else.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
