//! The status page's look into the running cell's store: a read-only connection (it can never
//! take the writer's lock or change a row) and the few queries the page's API needs. The
//! engine commits state and events in one transaction, so what is read here is always a state
//! the cell was in.

use super::error::StoreError;
use super::inspect::{stored_event, StoredEvent, COLUMNS};
use crate::cell::CellState;
use rusqlite::{params, Connection};

/// A filtered query looks at no more than the last this many events: the outbox has no index
/// by type, and a page polled every second must not scan a store of millions of rows.
pub const SCAN_ROWS: i64 = 20_000;

pub use super::schema::open_read_only;

/// The committed cell state (counters, machine state, orders, shift).
pub fn cell_state(conn: &Connection) -> Result<CellState, StoreError> {
    super::outbox::load_state(conn)
}

/// Up to `limit` events of `kind` committed at or after `since_ms`, the newest last. Rows
/// pruned after delivery are gone: the page shows what the store still holds.
pub fn recent_of_kind(
    conn: &Connection,
    kind: &str,
    since_ms: i64,
    limit: u64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox
         WHERE kind = ?1 AND ts_ms >= ?2 AND seq > (SELECT last_seq FROM cell_state) - ?4
         ORDER BY seq DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![kind, since_ms, limit.min(i64::MAX as u64) as i64, SCAN_ROWS],
        stored_event,
    )?;
    let mut out: Vec<StoredEvent> = rows.collect::<Result<_, _>>()?;
    out.reverse();
    Ok(out)
}

/// The newest events of `kind` (any kind if None) with a sequence number above `after`, at most
/// `limit`, oldest first; with `after` 0 the page gets the last `limit` events.
pub fn events_after(
    conn: &Connection,
    after: u64,
    limit: u64,
    kind: Option<&str>,
) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox
         WHERE seq > ?1 AND (?2 IS NULL OR kind = ?2)
           AND seq > (SELECT last_seq FROM cell_state) - ?4
         ORDER BY seq DESC LIMIT ?3"
    ))?;
    let rows = stmt.query_map(
        params![
            after as i64,
            kind,
            limit.min(i64::MAX as u64) as i64,
            SCAN_ROWS
        ],
        stored_event,
    )?;
    let mut out: Vec<StoredEvent> = rows.collect::<Result<_, _>>()?;
    out.reverse();
    Ok(out)
}

impl super::Outbox {
    /// [`sink_behind`] on this connection.
    pub fn sink_behind(&self, sink: &str) -> Result<Option<(u64, Option<i64>)>, StoreError> {
        sink_behind(&self.conn, sink)
    }
}

/// How far an output with its own cursor (Sparkplug B: `sink`) is behind the outbox: the events
/// after its cursor and the time of the first of them; None if it has no cursor (never ran).
/// Rows after the lowest cursor are never pruned, so the count is the sequence's difference.
pub fn sink_behind(
    conn: &Connection,
    sink: &str,
) -> Result<Option<(u64, Option<i64>)>, StoreError> {
    use rusqlite::OptionalExtension;
    let cursor: Option<(i64, i64)> = conn
        .prepare_cached(
            "SELECT s.seq, c.last_seq FROM sink_cursor s, cell_state c WHERE s.sink = ?1 AND c.id = 1",
        )?
        .query_row([sink], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((seq, last)) = cursor else {
        return Ok(None);
    };
    let oldest: Option<i64> = conn
        .prepare_cached("SELECT ts_ms FROM outbox WHERE seq = ?1")?
        .query_row([seq + 1], |r| r.get(0))
        .optional()?;
    Ok(Some(((last - seq).max(0) as u64, oldest)))
}
