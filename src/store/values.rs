//! Process values in the store: a lower class than events. Their batches have their own
//! sequence (the events' `seq` stays gap-free and never carries a value), their own cap and
//! age, and are deleted once every output that reads them has them: each has a value cursor
//! (the JSON values forwarder's `values`, Sparkplug's DDATA), and a batch its broker refused is
//! held for it (`sink_held`) until it is taken. Over the cap the oldest batches are dropped,
//! held or not, and what was dropped is handed back, by tag, for the metrics and the alarm.

use super::error::StoreError;
use super::Outbox;
use crate::cell::{ValueBatch, ValuePayload};
use rusqlite::{params, OptionalExtension, Transaction, TransactionBehavior};
use std::collections::BTreeMap;

/// A value batch as the forwarder publishes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueRow {
    pub batch: u64,
    pub device: String,
    /// Values in the batch.
    pub count: u64,
    pub payload: Vec<u8>,
}

/// Values dropped unsent, by tag.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValueDrops {
    pub batches: u64,
    pub values: u64,
    pub by_tag: BTreeMap<String, u64>,
}

impl ValueDrops {
    pub fn is_empty(&self) -> bool {
        self.batches == 0
    }

    pub fn add(&mut self, other: ValueDrops) {
        self.batches += other.batches;
        self.values += other.values;
        for (tag, n) in other.by_tag {
            *self.by_tag.entry(tag).or_default() += n;
        }
    }
}

/// An output's value cursor moving: on to `to` (every batch up to it acknowledged, refused or
/// dropped), the batches its broker refused on the way (`held`: passed, kept, sent again at
/// its next connection), the held ones its broker took since (`taken`), and the last values
/// of the devices that changed, in the output's own encoding (`last`: Sparkplug's births).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ValuesMoved {
    pub to: u64,
    pub held: Vec<u64>,
    pub taken: Vec<u64>,
    pub last: Vec<(String, Vec<u8>)>,
}

fn value_row(r: &rusqlite::Row) -> rusqlite::Result<ValueRow> {
    Ok(ValueRow {
        batch: r.get::<_, i64>(0)? as u64,
        device: r.get(1)?,
        count: r.get::<_, i64>(2)? as u64,
        payload: r.get(3)?,
    })
}

