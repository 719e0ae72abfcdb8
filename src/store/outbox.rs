use super::error::StoreError;
use super::prune::{PruneStep, Pruned};
use super::schema::open;
pub(super) use super::schema::used_bytes;
use crate::cell::CellState;
use crate::config::Synchronous;
use crate::event::NewEvent;
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::path::Path;

/// The cell's outbox. The engine holds one (it commits); the forwarder holds another on the same
/// file (it reads what is pending and marks what the broker acknowledged). WAL lets them overlap.
pub struct Outbox {
    pub(super) conn: Connection,
    cell: String,
    last_seq: u64,
    /// The store's identity (meta table), in every envelope it commits.
    store_id: String,
    /// Where this connection's WAL checkpoints run, if not on its own thread.
    pub(super) checkpointer: Option<super::Checkpointer>,
    /// On the store owner's connection: events cursors' moves not yet written (one per sink,
    /// later ones folded in, with the time of the last), written by the next commit's
    /// transaction or by [`Outbox::write_moves_due`].
    pub(super) moves_due: Vec<(String, super::EventsMoved, i64)>,
    /// Corruption the check after READY found (store/integrity.rs): every commit fails with it.
    corrupt: Option<String>,
}

/// A committed event as the forwarder publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub seq: u64,
    pub kind: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub first_seq: u64,
    pub last_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutboxStats {
    /// The store's identity: with `seq`, what names an event for MOM.
    pub store_id: String,
    /// Events committed and not yet acknowledged by the broker.
    pub depth: u64,
    /// Timestamp of the first of them in sequence order, UTC ms (read by index, not by a scan
    /// for the smallest).
    pub oldest_undelivered_ts: Option<i64>,
    pub last_delivered_seq: Option<u64>,
    pub last_seq: u64,
    pub rows: u64,
    pub used_bytes: u64,
    /// Process values held (the lower class, docs/VALUES.md): not yet had by every output.
    pub values_held: u64,
    /// The last value batch committed (0: none).
    pub last_value_batch: u64,
}

impl Outbox {
    pub fn open(path: &Path, sync: Synchronous, cell: &str) -> Result<Self, StoreError> {
        Self::on(open(path, sync)?, cell)
    }

    fn on(conn: Connection, cell: &str) -> Result<Self, StoreError> {
        let last_seq: i64 =
            conn.query_row("SELECT last_seq FROM cell_state WHERE id = 1", [], |r| {
                r.get(0)
            })?;
        let store_id = meta(&conn, "store_id")?.unwrap_or_default();
        Ok(Outbox {
            conn,
            cell: cell.to_string(),
            last_seq: last_seq as u64,
            store_id,
            checkpointer: None,
            moves_due: Vec::new(),
            corrupt: None,
        })
    }

    /// A connection that only reads, for those who look (the supervisor, `outbox stats`): it
    /// never creates, migrates or writes the store; a store of another schema is refused.
    pub fn open_read_only(path: &Path, cell: &str) -> Result<Self, StoreError> {
        let conn = super::schema::open_read_only(path)?;
        let version = super::schema::check_identity(&conn, path)?;
        if version != super::SCHEMA_VERSION {
            return Err(StoreError::Foreign {
                path: path.display().to_string(),
                why: format!(
                    "schema {version}, this build reads {}: start the runtime once to migrate it",
                    super::SCHEMA_VERSION
                ),
            });
        }
        Self::on(conn, cell)
    }

    pub fn store_id(&self) -> &str {
        &self.store_id
    }

