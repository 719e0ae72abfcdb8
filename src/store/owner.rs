//! The store's owner: one thread holds the only read-write connection of the runtime, and every
//! write (the engine's commits, the outputs' cursors, value deliveries, pruning, the
//! values' cap and age) is a request it runs in turn. Everything else reads on a read-only
//! connection of its own.
//!
//! Before this, five parts of the runtime wrote on connections of their own, and SQLite's one
//! writer at a time made them wait for each other through its busy handler, or fail at once
//! where a transaction upgraded from reading to writing ("database is locked", issue 23). One
//! writer cannot wait for another. It also lets writes that are not urgent ride in a
//! transaction that is due anyway: the JSON forwarder's cursor moves handed over while a commit
//! waits are written in the commit's transaction, under its fsync.

use super::cursor_rows::EventsMoved;
use super::error::StoreError;
use super::outbox::{Committed, Outbox, OutboxStats};
use super::prune::PruneStep;
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
    /// The housekeeping step that rode in it, and the outbox's figures after it (for the
    /// store alarm).
    pub step: Option<(PruneStep, Option<OutboxStats>)>,
}

enum Request {
    /// Runs on the owner's connection; the closure sends its own answer. The engine's commit
    /// is one: the cursor moves waiting ride in its transaction ([`Outbox::commit_all`]).
    Run(Job),
    /// Answered once every move handed over before it is written (or was tried).
    Flush(Sender<()>),
    /// An events cursor's move (the broker's answers): written with the next transaction
    /// due, or on its own once nothing else waits. `count` goes down by one once it was tried.
    Move {
        sink: String,
        moved: EventsMoved,
        at_ms: i64,
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

    /// Commits `events` and `values` with `state` and a housekeeping `step` if one is due (see
    /// [`Outbox::commit_with`]), and gives them back with the result: the engine keeps them to
    /// try again if the commit fails.
    pub fn commit(
        &self,
        events: Vec<NewEvent>,
        values: Vec<ValueBatch>,
        state: CellState,
        now_ms: i64,
        step: Option<PruneStep>,
    ) -> Result<Commit, StoreError> {
        let (request, answer) = commit_request(events, values, state, now_ms, step);
        self.send(request)?;
        answer.recv().map_err(|_| StoreError::OwnerGone)
    }

    /// Hands a move of `sink`'s events cursor, answered at `at_ms`, over to be stored; `count`
    /// rises by one now and falls once it was tried. Does not wait. Gives it back if the owner
    /// has stopped.
    pub fn move_events(
        &self,
        sink: &str,
        moved: EventsMoved,
        at_ms: i64,
        count: &Arc<AtomicUsize>,
    ) -> Result<(), EventsMoved> {
        count.fetch_add(1, Ordering::SeqCst);
        let request = Request::Move {
            sink: sink.to_string(),
            moved,
            at_ms,
            count: count.clone(),
        };
        self.tx.send(request).map_err(|e| {
            count.fetch_sub(1, Ordering::SeqCst);
            match e.0 {
                Request::Move { moved, .. } => moved,
                _ => EventsMoved::default(),
            }
        })
    }

    /// Waits until every move handed over before this call is written (or was tried).
    pub fn flush(&self) -> Result<(), StoreError> {
        let (done, answer) = channel();
        self.send(Request::Flush(done))?;
        answer.recv().map_err(|_| StoreError::OwnerGone)
    }

    fn send(&self, r: Request) -> Result<(), StoreError> {
        self.tx.send(r).map_err(|_| StoreError::OwnerGone)
    }
}

fn commit_request(
    events: Vec<NewEvent>,
    values: Vec<ValueBatch>,
    state: CellState,
    now_ms: i64,
    mut step: Option<PruneStep>,
) -> (Request, Receiver<Commit>) {
    let (done, answer) = channel();
    let job = move |o: &mut Outbox| {
        let result = o.commit_with(&events, &values, &state, now_ms, step.as_mut());
        let step = step.map(|st| {
            let stats = (result.is_ok() && st.pruned.is_some()).then(|| o.stats().ok());
            (st, stats.flatten())
        });
        let _ = done.send(Commit {
            events,
            values,
            result,
            step,
        });
    };
    (Request::Run(Box::new(job)), answer)
}

/// The owner's loop: each round takes every request waiting and runs the jobs in the order they
/// came. The moves among them ride in the round's first commit; before a flush's answer and at
/// the end of the round they are written on their own.
fn serve(mut outbox: Outbox, rx: Receiver<Request>) {
    while let Ok(first) = rx.recv() {
        let mut counts: Vec<(Arc<AtomicUsize>, usize)> = Vec::new();
        let mut round = Vec::new();
        for r in std::iter::once(first).chain(rx.try_iter()) {
            match r {
                Request::Move {
                    sink,
                    moved,
                    at_ms,
                    count,
                } => {
                    counts.push((count, 1));
                    outbox.move_due(sink, moved, at_ms);
                }
                other => round.push(other),
            }
        }
        for r in round {
            match r {
                Request::Run(job) => job(&mut outbox),
                Request::Flush(done) => {
                    outbox.write_moves_due();
                    let _ = done.send(());
                }
                Request::Move { .. } => unreachable!("taken above"),
            }
        }
        outbox.write_moves_due();
        for (count, n) in counts {
            count.fetch_sub(n, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;
    use crate::event::{EventBody, NewEvent};
    use crate::store::EVENTS_SINK;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    fn event() -> NewEvent {
        let body = EventBody::DeviceStatus {
            device: "plc".into(),
            online: true,
            reason: None,
        };
        NewEvent::new(1, vec!["plc".into()], body)
    }

    fn moved(to: u64, held: &[u64]) -> EventsMoved {
        EventsMoved {
            to,
            held: held.to_vec(),
            taken: Vec::new(),
        }
    }

    /// Counts the transactions the owner's connection commits from now on.
    fn count_commits(owner: &StoreOwner) -> Arc<AtomicU64> {
        let commits = Arc::new(AtomicU64::new(0));
        let counted = commits.clone();
        owner
            .call(move |o| {
                o.conn().commit_hook(Some(move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    false
                }))
            })
            .unwrap()
            .unwrap();
        commits
    }

    /// Cursor moves handed over while the owner is busy ride in the engine's next commit: one
    /// transaction (one fsync) for both, and the commit's answer comes with them written.
    #[test]
    fn moves_waiting_for_the_owner_ride_in_the_next_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let outbox = Outbox::open(&path, Synchronous::Normal, "a/b/c/d/e").unwrap();
        let owner = StoreOwner::start(outbox).unwrap();
        let commits = count_commits(&owner);
        let first = owner
            .commit(
                vec![event(), event()],
                vec![],
                CellState::default(),
                1,
                None,
            )
            .unwrap();
        assert_eq!(first.result.unwrap().last_seq, 2);
        assert_eq!(commits.load(Ordering::SeqCst), 1);
        // The owner held up by a job, as by a long prune step: the marks and the next commit
        // queue behind it and are taken in one round.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, running) = std::sync::mpsc::channel::<()>();
        owner
            .send(Request::Run(Box::new(move |_| {
                let _ = started.send(());
                let _ = held.recv();
            })))
            .unwrap();
        running.recv().unwrap();
        let marking = Arc::new(AtomicUsize::new(0));
        owner
            .move_events(EVENTS_SINK, moved(1, &[]), 5, &marking)
            .unwrap();
        owner
            .move_events(EVENTS_SINK, moved(2, &[]), 5, &marking)
            .unwrap();
        assert_eq!(marking.load(Ordering::SeqCst), 2);
        let (request, next) = commit_request(vec![event()], vec![], CellState::default(), 6, None);
        owner.send(request).unwrap();
        release.send(()).unwrap();
        assert_eq!(next.recv().unwrap().result.unwrap().last_seq, 3);
        assert_eq!(
            commits.load(Ordering::SeqCst),
            2,
            "the moves had a transaction of their own"
        );
        owner.flush().unwrap();
        assert_eq!(marking.load(Ordering::SeqCst), 0);
        let stats = owner.run(|o| o.stats()).unwrap();
        assert_eq!((stats.depth, stats.last_delivered_seq), (1, Some(2)));
    }

    /// A housekeeping step carried by a commit deletes in the commit's transaction: no
    /// transaction (no fsync) of its own, and the outbox's figures after it come back.
    #[test]
    fn a_pruning_step_rides_in_the_commit() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("c.db"), Synchronous::Normal, "e").unwrap();
        let owner = StoreOwner::start(outbox).unwrap();
        let events = (0..3).map(|_| event()).collect();
        owner
            .commit(events, vec![], CellState::default(), 1, None)
            .unwrap()
            .result
            .unwrap();
        owner
            .run(|o| o.advance_events(EVENTS_SINK, &moved(2, &[]), 2))
            .unwrap();
        let commits = count_commits(&owner);
        let step = PruneStep::new(Default::default(), 10, u64::MAX, Duration::from_secs(1));
        let c = owner
            .commit(vec![event()], vec![], CellState::default(), 20, Some(step))
            .unwrap();
        assert_eq!(c.result.unwrap().last_seq, 4);
        let (step, stats) = c.step.unwrap();
        assert_eq!(step.pruned.unwrap().rows, 2, "seq 1 and 2, delivered at 2");
        assert_eq!(
            commits.load(Ordering::SeqCst),
            1,
            "one transaction for both"
        );
        let stats = stats.unwrap();
        assert_eq!((stats.rows, stats.depth), (2, 2));
    }

    /// A job that panics takes the owner down; every part then hears so instead of hanging.
    #[test]
    fn every_caller_hears_when_the_owner_has_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(&dir.path().join("c.db"), Synchronous::Normal, "e").unwrap();
        let owner = StoreOwner::start(outbox).unwrap();
        let _ = owner.call(|_| panic!("a fault in the store's code"));
        let err = owner.run(|o| o.stats()).unwrap_err();
        assert!(
            matches!(err, StoreError::OwnerGone) && err.is_permanent(),
            "{err}"
        );
        let c = owner.commit(vec![event()], vec![], CellState::default(), 1, None);
        assert!(matches!(c, Err(StoreError::OwnerGone)));
        let marking = Arc::new(AtomicUsize::new(0));
        assert_eq!(
            owner.move_events(EVENTS_SINK, moved(1, &[]), 1, &marking),
            Err(moved(1, &[]))
        );
        assert_eq!(marking.load(Ordering::SeqCst), 0);
    }
}