/// Inserts `batches` in the engine's commit transaction, numbering them on from the last batch
/// ever committed (deleted ones included). The transaction must have written already: a
/// deferred transaction that reads first and writes later fails at once (SQLITE_BUSY, no busy
/// wait) when another connection wrote in between, as the forwarder does.
pub(super) fn insert(
    tx: &Transaction,
    batches: &[ValueBatch],
    store_id: &str,
    cell: &str,
) -> Result<(), StoreError> {
    if batches.is_empty() {
        return Ok(());
    }
    let last = last_batch(tx)? as i64;
    let mut insert = tx.prepare_cached(
        "INSERT INTO value_batch (batch, device, ts_ms, count, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut held = 0i64;
    for (i, b) in batches.iter().enumerate() {
        let batch = last + 1 + i as i64;
        let payload = b.to_payload(batch as u64, store_id, cell);
        insert.execute(params![
            batch,
            b.device,
            b.ts_ms,
            b.values.len() as i64,
            payload
        ])?;
        held += b.values.len() as i64;
    }
    tx.prepare_cached("UPDATE value_count SET held = held + ?1 WHERE id = 1")?
        .execute([held])?;
    Ok(())
}

impl Outbox {
    /// Values held undelivered.
    pub fn values_held(&self) -> Result<u64, StoreError> {
        held(&self.conn)
    }

    /// Drops the oldest batches while more than `cap` values are held, never the newest (so the
    /// values held may pass the cap by one batch, at most 2,000 values).
    pub fn cap_values(&mut self, cap: u64) -> Result<ValueDrops, StoreError> {
        if self.values_held()? <= cap {
            return Ok(ValueDrops::default());
        }
        // Immediate: it reads, then deletes, while the forwarder deletes too (see `insert`).
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held = held(&tx)?;
        if held <= cap {
            return Ok(ValueDrops::default());
        }
        let mut over = (held - cap) as i64;
        let mut doomed = Vec::new();
        {
            // Never the newest batch: a device's batch of one busy turn may alone be over a
            // small cap, and dropping it would leave nothing of what the cell saw last.
            let mut stmt = tx.prepare_cached(
                "SELECT batch, count, payload FROM value_batch
                 WHERE batch < (SELECT max(batch) FROM value_batch) ORDER BY batch",
            )?;
            let mut rows = stmt.query([])?;
            while over > 0 {
                let Some(r) = rows.next()? else { break };
                let count: i64 = r.get(1)?;
                over -= count;
                doomed.push((r.get::<_, i64>(0)?, count, r.get::<_, Vec<u8>>(2)?));
            }
        }
        let drops = delete(&tx, doomed)?;
        tx.commit()?;
        Ok(drops)
    }

    /// Drops undelivered batches made before `before_ms`: stale by `values_retention_hours`.
    pub fn age_values(&mut self, before_ms: i64) -> Result<ValueDrops, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let doomed = {
            let mut stmt = tx.prepare_cached(
                "SELECT batch, count, payload FROM value_batch WHERE ts_ms < ?1 ORDER BY batch",
            )?;
            let rows = stmt.query_map([before_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let drops = delete(&tx, doomed)?;
        tx.commit()?;
        Ok(drops)
    }

    /// Value batches after `after`, oldest first: an output reads on from its cursor.
    pub fn value_rows_after(&self, after: u64, limit: usize) -> Result<Vec<ValueRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT batch, device, count, payload FROM value_batch WHERE batch > ?1 ORDER BY batch",
        )?;
        let rows = stmt.query_map([after as i64], value_row)?;
        Ok(rows.take(limit).collect::<Result<_, _>>()?)
    }

    /// The batches after `after` that `sink`'s broker refused and that are still held (not
    /// dropped by the cap or the age meanwhile), oldest first: sent again at its next
    /// connection.
    pub fn held_value_rows(
        &self,
        sink: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<ValueRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT v.batch, v.device, v.count, v.payload
             FROM sink_held h JOIN value_batch v ON v.batch = h.item
             WHERE h.sink = ?1 AND h.class = 'value' AND h.item > ?2 ORDER BY h.item",
        )?;
        let rows = stmt.query_map(params![sink, after as i64], value_row)?;
        Ok(rows.take(limit).collect::<Result<_, _>>()?)
    }

    /// The value cursor of an output that reads values only (the JSON values forwarder): made
    /// at the last batch committed if it has none, as a new output starts with what comes next.
    pub fn values_cursor(&mut self, sink: &str) -> Result<u64, StoreError> {
        let tx = super::schema::write_tx(&mut self.conn)?;
        let made = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO sink_cursor (sink, seq, value_batch, state, bd_seq)
                 VALUES (?1, NULL, ?2, '{}', 255)",
            )?
            .execute(params![sink, last_batch(&tx)? as i64])?;
        if made > 0 {
            // Batches committed while no output read values are nobody's.
            super::cursor_rows::delete_done(&tx, 0)?;
        }
        let at: i64 = tx
            .prepare_cached("SELECT value_batch FROM sink_cursor WHERE sink = ?1")?
            .query_row([sink], |r| r.get(0))?;
        tx.commit()?;
        Ok(at as u64)
    }

    /// Moves `sink`'s value cursor (see [`ValuesMoved`]), stores the last values of the devices
    /// that changed (the output's own encoding), and deletes what every output has had. A
    /// cursor that is not there (an output turned off meanwhile) is an error: nothing moves.
    pub fn advance_sink_values(&mut self, sink: &str, m: &ValuesMoved) -> Result<(), StoreError> {
        let tx = super::schema::write_tx(&mut self.conn)?;
        let was: i64 = tx
            .prepare_cached("SELECT value_batch FROM sink_cursor WHERE sink = ?1")?
            .query_row([sink], |r| r.get(0))?;
        // Never back: an acknowledgement that comes late moves nothing.
        tx.prepare_cached(
            "UPDATE sink_cursor SET value_batch = max(value_batch, ?2) WHERE sink = ?1",
        )?
        .execute(params![sink, m.to as i64])?;
        super::cursor_rows::hold_and_release(&tx, sink, "value", &m.held, &m.taken)?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO sink_value (sink, device, metrics) VALUES (?1, ?2, ?3)",
            )?;
            for (device, metrics) in &m.last {
                put.execute(params![sink, device, metrics])?;
            }
        }
        // Only what this move passed or released can have become everyone's.
        let from = m
            .taken
            .iter()
            .fold(was as u64, |f, &t| f.min(t.saturating_sub(1)));
        super::cursor_rows::delete_done(&tx, from)?;
        tx.commit()?;
        Ok(())
    }

    /// The last values `sink` stored per device.
    pub fn sink_device_values(&self, sink: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT device, metrics FROM sink_value WHERE sink = ?1")?;
        let rows = stmt.query_map([sink], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The last value batch ever committed (0: none).
    pub fn last_value_batch(&self) -> Result<u64, StoreError> {
        last_batch(&self.conn)
    }
}

pub(super) fn last_batch(conn: &rusqlite::Connection) -> Result<u64, StoreError> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT seq FROM sqlite_sequence WHERE name = 'value_batch'")?
        .query_row([], |r| r.get(0))
        .optional()?;
    Ok(last.unwrap_or(0).max(0) as u64)
}