    /// A value of the store's meta table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        meta(&self.conn, key)
    }

    /// Gives the store a new identity: its next events carry `store_id` (the ones committed
    /// so far keep the one they were committed with), and it is announced again.
    pub fn reidentify(&mut self, store_id: &str, origin: &str) -> Result<(), StoreError> {
        let tx = super::schema::write_tx(&mut self.conn)?;
        for (k, v) in [
            ("store_id", store_id),
            ("origin", origin),
            ("announced", "0"),
        ] {
            tx.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
                [k, v],
            )?;
        }
        tx.commit()?;
        self.store_id = store_id.to_string();
        Ok(())
    }

    /// Commits the store's first event, `store_created`, unless it has been committed: the
    /// runtime calls this once at start, holding the store's lock. Gives back its seq.
    pub fn announce(
        &mut self,
        previous_store_id: Option<String>,
        previous_last_seq: Option<u64>,
        now_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        if self.meta("announced")?.as_deref() == Some("1") {
            return Ok(None);
        }
        let origin = self.meta("origin")?.unwrap_or_else(|| "new".into());
        let event = NewEvent::new(
            now_ms,
            vec!["store".into()],
            crate::event::EventBody::StoreCreated {
                store_id: self.store_id.clone(),
                origin,
                previous_store_id,
                previous_last_seq,
            },
        );
        // One transaction: the event and the flag, so it is announced exactly once.
        let tx = super::schema::write_tx(&mut self.conn)?;
        let seq = self.last_seq + 1;
        tx.execute(
            "INSERT INTO outbox (seq, event_id, ts_ms, kind, payload, committed_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                seq as i64,
                event.id.to_string(),
                event.ts_ms,
                event.body.kind(),
                event.to_payload(seq, &self.store_id, &self.cell),
                now_ms
            ],
        )?;
        tx.execute(
            "UPDATE cell_state SET last_seq = ?1 WHERE id = 1",
            [seq as i64],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('announced', '1')",
            [],
        )?;
        tx.commit()?;
        self.last_seq = seq;
        Ok(Some(seq))
    }

    /// The committed cell state; default for a new store.
    pub fn load_state(&self) -> Result<CellState, StoreError> {
        load_state(&self.conn)
    }

    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The writer at its start: `last_seq` no lower than the largest seq held. Lower, every
    /// commit would fail on the outbox's primary key for good (a second runtime on the store
    /// once wrote its own `last_seq` back over the live one's, issue 23). Gives back the
    /// (recorded, held) pair when it had to move.
    pub fn reconcile_sequence(&mut self) -> Result<Option<(u64, u64)>, StoreError> {
        let held: Option<i64> = self
            .conn
            .query_row("SELECT max(seq) FROM outbox", [], |r| r.get(0))?;
        let held = held.unwrap_or(0) as u64;
        if held <= self.last_seq {
            return Ok(None);
        }
        let tx = super::schema::write_tx(&mut self.conn)?;
        tx.execute(
            "UPDATE cell_state SET last_seq = ?1 WHERE id = 1",
            [held as i64],
        )?;
        tx.commit()?;
        let was = std::mem::replace(&mut self.last_seq, held);
        Ok(Some((was, held)))
    }

    /// Another connection to the same store, with its own `synchronous` level.
    pub fn open_again(&self, sync: Synchronous) -> Result<Self, StoreError> {
        let path = self.conn.path().unwrap_or_default().to_string();
        let mut again = Outbox::open(Path::new(&path), sync, &self.cell)?;
        if let Some(c) = &self.checkpointer {
            c.attach(&mut again)?;
        }
        Ok(again)
    }

    /// Commits `events` with the next sequence numbers and `state`, all or nothing. One call is
    /// one fsync (with synchronous FULL): callers batch, which is where throughput comes from.
    pub fn commit(
        &mut self,
        events: &[NewEvent],
        state: &CellState,
        now_ms: i64,
    ) -> Result<Committed, StoreError> {
        self.commit_all(events, &[], state, now_ms)
    }

    /// [`Outbox::commit`] with process values (store/values.rs), in the same transaction.
    pub fn commit_all(
        &mut self,
        events: &[NewEvent],
        values: &[crate::cell::ValueBatch],
        state: &CellState,
        now_ms: i64,
    ) -> Result<Committed, StoreError> {
        self.commit_with(events, values, state, now_ms, None)
    }

    /// [`Outbox::commit_all`] with a housekeeping step in the same transaction: its deletes
    /// share the commit's fsync. On failure the step is rolled back with the rest (its pass
    /// may have moved on: the caller keeps the one it handed in).
    pub fn commit_with(
        &mut self,
        events: &[NewEvent],
        values: &[crate::cell::ValueBatch],
        state: &CellState,
        now_ms: i64,
        step: Option<&mut PruneStep>,
    ) -> Result<Committed, StoreError> {
        if let Some(detail) = &self.corrupt {
            return Err(StoreError::Corrupt {
                path: "the store".into(),
                detail: detail.clone(),
            });
        }
        let tx = super::schema::write_tx(&mut self.conn)?;
        let mut seq = self.last_seq;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO outbox (seq, event_id, ts_ms, kind, payload, committed_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for e in events {
                seq += 1;
                let payload = e.to_payload(seq, &self.store_id, &self.cell);
                insert.execute(params![
                    seq as i64,
                    e.id.to_string(),
                    e.ts_ms,
                    e.body.kind(),
                    payload,
                    now_ms
                ])?;
            }
            let state = serde_json::to_string(state).expect("state always serializes");
            tx.prepare_cached("UPDATE cell_state SET last_seq = ?1, state = ?2 WHERE id = 1")?
                .execute(params![seq as i64, state])?;
        }
        // After a write: the transaction holds the write lock before the values' insert reads.
        super::values::insert(&tx, values, &self.store_id, &self.cell)?;
        // Cursor moves waiting on the owner ride in this transaction and its fsync, and the
        // housekeeping step after them (what they passed it may prune next time).
        moves_in(&tx, &self.moves_due)?;
        if let Some(st) = step {
            super::prune::prune_in(&tx, st)?;
        }
        tx.commit()?;
        self.moves_due.clear();
        let first_seq = self.last_seq + 1;
        self.last_seq = seq;
        Ok(Committed {
            first_seq,
            last_seq: seq,
        })
    }

    /// Folds `m`, a move of `sink`'s events cursor answered at `at_ms`, into the moves due.
    pub(super) fn move_due(&mut self, sink: String, m: super::EventsMoved, at_ms: i64) {
        match self.moves_due.iter_mut().find(|(s, _, _)| *s == sink) {
            Some((_, due, at)) => {
                due.then(m);
                *at = at_ms;
            }
            None => self.moves_due.push((sink, m, at_ms)),
        }
    }

    /// The owner's moves waiting for a transaction, written in one of their own. On failure
    /// they stay due, said in the log: a move must not be lost while later ones are written
    /// (the events it held refused would be passed by the cursor and never sent again).
    pub(super) fn write_moves_due(&mut self) {
        if self.moves_due.is_empty() {
            return;
        }
        let due = &self.moves_due;
        let written = super::schema::without_fsync(&mut self.conn, |conn| {
            let tx = super::schema::write_tx(conn)?;
            moves_in(&tx, due)?;
            Ok(tx.commit()?)
        });
        match written {
            Ok(()) => self.moves_due.clear(),
            Err(e) => tracing::error!("storing the events cursors' moves: {e}"),
        }
    }

    /// The check after READY found the store corrupt: no commit from here on (the engine stops
    /// with the reason).
    pub fn found_corrupt(&mut self, detail: String) {
        self.corrupt = Some(detail);
    }

    /// Bytes in use (pages not on the free list): what the size cap is measured against.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        used_bytes(&self.conn)
    }

    /// The outbox's numbers from the cursors and a few lookups by index: no count of rows, so
    /// reading them costs the same at ten rows as at ten million. Depth and the oldest
    /// undelivered event are the JSON forwarder's, or, without it, the slowest output's.
    pub fn stats(&self) -> Result<OutboxStats, StoreError> {
        let last_seq: i64 = self
            .conn
            .prepare_cached("SELECT last_seq FROM cell_state WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        let last_seq = last_seq as u64;
        let (sink, cursor) =
            match super::cursor_rows::events_cursor(&self.conn, super::EVENTS_SINK)? {
                Some(c) => (Some(super::EVENTS_SINK), c),
                None => (None, self.events_floor()?.unwrap_or(last_seq)),
            };
        let (held, first_held): (i64, Option<i64>) = self
            .conn
            .prepare_cached(
                "SELECT count(DISTINCT item), min(item) FROM sink_held
                 WHERE class = 'event' AND (?1 IS NULL OR sink = ?1)",
            )?
            .query_row([sink], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let oldest_seq = first_held.map_or(cursor + 1, |h| (h as u64).min(cursor + 1));
        let oldest: Option<i64> = self
            .conn
            .prepare_cached("SELECT ts_ms FROM outbox WHERE seq = ?1")?
            .query_row([oldest_seq as i64], |r| r.get(0))
            .optional()?;
        let pruned = self.pruned_rows()?;
        let rows = last_seq.saturating_sub(pruned);
        Ok(OutboxStats {
            store_id: self.meta("store_id")?.unwrap_or_default(),
            depth: last_seq.saturating_sub(cursor) + held as u64,
            oldest_undelivered_ts: oldest,
            last_delivered_seq: (cursor > 0).then_some(cursor),
            last_seq,
            rows,
            used_bytes: self.used_bytes()?,
            values_held: self.values_held()?,
            last_value_batch: self.last_value_batch()?,
        })
    }

    /// The lowest events cursor of all outputs: every event up to it was had by every output
    /// (but those one holds). None if no output reads events.
    pub(super) fn events_floor(&self) -> Result<Option<u64>, StoreError> {
        super::cursor_rows::events_floor(&self.conn)
    }

    /// Deletes delivered events older than the retention, then, while the store is over its
    /// cap, the oldest delivered ones regardless of age. Undelivered events are never deleted.
    /// For tools and tests; the engine's commits carry its steps ([`Outbox::commit_with`]).
    pub fn prune(&mut self, delivered_before_ms: i64, cap_bytes: u64) -> Result<u64, StoreError> {
        super::prune::prune(&mut self.conn, delivered_before_ms, cap_bytes)
    }

    /// One step of [`Outbox::prune`] in a transaction of its own.
    pub fn prune_step(&mut self, st: &mut PruneStep) -> Result<Pruned, StoreError> {
        super::prune::prune_step(&mut self.conn, st)
    }

    /// Rows pruning has deleted, ever (see [`super::schema::PRUNED_ROWS`]).
    pub(super) fn pruned_rows(&self) -> Result<u64, StoreError> {
        Ok(self
            .meta(super::schema::PRUNED_ROWS)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    pub(super) fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

fn meta(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// The committed cell state, on any connection to the store.
pub(super) fn load_state(conn: &Connection) -> Result<CellState, StoreError> {
    let text: String = conn.query_row("SELECT state FROM cell_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    serde_json::from_str(&text).map_err(|e| {
        StoreError::Sqlite(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(e),
        ))
    })
}

/// Writes the cursors' moves `moves` in `tx`.
fn moves_in(
    tx: &rusqlite::Transaction,
    moves: &[(String, super::EventsMoved, i64)],
) -> Result<(), StoreError> {
    for (sink, m, at_ms) in moves {
        if !super::cursor_rows::advance_events_in(tx, sink, m, *at_ms)? {
            tracing::warn!(
                sink,
                "a cursor move for an output that has no cursor (turned off): dropped"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::part;
    use super::*;

    #[test]
    fn sequence_is_gap_free_across_reopen_and_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        let c = ob
            .commit(&[part(1), part(2)], &CellState::default(), 5)
            .unwrap();
        assert_eq!(
            c,
            Committed {
                first_seq: 1,
                last_seq: 2
            }
        );
        deliver(&mut ob, 2, &[], 10);
        assert_eq!(ob.prune(11, u64::MAX).unwrap(), 2);
        drop(ob);
        let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        assert_eq!(
            ob.commit(&[part(3)], &CellState::default(), 5)
                .unwrap()
                .first_seq,
            3
        );
    }

    #[test]
    fn a_last_seq_behind_the_rows_held_is_moved_up_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        ob.commit(&[part(1), part(2), part(3)], &CellState::default(), 5)
            .unwrap();
        ob.conn
            .execute("UPDATE cell_state SET last_seq = 1 WHERE id = 1", [])
            .unwrap();
        drop(ob);
        let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        assert!(
            ob.commit(&[part(4)], &CellState::default(), 5).is_err(),
            "seq 2 is held"
        );
        assert_eq!(ob.reconcile_sequence().unwrap(), Some((1, 3)));
        assert_eq!(ob.reconcile_sequence().unwrap(), None);
        let c = ob.commit(&[part(4)], &CellState::default(), 5).unwrap();
        assert_eq!(c.first_seq, 4);
    }

    #[test]
    fn state_commits_with_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        let mut ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        let mut state = CellState::default();
        state.good.last = Some(42);
        state.good_total = 7;
        ob.commit(&[part(7)], &state, 5).unwrap();
        drop(ob);
        let ob = Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        assert_eq!(ob.load_state().unwrap(), state);
        let rows = ob.rows_after(0, 10).unwrap();
        assert_eq!(rows.len(), 1);
        let v: serde_json::Value = serde_json::from_slice(&rows[0].payload).unwrap();
        assert_eq!(v["seq"], 1);
        assert_eq!(v["type"], "part_count");
        assert_eq!(v["data"]["quantity"], 7);
        assert_eq!(v["cell"], "a/b/c/d/e");
    }

    /// A step stops at `STEP_ROWS` (6 under test) whatever time it has left: its commit writes
    /// every page the rows were on, and that is the engine's wait too.
    #[test]
    fn a_pruning_step_deletes_at_most_its_rows_whatever_its_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob =
            Outbox::open(&dir.path().join("c.db"), Synchronous::Normal, "a/b/c/d/e").unwrap();
        let events: Vec<_> = (0..20).map(part).collect();
        ob.commit(&events, &CellState::default(), 5).unwrap();
        deliver(&mut ob, 20, &[], 10);
        let mut st = super::super::PruneStep::new(
            Default::default(),
            11,
            u64::MAX,
            std::time::Duration::MAX,
        );
        let mut steps = Vec::new();
        loop {
            let step = ob.prune_step(&mut st).unwrap();
            steps.push(step.rows);
            if step.done {
                break;
            }
        }
        assert!(steps.iter().all(|&r| r <= 6), "{steps:?}");
        assert_eq!(steps.iter().sum::<u64>(), 20, "{steps:?}");
    }

    #[test]
    fn prune_keeps_what_the_cursor_has_not_passed_and_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let mut ob =
            Outbox::open(&dir.path().join("c.db"), Synchronous::Normal, "a/b/c/d/e").unwrap();
        let events: Vec<_> = (0..5).map(part).collect();
        ob.commit(&events, &CellState::default(), 5).unwrap();
        // 1 to 3 answered, 2 refused: 2 held, 4 and 5 not yet answered.
        deliver(&mut ob, 3, &[2], 10);
        let st = ob.stats().unwrap();
        assert_eq!(
            (st.depth, st.last_delivered_seq, st.oldest_undelivered_ts),
            (3, Some(3), Some(1_000))
        );
        assert_eq!(ob.rows_after(3, 10).unwrap()[0].seq, 4);
        // A cap of zero bytes prunes every delivered row but no undelivered one.
        ob.prune(0, 0).unwrap();
        let st = ob.stats().unwrap();
        assert_eq!((st.rows, st.depth, st.last_seq), (3, 3, 5));
        let kept: Vec<u64> = ob
            .rows_after(0, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(kept, [2, 4, 5]);
    }

    /// The JSON forwarder's cursor moved on to `to`, holding `held`.
    fn deliver(ob: &mut Outbox, to: u64, held: &[u64], at_ms: i64) {
        let m = crate::store::EventsMoved {
            to,
            held: held.to_vec(),
            taken: Vec::new(),
        };
        ob.advance_events(crate::store::EVENTS_SINK, &m, at_ms)
            .unwrap();
    }
}
