//! Process values in the store: a lower class than events. Their batches have their own
//! sequence (the events' `seq` stays gap-free and never carries a value), their own cap and
//! age, and are deleted once every output has them (the JSON values forwarder's broker and each
//! output cursor, e.g. Sparkplug's DDATA). Over the cap the oldest batches are dropped,
//! and what was dropped is handed back, by tag, for the metrics and the alarm.

use super::schema::StoreError;
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

    /// Value batches after `after` the JSON values forwarder has not had acknowledged, oldest
    /// first.
    pub fn pending_values(&self, after: u64, limit: usize) -> Result<Vec<ValueRow>, StoreError> {
        self.value_rows(
            "SELECT batch, device, count, payload FROM value_batch
             WHERE batch > ?1 AND json_done = 0 ORDER BY batch",
            after,
            limit,
        )
    }

    /// Value batches after `after`, whoever else has them: for an output with a cursor.
    pub fn value_rows_after(&self, after: u64, limit: usize) -> Result<Vec<ValueRow>, StoreError> {
        self.value_rows(
            "SELECT batch, device, count, payload FROM value_batch WHERE batch > ?1 ORDER BY batch",
            after,
            limit,
        )
    }

    fn value_rows(&self, sql: &str, after: u64, limit: usize) -> Result<Vec<ValueRow>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql)?;
        let rows = stmt.query_map([after as i64], |r| {
            Ok(ValueRow {
                batch: r.get::<_, i64>(0)? as u64,
                device: r.get(1)?,
                count: r.get::<_, i64>(2)? as u64,
                payload: r.get(3)?,
            })
        })?;
        Ok(rows.take(limit).collect::<Result<_, _>>()?)
    }

    /// The JSON values forwarder's broker acknowledged these batches (dropped meanwhile ones
    /// are already gone): each goes now if every output cursor is past it too, or is marked
    /// for the cursor that passes it later. By primary key: no scan, however many are held.
    pub fn values_delivered(&mut self, batches: &[u64]) -> Result<(), StoreError> {
        let tx = super::schema::write_tx(&mut self.conn)?;
        let mut gone = 0i64;
        {
            let mut del = tx.prepare_cached(
                "DELETE FROM value_batch WHERE batch = ?1
                   AND batch <= coalesce((SELECT min(value_batch) FROM sink_cursor), ?2)
                 RETURNING count",
            )?;
            let mut done =
                tx.prepare_cached("UPDATE value_batch SET json_done = 1 WHERE batch = ?1")?;
            for &b in batches {
                match del
                    .query_row(params![b as i64, i64::MAX], |r| r.get::<_, i64>(0))
                    .optional()?
                {
                    Some(n) => gone += n,
                    None => {
                        done.execute([b as i64])?;
                    }
                }
            }
        }
        forget_held(&tx, gone)?;
        tx.commit()?;
        Ok(())
    }

    /// Moves `sink`'s value cursor on to `batch` (every batch up to it acknowledged to that
    /// output), stores the `last` values of the devices that changed (the output's own
    /// encoding), and deletes what every reader has had. `json`: whether a JSON values
    /// forwarder runs, whose acknowledgement a batch also waits for.
    pub fn advance_sink_values(
        &mut self,
        sink: &str,
        batch: u64,
        json: bool,
        last: &[(String, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let tx = super::schema::write_tx(&mut self.conn)?;
        let was: i64 = tx
            .prepare_cached("SELECT value_batch FROM sink_cursor WHERE sink = ?1")?
            .query_row([sink], |r| r.get(0))?;
        tx.prepare_cached("UPDATE sink_cursor SET value_batch = ?2 WHERE sink = ?1")?
            .execute(params![sink, batch as i64])?;
        {
            let mut put = tx.prepare_cached(
                "INSERT OR REPLACE INTO sink_value (sink, device, metrics) VALUES (?1, ?2, ?3)",
            )?;
            for (device, metrics) in last {
                put.execute(params![sink, device, metrics])?;
            }
        }
        // Only what this move passed can have become everyone's: a range of the primary key.
        delete_done(&tx, json, was as u64)?;
        tx.commit()?;
        Ok(())
    }

    /// Deletes every batch every reader has had: at an output's start, when whether a JSON
    /// values forwarder runs (`json`) may have changed since the batches were marked.
    pub fn settle_values(&mut self, json: bool) -> Result<(), StoreError> {
        let tx = super::schema::write_tx(&mut self.conn)?;
        delete_done(&tx, json, 0)?;
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

/// Deletes the batches after `after` that every reader has had: the JSON values forwarder (when
/// `json`) and every output cursor (none: no cursor holds any).
pub(super) fn delete_done(tx: &Transaction, json: bool, after: u64) -> Result<(), StoreError> {
    let gone: i64 = {
        let mut del = tx.prepare_cached(
            "DELETE FROM value_batch
             WHERE batch > ?1
               AND batch <= coalesce((SELECT min(value_batch) FROM sink_cursor), ?2)
               AND (json_done = 1 OR ?3 = 0)
             RETURNING count",
        )?;
        let rows = del.query_map(params![after as i64, i64::MAX, json], |r| {
            r.get::<_, i64>(0)
        })?;
        rows.sum::<Result<i64, _>>()?
    };
    forget_held(tx, gone)
}

fn forget_held(tx: &Transaction, values: i64) -> Result<(), StoreError> {
    if values > 0 {
        tx.prepare_cached("UPDATE value_count SET held = held - ?1 WHERE id = 1")?
            .execute([values])?;
    }
    Ok(())
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
    for (batch, count, payload) in doomed {
        del.execute([batch])?;
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
        let rows = ob.pending_values(0, 10).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.batch).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        // Delivered ones go; the numbering never goes back.
        ob.values_delivered(&[1]).unwrap();
        ob.commit_all(&[], &[batch("oven", &["z1"], 30)], &state, 30)
            .unwrap();
        assert_eq!(
            ob.pending_values(0, 10)
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
            serde_json::from_slice(&ob.pending_values(0, 10).unwrap()[0].payload).unwrap();
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
        let engine = std::thread::spawn(move || {
            let state = CellState::default();
            for i in 0..1_500 {
                ob.commit_all(&[], &[batch("press", &["t1"], i)], &state, i)
                    .unwrap();
            }
        });
        let mut moves = 0;
        while !engine.is_finished() {
            let last = sink.last_value_batch().unwrap();
            sink.advance_sink_values("sparkplug", last, true, &[("press".into(), vec![1])])
                .unwrap_or_else(|e| panic!("after {moves} moves: {e}"));
            moves += 1;
        }
        engine.join().unwrap();
        assert!(moves > 10, "the two ran side by side ({moves} moves)");
    }

    #[test]
    fn a_batch_stays_until_json_and_every_cursor_have_it() {
        let (_dir, mut ob) = store();
        let state = CellState::default();
        let batches = |ob: &Outbox| -> Vec<u64> {
            ob.value_rows_after(0, 100)
                .unwrap()
                .iter()
                .map(|r| r.batch)
                .collect()
        };
        // Batch 1 before the cursor is made: not the new output's (as with events).
        ob.commit_all(&[], &[batch("press", &["t1"], 10)], &state, 10)
            .unwrap();
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
        // JSON has 1 and 2: 1 goes (the cursor is past it), 2 waits for the cursor.
        ob.values_delivered(&[1, 2]).unwrap();
        assert_eq!(batches(&ob), vec![2, 3]);
        assert_eq!(
            ob.pending_values(0, 10)
                .unwrap()
                .iter()
                .map(|r| r.batch)
                .collect::<Vec<_>>(),
            vec![3],
            "JSON does not get batch 2 again"
        );
        // The cursor passes 3: 2 goes, 3 waits for JSON.
        ob.advance_sink_values("sparkplug", 3, true, &[("press".into(), vec![1, 2])])
            .unwrap();
        assert_eq!(
            ob.sink_device_values("sparkplug").unwrap(),
            vec![("press".to_string(), vec![1u8, 2])]
        );
        assert_eq!(batches(&ob), vec![3]);
        assert_eq!(ob.values_held().unwrap(), 2);
        // Restarted Sparkplug-only: what JSON never had goes once the cursor is past it.
        ob.settle_values(false).unwrap();
        assert!(batches(&ob).is_empty());
        ob.commit_all(&[], &[batch("press", &["t1"], 30)], &state, 30)
            .unwrap();
        assert_eq!(batches(&ob), vec![4]);
        ob.advance_sink_values("sparkplug", 4, false, &[]).unwrap();
        assert!(batches(&ob).is_empty());
        assert_eq!(ob.values_held().unwrap(), 0);
        // An output turned off holds nothing JSON has had.
        ob.commit_all(&[], &[batch("press", &["t1"], 40)], &state, 40)
            .unwrap();
        ob.values_delivered(&[5]).unwrap();
        assert_eq!(batches(&ob), vec![5]);
        assert!(ob.drop_sink("sparkplug").unwrap());
        assert!(batches(&ob).is_empty());
        assert!(ob.sink_device_values("sparkplug").unwrap().is_empty());
        assert_eq!(ob.last_value_batch().unwrap(), 5);
    }
}
