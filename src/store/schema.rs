use crate::config::Synchronous;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::time::Duration;

/// Schema versions this build can read and write.
pub const SCHEMA_VERSION: i64 = 1;
/// "MESE": marks the file as a mes-edge store, so another SQLite file is refused, not altered.
const APPLICATION_ID: i64 = 0x4D45_5345;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: not a mes-edge store ({why}); move it away or point [store] path elsewhere")]
    Foreign { path: String, why: String },
    #[error("{path}: written by a newer mes-edge (schema {found}, this build knows up to {SCHEMA_VERSION}); upgrade mes-edge or restore a backup")]
    FutureSchema { path: String, found: i64 },
    #[error("{path}: no store there (the runtime creates it at its first start)")]
    Missing { path: String },
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
}

const MIGRATIONS: &[&str] = &[
    // 1: the outbox and the cell state.
    "CREATE TABLE outbox (
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
];

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
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match sync {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
        tx.commit()?;
    }
    Ok(conn)
}

/// Refuses a file that is not a mes-edge store (or an empty new one) and a store of a newer
/// schema, before anything is written to it; gives back the schema version.
pub(super) fn check_identity(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let foreign = |why: String| StoreError::Foreign {
        path: path.display().to_string(),
        why,
    };
    // The first read of a file that is not SQLite fails here with "file is not a database".
    let app_id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(|e| foreign(e.to_string()))?;
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
        });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

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
