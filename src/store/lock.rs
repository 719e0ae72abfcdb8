//! That only one runtime has the cell's store: the store file itself and `press4.lock` next
//! to it, flock(2)ed for as long as a runtime runs. A second runtime on the same store exits at
//! its start with the holder's pid; the kernel drops the locks when the holder dies, kill -9
//! included, so a stale file never blocks a restart. The store file's own lock is what makes a
//! second name for the store (a symlink, a hard link, another path to it) a second runtime on
//! the same store, refused: a lock file's name comes from the path string. (flock and SQLite's
//! POSIX locks do not interact on Linux.) A tool that writes to a stopped runtime's store
//! (`outbox replay`) holds the store file's lock while it does.

use super::identity::{identity_path, write_lineage, Lineage};
use super::StoreError;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub fn lock_path(store: &Path) -> PathBuf {
    store.with_extension("lock")
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

    /// Takes the lock of the store at `store`, or says who holds it; then makes the store's
    /// files the service's alone ([`restrict_files`]).
    pub fn acquire(store: &Path) -> Result<StoreLock, StoreError> {
        let store_file = lock_store_file(store)?;
        let file = lock_file(store)?;
        restrict_files(store)?;
        Ok(StoreLock {
            _store: store_file,
            _file: file,
            store: store.to_path_buf(),
        })
    }
}

/// The store file of a stopped runtime, held by a tool while it writes to it: a runtime
/// starting meanwhile is refused naming the tool's pid, and systemd starts it again. Only the
/// store file is locked: the tool makes no file of its own beside the store (it may run as
/// another user than the service). The store must exist.
pub fn hold_store_file(store: &Path) -> Result<File, StoreError> {
    if !store.is_file() {
        return Err(StoreError::Missing {
            path: store.display().to_string(),
        });
    }
    lock_store_file(store)
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
    // One read() with room for the whole table: the kernel fills it from one walk of the
    // lock list (as much as its page-sized buffer holds, some 80 locks). read_to_string's
    // 32-byte probe and small reads resume the walk by position, and a lock that another
    // process (Mosquitto, other tests) drops between two reads shifts the rest, so ours could
    // be skipped under parallel tests (seen once in a full run, not reproduced alone).
    let mut buf = vec![0u8; 1 << 20];
    let n = File::open("/proc/locks").ok()?.read(&mut buf).ok()?;
    let locks = String::from_utf8_lossy(&buf[..n]);
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

#[cfg(test)]
mod tests {
    use super::*;
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
