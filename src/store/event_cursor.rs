//! Events as every output reads them: behind a cursor of its own (`sink_cursor.seq`). The
//! broker's answers move it: on over every leading event answered, holding (`sink_held`) the
//! ones the broker refused so they are sent again and kept from pruning, and releasing the held
//! ones it took since. An event is delivered for an output when its cursor is past it and it
//! does not hold it; it may be pruned once that is true of every output reading events.
//!
//! Each move is recorded with its time (`sink_move`, one row per second and sink at most): the
//! time an event reached an output, which the failover's re-send window, the retention and the
//! status page read.

use super::cursor_rows::{advance_events_in, events_cursor, EventsMoved};
use super::error::StoreError;
use super::outbox::{Outbox, OutboxRow};
use rusqlite::OptionalExtension;

/// The JSON events forwarder's cursor.
pub const EVENTS_SINK: &str = "events";

const EVENTS_BEHIND: &str = "SELECT c.last_seq - s.seq FROM sink_cursor s, cell_state c
    WHERE s.sink = ?1 AND c.id = 1";
const HELD_EVENTS: &str =
    "SELECT item FROM sink_held WHERE sink = ?1 AND class = 'event' ORDER BY item";

impl Outbox {
    /// Moves `sink`'s events cursor in a transaction of its own (tools and tests; the runtime's
    /// moves ride in the engine's commits, see store/owner.rs).
    pub fn advance_events(
        &mut self,
        sink: &str,
        m: &EventsMoved,
        at_ms: i64,
    ) -> Result<bool, StoreError> {
        let tx = super::schema::write_tx(self.conn())?;
        let moved = advance_events_in(&tx, sink, m, at_ms)?;
        tx.commit()?;
        Ok(moved)
    }

    /// The events cursor of an output that reads events only (the JSON events forwarder):
    /// made at the last event committed if it has none, as a new output starts with what
    /// comes next. Gives back where it stands.
    pub fn make_events_cursor(&mut self, sink: &str) -> Result<u64, StoreError> {
        let tx = super::schema::write_tx(self.conn())?;
        tx.prepare_cached(
            "INSERT OR IGNORE INTO sink_cursor (sink, seq, value_batch, state, bd_seq)
             SELECT ?1, last_seq, NULL, '{}', 255 FROM cell_state WHERE id = 1",
        )?
        .execute([sink])?;
        let at = events_cursor(&tx, sink)?.unwrap_or_default();
        tx.commit()?;
        Ok(at)
    }

    /// Events committed after `sink`'s cursor (0 without a cursor).
    pub fn events_behind(&self, sink: &str) -> Result<u64, StoreError> {
        let behind: Option<i64> = self
            .conn
            .prepare_cached(EVENTS_BEHIND)?
            .query_row([sink], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(behind.unwrap_or(0).max(0) as u64)
    }

    /// Where `sink`'s events cursor stands; None if it reads no events (or does not exist).
    pub fn events_cursor(&self, sink: &str) -> Result<Option<u64>, StoreError> {
        events_cursor(&self.conn, sink)
    }

    /// The events `sink` holds refused (or `outbox replay` put back), in seq order.
    pub fn held_events(&self, sink: &str) -> Result<Vec<u64>, StoreError> {
        let mut stmt = self.conn.prepare_cached(HELD_EVENTS)?;
        let rows = stmt.query_map([sink], |r| r.get::<_, i64>(0))?;
        Ok(rows
            .map(|r| r.map(|s| s as u64))
            .collect::<Result<_, _>>()?)
    }

    /// The committed events `seqs` (those still held), in seq order.
    pub fn events_by_seq(&self, seqs: &[u64]) -> Result<Vec<OutboxRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, kind, payload FROM outbox WHERE seq = ?1")?;
        let mut rows = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let row = stmt
                .query_row([seq as i64], |r| {
                    Ok(OutboxRow {
                        seq: r.get::<_, i64>(0)? as u64,
                        kind: r.get(1)?,
                        payload: r.get(2)?,
                    })
                })
                .optional()?;
            rows.extend(row);
        }
        rows.sort_by_key(|r| r.seq);
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cursor_rows::moved_before;
    use super::*;
    use crate::cell::CellState;
    use crate::config::Synchronous;
    use crate::event::{EventBody, NewEvent};

