use super::error::{is_corruption, StoreError};
use crate::config::Synchronous;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Schema versions this build can read and write: one per entry of [`MIGRATIONS`].
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;
/// "MESE": marks the file as a mes-edge store, so another SQLite file is refused, not altered.
pub(super) const APPLICATION_ID: i64 = 0x4D45_5345;

/// One step of the schema: its SQL and, where rows must be filled in or rewritten, a data step
/// run in the same transaction right after it, given the version the store had before the
/// migration began. A schema change is one entry; the owner's connection runs the list at open.
pub(super) struct Migration {
    pub sql: &'static str,
    pub data: Option<fn(&rusqlite::Transaction, i64) -> rusqlite::Result<()>>,
}

pub(super) const MIGRATIONS: &[Migration] = &[
    // 1: the outbox and the cell state.
    Migration {
        sql: "CREATE TABLE outbox (
        seq          INTEGER PRIMARY KEY,   -- the cell's sequence: gap-free, never reused
        event_id     TEXT NOT NULL UNIQUE,
        ts_ms        INTEGER NOT NULL,
        kind         TEXT NOT NULL,
        payload      BLOB NOT NULL,         -- published byte for byte, re-sends included
        committed_ms INTEGER NOT NULL,
        delivered_ms INTEGER                -- set at the broker's acknowledgement
    );
    CREATE INDEX outbox_undelivered ON outbox(seq) WHERE delivered_ms IS NULL;
    CREATE TABLE cell_state (
        id       INTEGER PRIMARY KEY CHECK (id = 1),
        last_seq INTEGER NOT NULL,
        state    TEXT NOT NULL
    );
    INSERT INTO cell_state (id, last_seq, state) VALUES (1, 0, '{}');",
        data: None,
    },
    // 2: the store's identity (store_id, how it came to be) and whether its first event, the
    // `store_created` announcement, has been committed. Filled in by `identify` below.
    Migration {
        sql: "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
        data: Some(identify),
    },
    // 3: the outbox's numbers, kept by the transactions that change them, so that neither
    // housekeeping nor /health counts millions of rows. Filled in by `tally` below.
    Migration {
        sql: "CREATE TABLE outbox_tally (
        id                 INTEGER PRIMARY KEY CHECK (id = 1),
        delivered          INTEGER NOT NULL,  -- rows kept with delivered_ms set
        last_delivered_seq INTEGER NOT NULL,  -- highest seq acknowledged, not replayed since; 0: none
        prune_floor        INTEGER NOT NULL   -- no delivered row has a lower seq
    );",
        data: Some(tally),
    },
    // 4: process values, a lower class than events (store/values.rs): their own sequence
    // (`batch`), cap and age; a batch is deleted once the broker has it.
    Migration {
        sql: "CREATE TABLE value_batch (
        batch        INTEGER PRIMARY KEY AUTOINCREMENT,
        device       TEXT NOT NULL,
        ts_ms        INTEGER NOT NULL,
        count        INTEGER NOT NULL,      -- values in the batch
        payload      BLOB NOT NULL
    );
    CREATE TABLE value_count (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        held INTEGER NOT NULL               -- sum of value_batch.count, kept with every change
    );
    INSERT INTO value_count (id, held) VALUES (1, 0);",
        data: None,
    },
    // 5: a delivery cursor per output besides the JSON forwarder (which marks rows): Sparkplug B.
    // Rows after the lowest cursor are kept even once delivered to MOM (see prune.rs).
    Migration {
        sql: "CREATE TABLE sink_cursor (
        sink   TEXT PRIMARY KEY,
        seq    INTEGER NOT NULL,   -- every event up to here was acknowledged to this sink
        state  TEXT NOT NULL,      -- the sink's own figures as of `seq` (JSON)
        bd_seq INTEGER NOT NULL    -- Sparkplug: the birth/death sequence of the last connect
    );",
        data: None,
    },
    // 6: process values for the outputs with a cursor (Sparkplug's DDATA). A batch stays until
    // the JSON values forwarder has it (`json_done`, or no JSON) and every cursor is past it.
    // `sink_value`: each device's last values as the output published them (Sparkplug: its
    // births show them after a restart).
    Migration {
        sql: "ALTER TABLE value_batch ADD COLUMN json_done INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sink_cursor ADD COLUMN value_batch INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE sink_value (
        sink    TEXT NOT NULL,
        device  TEXT NOT NULL,
        metrics BLOB NOT NULL,
        PRIMARY KEY (sink, device)
    );",
        data: None,
    },
    // 7: the JSON values forwarder becomes a sink with a cursor like Sparkplug's (`values`),
    // instead of marking batches (`json_done`, gone). A cursor reads events (`seq`), values
    // (`value_batch`) or both; NULL where it reads none, so `min()` over the cursors passes it
    // by. `sink_held`: what a sink's broker refused, passed by its cursor and kept (not
    // pruned, not deleted) until it is sent again and taken. Filled in by `values_cursor`.
    Migration {
        sql: "CREATE TABLE sink_cursor_7 (
        sink        TEXT PRIMARY KEY,
        seq         INTEGER,           -- every event up to here acknowledged; NULL: reads none
        value_batch INTEGER,           -- every value batch up to here; NULL: reads none
        state       TEXT NOT NULL,     -- the sink's own figures as of `seq` (JSON)
        bd_seq      INTEGER NOT NULL   -- Sparkplug: the birth/death sequence of the last connect
    );
    INSERT INTO sink_cursor_7 (sink, seq, value_batch, state, bd_seq)
        SELECT sink, seq, value_batch, state, bd_seq FROM sink_cursor;
    DROP TABLE sink_cursor;
    ALTER TABLE sink_cursor_7 RENAME TO sink_cursor;
    CREATE TABLE sink_held (
        sink  TEXT NOT NULL,
        class TEXT NOT NULL,           -- 'value' (a batch); events keep their marks for now
        item  INTEGER NOT NULL,        -- the batch
        PRIMARY KEY (sink, class, item)
    ) WITHOUT ROWID;",
        data: Some(values_cursor),
    },
    // 8: the JSON events forwarder becomes a sink with a cursor (`events`) like the others: an
    // event is delivered once every sink reading events is past it and none holds it refused.
    // Its marks (`delivered_ms`), their index and the tally kept beside them are no longer
    // read or written; the column stays in the table because dropping it would rewrite every
    // row of a store that may hold millions. `sink_move`: when a sink's cursor moved on to
    // where (at most one row per second and sink): the time an event reached a sink, for the
    // failover's re-send window, the retention and the status page. Filled in by
    // `events_cursor`.
    Migration {
        sql: "DROP INDEX outbox_undelivered;
    CREATE TABLE sink_move (
        sink  TEXT NOT NULL,
        seq   INTEGER NOT NULL,        -- the cursor moved on to here
        at_ms INTEGER NOT NULL,        -- at this time (UTC ms)
        PRIMARY KEY (sink, seq)
    ) WITHOUT ROWID;",
        data: Some(events_cursor),
    },
];

