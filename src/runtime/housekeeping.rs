//! The engine thread's housekeeping of the outbox: pruning by retention and size cap in bounded
//! steps, each carried by the engine's next commit (its deletes share that commit's fsync) or,
//! on a turn with nothing to commit, run alone; and the store alarm.

use crate::event::{AlarmLevel, EventBody, NewEvent};
use crate::store::{OutboxStats, PrunePass, PruneStep, Pruned, StoreError, StoreOwner};
use std::time::{Duration, Instant};

const HOUSEKEEPING: Duration = Duration::from_secs(10);
/// What one housekeeping step may spend deleting: the engine waits for it, and the step stays
/// under 10 ms (issue 14); carried by a commit, it adds no fsync of its own.
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

    /// The step due now, for the engine's commit to carry (its deletes then share the
    /// commit's fsync) or for [`Housekeeping::step`] to run alone.
    pub fn step_due(&self, wall: i64) -> PruneStep {
        let before = wall - self.retention_ms;
        PruneStep::new(self.pass.clone(), before, self.cap, HOUSEKEEPING_BUDGET)
    }

    /// Runs the step due alone, in a transaction of its own (a turn with nothing to commit).
    pub fn step(
        &mut self,
        owner: &StoreOwner,
        alive: &crate::ops::Heartbeat,
        mono: Instant,
        wall: i64,
    ) -> Option<NewEvent> {
        let mut st = self.step_due(wall);
        let started = Instant::now();
        // The step and the figures the alarm needs, in one turn of the owner.
        let done = owner.call(move |o| {
            o.prune_step(&mut st)?;
            Ok((st, o.stats().ok()))
        });
        // Alone, the engine waits for the whole step, its commit included: that is its length.
        let done = done.and_then(|r| r).map(|(mut st, stats)| {
            st.took = started.elapsed();
            (st, stats)
        });
        self.done(done, alive, mono, wall)
    }

    /// After a step, alone or carried by a commit: its pass kept, the next one paced, the store
    /// alarm raised when its level changes. A step that leaves work behind (a store over its
    /// cap, a long retention pass) is followed by another after three times its length, so
    /// housekeeping takes at most a quarter of the engine's time while behind. `mono` and
    /// `wall`: the engine loop's clocks at this turn; the step's own length is work done,
    /// measured on the system's clock, not time passing for the cell.
    pub fn done(
        &mut self,
        step: Result<(PruneStep, Option<OutboxStats>), StoreError>,
        alive: &crate::ops::Heartbeat,
        mono: Instant,
        wall: i64,
    ) -> Option<NewEvent> {
        let (pruned, took, alarm) = match step {
            Ok((st, stats)) => {
                self.pass = st.pass;
                let alarm = stats.and_then(|stats| self.alarm(&stats, wall));
                (st.pruned.unwrap_or_default(), st.took, alarm)
            }
            Err(e) => {
                tracing::error!("pruning the outbox: {e}");
                (
                    Pruned {
                        rows: 0,
                        done: true,
                    },
                    Duration::ZERO,
                    None,
                )
            }
        };
        alive.housekept(took, pruned.rows);
        self.pruned += pruned.rows;
        if pruned.done && self.pruned > 0 {
            tracing::info!(pruned = self.pruned, "pruned delivered events");
            self.pruned = 0;
        }
        self.next = mono
            + if pruned.done {
                HOUSEKEEPING
            } else {
                (took * 3).max(Duration::from_millis(1))
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
