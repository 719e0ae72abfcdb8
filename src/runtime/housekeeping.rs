//! The engine thread's housekeeping of the outbox: pruning by retention and size cap in bounded
//! steps between batches, and the store alarm.

use crate::event::{AlarmLevel, EventBody, NewEvent};
use crate::store::{OutboxStats, PrunePass, StoreOwner};
use std::time::{Duration, Instant};

const HOUSEKEEPING: Duration = Duration::from_secs(10);
/// What one housekeeping step may spend deleting before it commits: the engine waits for it,
/// and the step with its commit stays under 10 ms (issue 14).
const HOUSEKEEPING_BUDGET: Duration = Duration::from_millis(4);

/// Pruning by retention and size cap, in bounded steps, and the store alarm.
pub(super) struct Housekeeping {
    pass: PrunePass,
    alarm: AlarmLevel,
    next: Instant,
    cap: u64,
    retention_ms: i64,
    /// Rows pruned by the steps of the current round, logged when it is done.
    pruned: u64,
}

impl Housekeeping {
    pub fn new(store: &crate::config::StoreConfig, mono: Instant) -> Housekeeping {
        Housekeeping {
            pass: PrunePass::default(),
            alarm: AlarmLevel::Cleared,
            next: mono,
            cap: store.max_size_mb.saturating_mul(1 << 20),
            retention_ms: store.retention_hours.saturating_mul(3_600_000) as i64,
            pruned: 0,
        }
    }

    pub fn due(&self, mono: Instant) -> bool {
        mono >= self.next
    }

    /// One step; raises a store alarm when the level changes. A step that leaves work behind
    /// (a store over its cap, a long retention pass) is followed by another after three times
    /// its length, so housekeeping takes at most a quarter of the engine's time while behind.
    /// `mono` and `wall`: the engine loop's clocks at this turn. The step's own length is
    /// measured on the system's clock: it is work done, not time passing for the cell.
    pub fn step(
        &mut self,
        owner: &StoreOwner,
        alive: &crate::ops::Heartbeat,
        mono: Instant,
        wall: i64,
    ) -> Option<NewEvent> {
        let started = Instant::now();
        let (before, cap) = (wall - self.retention_ms, self.cap);
        let mut pass = std::mem::take(&mut self.pass);
        // The step and the figures the alarm needs, in one turn of the owner.
        let done = owner.call(move |o| {
            let step = o.prune_step(&mut pass, before, cap, HOUSEKEEPING_BUDGET);
            let stats = step.as_ref().ok().and_then(|_| o.stats().ok());
            (pass, step, stats)
        });
        let step = match done {
            Ok((pass, step, stats)) => {
                self.pass = pass;
                step.map(|s| (s, stats))
            }
            Err(e) => Err(e),
        };
        let alarm = match step {
            Ok((_, Some(ref stats))) => self.alarm(stats, wall),
            Ok(_) => None,
            Err(ref e) => {
                tracing::error!("pruning the outbox: {e}");
                None
            }
        };
        let took = started.elapsed();
        let (rows, again) = match step {
            Ok((p, _)) => (p.rows, !p.done),
            Err(_) => (0, false),
        };
        alive.housekept(took, rows);
        self.pruned += rows;
        if !again && self.pruned > 0 {
            tracing::info!(pruned = self.pruned, "pruned delivered events");
            self.pruned = 0;
        }
        self.next = mono
            + if again {
                (took * 3).max(Duration::from_millis(1))
            } else {
                HOUSEKEEPING
            };
        alarm
    }

    fn alarm(&mut self, stats: &OutboxStats, wall: i64) -> Option<NewEvent> {
        let (used, cap) = (stats.used_bytes, self.cap);
        let level = if used >= cap {
            AlarmLevel::Full
        } else if used >= cap / 10 * 9 {
            AlarmLevel::Warning
        } else if used < cap / 10 * 8 {
            AlarmLevel::Cleared
        } else {
            self.alarm
        };
        if level == self.alarm {
            return None;
        }
        self.alarm = level;
        tracing::warn!(?level, used, cap, undelivered = stats.depth, "store alarm");
        let body = EventBody::StoreAlarm {
            level,
            used_bytes: used,
            cap_bytes: cap,
            undelivered: stats.depth,
        };
        Some(NewEvent::new(wall, vec!["store".into()], body))
    }
}