/// After migration 8: the JSON forwarder's marks become its cursor, at the highest seq it had
/// (the tally's `last_delivered_seq`), with every event below it that it had not had held, so
/// that it sends exactly those again and nothing twice; each second of marks becomes one move.
/// A new store gets the cursor at 0, before its first event; the runtime drops it when JSON is
/// off, as it does the other outputs' cursors.
fn events_cursor(tx: &rusqlite::Transaction, from_version: i64) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO sink_cursor (sink, seq, value_batch, state, bd_seq)
         VALUES ('events', (SELECT last_delivered_seq FROM outbox_tally WHERE id = 1), NULL, '{}', 255)",
        [],
    )?;
    if from_version > 0 {
        tx.execute_batch(
            "INSERT INTO sink_held (sink, class, item)
                 SELECT 'events', 'event', seq FROM outbox
                 WHERE delivered_ms IS NULL
                   AND seq <= (SELECT last_delivered_seq FROM outbox_tally WHERE id = 1);
             INSERT OR REPLACE INTO sink_move (sink, seq, at_ms)
                 SELECT 'events', max(seq), max(delivered_ms) FROM outbox
                 WHERE delivered_ms IS NOT NULL GROUP BY delivered_ms / 1000;",
        )?;
    }
    tx.execute_batch("DROP TABLE outbox_tally;")
}

