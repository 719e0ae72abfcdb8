//! Hands the JSON events cursor's moves to the store's owner, without waiting.
//!
//! A move is a write; the owner writes it in the next transaction it runs (the engine's commit,
//! under its fsync, when one is due), so the forwarder's task never waits for the disk. A move
//! lost to a crash only means the events after the stored cursor are published again after the
//! restart, which at-least-once delivery allows (MOM drops the duplicate by its event id); the
//! owner keeps a move it failed to write until it can, so a refused event it holds is never
//! passed by a later move unheld.

use crate::store::{EventsMoved, StoreOwner, EVENTS_SINK};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct Marker {
    owner: StoreOwner,
    /// Moves handed over and not yet tried.
    pending: Arc<AtomicUsize>,
}

impl Marker {
    pub fn new(owner: StoreOwner) -> Marker {
        Marker {
            owner,
            pending: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Hands a move of the cursor over; gives it back if the owner has stopped.
    pub fn hand_over(&self, moved: EventsMoved) -> Result<(), EventsMoved> {
        self.owner.move_events(
            EVENTS_SINK,
            moved,
            mes_edge_drivers::now_ms(),
            &self.pending,
        )
    }

    /// Whether moves handed over are still waiting to be written.
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// Blocks until every move handed over so far is written (or was tried).
    pub fn wait(&self) {
        if let Err(e) = self.owner.flush() {
            tracing::error!("waiting for the events cursor's moves: {e}");
        }
    }
}
