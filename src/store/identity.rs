//! Which store is the cell's, and that only one runtime has it.
//!
//! - The lock: the store file itself and `press4.lock` next to it, flock(2)ed for as long as a
//!   runtime runs. A second runtime on the same store exits at its start with the holder's pid;
//!   the kernel drops the locks when the holder dies, kill -9 included, so a stale file never
//!   blocks a restart. The store file's own lock is what makes a second name for the store (a
//!   symlink, a hard link, another path to it) a second runtime on the same store, refused: a
//!   lock file's name comes from the path string. (flock and SQLite's POSIX locks do not
//!   interact on Linux.)
//! - The identity file: `press4.identity` next to the store, `{"store_id": …, "last_seq": …}`,
//!   rewritten at start, every few seconds and at a clean stop by the runtime. When the store is deleted and
//!   made again, replaced or restored from a backup, the file still names the cell's previous
//!   store and how far its sequence went: the new store's `store_created` event names it, and
//!   a store whose sequence went back (a restored backup) gets a new `store_id`, so that
//!   (`store_id`, `seq`) never names two different events. Both files are the runtime's own;
//!   deleting them loses only the "previous store" in the next announcement.

use super::{Outbox, StoreError};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub fn lock_path(store: &Path) -> PathBuf {
    store.with_extension("lock")
}

pub fn identity_path(store: &Path) -> PathBuf {
    store.with_extension("identity")
}

/// Makes the store's files the service's alone whatever the umask it was started with (the
/// unit sets UMask=0027, a shell may not): the store is created 0640, SQLite gives its WAL and
/// shared-memory files the store's mode, and the store's files found readable by others lose
/// that. Operators reach the control socket, never the store.
pub fn restrict_files(store: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |path: &Path, error| StoreError::Io {
        path: path.display().to_string(),
        error,
    };
    if !store.exists() {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o640)
            .open(store)
            .map_err(|e| io(store, e))?;
    }
    let side = |ext: &str| {
        let mut p = store.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    for path in [
        store.to_path_buf(),
        side("-wal"),
        side("-shm"),
        lock_path(store),
        identity_path(store),
    ] {
        if let Ok(meta) = std::fs::metadata(&path) {
            let mode = meta.permissions().mode();
            if mode & 0o007 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode & 0o770))
                    .map_err(|e| io(&path, e))?;
            }
        }
    }
    Ok(())
}

/// The store's lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StoreLock {
    _store: File,
    _file: File,
    /// The store's path as it was locked: its identity file lies beside it.
    store: std::path::PathBuf,
}

impl StoreLock {
    /// Rewrites the identity file of the store this lock holds.
    pub fn write_lineage(&self, l: &Lineage) -> std::io::Result<()> {
        write_lineage(&self.store, l)
    }

    /// Takes the lock of the store at `store`, or says who holds it.
    pub fn acquire(store: &Path) -> Result<StoreLock, StoreError> {
        let store_file = lock_store_file(store)?;
        let file = lock_file(store)?;
        Ok(StoreLock {
            _store: store_file,
            _file: file,
            store: store.to_path_buf(),
        })
    }
}

/// The store file itself, flocked: whatever name it was opened by, it is one inode.
fn lock_store_file(store: &Path) -> Result<File, StoreError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let io = |error| StoreError::Io {
        path: store.display().to_string(),
        error,
    };
    // Created empty if new: SQLite takes an empty file for a new database.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o640)
        .open(store)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            let meta = file.metadata().map_err(io)?;
            // /proc/locks, or (where the unit's ProcSubset=pid hides it) the lock file next to
            // the store's real name, for a symlink.
            let holder = match flock_holder(meta.dev(), meta.ino()) {
                Some(pid) => format!("pid {pid}"),
                None => std::fs::canonicalize(store)
                    .ok()
                    .and_then(|real| std::fs::read_to_string(lock_path(&real)).ok())
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "another process".into()),
            };
            Err(StoreError::Locked {
                path: store.display().to_string(),
                holder: format!("{holder} holds the store file itself, perhaps by another name (a symlink or a hard link)"),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
    }
}

/// The pid holding a flock on the file (`dev`, `ino`), from /proc/locks: `N: FLOCK ADVISORY
/// WRITE PID MAJ:MIN:INODE START END`.
fn flock_holder(dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc_major(dev), libc_minor(dev));
    let want = format!("{major:02x}:{minor:02x}:{ino}");
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.get(1) == Some(&"FLOCK") && f.get(5) == Some(&want.as_str()))
            .then(|| f.get(4)?.parse().ok())
            .flatten()
    })
}

/// glibc's gnu_dev_major / gnu_dev_minor, for /proc/locks' device numbers.
fn libc_major(dev: u64) -> u64 {
    ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff)
}

fn libc_minor(dev: u64) -> u64 {
    ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff)
}

/// `press4.lock`, flocked, with the holder's pid in it for the next one who finds it locked.
fn lock_file(store: &Path) -> Result<File, StoreError> {
    {
        let path = lock_path(store);
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o640)
            .open(&path)
            .map_err(|e| StoreError::Io {
                path: path.display().to_string(),
                error: e,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(StoreError::Locked {
                    path: store.display().to_string(),
                    holder: if holder.is_empty() {
                        format!("it holds {}", path.display())
                    } else {
                        format!("{holder}, holding {}", path.display())
                    },
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::Io {
                    path: path.display().to_string(),
                    error: e,
                })
            }
        }
        // For the next one who finds it locked: who holds it.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "pid {}", std::process::id());
        let _ = file.flush();
        Ok(file)
    }
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

    #[test]
    fn the_stores_files_are_not_for_others_whatever_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        restrict_files(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o640);
        let id = identity_path(&path);
        std::fs::write(&id, "{}").unwrap();
        std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o666)).unwrap();
        restrict_files(&path).unwrap();
        assert_eq!(mode(&id), 0o660);
    }

    #[test]
    fn a_second_holder_of_the_lock_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        let first = StoreLock::acquire(&path).unwrap();
        let err = StoreLock::acquire(&path).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, StoreError::Locked { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        drop(first);
        StoreLock::acquire(&path).unwrap();
    }

    #[test]
    fn a_second_name_for_a_locked_store_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.db");
        let _first = StoreLock::acquire(&path).unwrap();
        let link = dir.path().join("other.db");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let hard = dir.path().join("hard.db");
        std::fs::hard_link(&path, &hard).unwrap();
        for other in [link, hard] {
            let err = StoreLock::acquire(&other).unwrap_err();
            let text = err.to_string();
            assert!(matches!(err, StoreError::Locked { .. }), "{text}");
            assert!(
                text.contains(&format!("pid {}", std::process::id())),
                "{text}"
            );
            assert!(
                !other.with_extension("lock").exists(),
                "refused before anything is made for the second name"
            );
        }
    }
}
