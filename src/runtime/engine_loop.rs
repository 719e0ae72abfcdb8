//! The engine's thread: driver events in, committed events out.

use crate::cell::Engine;
use crate::event::{AlarmLevel, EventBody, NewEvent};
use crate::store::Outbox;
use mes_edge_drivers::{now_ms, DeviceEvent};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Driver events taken into one commit at most. Under load batches grow towards this, which is
/// what keeps one fsync per commit from capping throughput.
const MAX_BATCH: usize = 4096;
const HOUSEKEEPING: Duration = Duration::from_secs(10);

/// The engine's thread: takes driver events in batches, derives events, commits each batch with
/// the state it leaves behind. A failed commit rolls the state back and retries the same batch,
/// so a full or failing disk delays events but loses none of the parts.
pub fn engine_loop(
    mut engine: Engine,
    mut outbox: Outbox,
    mut rx: mpsc::Receiver<DeviceEvent>,
    committed: watch::Sender<u64>,
    store: crate::config::StoreConfig,
    handle: tokio::runtime::Handle,
) {
    let cap_bytes = store.max_size_mb.saturating_mul(1 << 20);
    let retention_ms = store.retention_hours.saturating_mul(3_600_000) as i64;
    let mut batch: Vec<DeviceEvent> = Vec::new();
    let mut events: Vec<NewEvent> = Vec::new();
    let mut alarm = AlarmLevel::Cleared;
    let mut next_housekeeping = Instant::now();
    let mut closed = false;
    let mut failures = 0u32;
    loop {
        if batch.is_empty() && !closed {
            match handle
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), rx.recv()).await })
            {
                Ok(Some(ev)) => batch.push(ev),
                Ok(None) => closed = true,
                Err(_) => {}
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(ev) => batch.push(ev),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        if Instant::now() >= next_housekeeping {
            next_housekeeping = Instant::now() + HOUSEKEEPING;
            if let Some(ev) = housekeeping(&mut outbox, cap_bytes, retention_ms, &mut alarm) {
                events.push(ev);
            }
        }
        let before = engine.state.clone();
        for ev in &batch {
            engine.apply(ev, &mut events);
        }
        if !events.is_empty() || engine.state != before {
            match outbox.commit(&events, &engine.state, now_ms()) {
                Ok(c) => {
                    committed.send_replace(c.last_seq);
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(failures, "commit failed, will retry the same batch: {e}");
                    engine.state = before;
                    events.clear();
                    if closed && failures >= 5 {
                        tracing::error!("stopping with an uncommitted batch; the PLC counters still hold its parts");
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        events.clear();
        batch.clear();
        if closed {
            return;
        }
    }
}

/// Prunes by retention and size cap, and raises a store alarm when the level changes.
fn housekeeping(
    outbox: &mut Outbox,
    cap: u64,
    retention_ms: i64,
    alarm: &mut AlarmLevel,
) -> Option<NewEvent> {
    let pruned = match outbox.prune(now_ms() - retention_ms, cap) {
        Ok(n) => n,
        Err(e) => {
            tracing::error!("pruning the outbox: {e}");
            return None;
        }
    };
    if pruned > 0 {
        tracing::info!(pruned, "pruned delivered events");
    }
    let stats = outbox.stats().ok()?;
    let used = stats.used_bytes;
    let level = if used >= cap {
        AlarmLevel::Full
    } else if used >= cap / 10 * 9 {
        AlarmLevel::Warning
    } else if used < cap / 10 * 8 {
        AlarmLevel::Cleared
    } else {
        *alarm
    };
    if level == *alarm {
        return None;
    }
    *alarm = level;
    tracing::warn!(?level, used, cap, undelivered = stats.depth, "store alarm");
    let body = EventBody::StoreAlarm {
        level,
        used_bytes: used,
        cap_bytes: cap,
        undelivered: stats.depth,
    };
    Some(NewEvent::new(now_ms(), vec!["store".into()], body))
}
