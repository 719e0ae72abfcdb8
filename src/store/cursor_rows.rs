//! The outputs' cursors as rows (`sink_cursor`, `sink_held`, `sink_move`), read and written on
//! a connection or inside a transaction: below [`super::Outbox`], so that the outbox's own
//! transactions (a commit carrying the JSON cursor's moves) and the outputs' methods share them
//! without importing each other.

use super::error::StoreError;
use rusqlite::{params, Connection, OptionalExtension};

/// Where an output's events cursor moves: on to `to` (never back), holding the events refused
/// on the way and releasing the held ones taken since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventsMoved {
    pub to: u64,
    pub held: Vec<u64>,
    pub taken: Vec<u64>,
}

impl EventsMoved {
    /// This move followed by `later`, as one: an event held here and taken later is released.
    pub fn then(&mut self, later: EventsMoved) {
        self.to = self.to.max(later.to);
        self.held.retain(|s| !later.taken.contains(s));
        self.taken.retain(|s| !later.held.contains(s));
        self.held.extend(later.held);
        self.taken.extend(later.taken);
    }
}

/// `sink`'s events cursor on any connection.
pub(super) fn events_cursor(conn: &Connection, sink: &str) -> Result<Option<u64>, StoreError> {
    let seq: Option<Option<i64>> = conn
        .prepare_cached("SELECT seq FROM sink_cursor WHERE sink = ?1")?
        .query_row([sink], |r| r.get(0))
        .optional()?;
    Ok(seq.flatten().map(|s| s as u64))
}

/// Where `sink`'s cursor stood before `at_ms`: every event up to here reached it before then.
pub(super) fn moved_before(
    conn: &Connection,
    sink: &str,
    at_ms: i64,
) -> Result<Option<u64>, StoreError> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM sink_move WHERE sink = ?1 AND at_ms < ?2")?
        .query_row(params![sink, at_ms], |r| r.get(0))?;
    Ok(seq.map(|s| s as u64))
}

/// The move `m` of `sink`'s cursor inside `tx`. False if the sink has no cursor (turned off
/// meanwhile): nothing is written.
pub(super) fn advance_events_in(
    tx: &rusqlite::Transaction,
    sink: &str,
    m: &EventsMoved,
    at_ms: i64,
) -> Result<bool, StoreError> {
    let Some(was) = events_cursor(tx, sink)? else {
        return Ok(false);
    };
    hold_and_release(tx, sink, "event", &m.held, &m.taken)?;
    // Never back: an answer that comes late moves nothing.
    if m.to > was {
        tx.prepare_cached("UPDATE sink_cursor SET seq = ?2 WHERE sink = ?1")?
            .execute(params![sink, m.to as i64])?;
        record_move(tx, sink, m.to, at_ms)?;
    }
    Ok(true)
}

/// Records that `sink`'s cursor moved on to `to` at `at_ms`. One move a second is enough for
/// every reader of the times: the moves of the last second fold into this one.
pub(super) fn record_move(
    conn: &Connection,
    sink: &str,
    to: u64,
    at_ms: i64,
) -> Result<(), StoreError> {
    // Folding keeps at most one move within any second, the last one recorded: only it can
    // fold into this one, found by the primary key (a scan of every move kept would grow with
    // the retention: a day of moves is 86,400 rows per output).
    conn.prepare_cached(
        "DELETE FROM sink_move WHERE sink = ?1 AND at_ms > ?2
             AND seq = (SELECT max(seq) FROM sink_move WHERE sink = ?1 AND seq < ?3)",
    )?
    .execute(params![sink, at_ms - 1000, to as i64])?;
    conn.prepare_cached("INSERT OR REPLACE INTO sink_move (sink, seq, at_ms) VALUES (?1, ?2, ?3)")?
        .execute(params![sink, to as i64, at_ms])?;
    Ok(())
}

/// Holds what `sink`'s broker refused (events or value batches: `class`) and releases what it
/// took since, in `tx`.
pub(super) fn hold_and_release(
    tx: &rusqlite::Transaction,
    sink: &str,
    class: &str,
    held: &[u64],
    taken: &[u64],
) -> Result<(), StoreError> {
    let mut hold = tx.prepare_cached(
        "INSERT OR IGNORE INTO sink_held (sink, class, item) VALUES (?1, ?2, ?3)",
    )?;
    for &i in held {
        hold.execute(params![sink, class, i as i64])?;
    }
    let mut release =
        tx.prepare_cached("DELETE FROM sink_held WHERE sink = ?1 AND class = ?2 AND item = ?3")?;
    for &i in taken {
        release.execute(params![sink, class, i as i64])?;
    }
    Ok(())
}

/// The lowest events cursor of all outputs (see `Outbox::events_floor`), on any connection or
/// transaction.
pub(super) fn events_floor(conn: &Connection) -> Result<Option<u64>, StoreError> {
    let floor: Option<i64> = conn
        .prepare_cached("SELECT min(seq) FROM sink_cursor")?
        .query_row([], |r| r.get(0))?;
    Ok(floor.map(|s| s as u64))
}

/// Deletes the batches after `after` that every output has had: every value cursor is past
/// them (none: no output reads values) and no output holds them refused.
pub(super) fn delete_done(tx: &rusqlite::Transaction, after: u64) -> rusqlite::Result<()> {
    let gone: i64 = {
        let mut del = tx.prepare_cached(
            "DELETE FROM value_batch
             WHERE batch > ?1
               AND batch <= coalesce((SELECT min(value_batch) FROM sink_cursor), ?2)
               AND batch NOT IN (SELECT item FROM sink_held WHERE class = 'value')
             RETURNING count",
        )?;
        let rows = del.query_map(params![after as i64, i64::MAX], |r| r.get::<_, i64>(0))?;
        rows.sum::<Result<i64, _>>()?
    };
    forget_held(tx, gone)
}

fn forget_held(tx: &rusqlite::Transaction, values: i64) -> rusqlite::Result<()> {
    if values > 0 {
        tx.prepare_cached("UPDATE value_count SET held = held - ?1 WHERE id = 1")?
            .execute([values])?;
    }
    Ok(())
}