    fn status() -> NewEvent {
        let body = EventBody::DeviceStatus {
            device: "plc".into(),
            online: true,
            reason: None,
        };
        NewEvent::new(1_000, vec![], body)
    }

    fn moved(to: u64, held: &[u64], taken: &[u64]) -> EventsMoved {
        EventsMoved {
            to,
            held: held.to_vec(),
            taken: taken.to_vec(),
        }
    }

    /// The forwarder asks these before every fill of its window; parsing and planning them
    /// anew each time cost 6 % of the runtime's CPU (schema::stable_plans).
    #[test]
    fn the_forwarders_frequent_reads_are_not_prepared_again_at_every_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let mut writer = Outbox::open(&path, Synchronous::Normal, "a/b/c/d/e").unwrap();
        let reader = Outbox::open(&path, Synchronous::Normal, "a/b/c/d/e").unwrap();
        for i in 1..=3u64 {
            writer
                .commit(&[status()], &CellState::default(), 1_000)
                .unwrap();
            assert_eq!(reader.events_behind(EVENTS_SINK).unwrap(), i);
            assert!(reader.held_events(EVENTS_SINK).unwrap().is_empty());
        }
        for sql in [EVENTS_BEHIND, HELD_EVENTS] {
            let stmt = reader.conn.prepare_cached(sql).unwrap();
            assert_eq!(
                stmt.get_status(rusqlite::StatementStatus::RePrepare),
                0,
                "{sql}"
            );
        }
    }

    #[test]
    fn a_move_holds_the_refused_releases_the_taken_and_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut o =
            Outbox::open(&dir.path().join("c.db"), Synchronous::Normal, "a/b/c/d/e").unwrap();
        o.commit(
            &(0..6).map(|_| status()).collect::<Vec<_>>(),
            &CellState::default(),
            5,
        )
        .unwrap();
        assert_eq!(o.events_cursor(EVENTS_SINK).unwrap(), Some(0));
        assert!(o
            .advance_events(EVENTS_SINK, &moved(4, &[2, 3], &[]), 10_000)
            .unwrap());
        assert_eq!(o.events_cursor(EVENTS_SINK).unwrap(), Some(4));
        assert_eq!(o.held_events(EVENTS_SINK).unwrap(), [2, 3]);
        // A late answer: 3 taken, the cursor stays.
        o.advance_events(EVENTS_SINK, &moved(1, &[], &[3]), 20_000)
            .unwrap();
        assert_eq!(o.events_cursor(EVENTS_SINK).unwrap(), Some(4));
        assert_eq!(o.held_events(EVENTS_SINK).unwrap(), [2]);
        let rows = o.events_by_seq(&[5, 2, 9]).unwrap();
        assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 5]);
        // Moves within a second fold into one; the cursor's place before a time is read back.
        o.advance_events(EVENTS_SINK, &moved(5, &[], &[]), 30_000)
            .unwrap();
        o.advance_events(EVENTS_SINK, &moved(6, &[], &[]), 30_500)
            .unwrap();
        assert_eq!(moved_before(&o.conn, EVENTS_SINK, 30_000).unwrap(), Some(4));
        assert_eq!(moved_before(&o.conn, EVENTS_SINK, 31_000).unwrap(), Some(6));
        let n: i64 = o
            .conn
            .query_row("SELECT count(*) FROM sink_move", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
        assert!(!o.advance_events("gone", &moved(6, &[], &[]), 1).unwrap());
    }

    #[test]
    fn moves_fold_in_order() {
        let mut m = moved(4, &[2, 3], &[]);
        m.then(moved(6, &[5], &[3]));
        assert_eq!(m, moved(6, &[2, 5], &[3]));
        m.then(moved(7, &[3], &[]));
        assert_eq!(m, moved(7, &[2, 5, 3], &[]));
    }
}
