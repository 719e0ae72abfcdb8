//! The runtime's store, from its start to its clean stop: held by one runtime (the lock), the
//! same sequence it left (reconciled), checked after an unclean stop, announced once, and
//! marked stopped cleanly with its lineage written at the end.

use crate::cell::CellState;
use crate::config::CellConfig;
use crate::store::identity::{self, Lineage};
use crate::store::integrity::Integrity;
use crate::store::{Checkpointer, Outbox, StoreError, StoreLock, StoreOwner};
use anyhow::{Context, Result};

/// The store as the runtime holds it from start to stop.
pub(super) struct HeldStore {
    // Held until the runtime ends: a second runtime on this store stops at its start.
    lock: StoreLock,
    /// The thread with the runtime's only read-write connection (store/owner.rs).
    pub owner: StoreOwner,
    /// What the store held at the start: the last sequence number committed.
    pub last_seq: u64,
    /// The store's first event, `store_created`, was committed by this start.
    pub announced: bool,
}

impl HeldStore {
    /// Gives back the committed state the engine resumes from.
    pub fn open(config: &CellConfig, cell_path: &str) -> Result<(HeldStore, CellState)> {
        let path = &config.store.path;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the store's folder {}", dir.display()))?;
        }
        let lock = StoreLock::acquire(path)?;
        let named = |e: StoreError| e.named(path);
        // The owner's connection opens first: it alone creates and migrates the store. Its
        // commits checkpoint on the checkpointer's thread.
        let mut writer = Outbox::open(path, config.store.synchronous, cell_path).map_err(named)?;
        let checkpointer = Checkpointer::start(path).map_err(named)?;
        checkpointer.attach(&mut writer)?;
        // A large store's check after an unclean stop may take longer than systemd's start
        // timeout (TimeoutStartSec=60): ask for more time before it.
        if let Some(n) = crate::ops::notify::Notifier::from_env() {
            let _ = n.send("EXTEND_TIMEOUT_USEC=600000000\nSTATUS=opening and checking the store");
        }
        let integrity = writer.check_integrity(path).map_err(named)?;
        let outbox_after_ready = matches!(integrity, Integrity::OutboxAfterReady { .. });
        match integrity {
            Integrity::Sound {
                took,
                unclean: true,
            } => tracing::warn!(
                took_ms = took.as_millis() as u64,
                "the last runtime on this store did not stop cleanly; SQLite's quick_check found it sound"
            ),
            Integrity::Sound { took, .. } => tracing::info!(
                took_ms = took.as_millis() as u64,
                "store checked (quick_check): sound"
            ),
            Integrity::OutboxAfterReady { took } => tracing::warn!(
                took_ms = took.as_millis() as u64,
                "the last runtime on this store did not stop cleanly; every table but the outbox checked and sound, the outbox is checked after READY"
            ),
            Integrity::NotChecked => {}
        }
        if let Some((recorded, held)) = writer.reconcile_sequence()? {
            tracing::warn!(
                recorded,
                held,
                "the store's last sequence number was behind the events it holds (was it written by a second runtime?); the sequence goes on after the last event held"
            );
        }
        let announced = identity::claim(&mut writer, path, mes_edge_drivers::now_ms())?;
        let state = writer.load_state()?;
        tracing::info!(
            cell = %cell_path,
            store_id = writer.store_id(),
            last_seq = writer.last_seq(),
            good_total = state.good_total,
            scrap_total = state.scrap_total,
            "store opened"
        );
        let held = HeldStore {
            lock,
            last_seq: writer.last_seq(),
            owner: StoreOwner::start(writer).map_err(named)?,
            announced: announced.is_some(),
        };
        if outbox_after_ready {
            crate::store::integrity::check_outbox_after_ready(path, held.owner.clone())
                .context("starting the outbox's check")?;
        }
        Ok((held, state))
    }

    /// At the stop, once every task that wrote to the store has ended: how far this store
    /// went, exactly, for a store that may replace it (the supervisor only brings that up to
    /// date every few seconds), and, if the engine ended as it should (`clean`), the mark that
    /// spares the next start the integrity check.
    pub fn close(&self, clean: bool) {
        let closed = self.owner.run(move |o| {
            let stats = o.stats()?;
            if clean {
                o.mark_stopped_cleanly()?;
            }
            Ok(stats)
        });
        match closed {
            Ok(s) => {
                let lineage = Lineage {
                    store_id: s.store_id,
                    last_seq: s.last_seq,
                };
                if let Err(e) = self.lock.write_lineage(&lineage) {
                    tracing::warn!("writing the store's identity file: {e}");
                }
            }
            Err(e) => tracing::warn!("closing the store: {e}"),
        }
    }
}
