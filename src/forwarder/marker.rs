//! Hands acknowledged events to the store's owner to be marked delivered, without waiting.
//!
//! Marking is a write; the owner writes the marks in the next transaction it runs (the engine's
//! commit, under its fsync, when one is due), so the forwarder's task never waits for the disk
//! and a mark never waits for a lock. A mark lost to a crash only means the event is published
//! again after the restart, which at-least-once delivery allows (MOM drops the duplicate by its
//! event id).

use crate::store::StoreOwner;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Marker {
    owner: StoreOwner,
    /// Sequence numbers handed over and not yet written.
    pending: Arc<AtomicUsize>,
}

impl Marker {
    pub fn new(owner: StoreOwner) -> Marker {
        Marker {
            owner,
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hands acknowledged events over for marking; gives them back if the owner has stopped.
    pub fn hand_over(&self, seqs: Vec<u64>) -> Result<(), Vec<u64>> {
        self.owner
            .mark(seqs, mes_edge_drivers::now_ms(), &self.pending)
    }

    /// Whether events handed over are still waiting to be marked.
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// Blocks until every event handed over so far is marked (or its mark failed).
    pub fn wait(&self) {
        if let Err(e) = self.owner.flush() {
            tracing::error!("waiting for delivery marks: {e}");
        }
    }
}