fn held(conn: &rusqlite::Connection) -> Result<u64, StoreError> {
    let held: i64 = conn
        .prepare_cached("SELECT held FROM value_count WHERE id = 1")?
        .query_row([], |r| r.get(0))?;
    Ok(held.max(0) as u64)
}

/// Deletes batches unsent and counts their values by tag.
fn delete(tx: &Transaction, doomed: Vec<(i64, i64, Vec<u8>)>) -> Result<ValueDrops, StoreError> {
    let mut drops = ValueDrops::default();
    let mut del = tx.prepare_cached("DELETE FROM value_batch WHERE batch = ?1")?;
    let mut unhold =
        tx.prepare_cached("DELETE FROM sink_held WHERE class = 'value' AND item = ?1")?;
    for (batch, count, payload) in doomed {
        del.execute([batch])?;
        unhold.execute([batch])?;
        drops.batches += 1;
        drops.values += count as u64;
        match serde_json::from_slice::<ValuePayload>(&payload) {
            Ok(p) => {
                for v in p.values {
                    *drops.by_tag.entry(v.tag).or_default() += 1;
                }
            }
            Err(_) => *drops.by_tag.entry("?".into()).or_default() += count as u64,
        }
    }
    tx.prepare_cached("UPDATE value_count SET held = held - ?1 WHERE id = 1")?
        .execute([drops.values as i64])?;
    Ok(drops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::{CellState, ValueRecord};
    use crate::config::Synchronous;
    use mes_edge_drivers::{Quality, Value};

    fn batch(device: &str, tags: &[&str], ts_ms: i64) -> ValueBatch {
        ValueBatch {
            device: device.into(),
            ts_ms,
            values: tags
                .iter()
                .map(|t| ValueRecord {
                    tag: t.to_string(),
                    value: Some(Value::Float(1.5)),
                    quality: Quality::Good,
                    ts: ts_ms,
                    source_ts: None,
                    order_id: None,
                    lot: None,
                })
                .collect(),
        }
    }

    /// A new store in a folder that lives as long as the test holds it.
    fn store() -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let ob = Outbox::open(&dir.path().join("c.db"), Synchronous::Normal, "a/b/c/d/e").unwrap();
        (dir, ob)
    }

    #[test]
    fn values_have_their_own_sequence_cap_and_age_and_never_touch_the_events() {
        let (_dir, mut ob) = store();
        assert_eq!(ob.values_cursor("values").unwrap(), 0);
        let state = CellState::default();
        let c = ob
            .commit_all(
                &[],
                &[
                    batch("press", &["t1", "t2"], 10),
                    batch("oven", &["z1"], 10),
                ],
                &state,
                10,
            )
            .unwrap();
        assert_eq!(c.last_seq, 0, "values take no event seq");
        ob.commit_all(&[], &[batch("press", &["t1", "t2", "t3"], 20)], &state, 20)
            .unwrap();
        assert_eq!(ob.values_held().unwrap(), 6);
        let rows = ob.value_rows_after(0, 10).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.batch).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // Delivered ones go; the numbering never goes back.
        ob.advance_sink_values("values", &moved(1)).unwrap();
        ob.commit_all(&[], &[batch("oven", &["z1"], 30)], &state, 30)
            .unwrap();
        assert_eq!(
            ob.value_rows_after(0, 10)
                .unwrap()
                .iter()
                .map(|r| r.batch)
                .collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        assert_eq!(ob.values_held().unwrap(), 5);
        // Cap 4: the oldest batch (oven z1) goes, 4 are left.
        let drops = ob.cap_values(4).unwrap();
        assert_eq!((drops.batches, drops.values), (1, 1));
        assert_eq!(drops.by_tag.get("z1"), Some(&1));
        assert_eq!(ob.values_held().unwrap(), 4);
        // Age: batch 3 (ts 20) is before 25.
        let drops = ob.age_values(25).unwrap();
        assert_eq!(
            drops.by_tag,
            BTreeMap::from([("t1".into(), 1), ("t2".into(), 1), ("t3".into(), 1)])
        );
        assert_eq!(ob.values_held().unwrap(), 1);
        let json: serde_json::Value =
            serde_json::from_slice(&ob.value_rows_after(0, 10).unwrap()[0].payload).unwrap();
        assert_eq!(
            (json["batch"].as_u64(), json["device"].as_str()),
            (Some(4), Some("oven"))
        );
        // A batch alone over the cap stays: only older ones go.
        ob.commit_all(&[], &[batch("press", &["t1", "t2", "t3"], 40)], &state, 40)
            .unwrap();
        let drops = ob.cap_values(1).unwrap();
        assert_eq!((drops.batches, drops.values), (1, 1));
        assert_eq!(ob.values_held().unwrap(), 3);
    }

    /// The engine commits on one connection while the Sparkplug sink moves its value cursor
    /// on another, as the runtime does: the cursor's read-then-write never meets "database is
    /// locked" (a deferred transaction did, at once and without the busy timeout).
    #[test]
    fn the_sinks_cursor_moves_while_the_engine_commits() {
        let (_dir, mut ob) = store();
        ob.sink_cursor("sparkplug", |_| String::new()).unwrap();
        let mut sink = ob.open_again(Synchronous::Normal).unwrap();
        // The engine goes on until the sink has moved beside it: a busy machine may run the
        // engine's 1,500 commits before the sink's thread gets going.
        let moved_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = moved_so_far.clone();
        let engine = std::thread::spawn(move || {
            let state = CellState::default();
            let mut i = 0;
            while i < 1_500 || seen.load(std::sync::atomic::Ordering::SeqCst) <= 10 {
                ob.commit_all(&[], &[batch("press", &["t1"], i)], &state, i)
                    .unwrap();
                i += 1;
            }
        });
        let mut moves = 0;
        while !engine.is_finished() {
            let last = sink.last_value_batch().unwrap();
            let m = ValuesMoved {
                to: last,
                last: vec![("press".into(), vec![1])],
                ..Default::default()
            };
            sink.advance_sink_values("sparkplug", &m)
                .unwrap_or_else(|e| panic!("after {moves} moves: {e}"));
            moves += 1;
            moved_so_far.store(moves, std::sync::atomic::Ordering::SeqCst);
        }
        engine.join().unwrap();
        assert!(moves > 10, "the two ran side by side ({moves} moves)");
    }

    fn moved(to: u64) -> ValuesMoved {
        ValuesMoved {
            to,
            ..Default::default()
        }
    }

    fn batches(ob: &Outbox) -> Vec<u64> {
        ob.value_rows_after(0, 100)
            .unwrap()
            .iter()
            .map(|r| r.batch)
            .collect()
    }

    #[test]
    fn a_batch_stays_until_every_cursor_has_it_and_no_output_holds_it_refused() {
        let (_dir, mut ob) = store();
        let state = CellState::default();
        // Batch 1 before the cursors are made: not the new outputs' (as with events).
        ob.commit_all(&[], &[batch("press", &["t1"], 10)], &state, 10)
            .unwrap();
        assert_eq!(ob.values_cursor("values").unwrap(), 1);
        let c = ob.sink_cursor("sparkplug", |_| String::new()).unwrap();
        assert_eq!(c.value_batch, 1);
        ob.commit_all(
            &[],
            &[
                batch("press", &["t1"], 20),
                batch("oven", &["z1", "z2"], 20),
            ],
            &state,
            20,
        )
        .unwrap();
        // JSON values passes 2 and 3, its broker refused 2: 2 is held, 3 waits for Sparkplug.
        ob.advance_sink_values(
            "values",
            &ValuesMoved {
                to: 3,
                held: vec![2],
                ..Default::default()
            },
        )
        .unwrap();
        let held = |ob: &Outbox| -> Vec<u64> {
            ob.held_value_rows("values", 0, 10)
                .unwrap()
                .iter()
                .map(|r| r.batch)
                .collect()
        };
        assert_eq!(held(&ob), vec![2]);
        // Sparkplug passes both: 3 goes, 2 stays held for JSON.
        ob.advance_sink_values(
            "sparkplug",
            &ValuesMoved {
                to: 3,
                last: vec![("press".into(), vec![1, 2])],
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            ob.sink_device_values("sparkplug").unwrap(),
            vec![("press".to_string(), vec![1u8, 2])]
        );
        assert_eq!(batches(&ob), vec![2]);
        assert_eq!(ob.values_held().unwrap(), 1);
        // Sent again and taken: it goes.
        ob.advance_sink_values(
            "values",
            &ValuesMoved {
                to: 3,
                taken: vec![2],
                ..Default::default()
            },
        )
        .unwrap();
        assert!(batches(&ob).is_empty());
        assert!(held(&ob).is_empty());
        assert_eq!(ob.values_held().unwrap(), 0);
        // A held batch the cap drops is no longer held.
        ob.commit_all(&[], &[batch("press", &["t1"], 30)], &state, 30)
            .unwrap();
        ob.commit_all(&[], &[batch("press", &["t1"], 31)], &state, 31)
            .unwrap();
        ob.advance_sink_values(
            "values",
            &ValuesMoved {
                to: 5,
                held: vec![4],
                ..Default::default()
            },
        )
        .unwrap();
        ob.cap_values(1).unwrap();
        assert!(held(&ob).is_empty());
        // An output turned off holds nothing the others have had.
        ob.advance_sink_values("values", &moved(5)).unwrap();
        assert_eq!(batches(&ob), vec![5], "Sparkplug has not had it");
        assert!(ob.drop_sink("sparkplug").unwrap());
        assert!(batches(&ob).is_empty());
        assert!(ob.sink_device_values("sparkplug").unwrap().is_empty());
        assert_eq!(ob.last_value_batch().unwrap(), 5);
    }
}
