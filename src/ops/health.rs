//! `/health`: one JSON document saying whether the cell is doing its job, and if not, why.
//! Monitoring only needs the status code (200 or 503); a person reads `problems`.

use super::Ops;
use crate::event::rfc3339_ms;
use serde_json::{json, Value};
use std::time::Duration;

/// A loop silent for longer than this is taken as hung (it normally turns at least once a
/// second). systemd's watchdog uses the same judgement.
pub const STALL: Duration = Duration::from_secs(15);

pub struct Health {
    pub ok: bool,
    pub body: Value,
}

pub fn health(ops: &Ops, now_ms: i64) -> Health {
    let mut problems: Vec<String> = Vec::new();
    let devices = devices(ops, now_ms, &mut problems);
    let fwd = ops.forwarder().counts();
    if !fwd.connected {
        problems.push("not connected to the broker".into());
    }
    let refusal = ops.forwarder().refusal();
    if let Some((n, what)) = &refusal {
        problems.push(format!(
            "the broker refused {n} event(s), last: {what}; they stay in the outbox and are re-sent"
        ));
    }
    if let Some(why) = ops.forwarder().subscription_refusal() {
        problems.push(format!(
            "the broker refused the subscription to the command topic: {why}; commands from MOM cannot arrive"
        ));
    }
    let engine_silence = ops.engine().silence();
    if engine_silence > STALL {
        problems.push(format!(
            "the engine has not turned for {} s",
            engine_silence.as_secs()
        ));
    }
    let commit_failure = ops.engine().commit_failure();
    if let Some(f) = &commit_failure {
        problems.push(format!(
            "commits to the store have failed for {} s: {}",
            f.for_.as_secs(),
            f.error
        ));
    }
    let fwd_silence = ops.forwarder().silence();
    if fwd_silence > STALL {
        problems.push(format!(
            "the forwarder has not turned for {} s",
            fwd_silence.as_secs()
        ));
    }
    let outbox = outbox(ops, now_ms, &mut problems);
    let sparkplug = super::sparkplug::health(ops.sparkplug(), &mut problems);
    let sinks = super::sinks::health(ops, now_ms, &mut problems);
    let ok = problems.is_empty();
    Health {
        ok,
        body: json!({
            "status": if ok { "ok" } else { "unhealthy" },
            "cell": ops.cell(),
            "problems": problems,
            "devices": devices,
            "broker": {
                "connected": fwd.connected,
                "url": ops.forwarder().broker().map(|b| b.0),
                "primary": ops.forwarder().broker().map(|b| b.1),
                "failovers": ops.forwarder().failovers().iter().map(|f| f.1).sum::<u64>(),
                "refused_held": refusal.as_ref().map_or(0, |r| r.0),
                "last_refusal": refusal.map(|r| r.1),
            },
            "outbox": outbox,
            "engine": {
                "alive": engine_silence <= STALL,
                "commits_failing": commit_failure.as_ref().map(|f| &f.error),
                "commits_failing_for_s": commit_failure.as_ref().map(|f| f.for_.as_secs()),
                "commit_failures_total": ops.engine().commit_failures(),
            },
            "forwarder": { "alive": fwd_silence <= STALL },
            "sparkplug": sparkplug,
            "sinks": sinks,
        }),
    }
}

/// Each device: connected, and its last good read.
fn devices(ops: &Ops, now_ms: i64, problems: &mut Vec<String>) -> Vec<Value> {
    ops.devices()
        .into_iter()
        .map(|(name, m)| {
            if !m.connected {
                let why = m.last_offline.as_ref().map_or(String::new(), |(r, _)| {
                    format!(" ({}: {})", r.kind.name(), r.message)
                });
                problems.push(format!("device {name} is not connected{why}"));
            }
            let last_offline = m.last_offline.as_ref().map(|(reason, ts_ms)| {
                json!({
                    "at": rfc3339_ms(*ts_ms),
                    "kind": reason.kind.name(),
                    "reason": reason.message,
                })
            });
            json!({
                "name": name,
                "connected": m.connected,
                "last_good_read": m.last_good_read_ms.map(rfc3339_ms),
                "last_good_read_age_s": m.last_good_read_ms.map(|t| age_s(now_ms, t)),
                "last_offline": last_offline,
            })
        })
        .collect()
}

/// The outbox as the supervisor last read it, with its oldest undelivered event's age.
fn outbox(ops: &Ops, now_ms: i64, problems: &mut Vec<String>) -> Value {
    match ops.store() {
        Some(view) => {
            let s = &view.stats;
            let age = s.oldest_undelivered_ts.map(|t| age_s(now_ms, t));
            let limit = ops.max_undelivered_age().as_secs_f64();
            if let Some(a) = age.filter(|a| *a > limit) {
                problems.push(format!(
                    "the oldest undelivered event is {a:.0} s old (limit {limit:.0} s)"
                ));
            }
            json!({
                "store_id": s.store_id,
                "depth": s.depth,
                "oldest_undelivered": s.oldest_undelivered_ts.map(rfc3339_ms),
                "oldest_undelivered_age_s": age,
                "last_seq": s.last_seq,
                "last_delivered_seq": s.last_delivered_seq,
                "store_used_bytes": s.used_bytes,
                "values_held": s.values_held,
                "last_value_batch": s.last_value_batch,
                "store_file_bytes": view.file_bytes,
            })
        }
        None => {
            problems.push("the store has not been read yet".into());
            Value::Null
        }
    }
}

/// A one-line summary for `systemctl status` (STATUS=).
pub fn status_summary(ops: &Ops) -> String {
    let devices = ops.devices();
    let online = devices.iter().filter(|(_, m)| m.connected).count();
    let broker = if ops.forwarder().counts().connected {
        "broker connected"
    } else {
        "broker not connected"
    };
    let depth = ops
        .store()
        .map(|v| v.stats.depth.to_string())
        .unwrap_or_else(|| "?".into());
    let refused = match ops.forwarder().refusal() {
        Some((n, what)) => format!(", {n} events refused by broker: {what}"),
        None => String::new(),
    };
    let mut line = format!(
        "devices online {online}/{}, {broker}, outbox depth {depth}{refused}",
        devices.len()
    );
    line.push_str(&super::sinks::status(ops));
    if let Some(f) = ops.engine().commit_failure() {
        line.push_str(&format!(", STORE COMMITS FAILING: {}", f.error));
    }
    line
}

fn age_s(now_ms: i64, ts_ms: i64) -> f64 {
    (now_ms - ts_ms).max(0) as f64 / 1000.0
}
