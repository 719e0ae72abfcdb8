//! The store's owner: one thread holds the only read-write connection of the runtime, and every
//! write (the engine's commits, delivery marks, sink cursors, value deliveries, pruning, the
//! values' cap and age) is a request it runs in turn. Everything else reads on a read-only
//! connection of its own.
//!
//! Before this, five parts of the runtime wrote on connections of their own, and SQLite's one
//! writer at a time made them wait for each other through its busy handler, or fail at once
//! where a transaction upgraded from reading to writing ("database is locked", issue 23). One
//! writer cannot wait for another. It also lets writes that are not urgent ride in a
//! transaction that is due anyway: delivery marks handed over while a commit waits are written
//! in the commit's transaction, under its fsync.

use super::outbox::{Committed, Outbox};
use super::schema::StoreError;
use crate::cell::{CellState, ValueBatch};
use crate::event::NewEvent;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

type Job = Box<dyn FnOnce(&mut Outbox) + Send>;

/// A commit's outcome, with what it was asked to commit.
pub struct Commit {
    pub events: Vec<NewEvent>,
    pub values: Vec<ValueBatch>,
    pub result: Result<Committed, StoreError>,
}

enum Request {
    /// Runs on the owner's connection; the closure sends its own answer.
    Run(Job),
    /// The engine's commit: the marks waiting ride in its transaction.
    Commit(Job),
    /// Events the broker acknowledged: written with the next transaction due, or on their own
    /// once nothing else waits. `count` goes down by their number once written (or failed).
    Mark {
        seqs: Vec<u64>,
        count: Arc<AtomicUsize>,
    },
}

/// A handle on the owner's thread. Cloned to every part that writes; the thread ends (and the
/// connection closes) when the last handle is gone.
#[derive(Clone)]
pub struct StoreOwner {
    tx: Sender<Request>,
}

impl StoreOwner {
    /// Takes `outbox`, the runtime's read-write connection, onto the owner's thread.
    pub fn start(outbox: Outbox) -> Result<StoreOwner, StoreError> {
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("store-owner".into())
            .spawn(move || serve(outbox, rx))
            .map_err(|error| StoreError::Io {
                path: "the store's owner thread".into(),
                error,
            })?;
        Ok(StoreOwner { tx })
    }

    /// Runs `f` on the owner's connection and waits for its answer: from a thread of its own
    /// (the engine's), or inside `block_in_place` on the runtime.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.send(Request::Run(Box::new(move |o| {
            let _ = done.send(f(o));
        })))?;
        answer.recv().map_err(|_| StoreError::OwnerGone)
    }

    /// [`StoreOwner::call`] for a task: waits without holding a runtime thread.
    pub async fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        self.send(Request::Run(Box::new(move |o| {
            let _ = done.send(f(o));
        })))?;
        answer.await.map_err(|_| StoreError::OwnerGone)
    }

    /// [`StoreOwner::call`] for a result that is itself a store result.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.call(f)?
    }

    /// [`StoreOwner::ask`] for a result that is itself a store result.
    pub async fn ask_run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Outbox) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.ask(f).await?
    }

    /// Commits `events` and `values` with `state` (see [`Outbox::commit_all`]), and gives them
    /// back with the result: the engine keeps them to try again if the commit fails.
    pub fn commit(
        &self,
        events: Vec<NewEvent>,
        values: Vec<ValueBatch>,
        state: CellState,
        now_ms: i64,
    ) -> Result<Commit, StoreError> {
        let (done, answer) = std::sync::mpsc::sync_channel(1);
        self.send(Request::Commit(Box::new(move |o| {
            let result = o.commit_all(&events, &values, &state, now_ms);
            let _ = done.send(Commit {
                events,
                values,
                result,
            });
        })))?;
        answer.recv().map_err(|_| StoreError::OwnerGone)
    }

    /// Hands acknowledged events over to be marked delivered; `count` rises by their number
    /// now and falls once they are written. Does not wait. Gives them back if the owner has
    /// stopped.
    pub fn mark(&self, seqs: Vec<u64>, count: &Arc<AtomicUsize>) -> Result<(), Vec<u64>> {
        let n = seqs.len();
        count.fetch_add(n, Ordering::SeqCst);
        let request = Request::Mark {
            seqs,
            count: count.clone(),
        };
        self.tx.send(request).map_err(|e| {
            count.fetch_sub(n, Ordering::SeqCst);
            match e.0 {
                Request::Mark { seqs, .. } => seqs,
                _ => Vec::new(),
            }
        })
    }

    /// Waits until everything handed over before this call is written (or has failed).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.call(|_| ())
    }

    fn send(&self, r: Request) -> Result<(), StoreError> {
        self.tx.send(r).map_err(|_| StoreError::OwnerGone)
    }
}

/// The owner's loop: each round takes every request waiting and runs the jobs in the order they
/// came. The marks among them ride in the round's first commit; before any other job (a flush,
/// a cursor, a reader's turn) and at the end of the round they are written on their own.
fn serve(mut outbox: Outbox, rx: Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = Vec::new();
        let mut counts: Vec<(Arc<AtomicUsize>, usize)> = Vec::new();
        for r in std::iter::once(first).chain(rx.try_iter()) {
            match r {
                Request::Run(job) => jobs.push((job, false)),
                Request::Commit(job) => jobs.push((job, true)),
                Request::Mark { seqs, count } => {
                    counts.push((count, seqs.len()));
                    outbox.marks_due.extend(seqs);
                }
            }
        }
        for (job, commits) in jobs {
            if !commits {
                outbox.write_marks_due();
            }
            job(&mut outbox);
        }
        outbox.write_marks_due();
        for (count, n) in counts {
            count.fetch_sub(n, Ordering::SeqCst);
        }
    }
}
