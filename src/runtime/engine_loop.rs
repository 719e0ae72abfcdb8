//! The engine's thread: driver events and commands in, committed events out.

use crate::cell::Engine;
use crate::event::{AlarmLevel, EventBody, NewEvent};
use crate::orders::{CommandSource, Reply};
use crate::store::Outbox;
use mes_edge_drivers::{now_ms, DeviceEvent};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// Driver events taken into one commit at most. Under load batches grow towards this, which is
/// what keeps one fsync per commit from capping throughput.
const MAX_BATCH: usize = 4096;
const HOUSEKEEPING: Duration = Duration::from_secs(10);
const IDLE_COMMIT: Duration = Duration::from_secs(30);

/// A command on its way to the engine, from MQTT, the control socket or the CLI. `done` is
/// called with the reply once the command's effects are committed (for MQTT: acknowledge the
/// message, so a crash before the commit makes the broker deliver it again).
pub struct CommandIn {
    pub payload: Vec<u8>,
    pub by: CommandSource,
    pub done: Option<Box<dyn FnOnce(&Reply) + Send>>,
}

enum Input {
    Device(DeviceEvent),
    Command(CommandIn),
}

/// The engine's thread: takes driver events and commands in batches, derives events, commits
/// each batch with the state it leaves behind. A failed commit rolls the state back and retries
/// the same batch, so a full or failing disk delays events but loses none of the parts.
pub fn engine_loop(
    mut engine: Engine,
    mut outbox: Outbox,
    mut devices: mpsc::Receiver<DeviceEvent>,
    // Borrowed: commands outlive one engine thread (a reload starts a new one).
    commands: &mut mpsc::Receiver<CommandIn>,
    committed: watch::Sender<u64>,
    store: crate::config::StoreConfig,
    handle: tokio::runtime::Handle,
    // Beaten at every turn; systemd's watchdog stops being pinged when the beats stop.
    alive: crate::ops::Heartbeat,
    mut write_back: super::write_back::WriteBack,
) {
    let cap_bytes = store.max_size_mb.saturating_mul(1 << 20);
    let retention_ms = store.retention_hours.saturating_mul(3_600_000) as i64;
    let mut batch: Vec<Input> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    let mut events: Vec<NewEvent> = Vec::new();
    let mut alarm = AlarmLevel::Cleared;
    let mut next_housekeeping = Instant::now();
    let mut closed = false;
    let mut failures = 0u32;
    let mut last_commit = Instant::now();
    let mut dirty = false;
    loop {
        alive.beat();
        if batch.is_empty() && !closed {
            let first = handle.block_on(async {
                tokio::select! {
                    d = devices.recv() => Some(d.map(Input::Device)),
                    Some(c) = commands.recv() => Some(Some(Input::Command(c))),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => None,
                }
            });
            match first {
                Some(Some(input)) => batch.push(input),
                Some(None) => closed = true,
                None => {}
            }
        }
        while batch.len() < MAX_BATCH {
            match devices.try_recv() {
                Ok(ev) => batch.push(Input::Device(ev)),
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
            }
        }
        while let Ok(c) = commands.try_recv() {
            batch.push(Input::Command(c));
        }
        let before = engine.state.clone();
        if Instant::now() >= next_housekeeping {
            next_housekeeping = Instant::now() + HOUSEKEEPING;
            if let Some(ev) = housekeeping(&mut outbox, cap_bytes, retention_ms, &mut alarm) {
                events.push(ev);
            }
        }
        engine.tick(now_ms(), &mut events);
        for input in &batch {
            match input {
                Input::Device(ev) => engine.apply(ev, &mut events),
                Input::Command(c) => {
                    replies.push(engine.command(&c.payload, c.by, now_ms(), &mut events))
                }
            }
        }
        // A turn that produced no event only moved time accounts or baselines: that is committed
        // at most every IDLE_COMMIT, to spare the disk a write a second for years. A crash
        // loses at most that much time attribution, never a part or an event.
        dirty |= engine.state != before;
        let due = !events.is_empty() || (dirty && (closed || last_commit.elapsed() >= IDLE_COMMIT));
        if due {
            match outbox.commit(&events, &engine.state, now_ms()) {
                Ok(c) => {
                    last_commit = Instant::now();
                    dirty = false;
                    committed.send_replace(c.last_seq);
                    write_back.after_commit(engine.state.orders.active(), &handle);
                    failures = 0;
                }
                Err(e) => {
                    failures += 1;
                    tracing::error!(failures, "commit failed, will retry the same batch: {e}");
                    engine.state = before;
                    events.clear();
                    replies.clear();
                    if closed && failures >= 5 {
                        tracing::error!("stopping with an uncommitted batch; the PLC counters still hold its parts");
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            }
        }
        // Committed: now the senders of commands may learn their replies.
        let mut replies_iter = replies.drain(..);
        for input in batch.drain(..) {
            if let Input::Command(c) = input {
                let reply = replies_iter.next().expect("a reply per command");
                if let Some(done) = c.done {
                    done(&reply);
                }
            }
        }
        drop(replies_iter);
        events.clear();
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
