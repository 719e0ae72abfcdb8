//! Which store is the cell's: `press4.identity` next to the store, `{"store_id": …,
//! "last_seq": …}`, rewritten at start, every few seconds and at a clean stop by the runtime.
//! When the store is deleted and made again, replaced or restored from a backup, the file still
//! names the cell's previous store and how far its sequence went: the new store's
//! `store_created` event names it, and a store whose sequence went back (a restored backup) gets
//! a new `store_id`, so that (`store_id`, `seq`) never names two different events. The file
//! and the lock beside it (store/lock.rs) are the runtime's own; deleting them loses only the
//! "previous store" in the next announcement.

use super::{Outbox, StoreError};
use serde::{Deserialize, Serialize};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

pub fn identity_path(store: &Path) -> PathBuf {
    store.with_extension("identity")
}

/// The identity file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    pub store_id: String,
    pub last_seq: u64,
}

pub fn read_lineage(store: &Path) -> Option<Lineage> {
    let text = std::fs::read_to_string(identity_path(store)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Rewrites the identity file (a new file renamed over the old one: never half written).
pub fn write_lineage(store: &Path, l: &Lineage) -> std::io::Result<()> {
    let path = identity_path(store);
    let tmp = path.with_extension("identity.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec(l).expect("serializes"))?;
    }
    std::fs::rename(&tmp, &path)
}

/// At the runtime's start, with the lock held: gives a rewound store a new identity, commits
/// the store's `store_created` event if it has none yet, and records the store in the identity
/// file. Gives back the seq of the announcement, if one was made now.
pub fn claim(outbox: &mut Outbox, store: &Path, now_ms: i64) -> Result<Option<u64>, StoreError> {
    let known = read_lineage(store);
    let mut previous = known
        .as_ref()
        .filter(|l| l.store_id != outbox.store_id())
        .map(|l| (l.store_id.clone(), l.last_seq));
    if let Some(l) = known.as_ref().filter(|l| l.store_id == outbox.store_id()) {
        if l.last_seq > outbox.last_seq() {
            // The same store, but its sequence went back: a backup restored, a copy from
            // another PC. New events get a new identity; the ones in it keep theirs.
            tracing::warn!(
                store_id = %l.store_id,
                known_last_seq = l.last_seq,
                store_last_seq = outbox.last_seq(),
                "the store's sequence went back (a restored backup?); it gets a new store_id"
            );
            outbox.reidentify(&uuid::Uuid::now_v7().to_string(), "rewound")?;
            previous = Some((l.store_id.clone(), l.last_seq));
        }
    }
    let (prev_id, prev_seq) = previous.unzip();
    let announced = outbox.announce(prev_id, prev_seq, now_ms)?;
    if let Some(seq) = announced {
        tracing::info!(
            store_id = outbox.store_id(),
            seq,
            "store announced (store_created)"
        );
    }
    let lineage = Lineage {
        store_id: outbox.store_id().to_string(),
        last_seq: outbox.last_seq(),
    };
    if let Err(e) = write_lineage(store, &lineage) {
        tracing::warn!(
            "writing {}: {e}; a store made after this one will not name it",
            identity_path(store).display()
        );
    }
    Ok(announced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::CellState;
    use crate::config::Synchronous;
    use crate::event::{EventBody, NewEvent};

    const CELL: &str = "a/b/c/d/e";

    fn event() -> NewEvent {
        NewEvent::new(
            1,
            vec!["x".into()],
            EventBody::DeviceStatus {
                device: "plc".into(),
                online: true,
                reason: None,
            },
        )
    }

    fn payloads(ob: &Outbox) -> Vec<serde_json::Value> {
        ob.rows_after(0, 100)
            .unwrap()
            .iter()
            .map(|r| serde_json::from_slice(&r.payload).unwrap())
            .collect()
    }

    #[test]
    fn a_new_store_announces_itself_once_and_a_replacement_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        let mut ob = Outbox::open(&path, Synchronous::Full, CELL).unwrap();
        assert_eq!(claim(&mut ob, &path, 10).unwrap(), Some(1));
        assert_eq!(claim(&mut ob, &path, 11).unwrap(), None, "once");
        ob.commit(&[event(), event()], &CellState::default(), 12)
            .unwrap();
        let first_id = ob.store_id().to_string();
        let p = payloads(&ob);
        assert_eq!(p[0]["type"], "store_created");
        assert_eq!(p[0]["seq"], 1);
        assert_eq!(p[0]["data"]["origin"], "new");
        assert_eq!(p[0]["data"]["previous_store_id"], serde_json::Value::Null);
        assert!(p.iter().all(|e| e["store_id"] == first_id.as_str()));
        // What the running runtime's supervisor does every few seconds.
        write_lineage(
            &path,
            &Lineage {
                store_id: first_id.clone(),
                last_seq: ob.last_seq(),
            },
        )
        .unwrap();
        drop(ob);

        // Deleted and made again: seq from 1, a new id, naming the old store and its last seq.
        std::fs::remove_file(&path).unwrap();
        let mut ob = Outbox::open(&path, Synchronous::Full, CELL).unwrap();
        claim(&mut ob, &path, 20).unwrap();
        assert_ne!(ob.store_id(), first_id);
        let p = payloads(&ob);
        assert_eq!(p[0]["seq"], 1);
        assert_eq!(p[0]["data"]["previous_store_id"], first_id.as_str());
        assert_eq!(p[0]["data"]["previous_last_seq"], 3);
        assert_eq!(ob.stats().unwrap().store_id, ob.store_id());
    }

    #[test]
    fn a_store_whose_sequence_went_back_gets_a_new_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        let backup = dir.path().join("backup.db");
        let mut ob = Outbox::open(&path, Synchronous::Full, CELL).unwrap();
        claim(&mut ob, &path, 10).unwrap();
        let id = ob.store_id().to_string();
        drop(ob);
        // A backup at seq 1, then the store goes on to seq 3.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute("VACUUM INTO ?1", [backup.to_str().unwrap()])
            .unwrap();
        drop(conn);
        let mut ob = Outbox::open(&path, Synchronous::Full, CELL).unwrap();
        claim(&mut ob, &path, 10).unwrap();
        ob.commit(&[event(), event()], &CellState::default(), 12)
            .unwrap();
        claim(&mut ob, &path, 13).unwrap();
        drop(ob);
        // The backup restored.
        std::fs::copy(&backup, &path).unwrap();
        let _ = std::fs::remove_file(dir.path().join("cell.db-wal"));
        let mut ob = Outbox::open(&path, Synchronous::Full, CELL).unwrap();
        assert_eq!(ob.last_seq(), 1);
        assert_eq!(claim(&mut ob, &path, 14).unwrap(), Some(2));
        assert_ne!(ob.store_id(), id);
        let p = payloads(&ob);
        let created = p.iter().find(|e| e["seq"] == 2).unwrap();
        assert_eq!(created["type"], "store_created");
        assert_eq!(created["store_id"], ob.store_id());
        assert_eq!(created["data"]["origin"], "rewound");
        assert_eq!(created["data"]["previous_store_id"], id.as_str());
        assert_eq!(created["data"]["previous_last_seq"], 3);
        // The event committed before the backup keeps the identity it was committed with.
        assert_eq!(p[0]["store_id"], id.as_str());
    }
}
