//! What can go wrong with a store, told apart by what the runtime must do about it: refuse to
//! start (not ours, newer, locked, corrupt), stop (corrupt, the owner gone), or try again.

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: not a mes-edge store ({why}); move it away or point [store] path elsewhere")]
    Foreign { path: String, why: String },
    #[error("{path}: written by a newer mes-edge (schema {found}, this build knows up to {known}); upgrade mes-edge or restore a backup")]
    FutureSchema {
        path: String,
        found: i64,
        /// The newest schema this build knows.
        known: i64,
    },
    #[error("{path}: no store there (the runtime creates it at its first start)")]
    Missing { path: String },
    #[error("{path}: another mes-edge runtime has this store open ({holder}); two runtimes on one store would count every part twice. Stop the other one (systemctl status 'mes-edge@*') or point [store] path elsewhere")]
    Locked { path: String, holder: String },
    #[error("{path}: {error}")]
    Io { path: String, error: std::io::Error },
    #[error("{path}: the store is corrupt ({detail}). Nothing more is written to it. Stop the service; keep a copy of the store with its -wal file; `mes-edge outbox verify` and `mes-edge outbox stats` show what is readable and what MOM has not had; then move the store away: the runtime starts a new one, announced to MOM with a new store_id, and the PLC's counters carry on (docs/OPERATIONS.md, \"A corrupt store\")")]
    Corrupt { path: String, detail: String },
    #[error("no cursor for the output {0:?} in the store (turned off meanwhile?): its move is not stored")]
    NoCursor(String),
    #[error("the store's owner thread has stopped (a fault in the store's code); nothing more is written")]
    OwnerGone,
    #[error("{0}")]
    Sqlite(rusqlite::Error),
}

/// SQLite's word for a file whose pages do not hold what its structure says.
pub(super) fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl From<rusqlite::Error> for StoreError {
    /// Corruption is told apart wherever it is met (a read at open, a commit): the path is not
    /// known here, the runtime names it when it reports the error.
    fn from(e: rusqlite::Error) -> Self {
        if is_corruption(&e) {
            StoreError::Corrupt {
                path: "the store".into(),
                detail: e.to_string(),
            }
        } else {
            StoreError::Sqlite(e)
        }
    }
}

impl StoreError {
    /// Names the store's path in a corruption met where the path was not known.
    pub fn named(self, path: &Path) -> Self {
        match self {
            StoreError::Corrupt { detail, .. } => StoreError::Corrupt {
                path: path.display().to_string(),
                detail,
            },
            other => other,
        }
    }

    /// An error no retry mends: a corrupt store, or a constraint the commit broke (a sequence
    /// number taken: another writer went past the lock). The runtime stops with the reason
    /// instead of retrying the same commit every second; a full disk or an I/O error is retried.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Corrupt { .. } | StoreError::OwnerGone => true,
            // A sequence number or event id already taken. Not every constraint: a trigger's
            // RAISE(ABORT) is one too, and says nothing of the store's own keys.
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            ),
            _ => false,
        }
    }
}
