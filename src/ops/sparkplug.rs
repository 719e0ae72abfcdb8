//! What the Sparkplug B session reports about itself for `/health` and `/metrics`: its broker
//! connection, bdSeq and births, the primary host's last STATE, and the host commands it
//! refused, dropped or saw expire. In Sparkplug-only mode (`[sparkplug] json = false`) it also
//! stands in for the absent JSON forwarder's connection and liveness, which `/health`, the
//! status line and the watchdog read.

use super::ForwarderProbe;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct SparkplugProbe(Arc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    enabled: AtomicBool,
    connected: AtomicBool,
    connects: AtomicU64,
    bd_seq: AtomicU64,
    births: AtomicU64,
    rebirth_requests: AtomicU64,
    /// 0 none yet, 1 offline, 2 online.
    host_online: AtomicU64,
    host_ts: AtomicI64,
    /// Commands handed to the engine.
    commands_queued: AtomicU64,
    /// Refused here (type, retained, oversized, unknown metric…) or by the engine.
    commands_refused: AtomicU64,
    /// Not taken: the node's command queue was full.
    commands_dropped: AtomicU64,
    commands_expired: AtomicU64,
    states_refused: AtomicU64,
    /// When the broker last acknowledged an event (UTC ms; 0: not since the start).
    last_ack_ms: AtomicI64,
    /// The JSON forwarder's probe, fed by this session when there is no JSON forwarder.
    stand_in: OnceLock<ForwarderProbe>,
    /// The server of the last CONNACK (`mqtt://host:port`, no credentials: urls hold none) and
    /// whether it is the primary (the first of `[mqtt] urls`).
    server: Mutex<Option<(String, bool)>>,
}

/// A copy of the Sparkplug session's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparkplugSnapshot {
    pub enabled: bool,
    pub connected: bool,
    pub connects: u64,
    pub bd_seq: u64,
    /// NBIRTHs published (rebirths included).
    pub births: u64,
    pub rebirth_requests: u64,
    /// The primary host's last STATE (online, timestamp ms), if one was followed.
    pub host: Option<(bool, i64)>,
    pub commands_queued: u64,
    pub commands_refused: u64,
    pub commands_dropped: u64,
    pub commands_expired: u64,
    pub states_refused: u64,
    /// There is no JSON forwarder: the broker connection `/health` shows is this session's.
    pub stands_in: bool,
}

impl SparkplugProbe {
    /// The runtime runs a Sparkplug session; `stand_in` is the JSON forwarder's probe if there
    /// is no JSON forwarder.
    pub fn enable(&self, stand_in: Option<ForwarderProbe>) {
        self.0.enabled.store(true, Relaxed);
        if let Some(p) = stand_in {
            let _ = self.0.stand_in.set(p);
        }
    }

    pub fn connected(&self, yes: bool, bd_seq: u8) {
        if yes && !self.0.connected.swap(true, Relaxed) {
            self.0.connects.fetch_add(1, Relaxed);
        } else if !yes {
            self.0.connected.store(false, Relaxed);
        }
        self.0.bd_seq.store(bd_seq as u64, Relaxed);
        if let Some(p) = self.0.stand_in.get() {
            p.connected(yes);
        }
    }

    /// Connected to `url`, `index` in `[mqtt] urls` (0: the primary, or the only one).
    pub fn server_in_use(&self, url: &str, index: usize) {
        *self.0.server.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((url.to_string(), index == 0));
    }

