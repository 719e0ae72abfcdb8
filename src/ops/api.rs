//! `/api/v1/...`: the JSON the status page is drawn from, and that scripts may use
//! (docs/STATUS-PAGE.md). Read-only: the probes `/health` reads, the last readings of the tags,
//! and the store through a read-only connection. A field once published in v1 keeps its name
//! and meaning; new fields may appear.

use super::{health, Ops};
use crate::event::rfc3339_ms;
use crate::orders::{JobOrder, JobResponse, JobState};
use crate::store::inspect::StoredEvent;
use crate::store::live;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Events one `/api/v1/events` answer carries at most.
pub const MAX_EVENTS: u64 = 500;
/// The machine-state timeline reaches back at most this far.
pub const MAX_TIMELINE_HOURS: u64 = 24;

#[derive(Clone)]
pub struct Api(Arc<Inner>);

struct Inner {
    ops: Ops,
    store: PathBuf,
    started: Instant,
    /// Opened at the first request and kept: opening SQLite reads the schema each time.
    conn: Mutex<Option<Connection>>,
}

/// What a request asked for, parsed from the target.
pub struct Query<'a>(Vec<(&'a str, String)>);

impl<'a> Query<'a> {
    pub fn parse(query: &'a str) -> Query<'a> {
        Query(
            query
                .split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k, percent_decode(v)))
                .collect(),
        )
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, key: &str) -> Result<Option<u64>, String> {
        self.get(key)
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{key} must be a whole number"))
            })
            .transpose()
    }
}

/// `%XX` and `+`; a `%` not followed by two hex digits stays as it came.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer: 200 with JSON, or 400 with the reason.
pub type Answer = Result<Value, (u16, String)>;

impl Api {
    pub fn new(ops: Ops, store: PathBuf) -> Api {
        Api(Arc::new(Inner {
            ops,
            store,
            started: Instant::now(),
            conn: Mutex::new(None),
        }))
    }

    /// Answers `path` (after `/api/v1/`). Blocking: it may read the store.
    pub fn answer(&self, path: &str, q: &Query, now_ms: i64) -> Answer {
        let bad = |e: String| (400, e);
        match path {
            "status" => self.with_store(|c| self.status(c, now_ms)),
            "tags" => Ok(json!({ "tags": self.0.ops.tags().snapshot(q.get("filter").unwrap_or("")) })),
            "trends" => Ok(json!({
                "now_ms": now_ms,
                "step_s": super::trend::STEP_MS / 1000,
                "window_s": super::trend::WINDOW_MS / 1000,
                "trends": self.0.ops.tags().trends(),
            })),
            "events" => {
                let after = q.number("after").map_err(bad)?.unwrap_or(0);
                let limit = q.number("limit").map_err(bad)?.unwrap_or(50).clamp(1, MAX_EVENTS);
                let kind = q.get("type").filter(|t| !t.is_empty());
                self.with_store(|c| {
                    let rows = live::events_after(c, after, limit, kind)?;
                    let last = crate::store::inspect::last_seq(c)?;
                    Ok(json!({ "last_seq": last, "events": rows.iter().map(event_json).collect::<Vec<_>>() }))
                })
            }
            "orders" => self.with_store(|c| {
                let st = live::cell_state(c)?;
                let orders: Vec<Value> = st.orders.orders.iter().map(|o| order_json(o, now_ms)).collect();
                Ok(json!({
                    "orders": orders,
                    "no_order": { "good": st.orders.no_order_good, "scrap": st.orders.no_order_scrap },
                }))
            }),
            "timeline" => {
                let hours = q.number("hours").map_err(bad)?.unwrap_or(4).clamp(1, MAX_TIMELINE_HOURS);
                self.with_store(|c| timeline(c, now_ms, hours))
            }
            _ => Err((404, format!("no /api/v1/{path}; see docs/STATUS-PAGE.md"))),
        }
    }

