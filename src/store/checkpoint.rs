//! WAL checkpoints on a thread of their own (issue 14). SQLite's automatic checkpoint runs
//! inside the commit that takes the WAL past 1,000 pages, on the committing connection's
//! thread: the engine's batch, or a housekeeping step, then also copies the WAL into the
//! database file and waits for that file's fsync. Here a runtime connection's commit only wakes
//! the checkpointer, which runs the same PASSIVE checkpoint (it neither waits for nor blocks a
//! writer or a reader) on a connection of its own. Nothing about durability changes: a commit
//! is durable in the WAL; a checkpoint only moves pages into the database file.
//!
//! A WAL starts over only when a writer finds every frame of it copied. A checkpointer that
//! kept falling behind a writer that never pauses would let the WAL grow without bound, so a
//! commit that finds it past `INLINE_PAGES` checkpoints on its own thread, as SQLite would.

use super::error::StoreError;
use super::outbox::Outbox;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{sync_channel, SyncSender};

/// SQLite's default `wal_autocheckpoint`: past this many pages the checkpointer is woken.
const WAKE_PAGES: c_int = 1000;
/// Past this many pages (40 MB of 4 KiB pages) the committing connection checkpoints itself.
const INLINE_PAGES: c_int = 10_000;

/// A handle on the checkpointer's thread; the thread ends when the last handle (each attached
/// connection holds one) is gone.
#[derive(Clone)]
pub struct Checkpointer {
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the checkpointer on a store its owner has opened (and so brought up to date): it
    /// never creates or migrates one.
    pub fn start(path: &Path) -> Result<Checkpointer, StoreError> {
        let conn = super::inspect::open_existing(path)?;
        let (wake, woken) = sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("checkpointer".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    match conn.wal_checkpoint_v2(Some("main"), CheckpointMode::PASSIVE) {
                        Ok((wal, copied)) => tracing::trace!(wal, copied, "checkpoint"),
                        Err(e) => tracing::warn!("checkpointing the store's WAL: {e}"),
                    }
                }
            })
            .map_err(|error| StoreError::Io {
                path: path.display().to_string(),
                error,
            })?;
        Ok(Checkpointer { wake })
    }

    /// Hands the checkpoints that `outbox`'s commits would run to the checkpointer (and those
    /// of the connections opened from it by [`Outbox::open_again`]).
    pub fn attach(&self, outbox: &mut Outbox) -> Result<(), StoreError> {
        let wake = self.wake.clone();
        // The hook runs after the commit is durable, and an error it returned would be the
        // commit's: the engine would retry a batch already committed, its seqs taken. So it
        // returns nothing to fail with, as SQLite's own checkpoint hook ignores its result.
        let hook = move |wal: &mut Wal, pages: c_int| {
            after_commit(wal, pages, &wake);
            Ok(())
        };
        outbox.conn().wal_hook(Some(hook))?;
        outbox.checkpointer = Some(self.clone());
        Ok(())
    }
}

fn after_commit(wal: &mut Wal, pages: c_int, wake: &SyncSender<()>) {
    if pages >= INLINE_PAGES {
        // Busy while the checkpointer is at it: the next commit tries again.
        if let Err(e) = wal.checkpoint() {
            tracing::debug!(pages, "checkpoint after a commit: {e}");
        }
    } else if pages >= WAKE_PAGES {
        // Already woken: the checkpoint to come covers this commit too.
        let _ = wake.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use std::time::{Duration, Instant};

    /// A store with a connection attached to `checkpointer`, and one opened again from it.
    fn store(dir: &Path, checkpointer: impl FnOnce(&Path) -> Checkpointer) -> (Outbox, Outbox) {
        let path = dir.join("c.db");
        let mut ob = Outbox::open(&path, Synchronous::Normal, "a/b/c/d/e").unwrap();
        checkpointer(&path).attach(&mut ob).unwrap();
        ob.conn()
            .execute("CREATE TABLE scratch (x BLOB)", [])
            .unwrap();
        let again = ob.open_again(Synchronous::Normal).unwrap();
        (ob, again)
    }

    /// About 1,200 pages committed, half on each connection (the checkpoint at 1,000 pages
    /// copies those, the rest waits for the WAL to pass 1,000 pages again).
    fn fill(a: &mut Outbox, b: &mut Outbox) {
        for ob in [a, b] {
            for _ in 0..150 {
                ob.conn()
                    .execute("INSERT INTO scratch VALUES (randomblob(16000))", [])
                    .unwrap();
            }
        }
    }

    fn db_bytes(dir: &Path) -> u64 {
        std::fs::metadata(dir.join("c.db")).unwrap().len()
    }

    #[test]
    fn commits_past_a_thousand_pages_wake_the_checkpointer_and_do_not_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        // A checkpointer whose thread never comes: what the commits do themselves shows.
        let (wake, woken) = sync_channel(1);
        let (mut a, mut b) = store(dir.path(), |_| Checkpointer { wake });
        let before = db_bytes(dir.path());
        fill(&mut a, &mut b);
        assert!(woken.try_recv().is_ok(), "no commit woke the checkpointer");
        assert_eq!(db_bytes(dir.path()), before, "a commit checkpointed itself");
    }

    #[test]
    fn the_checkpointer_copies_the_wal_into_the_database_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut a, mut b) = store(dir.path(), |path| Checkpointer::start(path).unwrap());
        let before = db_bytes(dir.path());
        fill(&mut a, &mut b);
        let deadline = Instant::now() + Duration::from_secs(10);
        while db_bytes(dir.path()) < before + (3 << 20) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            db_bytes(dir.path()) >= before + (3 << 20),
            "the database file holds {} bytes, {before} before the commits",
            db_bytes(dir.path())
        );
    }
}
