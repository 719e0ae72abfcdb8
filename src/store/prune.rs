//! Pruning the outbox by sequence ranges, in steps that each take a bounded time: the engine's
//! commits carry them (the store's owner runs the step in the commit's transaction), so a
//! step's length is how long production waits (issue 14: at most 10 ms), and it waits for no
//! fsync of its own.
//!
//! What may go is read from the outputs' cursors, not from the rows: every event up to the
//! lowest events cursor was had by every output, but those an output holds refused
//! (store/event_cursor.rs). For the retention, each cursor's moves say where it stood at the
//! retention's cut: what every output had before the cut goes.

use super::error::StoreError;
use super::schema::{used_bytes, PRUNED_ROWS};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::time::{Duration, Instant};

/// Seqs one pruning DELETE covers (about 15 pages of 500-byte events): the step's budget is
/// checked between chunks, so a chunk read from a cold disk is what a step can overrun by
/// (bench S7, release build: 32-38 ms for a cold chunk of 250).
const CHUNK: u64 = if cfg!(test) { 3 } else { 100 };
/// Rows one step deletes at most, whatever its time budget: its commit writes every page they
/// were on to the WAL, and that is part of the step's time too (bench S7: 6-18 ms to commit
/// 2,750-3,500 deleted rows while the engine committed flat out).
const STEP_ROWS: u64 = if cfg!(test) { 6 } else { 1_000 };

/// Where a retention pass stands between steps: the next seq to look at.
#[derive(Debug, Default, Clone)]
pub struct PrunePass {
    at: Option<u64>,
}

/// A housekeeping step handed to the engine's commit (see [`prune_in`]): where the pass stands,
/// the retention cut, the size cap and the time budget; once committed, what it pruned and how
/// long its work took.
#[derive(Debug, Clone)]
pub struct PruneStep {
    pub pass: PrunePass,
    pub before: i64,
    pub cap: u64,
    pub budget: Duration,
    pub pruned: Option<Pruned>,
    pub took: Duration,
}

impl PruneStep {
    pub fn new(pass: PrunePass, before: i64, cap: u64, budget: Duration) -> PruneStep {
        PruneStep {
            pass,
            before,
            cap,
            budget,
            pruned: None,
            took: Duration::ZERO,
        }
    }
}

/// What a step did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    /// The retention pass reached the cut and the store is under its cap (or holds nothing
    /// delivered): nothing left to do until time moves on.
    pub done: bool,
}

/// Deletes delivered events older than the retention, then, while the store is over its cap,
/// the oldest delivered ones regardless of age. Undelivered events are never deleted. Runs
/// steps until done: for tools and tests; the engine runs [`prune_step`].
pub(super) fn prune(
    conn: &mut Connection,
    delivered_before_ms: i64,
    cap_bytes: u64,
) -> Result<u64, StoreError> {
    let mut st = PruneStep::new(
        PrunePass::default(),
        delivered_before_ms,
        cap_bytes,
        Duration::MAX,
    );
    let mut total = 0;
    loop {
        let step = prune_step(conn, &mut st)?;
        total += step.rows;
        if step.done {
            return Ok(total);
        }
    }
}

/// One step of [`prune`] in a transaction of its own (see [`prune_in`]).
pub(super) fn prune_step(conn: &mut Connection, st: &mut PruneStep) -> Result<Pruned, StoreError> {
    let started = Instant::now();
    let (mut locked, mut work) = (Duration::ZERO, Duration::ZERO);
    // Without an fsync of its own, as when it rides in a commit (see `without_fsync`; bench S7:
    // 8.8 ms of a step's 11-12 ms was its commit).
    let pruned = super::schema::without_fsync(conn, |conn| {
        // IMMEDIATE: the floor read here must still hold when the deletes commit.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        locked = started.elapsed();
        let pruned = prune_in(&tx, st)?;
        work = started.elapsed();
        tx.commit()?;
        Ok(pruned)
    })?;
    if started.elapsed() >= Duration::from_millis(10) {
        tracing::warn!(
            waited_for_lock = ?locked,
            work = ?(work - locked),
            commit = ?started.elapsed() - work,
            deleted = pruned.rows,
            "a pruning step held the store for over 10 ms"
        );
    }
    Ok(pruned)
}