    fn with_store(
        &self,
        f: impl FnOnce(&Connection) -> Result<Value, crate::store::StoreError>,
    ) -> Answer {
        let mut slot = self.0.conn.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(
                live::open_read_only(&self.0.store)
                    .map_err(|e| (503, format!("the store cannot be read: {e}")))?,
            );
        }
        let conn = slot.as_ref().expect("just opened");
        f(conn).map_err(|e| {
            // Open afresh next time: the file may have been replaced (restore from backup).
            *slot = None;
            (503, format!("the store cannot be read: {e}"))
        })
    }

    fn status(&self, c: &Connection, now_ms: i64) -> Result<Value, crate::store::StoreError> {
        let ops = &self.0.ops;
        let h = health::health(ops, now_ms);
        let st = live::cell_state(c)?;
        let fwd = ops.forwarder().counts();
        let (v_committed, v_delivered, v_dropped) = ops.values().counts();
        let store = ops.store();
        let active = st.orders.active().map(|o| order_json(o, now_ms));
        Ok(json!({
            "api": 1,
            "version": env!("CARGO_PKG_VERSION"),
            "now": rfc3339_ms(now_ms),
            "uptime_s": self.0.started.elapsed().as_secs(),
            "cell": ops.cell(),
            "store_path": self.0.store.display().to_string(),
            "store_id": store.as_ref().map(|s| s.stats.store_id.clone()),
            "last_seq": crate::store::inspect::last_seq(c)?,
            "ok": h.ok,
            "problems": h.body["problems"],
            "devices": devices_json(ops, now_ms),
            "machine": {
                "state": st.machine_state,
                "since": rfc3339_ms(st.state_since),
                "since_ms": st.state_since,
                "state_word": st.state_word,
                "fault_code": st.fault_code,
                "stop_reason": st.stop.as_ref().and_then(|s| s.reason.clone()),
            },
            "parts": { "good_total": st.good_total, "scrap_total": st.scrap_total },
            "order": active,
            "shift": st.shift.as_ref().map(|s| json!({
                "name": s.shift.name,
                "good": s.good,
                "scrap": s.scrap,
                "no_order_good": s.no_order_good,
                "no_order_scrap": s.no_order_scrap,
                "oee": s.oee(),
            })),
            "delivery": {
                "events": {
                    "connected": fwd.connected,
                    "depth": store.as_ref().map(|s| s.stats.depth),
                    "oldest_undelivered_age_s": h.body["outbox"]["oldest_undelivered_age_s"],
                    "last_delivered_seq": store.as_ref().and_then(|s| s.stats.last_delivered_seq),
                    "acknowledged": fwd.acknowledged,
                    "refused_held": h.body["broker"]["refused_held"],
                    "last_refusal": h.body["broker"]["last_refusal"],
                },
                "values": {
                    "committed": v_committed,
                    "delivered": v_delivered,
                    "held": store.as_ref().map(|s| s.stats.values_held),
                    "dropped": v_dropped.values().sum::<u64>(),
                },
                "sparkplug": sparkplug_delivery(ops, c, now_ms)?,
            },
        }))
    }
}

/// The Sparkplug B output beside the JSON events, null when it is off: its session, how far
/// its cursor is behind the outbox, and what it refused (the host's commands and STATEs; under
/// MQTT 3.1.1 the broker cannot refuse a publication).
fn sparkplug_delivery(
    ops: &Ops,
    c: &Connection,
    now_ms: i64,
) -> Result<Value, crate::store::StoreError> {
    let sp = ops.sparkplug().counts();
    if !sp.enabled {
        return Ok(Value::Null);
    }
    let behind = live::sink_behind(c, crate::sparkplug::SINK)?;
    let oldest = behind.and_then(|(_, ts)| ts);
    Ok(json!({
        "connected": sp.connected,
        "depth": behind.map(|(n, _)| n),
        "oldest_undelivered_age_s": oldest.map(|t| (now_ms - t).max(0) as f64 / 1000.0),
        "births": sp.births,
        "primary_host_online": sp.host.map(|(online, _)| online),
        "commands_refused": sp.commands_refused,
        "states_refused": sp.states_refused,
    }))
}