    /// The server of the last connection, and whether it is the primary.
    pub fn server(&self) -> Option<(String, bool)> {
        self.0
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The session loop turned.
    pub fn beat(&self) {
        if let Some(p) = self.0.stand_in.get() {
            p.beat();
        }
    }

    /// The session waits `d` before its next connect.
    pub fn backing_off(&self, d: Duration) {
        if let Some(p) = self.0.stand_in.get() {
            p.backing_off(d);
        }
    }

    pub fn born(&self) {
        self.0.births.fetch_add(1, Relaxed);
    }

    pub fn rebirth_requested(&self) {
        self.0.rebirth_requests.fetch_add(1, Relaxed);
    }

    pub fn host_state(&self, online: bool, ts: i64) {
        self.0.host_online.store(1 + online as u64, Relaxed);
        self.0.host_ts.store(ts, Relaxed);
    }

    pub fn state_refused(&self) {
        self.0.states_refused.fetch_add(1, Relaxed);
    }

    pub fn command_queued(&self) {
        self.0.commands_queued.fetch_add(1, Relaxed);
    }

    pub fn command_refused(&self) {
        self.0.commands_refused.fetch_add(1, Relaxed);
    }

    pub fn command_dropped(&self) {
        self.0.commands_dropped.fetch_add(1, Relaxed);
    }

    pub fn command_expired(&self) {
        self.0.commands_expired.fetch_add(1, Relaxed);
    }

    /// The broker acknowledged an event (NDATA); in Sparkplug-only mode it is the runtime's.
    pub fn acknowledged(&self) {
        self.0
            .last_ack_ms
            .store(mes_edge_drivers::now_ms(), Relaxed);
        if let Some(p) = self.0.stand_in.get() {
            p.acknowledged();
        }
    }

    /// When the broker last acknowledged an event, if it has since the start.
    pub fn last_ack_ms(&self) -> Option<i64> {
        Some(self.0.last_ack_ms.load(Relaxed)).filter(|&t| t != 0)
    }

    pub fn counts(&self) -> SparkplugSnapshot {
        let c = &self.0;
        SparkplugSnapshot {
            enabled: c.enabled.load(Relaxed),
            connected: c.connected.load(Relaxed),
            connects: c.connects.load(Relaxed),
            bd_seq: c.bd_seq.load(Relaxed),
            births: c.births.load(Relaxed),
            rebirth_requests: c.rebirth_requests.load(Relaxed),
            host: match c.host_online.load(Relaxed) {
                0 => None,
                n => Some((n == 2, c.host_ts.load(Relaxed))),
            },
            commands_queued: c.commands_queued.load(Relaxed),
            commands_refused: c.commands_refused.load(Relaxed),
            commands_dropped: c.commands_dropped.load(Relaxed),
            commands_expired: c.commands_expired.load(Relaxed),
            states_refused: c.states_refused.load(Relaxed),
            stands_in: c.stand_in.get().is_some(),
        }
    }
}

/// The session's part of `/health`: a problem while it is not connected, and its figures.
pub fn health(p: &SparkplugProbe, problems: &mut Vec<String>) -> serde_json::Value {
    let c = p.counts();
    if !c.enabled {
        return serde_json::Value::Null;
    }
    if !c.connected && !c.stands_in {
        problems.push("the Sparkplug B session is not connected to the broker".into());
    }
    serde_json::json!({
        "connected": c.connected,
        "server": p.server().map(|(url, primary)| serde_json::json!({
            "url": url,
            "primary": primary,
        })),
        "connects": c.connects,
        "bd_seq": c.bd_seq,
        "births": c.births,
        "rebirth_requests": c.rebirth_requests,
        "primary_host": c.host.map(|(online, ts)| serde_json::json!({
            "online": online,
            "timestamp": ts,
        })),
        "commands": {
            "queued": c.commands_queued,
            "refused": c.commands_refused,
            "dropped": c.commands_dropped,
            "expired": c.commands_expired,
        },
        "states_refused": c.states_refused,
    })
}

/// The session's server in `/metrics`, as `mes_edge_broker_info` names the JSON side's:
/// (url, role), None before the first connection.
pub fn server_info(p: &SparkplugProbe) -> Option<(String, &'static str)> {
    let (url, primary) = p.server()?;
    Some((url, if primary { "primary" } else { "standby" }))
}

/// The session's part of `/metrics`: (name, kind, help, value), nothing if it is not enabled.
pub fn metrics(p: &SparkplugProbe) -> Vec<(&'static str, &'static str, &'static str, f64)> {
    let c = p.counts();
    if !c.enabled {
        return Vec::new();
    }
    let f = |b: bool| if b { 1.0 } else { 0.0 };
    vec![
        ("mes_edge_sparkplug_connected", "gauge", "1 while the Sparkplug B session is connected to the broker.", f(c.connected)),
        ("mes_edge_sparkplug_connects_total", "counter", "Sparkplug B connections (CONNACKs).", c.connects as f64),
        ("mes_edge_sparkplug_bd_seq", "gauge", "The bdSeq of the current (or last) Sparkplug B connection.", c.bd_seq as f64),
        ("mes_edge_sparkplug_births_total", "counter", "NBIRTHs published, rebirths included.", c.births as f64),
        ("mes_edge_sparkplug_rebirth_requests_total", "counter", "Rebirth requests received (NCMD), at most one rebirth per window answers them.", c.rebirth_requests as f64),
        ("mes_edge_sparkplug_primary_host_online", "gauge", "1 while the primary host's last STATE says online (0 before any).", f(c.host.is_some_and(|h| h.0))),
        ("mes_edge_sparkplug_commands_queued_total", "counter", "Host commands (DCMD metrics) handed to the engine.", c.commands_queued as f64),
        ("mes_edge_sparkplug_commands_refused_total", "counter", "Host commands refused: wrong type, retained, oversized, unknown metric, or by the engine.", c.commands_refused as f64),
        ("mes_edge_sparkplug_commands_dropped_total", "counter", "Host commands not taken because the node's command queue was full.", c.commands_dropped as f64),
        ("mes_edge_sparkplug_commands_expired_total", "counter", "Host commands answered expired: they waited too long to be applied.", c.commands_expired as f64),
        ("mes_edge_sparkplug_states_refused_total", "counter", "Primary host STATE messages refused (stamped too far in the future).", c.states_refused as f64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_json_the_session_stands_in_for_the_forwarder() {
        let fwd = ForwarderProbe::default();
        let p = SparkplugProbe::default();
        p.enable(Some(fwd.clone()));
        p.connected(true, 7);
        assert!(fwd.counts().connected);
        assert_eq!(p.counts().bd_seq, 7);
        p.connected(false, 7);
        assert!(!fwd.counts().connected);
        let alone = SparkplugProbe::default();
        alone.enable(None);
        alone.connected(true, 1);
        assert!(alone.counts().connected && alone.counts().host.is_none());
    }
}
