//! The integrator's look into a store: the last events and an integrity check (a replay on
//! MOM's request is store/replay.rs). These open an existing store only and never migrate it, so pointing them at
//! the wrong file or a store of a newer mes-edge changes nothing.

use super::error::StoreError;
use super::schema::{check_identity, SCHEMA_VERSION};
use rusqlite::OptionalExtension;
use rusqlite::{params, Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// One row of the outbox as the tools show it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: u64,
    pub event_id: String,
    pub kind: String,
    pub ts_ms: i64,
    pub delivered_ms: Option<i64>,
    pub payload: Vec<u8>,
}

/// Opens a store that must already exist and be a mes-edge store of this schema version.
pub fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::Missing {
            path: path.display().to_string(),
        });
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let version = check_identity(&conn, path)?;
    if version < SCHEMA_VERSION {
        return Err(StoreError::Foreign {
            path: path.display().to_string(),
            why: format!("schema {version}; the runtime brings a store up to date at its start"),
        });
    }
    conn.busy_timeout(Duration::from_secs(10))?;
    Ok(conn)
}

/// The columns [`stored_event`] reads, for `SELECT {COLUMNS} FROM outbox ...`: `delivered_ms`
/// is when the JSON forwarder's cursor passed the row (store/event_cursor.rs), NULL while it
/// has not or holds the row.
pub(super) const COLUMNS: &str = "seq, event_id, kind, ts_ms,
    (SELECT min(m.at_ms) FROM sink_move m
     WHERE m.sink = 'events' AND m.seq >= outbox.seq
       AND NOT EXISTS (SELECT 1 FROM sink_held h
                       WHERE h.sink = 'events' AND h.class = 'event' AND h.item = outbox.seq)),
    payload";

/// A row of `SELECT {COLUMNS} FROM outbox`.
pub(super) fn stored_event(r: &rusqlite::Row) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: r.get::<_, i64>(0)? as u64,
        event_id: r.get(1)?,
        kind: r.get(2)?,
        ts_ms: r.get(3)?,
        delivered_ms: r.get(4)?,
        payload: r.get(5)?,
    })
}

/// The last `n` rows, oldest first.
pub fn tail(conn: &Connection, n: u64) -> Result<Vec<StoredEvent>, StoreError> {
    after(conn, last_seq(conn)?.saturating_sub(n), n)
}

/// Up to `limit` rows with a sequence number above `seq`, in order.
pub fn after(conn: &Connection, seq: u64, limit: u64) -> Result<Vec<StoredEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(
        params![seq as i64, limit.min(i64::MAX as u64) as i64],
        stored_event,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The last committed sequence number.
pub fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let s: i64 = conn.query_row("SELECT last_seq FROM cell_state WHERE id = 1", [], |r| {
        r.get(0)
    })?;
    Ok(s as u64)
}

/// One finding of `verify`.
pub type Problem = String;

/// What `verify` found: the rows checked and every problem, none meaning the store is sound.
#[derive(Debug, Default)]
pub struct Verification {
    pub rows: u64,
    pub first_seq: Option<u64>,
    pub last_seq: u64,
    pub problems: Vec<Problem>,
}