fn devices_json(ops: &Ops, now_ms: i64) -> Vec<Value> {
    ops.devices()
        .into_iter()
        .map(|(name, m)| {
            json!({
                "name": name,
                "connected": m.connected,
                "last_good_read": m.last_good_read_ms.map(rfc3339_ms),
                "last_good_read_age_s": m.last_good_read_ms.map(|t| (now_ms - t).max(0) as f64 / 1000.0),
                "requests": m.requests,
                "errors": m.errors,
                "connects": m.connects,
            })
        })
        .collect()
}

/// An order's job response so far, with its rate (parts an hour since it started) and, for the
/// active one, when it should reach its target at that rate.
fn order_json(o: &JobOrder, now_ms: i64) -> Value {
    let mut v = serde_json::to_value(JobResponse::of(o)).unwrap_or_default();
    let made = o.good + o.scrap;
    let rate = o
        .started_ms
        .map(|s| o.ended_ms.unwrap_or(now_ms) - s)
        .filter(|ms| *ms >= 60_000 || (*ms > 0 && made >= 10))
        .map(|ms| made as f64 * 3_600_000.0 / ms as f64);
    v["rate_per_hour"] = json!(rate);
    let remaining = o.spec.quantity.saturating_sub(o.good);
    let expected_end = match (rate, o.state) {
        (Some(r), JobState::Running) if r > 0.0 && remaining > 0 => Some(rfc3339_ms(
            now_ms + (remaining as f64 / r * 3_600_000.0) as i64,
        )),
        _ => None,
    };
    v["expected_end"] = json!(expected_end);
    v
}

fn event_json(e: &StoredEvent) -> Value {
    json!({
        "seq": e.seq,
        "type": e.kind,
        "time": rfc3339_ms(e.ts_ms),
        "delivered": e.delivered_ms.map(rfc3339_ms),
        "event": serde_json::from_slice::<Value>(&e.payload).unwrap_or(Value::Null),
    })
}

/// The machine's states over the last `hours`, from the `machine_state` events the store still
/// holds: intervals `{state, from_ms, to_ms, reason}`, the last one open (to now).
fn timeline(c: &Connection, now_ms: i64, hours: u64) -> Result<Value, crate::store::StoreError> {
    let from = now_ms - hours as i64 * 3_600_000;
    let rows = live::recent_of_kind(c, "machine_state", from, 5_000)?;
    let mut out: Vec<Value> = Vec::new();
    for e in &rows {
        let p: Value = serde_json::from_slice(&e.payload).unwrap_or(Value::Null);
        let d = &p["data"];
        // Each event closes the previous interval and opens its own.
        if out.is_empty() {
            if let (Some(since), Some(prev)) =
                (d["previous_since"].as_i64(), d["previous"].as_str())
            {
                out.push(json!({ "state": prev, "from_ms": since.max(from), "to_ms": e.ts_ms, "reason": d["previous_reason"] }));
            }
        } else if let Some(last) = out.last_mut() {
            last["to_ms"] = e.ts_ms.into();
            if !d["previous_reason"].is_null() {
                last["reason"] = d["previous_reason"].clone();
            }
        }
        out.push(json!({ "state": d["state"], "from_ms": e.ts_ms, "to_ms": null, "reason": d["reason"] }));
    }
    if out.is_empty() {
        let st = live::cell_state(c)?;
        out.push(json!({ "state": st.machine_state, "from_ms": st.state_since.max(from), "to_ms": null, "reason": null }));
    }
    Ok(json!({ "from_ms": from, "to_ms": now_ms, "intervals": out }))
}