/// How a store came to have its identity: written to `meta.origin`, announced in its
/// `store_created` event.
pub const ORIGIN_NEW: &str = "new";
pub const ORIGIN_MIGRATED: &str = "migrated";
/// `meta` key: how many rows pruning has deleted, ever. Pruning deletes delivered rows whatever
/// their seq (an event held back stays while later ones go), so this tally, not the order of
/// the rows kept, is what tells a pruned row from a lost one.
pub const PRUNED_ROWS: &str = "pruned_rows";

/// After migration 2: gives the store its `store_id`, and adds it to the payloads already in
/// the outbox (a store of schema 1), so that every event this release publishes carries it.
/// Only the envelope gains a field; `event_id`, `seq` and the rest stay as they were.
fn identify(tx: &rusqlite::Transaction, from_version: i64) -> rusqlite::Result<()> {
    let store_id = uuid::Uuid::now_v7().to_string();
    let origin = if from_version == 0 {
        ORIGIN_NEW
    } else {
        ORIGIN_MIGRATED
    };
    let now = mes_edge_drivers::now_ms();
    let mut put = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
    put.execute(["store_id", &store_id])?;
    put.execute(["origin", origin])?;
    put.execute(["created_ms", &now.to_string()])?;
    put.execute(["announced", "0"])?;
    if from_version >= 1 {
        put.execute(["migrated_from_schema", &from_version.to_string()])?;
        // The previous release kept no tally of pruned rows: every row missing below its last
        // seq is taken to have been pruned after delivery (its own verify said so).
        let missing: i64 = tx.query_row(
            "SELECT (SELECT last_seq FROM cell_state WHERE id = 1) - (SELECT count(*) FROM outbox)",
            [],
            |r| r.get(0),
        )?;
        put.execute([PRUNED_ROWS, &missing.max(0).to_string()])?;
        let mut rows = tx.prepare("SELECT seq, payload FROM outbox ORDER BY seq")?;
        let mut update = tx.prepare("UPDATE outbox SET payload = ?2 WHERE seq = ?1")?;
        let rows: Vec<(i64, Vec<u8>)> = rows
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        for (seq, payload) in rows {
            if let Some(p) = with_store_id(&payload, seq as u64, &store_id) {
                update.execute(rusqlite::params![seq, p])?;
            }
        }
    }
    Ok(())
}