/// A pruning step's work inside `tx`, which the caller commits: its own transaction
/// ([`Outbox::prune_step`]) or the engine's next commit (`Outbox::commit_with`), where the
/// deletes share the commit's fsync instead of waiting for one of their own. Chunks of `CHUNK`
/// seqs until the step's budget is spent or `STEP_ROWS` are deleted (at least one chunk). The
/// rows deleted and the count of pruned rows that `outbox verify` holds missing
/// rows against move together. Records in `st` what it pruned and how long its work took.
pub(super) fn prune_in(
    tx: &rusqlite::Transaction,
    st: &mut PruneStep,
) -> Result<Pruned, StoreError> {
    let started = Instant::now();
    let pruned = prune_chunks(tx, &mut st.pass, st.before, st.cap, st.budget)?;
    (st.pruned, st.took) = (Some(pruned), started.elapsed());
    Ok(pruned)
}

fn prune_chunks(
    tx: &rusqlite::Transaction,
    pass: &mut PrunePass,
    before: i64,
    cap: u64,
    budget: Duration,
) -> Result<Pruned, StoreError> {
    let started = Instant::now();
    let spent = |deleted: u64| started.elapsed() >= budget || deleted >= STEP_ROWS;
    // Rows after the lowest cursor stay; with no output reading events, every row stays.
    let Some(floor) = super::cursor_rows::events_floor(tx)? else {
        return Ok(Pruned {
            rows: 0,
            done: true,
        });
    };
    // Where every output stood at the retention's cut (0: one had not moved before it).
    let cut: Option<i64> = tx
        .prepare_cached(
            "SELECT CASE WHEN count(m) = count(*) THEN min(m) END FROM (
                 SELECT (SELECT max(seq) FROM sink_move WHERE sink = c.sink AND at_ms < ?1) AS m
                 FROM sink_cursor c WHERE c.seq IS NOT NULL)",
        )?
        .query_row([before], |r| r.get(0))?;
    let cut = (cut.unwrap_or(0) as u64).min(floor);
    // The first row from `seq` on that no output holds: each chunk starts at one, so a step
    // always deletes something while there is something to delete.
    let first_from = |conn: &Connection, seq: u64| -> rusqlite::Result<Option<u64>> {
        conn.prepare_cached(
            "SELECT seq FROM outbox WHERE seq >= ?1
             AND seq NOT IN (SELECT item FROM sink_held WHERE class = 'event')
             ORDER BY seq LIMIT 1",
        )?
        .query_row([seq as i64], |r| Ok(r.get::<_, i64>(0)? as u64))
        .optional()
    };
    // Up to `to` (inclusive), from `lo`, a chunk: held rows stay.
    let delete = |lo: u64, to: u64| -> rusqlite::Result<(u64, u64)> {
        let hi = (lo + CHUNK).min(to + 1);
        let n = tx
            .prepare_cached(
                "DELETE FROM outbox WHERE seq >= ?1 AND seq < ?2
                 AND seq NOT IN (SELECT item FROM sink_held WHERE class = 'event')",
            )?
            .execute(params![lo as i64, hi as i64])? as u64;
        Ok((n, hi))
    };
    let mut deleted = 0u64;

    // Retention: what every output had before the cut.
    let mut at = pass.at.unwrap_or(0);
    let retention_done = loop {
        let Some(lo) = first_from(tx, at)? else {
            break true;
        };
        if lo > cut {
            break true;
        }
        let (n, hi) = delete(lo, cut)?;
        deleted += n;
        at = hi;
        if spent(deleted) {
            break false;
        }
    };
    pass.at = (!retention_done).then_some(at);

    // The cap: the oldest rows every output had, whatever their age, a chunk at a time.
    let mut cap_done = retention_done;
    let mut at = 0;
    while cap_done && used_bytes(tx)? > cap {
        let Some(lo) = first_from(tx, at)? else {
            break;
        };
        if lo > floor {
            break;
        }
        let (n, hi) = delete(lo, floor)?;
        deleted += n;
        at = hi;
        if spent(deleted) {
            cap_done = used_bytes(tx)? <= cap;
            break;
        }
    }

    if deleted > 0 {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + CAST(excluded.value AS INTEGER)",
            params![PRUNED_ROWS, deleted as i64],
        )?;
        // The moves below the first row kept tell nothing any more. (A row held refused keeps
        // the moves after it: it needs them for its delivery time once taken. One move a
        // second: a day of a broker refusing an event is 86,400 small rows per output.)
        tx.prepare_cached(
            "DELETE FROM sink_move WHERE seq < (SELECT seq FROM outbox ORDER BY seq LIMIT 1)",
        )?
        .execute([])?;
    }
    Ok(Pruned {
        rows: deleted,
        done: retention_done && cap_done,
    })
}
