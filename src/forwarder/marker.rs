//! Marks acknowledged events delivered, on a thread and a store connection of its own.
//!
//! Marking is a write, and SQLite has one writer at a time: while the engine commits (with
//! synchronous = "full", an fsync each), a mark waits for the lock, and SQLite's busy handler
//! sleeps 1 to 100 ms between tries. Done on the forwarder's task, that wait held up publishing
//! and the handling of acknowledgements (measured in bench S1: at 1,000 events/s the p50 from
//! commit to the broker rose to hundreds of ms). Here the wait delays only the marks.
//!
//! The connection's synchronous level is "normal": a mark lost to a power cut only means the
//! event is published again after the restart, which at-least-once delivery allows (MOM drops
//! the duplicate by its event id); the engine's next "full" commit syncs the marks with it.

use crate::config::Synchronous;
use crate::store::Outbox;
use mes_edge_drivers::now_ms;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

enum Job {
    Mark(Vec<u64>),
    /// Answered once every mark handed over before it is written (or has failed).
    Flushed(Sender<()>),
}

pub struct Marker {
    tx: Option<Sender<Job>>,
    /// Sequence numbers handed over and not yet written.
    pending: Arc<AtomicUsize>,
}

impl Marker {
    /// A marker on a new connection to `outbox`'s store. If that cannot be opened, the caller
    /// marks on its own connection ([`Marker::hand_over`] gives the events back).
    pub fn start(outbox: &Outbox) -> Marker {
        let pending = Arc::new(AtomicUsize::new(0));
        let own = match outbox.open_again(Synchronous::Normal) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!("marking delivered events on the forwarder's own task: {e}");
                return Marker { tx: None, pending };
            }
        };
        let (tx, rx) = channel();
        let count = pending.clone();
        let spawned = std::thread::Builder::new()
            .name("delivery-marks".into())
            .spawn(move || mark_loop(own, rx, count));
        match spawned {
            Ok(_) => Marker {
                tx: Some(tx),
                pending,
            },
            Err(e) => {
                tracing::warn!("marking delivered events on the forwarder's own task: {e}");
                Marker { tx: None, pending }
            }
        }
    }

    /// Hands acknowledged events over for marking; gives them back if there is no thread.
    pub fn hand_over(&self, seqs: Vec<u64>) -> Result<(), Vec<u64>> {
        let Some(tx) = &self.tx else { return Err(seqs) };
        let n = seqs.len();
        self.pending.fetch_add(n, Ordering::SeqCst);
        tx.send(Job::Mark(seqs)).map_err(|e| {
            self.pending.fetch_sub(n, Ordering::SeqCst);
            match e.0 {
                Job::Mark(s) => s,
                Job::Flushed(_) => Vec::new(),
            }
        })
    }

    /// Whether events handed over are still waiting to be marked.
    pub fn busy(&self) -> bool {
        self.pending.load(Ordering::SeqCst) > 0
    }

    /// Blocks until every event handed over so far is marked (or its mark failed), at most 10 s.
    pub fn wait(&self) {
        let Some(tx) = &self.tx else { return };
        let (done_tx, done_rx) = channel();
        if tx.send(Job::Flushed(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

fn mark_loop(mut outbox: Outbox, rx: Receiver<Job>, pending: Arc<AtomicUsize>) {
    let mut batch: Vec<u64> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut waiters = Vec::new();
        // Everything queued meanwhile goes into the same transaction.
        for job in std::iter::once(first).chain(rx.try_iter()) {
            match job {
                Job::Mark(seqs) => batch.extend(seqs),
                Job::Flushed(w) => waiters.push(w),
            }
        }
        if !batch.is_empty() {
            let n = batch.len();
            match outbox.mark_delivered(&batch, now_ms()) {
                Ok(()) => batch.clear(),
                // Kept for the next round; if none comes (or the process dies) they are simply
                // sent again after the next connect.
                Err(e) => tracing::error!("marking delivered events: {e}"),
            }
            if batch.is_empty() || !waiters.is_empty() {
                pending.fetch_sub(n, Ordering::SeqCst);
                batch.clear();
            }
        }
        for w in waiters {
            let _ = w.send(());
        }
    }
}