/// After migration 3: counts what the outbox holds, once (the only full scan a store sees).
fn tally(tx: &rusqlite::Transaction, _from_version: i64) -> rusqlite::Result<()> {
    let last_seq: i64 = tx.query_row("SELECT last_seq FROM cell_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    let last_delivered = last_acknowledged(tx, last_seq as u64 + 1)?;
    tx.execute(
        "INSERT INTO outbox_tally (id, delivered, last_delivered_seq, prune_floor)
         SELECT 1, count(delivered_ms), ?1,
                coalesce(min(CASE WHEN delivered_ms IS NOT NULL THEN seq END), ?2)
         FROM outbox",
        rusqlite::params![last_delivered as i64, last_seq + 1],
    )?;
    Ok(())
}

/// The highest seq below `below` that is not waiting for delivery: every seq up to the last
/// commit is either kept (delivered or not) or was pruned after delivery, so this is the last
/// one the broker acknowledged. Walks the undelivered rows down from `below` (the partial
/// index): for `outbox replay` and the migration, never for the runtime's figures.
pub(super) fn last_acknowledged(conn: &Connection, below: u64) -> rusqlite::Result<u64> {
    let mut stmt = conn.prepare(
        "SELECT seq FROM outbox WHERE delivered_ms IS NULL AND seq < ?1 ORDER BY seq DESC",
    )?;
    let mut rows = stmt.query([below as i64])?;
    let mut candidate = below.saturating_sub(1);
    while let Some(r) = rows.next()? {
        if r.get::<_, i64>(0)? as u64 != candidate {
            break;
        }
        candidate -= 1;
    }
    Ok(candidate)
}

/// After migration 7: the JSON values forwarder's marks become its cursor, just before the
/// first batch it had not had (the ones it had after that go again: values are sent at least
/// once, like events), then the marks go. A store older than 6 has every mark at 0 (a batch
/// was deleted at its acknowledgement then). Whether the forwarder still runs is the config's
/// to say: at start the runtime drops the cursor of an output it does not run.
fn values_cursor(tx: &rusqlite::Transaction, from_version: i64) -> rusqlite::Result<()> {
    // A new store: the runtime makes the cursor at start if the forwarder runs.
    if from_version > 0 {
        tx.execute(
        "INSERT INTO sink_cursor (sink, seq, value_batch, state, bd_seq)
         SELECT 'values', NULL, coalesce((SELECT min(batch) FROM value_batch WHERE json_done = 0) - 1,
                                 (SELECT seq FROM sqlite_sequence WHERE name = 'value_batch'), 0),
                '{}', 255",
            [],
        )?;
    }
    tx.execute_batch("ALTER TABLE value_batch DROP COLUMN json_done;")?;
    // What every output had already (JSON's marks, Sparkplug's cursor) goes now.
    super::cursor_rows::delete_done(tx, 0)
}

/// A schema-1 payload (`{"event_id":"…","seq":N,"ts":…`) with `"store_id":"…"` after `seq`,
/// where this release's envelope has it: the bytes this release would have committed. None for a
/// payload that does not start so (never written by mes-edge; left as it is).
pub(super) fn with_store_id(payload: &[u8], seq: u64, store_id: &str) -> Option<Vec<u8>> {
    let seq_field = format!(",\"seq\":{seq},");
    if !payload.starts_with(b"{\"event_id\":\"") {
        return None;
    }
    let at = payload
        .windows(seq_field.len())
        .position(|w| w == seq_field.as_bytes())?
        + seq_field.len();
    if payload[at..].starts_with(b"\"store_id\"") {
        return None;
    }
    let mut out = Vec::with_capacity(payload.len() + 50);
    out.extend_from_slice(&payload[..at]);
    out.extend_from_slice(format!("\"store_id\":\"{store_id}\",").as_bytes());
    out.extend_from_slice(&payload[at..]);
    Some(out)
}

/// Opens (creating if needed) the store at `path` and brings its schema up to date.
/// Every connection gets the same settings: WAL, and the configured `synchronous`.
pub fn open(path: &Path, sync: Synchronous) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let version = check_identity(&conn, path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    stable_plans(&conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    if version < SCHEMA_VERSION {
        // All pending migrations in one transaction: a store is either as it was (a crash, a
        // full disk) or fully migrated, its undelivered events with it.
        // IMMEDIATE: the write lock first, then look again (another connection may have
        // migrated it since).
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for m in MIGRATIONS.iter().skip(now as usize) {
            tx.execute_batch(m.sql)?;
            if let Some(data) = m.data {
                data(&tx, now)?;
            }
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
        if now > 0 && now < SCHEMA_VERSION {
            tracing::info!(path = %path.display(), from = now, to = SCHEMA_VERSION, "store migrated");
        }
    }
    Ok(conn)
}

/// A connection that only reads (the status page, the supervisor, `outbox stats`): it never
/// creates, migrates or writes the store.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // A reader waits for nothing in WAL mode but a checkpoint's brief lock.
    conn.busy_timeout(Duration::from_secs(2))?;
    stable_plans(&conn)?;
    Ok(conn)
}

/// Plans that do not depend on the values bound to a statement (SQLite's query planner
/// stability guarantee). Without it the bundled SQLite (built with STAT4) marks some cached
/// statements, a join or an ORDER BY beside a parameter among them, to be prepared again at
/// every new binding: the forwarder's "events behind?" check, run before every fill of the
/// value window, was parsed and planned anew each time, 6 % of the runtime's CPU in bench S2
/// with publishing (perf, 2026-12-07). Our statements have one sensible plan each.
fn stable_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// A write transaction that takes the write lock at its start, waiting out the busy timeout if
/// another connection holds it. A deferred transaction that reads and then writes fails at once
/// (SQLITE_BUSY_SNAPSHOT, no waiting) when another connection wrote in between: under WAL that
/// made the Sparkplug sink's value cursor fail with "database is locked" (issue 23). Every
/// transaction that writes opens this way.
pub fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Runs `f` (a transaction that need not be on disk when it returns: a housekeeping step's
/// deletes, the cursors' moves) with `synchronous = NORMAL`, then sets back what the connection
/// had. Under WAL its commit then waits for no fsync; the next commit at FULL syncs the WAL, and
/// with it this one's frames. A power cut before that only undoes it: the rows are pruned again
/// later, the events after the older cursor sent again (MOM drops the copies).
pub(super) fn without_fsync<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let had: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    let done = f(conn);
    // What `f` did stands either way (it may have committed); a connection left at NORMAL
    // would give up the configured durability of every commit after it, so that is said.
    if let Err(e) = conn.pragma_update(None, "synchronous", had) {
        tracing::error!(
            "setting the store's synchronous back to {had} failed ({e}): commits may now wait for no fsync until a restart"
        );
    }
    done
}

/// Refuses a file that is not a mes-edge store (or an empty new one) and a store of a newer
/// schema, before anything is written to it; gives back the schema version.
pub(super) fn check_identity(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let foreign = |why: String| StoreError::Foreign {
        path: path.display().to_string(),
        why,
    };
    // The first read of a file that is not SQLite fails here with "file is not a database";
    // a file that begins as SQLite does and fails is a store with a broken header.
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| {
            let sqlite_header = std::fs::File::open(path)
                .and_then(|mut f| {
                    let mut magic = [0u8; 16];
                    std::io::Read::read_exact(&mut f, &mut magic).map(|_| magic)
                })
                .is_ok_and(|m| &m == b"SQLite format 3\0");
            if sqlite_header && is_corruption(&e) {
                StoreError::Corrupt {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                }
            } else {
                foreign(e.to_string())
            }
        })?;
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
    if app_id != APPLICATION_ID && (app_id != 0 || tables != 0) {
        return Err(foreign(format!(
            "application id {app_id:#x}, {tables} tables"
        )));
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::FutureSchema {
            path: path.display().to_string(),
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    Ok(version)
}

/// Bytes in use (pages not on the free list): what the size cap is measured against.
pub(super) fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let q = |p: &str| conn.pragma_query_value(None, p, |r| r.get::<_, i64>(0));
    Ok(((q("page_count")? - q("freelist_count")?) * q("page_size")?) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_without_fsync_leaves_the_connection_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("cell.db"), Synchronous::Full).unwrap();
        let level = |c: &Connection| -> i64 {
            c.pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(level(&conn), 2);
        let inside = without_fsync(&mut conn, |c| Ok(level(c))).unwrap();
        assert_eq!((inside, level(&conn)), (1, 2));
        let failed: Result<(), _> = without_fsync(&mut conn, |_| Err(StoreError::OwnerGone));
        assert!(failed.is_err());
        assert_eq!(level(&conn), 2, "set back after a failure too");
    }
    #[test]
    fn refuses_a_file_that_is_not_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        std::fs::write(
            &path,
            b"this is a text file, not a database, and long enough to have a header....",
        )
        .unwrap();
        let err = open(&path, Synchronous::Full).unwrap_err();
        assert!(matches!(err, StoreError::Foreign { .. }), "{err}");
        assert!(err.to_string().contains("not a mes-edge store"), "{err}");
    }

    #[test]
    fn refuses_another_applications_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("other.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x);")
            .unwrap();
        assert!(matches!(
            open(&path, Synchronous::Full),
            Err(StoreError::Foreign { .. })
        ));
    }

    /// A store as schema 1 left it: its tables, one delivered and two undelivered events with
    /// the envelope of that release.
    fn schema_1_store(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        for seq in 1..=3i64 {
            let payload = format!(
                r#"{{"event_id":"01a2135b-04b9-7049-b098-2c01d8aed04{seq}","seq":{seq},"ts":1795621061817,"time":"2026-11-25T15:37:41.817Z","cell":"a/b/c/d/e","type":"part_count","data":{{"counter":"good","quantity":1,"counter_value":{seq},"previous_value":0,"rolled_over":false,"order_id":null}},"source":["good"]}}"#
            );
            conn.execute(
                "INSERT INTO outbox VALUES (?1, ?2, 1795621061817, 'part_count', ?3, 1, ?4)",
                rusqlite::params![
                    seq,
                    format!("01a2135b-04b9-7049-b098-2c01d8aed04{seq}"),
                    payload.into_bytes(),
                    (seq == 1).then_some(5i64)
                ],
            )
            .unwrap();
        }
        conn.execute(
            "UPDATE cell_state SET last_seq = 3, state = '{\"good_total\":3}'",
            [],
        )
        .unwrap();
    }

    #[test]
    fn a_schema_1_store_is_migrated_with_its_undelivered_events_and_their_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        schema_1_store(&path);
        let before: Vec<(i64, String, Vec<u8>)> = {
            let c = Connection::open(&path).unwrap();
            let mut st = c
                .prepare("SELECT seq, event_id, payload FROM outbox ORDER BY seq")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let conn = open(&path, Synchronous::Full).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let meta = |k: &str| -> String {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .unwrap()
        };
        let store_id = meta("store_id");
        assert_eq!(
            uuid::Uuid::parse_str(&store_id).unwrap().get_version_num(),
            7
        );
        assert_eq!(meta("origin"), ORIGIN_MIGRATED);
        assert_eq!(meta("migrated_from_schema"), "1");
        assert_eq!(meta("announced"), "0");
        let after: Vec<(i64, String, Vec<u8>, Option<i64>)> = {
            let mut st = conn
                .prepare("SELECT seq, event_id, payload, delivered_ms FROM outbox ORDER BY seq")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(after.len(), 3);
        assert_eq!(
            after.iter().map(|r| r.3.is_none()).collect::<Vec<_>>(),
            vec![false, true, true],
            "the undelivered stay undelivered"
        );
        for ((seq, id, old), (_, id2, new, _)) in before.iter().zip(&after) {
            assert_eq!(id, id2);
            let (o, n): (serde_json::Value, serde_json::Value) = (
                serde_json::from_slice(old).unwrap(),
                serde_json::from_slice(new).unwrap(),
            );
            assert_eq!(n["store_id"], store_id.as_str());
            assert_eq!(n["seq"], *seq);
            let mut n = n;
            n.as_object_mut().unwrap().remove("store_id");
            assert_eq!(o, n, "only store_id added");
        }
        // Opened again: nothing changes.
        drop(conn);
        let conn = open(&path, Synchronous::Full).unwrap();
        let again: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'store_id'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(again, store_id);
    }

    /// A store as the previous release left it (schema 6, its migrations run as that release
    /// ran them): the JSON values forwarder had batches 1 and 3 but not 2 and 4 (marks out of
    /// order, as acknowledgements after a refusal make them), Sparkplug's cursor at batch 1
    /// with its last values stored, an event undelivered.
    #[test]
    fn a_schema_6_store_keeps_every_unsent_batch_its_cursors_and_last_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        {
            let mut c = Connection::open(&path).unwrap();
            let tx = c.transaction().unwrap();
            for m in &MIGRATIONS[..6] {
                tx.execute_batch(m.sql).unwrap();
                if let Some(data) = m.data {
                    data(&tx, 0).unwrap();
                }
            }
            tx.execute_batch(
                "INSERT INTO outbox (seq, event_id, ts_ms, kind, payload, committed_ms)
                     VALUES (1, 'e1', 5, 'part_count',
                             CAST('{\"event_id\":\"e1\",\"seq\":1,\"type\":\"part_count\"}' AS BLOB), 5);
                 UPDATE cell_state SET last_seq = 1;
                 INSERT INTO value_batch (batch, device, ts_ms, count, payload, json_done) VALUES
                     (1, 'press', 10, 1, x'7b7d', 1), (2, 'press', 11, 2, x'7b7d', 0),
                     (3, 'oven', 12, 1, x'7b7d', 1), (4, 'oven', 13, 1, x'7b7d', 0);
                 UPDATE value_count SET held = 5;
                 INSERT INTO sink_cursor (sink, seq, state, bd_seq, value_batch)
                     VALUES ('sparkplug', 0, '{\"good\":0}', 3, 1);
                 INSERT INTO sink_value (sink, device, metrics) VALUES ('sparkplug', 'press', x'0102');",
            )
            .unwrap();
            tx.pragma_update(None, "user_version", 6).unwrap();
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            tx.commit().unwrap();
        }
        let mut ob = crate::store::Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        let conn = ob.conn();
        type Cursor = (String, Option<i64>, Option<i64>, String, i64);
        let cursors: Vec<Cursor> = conn
            .prepare("SELECT sink, seq, value_batch, state, bd_seq FROM sink_cursor ORDER BY sink")
            .unwrap()
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            cursors,
            vec![
                // The event was never acknowledged: the JSON cursor before it.
                ("events".into(), Some(0), None, "{}".into(), 255),
                (
                    "sparkplug".into(),
                    Some(0),
                    Some(1),
                    r#"{"good":0}"#.into(),
                    3
                ),
                // Just before batch 2, the first JSON had not had: 3 goes again.
                ("values".into(), None, Some(1), "{}".into(), 255),
            ]
        );
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('value_batch')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(!columns.contains(&"json_done".to_string()), "{columns:?}");
        let batches: Vec<i64> = conn
            .prepare("SELECT batch FROM value_batch ORDER BY batch")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(batches, vec![2, 3, 4], "1 both outputs had, the rest kept");
        assert_eq!(ob.values_held().unwrap(), 4);
        assert_eq!(
            ob.sink_device_values("sparkplug").unwrap(),
            vec![("press".to_string(), vec![1u8, 2])]
        );
        assert_eq!(ob.stats().unwrap().depth, 1, "the event still waits");
        // Both outputs past batch 3: 2 and 3 go, 4 waits for both.
        for sink in ["values", "sparkplug"] {
            let moved = crate::store::ValuesMoved {
                to: 3,
                ..Default::default()
            };
            ob.advance_sink_values(sink, &moved).unwrap();
        }
        assert_eq!(ob.value_rows_after(0, 10).unwrap()[0].batch, 4);
        assert_eq!(ob.values_held().unwrap(), 1);
        let v = crate::store::inspect::verify(ob.conn()).unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }

    /// A store as the previous release left it (schema 7): JSON's marks out of order (2 refused
    /// and held back, 3 and 4 taken after it), 5 not yet sent. The marks become the cursor and
    /// what it holds: 2 and 5 go again, nothing else twice, and each event keeps when it went.
    #[test]
    fn a_schema_7_store_sends_every_unsent_event_and_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        {
            let mut c = Connection::open(&path).unwrap();
            let tx = c.transaction().unwrap();
            for m in &MIGRATIONS[..7] {
                tx.execute_batch(m.sql).unwrap();
                if let Some(data) = m.data {
                    data(&tx, 0).unwrap();
                }
            }
            let mut put = tx
                .prepare(
                    "INSERT INTO outbox (seq, event_id, ts_ms, kind, payload, committed_ms, delivered_ms)
                     VALUES (?1, ?2, ?1, 'part_count', ?3, 5, ?4)",
                )
                .unwrap();
            for (seq, delivered) in [
                (1, Some(100)),
                (2, None),
                (3, Some(2_000)),
                (4, Some(2_100)),
                (5, None),
            ] {
                let id = format!("e{seq}");
                let payload = format!(r#"{{"event_id":"{id}","seq":{seq},"type":"part_count"}}"#);
                put.execute(rusqlite::params![seq, id, payload.into_bytes(), delivered])
                    .unwrap();
            }
            drop(put);
            tx.execute_batch(
                "UPDATE cell_state SET last_seq = 5;
                 UPDATE outbox_tally SET delivered = 3, last_delivered_seq = 4, prune_floor = 1;",
            )
            .unwrap();
            tx.pragma_update(None, "user_version", 7).unwrap();
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            tx.commit().unwrap();
        }
        let mut ob = crate::store::Outbox::open(&path, Synchronous::Full, "a/b/c/d/e").unwrap();
        let events = crate::store::EVENTS_SINK;
        assert_eq!(ob.events_cursor(events).unwrap(), Some(4));
        assert_eq!(ob.held_events(events).unwrap(), [2]);
        let st = ob.stats().unwrap();
        assert_eq!(
            (st.depth, st.oldest_undelivered_ts, st.last_delivered_seq),
            (2, Some(2), Some(4))
        );
        let went: Vec<(u64, Option<i64>)> = crate::store::inspect::after(ob.conn(), 0, 10)
            .unwrap()
            .iter()
            .map(|e| (e.seq, e.delivered_ms))
            .collect();
        assert_eq!(
            went,
            [
                (1, Some(100)),
                (2, None),
                (3, Some(2_100)),
                (4, Some(2_100)),
                (5, None)
            ],
            "a second of marks is one move, at its last"
        );
        let gone: i64 = ob
            .conn()
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('outbox_tally', 'outbox_undelivered')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
        // Pruning takes what JSON had (1, 3, 4), never 2 or 5.
        assert_eq!(ob.prune(i64::MAX, u64::MAX).unwrap(), 3);
        let kept: Vec<u64> = ob
            .rows_after(0, 10)
            .unwrap()
            .iter()
            .map(|r| r.seq)
            .collect();
        assert_eq!(kept, [2, 5]);
        let v = crate::store::inspect::verify(ob.conn()).unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
    }

    #[test]
    fn a_migration_that_fails_leaves_the_store_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        schema_1_store(&path);
        // A failure half-way through rewriting the payloads (as a full disk would be).
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER fail BEFORE UPDATE ON outbox WHEN NEW.seq = 3
                 BEGIN SELECT RAISE(ABORT, 'injected'); END;",
            )
            .unwrap();
        let err = open(&path, Synchronous::Full).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, 1);
        let meta: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(meta, 0, "no half-made identity");
        let payloads: Vec<Vec<u8>> = conn
            .prepare("SELECT payload FROM outbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            payloads
                .iter()
                .all(|p| !String::from_utf8_lossy(p).contains("store_id")),
            "seq 1 and 2 were rewritten and rolled back"
        );
        assert_eq!(payloads.len(), 3);
        drop(conn);
        // And once the cause is gone, it migrates.
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP TRIGGER fail")
            .unwrap();
        let conn = open(&path, Synchronous::Full).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_migrated_payload_is_the_bytes_this_release_commits() {
        use crate::event::{EventBody, NewEvent};
        let e = NewEvent::new(
            1_000,
            vec!["x".into()],
            EventBody::DeviceStatus {
                device: "plc".into(),
                online: false,
                reason: Some("no answer".into()),
            },
        );
        let old = {
            let mut v: serde_json::Value =
                serde_json::from_slice(&e.to_payload(17, "S", "a/b/c/d/e")).unwrap();
            v.as_object_mut().unwrap().remove("store_id");
            // The schema-1 envelope, in its field order.
            format!(
                r#"{{"event_id":"{}","seq":17,"ts":1000,"time":{},"cell":"a/b/c/d/e","type":"device_status","data":{},"source":["x"]}}"#,
                e.id, v["time"], v["data"]
            )
        };
        assert_eq!(
            with_store_id(old.as_bytes(), 17, "S").unwrap(),
            e.to_payload(17, "S", "a/b/c/d/e")
        );
        assert_eq!(with_store_id(b"{\"x\":1}", 17, "S"), None);
    }

    #[test]
    fn a_new_store_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("cell.db"), Synchronous::Full).unwrap();
        let origin: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'origin'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(origin, ORIGIN_NEW);
    }

    #[test]
    fn refuses_a_future_schema_and_reopens_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        drop(open(&path, Synchronous::Full).unwrap());
        drop(open(&path, Synchronous::Normal).unwrap());
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        let err = open(&path, Synchronous::Full).unwrap_err();
        assert!(
            matches!(err, StoreError::FutureSchema { found, .. } if found == SCHEMA_VERSION + 1),
            "{err}"
        );
    }
}
