//! A delivery cursor per output: each publishes the same rows to its own session at its own
//! pace, so it keeps its own place: every event up to `seq` and every value batch up to
//! `value_batch` was acknowledged to it (but those it holds refused, store/event_cursor.rs);
//! the JSON events forwarder keeps an events cursor only, the JSON values forwarder a value
//! cursor only. Its figures as of that place (`state`) move in the same transaction, so
//! a restart resumes both exactly. Pruning keeps every row after the lowest cursor.

use super::error::StoreError;
use super::outbox::{Outbox, OutboxRow};
use rusqlite::{params, OptionalExtension};

/// Where an output stands in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkCursor {
    pub seq: u64,
    pub state: String,
    pub bd_seq: u8,
    /// Every process-value batch up to here was acknowledged to this output (or dropped).
    pub value_batch: u64,
}

impl Outbox {
    /// The cursor of `sink`; made at the last committed event with `initial` (the sink's
    /// figures from the cell state committed with that event) if the sink has none yet.
    pub fn sink_cursor(
        &mut self,
        sink: &str,
        initial: impl FnOnce(&crate::cell::CellState) -> String,
    ) -> Result<SinkCursor, StoreError> {
        let tx = self
            .conn()
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let found = tx
            .query_row(
                "SELECT seq, state, bd_seq, value_batch FROM sink_cursor WHERE sink = ?1",
                [sink],
                |r| {
                    Ok(SinkCursor {
                        seq: r.get::<_, i64>(0)? as u64,
                        state: r.get(1)?,
                        bd_seq: r.get::<_, i64>(2)? as u8,
                        value_batch: r.get::<_, i64>(3)? as u64,
                    })
                },
            )
            .optional()?;
        if let Some(c) = found {
            return Ok(c);
        }
        // The cell state and last_seq are committed together: the figures are those of `seq`.
        let (seq, text): (i64, String) = tx.query_row(
            "SELECT last_seq, state FROM cell_state WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let cell: crate::cell::CellState = serde_json::from_str(&text).unwrap_or_default();
        let c = SinkCursor {
            seq: seq as u64,
            state: initial(&cell),
            // The first connect takes 0 (the number is raised before each connect).
            bd_seq: 255,
            // Like the events, values start with what is committed from now on.
            value_batch: super::values::last_batch(&tx)?,
        };
        tx.execute(
            "INSERT INTO sink_cursor (sink, seq, state, bd_seq, value_batch)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![sink, seq, c.state, c.bd_seq as i64, c.value_batch as i64],
        )?;
        // Value batches committed while no output read values are nobody's.
        super::cursor_rows::delete_done(&tx, 0)?;
        tx.commit()?;
        Ok(c)
    }

    /// Moves `sink`'s cursor on to `seq` with its figures as of there, at `at_ms` (when its
    /// broker answered).
    pub fn advance_sink(
        &mut self,
        sink: &str,
        seq: u64,
        state: &str,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        let tx = super::schema::write_tx(self.conn())?;
        let was = super::cursor_rows::events_cursor(&tx, sink)?
            .ok_or_else(|| StoreError::NoCursor(sink.to_string()))?;
        tx.prepare_cached("UPDATE sink_cursor SET seq = ?2, state = ?3 WHERE sink = ?1")?
            .execute(params![sink, seq as i64, state])?;
        if seq > was {
            super::cursor_rows::record_move(&tx, sink, seq, at_ms)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Records the birth/death sequence number of the connect about to be made: after a
    /// kill -9 the next connect must not reuse it.
    pub fn set_sink_bd_seq(&mut self, sink: &str, bd_seq: u8) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE sink_cursor SET bd_seq = ?2 WHERE sink = ?1")?
            .execute(params![sink, bd_seq as i64])?;
        Ok(())
    }

    /// Forgets an output that was turned off, so that it no longer holds rows from pruning, nor
    /// value batches (those it held refused included) the other outputs have had.
    pub fn drop_sink(&mut self, sink: &str) -> Result<bool, StoreError> {
        let tx = super::schema::write_tx(self.conn())?;
        let dropped = tx.execute("DELETE FROM sink_cursor WHERE sink = ?1", [sink])? > 0;
        tx.execute("DELETE FROM sink_value WHERE sink = ?1", [sink])?;
        tx.execute("DELETE FROM sink_held WHERE sink = ?1", [sink])?;
        tx.execute("DELETE FROM sink_move WHERE sink = ?1", [sink])?;
        super::cursor_rows::delete_done(&tx, 0)?;
        tx.commit()?;
        Ok(dropped)
    }

    /// Committed events after `after_seq`, delivered to MOM or not, in sequence order.
    pub fn rows_after(&self, after_seq: u64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        // No `LIMIT ?`: SQLite reads a bound LIMIT's value while planning, so every new binding
        // re-parses and re-plans the cached statement (bench S5: 15% of the idle runtime's CPU).
        // Rows are stepped lazily through the primary key, so taking `limit` reads no more.
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, kind, payload FROM outbox WHERE seq > ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![after_seq as i64], |r| {
            Ok(OutboxRow {
                seq: r.get::<_, i64>(0)? as u64,
                kind: r.get(1)?,
                payload: r.get(2)?,
            })
        })?;
        Ok(rows.take(limit).collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::CellState;
    use crate::config::Synchronous;
    use crate::event::NewEvent;

    fn part() -> NewEvent {
        super::super::test_support::part(1)
    }

    #[test]
    fn a_cursor_starts_at_the_last_commit_and_holds_rows_from_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob =
            Outbox::open(&dir.path().join("c.db"), Synchronous::Normal, "a/b/c/d/e").unwrap();
        let state = CellState {
            good_total: 2,
            ..Default::default()
        };
        ob.commit(&[part(), part()], &state, 5).unwrap();
        let c = ob
            .sink_cursor("sparkplug", |s| s.good_total.to_string())
            .unwrap();
        assert_eq!((c.seq, c.state.as_str()), (2, "2"));
        ob.commit(&[part(), part(), part()], &state, 5).unwrap();
        let all = crate::store::EventsMoved {
            to: 5,
            ..Default::default()
        };
        ob.advance_events(crate::store::EVENTS_SINK, &all, 10)
            .unwrap();
        ob.advance_sink("sparkplug", 3, "3", 10).unwrap();
        // Delivered to MOM, but 4 and 5 not yet to the other output: only 1 to 3 go.
        assert_eq!(ob.prune(11, 0).unwrap(), 3);
        let seqs: Vec<u64> = ob
            .rows_after(0, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(seqs, vec![4, 5]);
        ob.set_sink_bd_seq("sparkplug", 7).unwrap();
        let again = ob.sink_cursor("sparkplug", |_| unreachable!()).unwrap();
        assert_eq!(
            again,
            SinkCursor {
                seq: 3,
                state: "3".into(),
                bd_seq: 7,
                value_batch: 0,
            }
        );
        assert!(ob.drop_sink("sparkplug").unwrap());
        assert_eq!(ob.prune(11, 0).unwrap(), 2);
        let v = crate::store::inspect::verify(ob.conn()).unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }
}