/// Checks a store: SQLite's own integrity check, the kept rows form one gap-free run ending at
/// the committed sequence (older rows may have been pruned, newer ones never), and every payload
/// is JSON whose `seq`, `event_id` and `type` are those of its row.
pub fn verify(conn: &Connection) -> Result<Verification, StoreError> {
    let mut v = Verification::default();
    let mut stmt = conn.prepare("PRAGMA integrity_check")?;
    let report: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    if report != ["ok"] {
        v.problems
            .extend(report.into_iter().map(|l| format!("integrity_check: {l}")));
    }
    v.last_seq = last_seq(conn)?;
    let mut expected: Option<u64> = None;
    let mut gaps: Vec<(u64, u64)> = Vec::new();
    let mut reported_payloads = 0;
    let mut stmt = conn.prepare("SELECT seq, event_id, kind, payload FROM outbox ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let seq = r.get::<_, i64>(0)? as u64;
        let (id, kind, payload): (String, String, Vec<u8>) = (r.get(1)?, r.get(2)?, r.get(3)?);
        v.rows += 1;
        v.first_seq.get_or_insert(seq);
        let from = expected.unwrap_or(1);
        if seq > from {
            gaps.push((from, seq - 1));
        }
        expected = Some(seq + 1);
        let mut bad = |why: String| {
            // A systematically broken store would otherwise print a line per row.
            if reported_payloads < 20 {
                v.problems.push(format!("seq {seq}: {why}"));
            }
            reported_payloads += 1;
        };
        match serde_json::from_slice::<serde_json::Value>(&payload) {
            Err(e) => bad(format!("payload is not JSON: {e}")),
            Ok(p) => {
                if p["seq"].as_u64() != Some(seq) {
                    bad(format!("payload seq {} is not the row's", p["seq"]));
                }
                if p["event_id"].as_str() != Some(id.as_str()) {
                    bad(format!(
                        "payload event_id {} is not the row's {id}",
                        p["event_id"]
                    ));
                }
                if p["type"].as_str() != Some(kind.as_str()) {
                    bad(format!(
                        "payload type {} is not the row's {kind}",
                        p["type"]
                    ));
                }
            }
        }
    }
    if reported_payloads > 20 {
        v.problems.push(format!(
            "... {} more payload problems",
            reported_payloads - 20
        ));
    }
    // Pruning deletes delivered rows whatever their seq, and counts them: every seq missing up
    // to the last committed one must be one of those.
    let after = expected.unwrap_or(1);
    if after <= v.last_seq {
        gaps.push((after, v.last_seq));
    }
    let missing: u64 = gaps.iter().map(|(a, b)| b - a + 1).sum();
    let pruned: u64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = ?1",
            [super::schema::PRUNED_ROWS],
            |r| r.get::<_, String>(0),
        )
        .optional()?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if missing > pruned {
        v.problems.push(format!(
            "{} rows missing and {pruned} pruned: {} lost; missing seqs {}",
            missing,
            missing - pruned,
            gaps.iter()
                .take(10)
                .map(|(a, b)| if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // What an output holds refused (or put back by a replay) is kept until it has it.
    let mut held = conn.prepare(
        "SELECT h.sink, h.item FROM sink_held h
         WHERE h.class = 'event' AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = h.item)
         ORDER BY h.item LIMIT 10",
    )?;
    let gone: Vec<(String, i64)> = held
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (sink, seq) in gone {
        v.problems.push(format!(
            "seq {seq}: held for the output {sink:?} (not yet had) but not in the store: lost"
        ));
    }
    // Another output's cursor: the rows after it must all be kept (pruning holds them).
    let mut cursors = conn.prepare("SELECT sink, seq FROM sink_cursor WHERE seq IS NOT NULL")?;
    let cursors: Vec<(String, i64)> = cursors
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    for (sink, seq) in cursors {
        let seq = seq as u64;
        if seq > v.last_seq {
            v.problems.push(format!(
                "the {sink} cursor is at seq {seq}, past the last committed {}",
                v.last_seq
            ));
        }
        if let Some((a, _)) = gaps.iter().find(|(_, b)| *b > seq) {
            v.problems.push(format!(
                "seq {} is missing but the {sink} output has not had it (its cursor is at {seq})",
                a.max(&(seq + 1))
            ));
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::store_with;
    use super::*;

    #[test]
    fn verify_passes_a_sound_store_and_names_what_is_wrong_with_a_damaged_one() {
        let (_dir, path) = store_with(5);
        let conn = open_existing(&path).unwrap();
        let v = verify(&conn).unwrap();
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!((v.rows, v.first_seq, v.last_seq), (5, Some(1), 5));
        assert_eq!(
            tail(&conn, 2)
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            vec![4, 5]
        );

        conn.execute("DELETE FROM outbox WHERE seq = 3", [])
            .unwrap();
        conn.execute(
            "UPDATE outbox SET payload = CAST('{' AS BLOB) WHERE seq = 4",
            [],
        )
        .unwrap();
        conn.execute(
            "UPDATE outbox SET payload = CAST(replace(CAST(payload AS TEXT), '\"seq\":2', '\"seq\":9') AS BLOB) WHERE seq = 2",
            [],
        )
        .unwrap();
        conn.execute("DELETE FROM outbox WHERE seq = 5", [])
            .unwrap();
        let v = verify(&conn).unwrap();
        let all = v.problems.join("\n");
        assert!(all.contains("seq 4: payload is not JSON"), "{all}");
        assert!(all.contains("seq 2: payload seq 9"), "{all}");
        assert!(
            all.contains("2 rows missing and 0 pruned: 2 lost; missing seqs 3, 5"),
            "{all}"
        );
    }

    #[test]
    fn tools_refuse_what_is_not_an_existing_store_of_this_version() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.db");
        assert!(matches!(
            open_existing(&missing),
            Err(StoreError::Missing { .. })
        ));
        assert!(!missing.exists(), "nothing created");
        let text = dir.path().join("notes.db");
        std::fs::write(&text, vec![b'x'; 4096]).unwrap();
        assert!(matches!(
            open_existing(&text),
            Err(StoreError::Foreign { .. })
        ));
        assert_eq!(
            std::fs::read(&text).unwrap(),
            vec![b'x'; 4096],
            "nothing altered"
        );
        let (_d, path) = store_with(1);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", 99)
            .unwrap();
        assert!(matches!(
            open_existing(&path),
            Err(StoreError::FutureSchema { found: 99, .. })
        ));
    }
}
