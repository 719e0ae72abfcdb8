//! The way notifications take from the client's event loop to the device loop: a queue with a
//! bound that is kept by back-pressure, not by dropping.
//!
//! The subscription callback runs inside async-opcua's event loop and cannot wait, so it always
//! queues what the server sent. The bound is kept one step earlier: the task that drives the
//! event loop waits for room before it lets the loop take the next message from the server.
//! One step of the loop brings at most one publish response, which becomes at most two notes,
//! so the queue never holds more than `bound + 2` notes. While it waits, no publish response is
//! read and no new publish request goes out; the server keeps the changes in its monitored-item
//! queues (size and discard policy as configured per node) until the device loop catches up.

use ::opcua::types::{DataValue, StatusCode};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;
use tokio::sync::Notify;

/// Notification messages waiting at most, before the event loop stops reading from the server.
pub(crate) const INBOX_BOUND: usize = 64;

/// What a subscription's callback hands to the device loop.
#[derive(Debug)]
pub(crate) enum Note {
    /// The data changes of one notification message, by client handle.
    Values(Vec<(u32, DataValue)>),
    /// The server ended subscription `group` (or said it is about to).
    Ended { group: usize, status: StatusCode },
}

#[derive(Debug)]
pub(crate) struct Inbox {
    notes: Mutex<VecDeque<Note>>,
    arrived: Notify,
    room: Notify,
    bound: usize,
    /// Set when the session is closing: the event loop must run to say goodbye.
    unbounded: AtomicBool,
    /// The most notes ever waiting at once (for tests and the log).
    high_water: AtomicUsize,
}

impl Inbox {
    pub(crate) fn new(bound: usize) -> Self {
        Inbox {
            notes: Mutex::new(VecDeque::new()),
            arrived: Notify::new(),
            room: Notify::new(),
            bound: bound.max(1),
            unbounded: AtomicBool::new(false),
            high_water: AtomicUsize::new(0),
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Note>> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// From the subscription callback: never refuses (see the module's note on the bound).
    pub(crate) fn push(&self, note: Note) {
        let len = {
            let mut q = self.queue();
            q.push_back(note);
            q.len()
        };
        self.high_water.fetch_max(len, Relaxed);
        self.arrived.notify_one();
    }

    /// The next note; waits for one. Cancel-safe: a note is taken only when returned.
    pub(crate) async fn next(&self) -> Note {
        loop {
            if let Some(n) = self.queue().pop_front() {
                self.room.notify_one();
                return n;
            }
            self.arrived.notified().await;
        }
    }

    /// For the task driving the event loop: returns once there is room for another message.
    pub(crate) async fn room(&self) {
        while !self.unbounded.load(Relaxed) && self.queue().len() >= self.bound {
            self.room.notified().await;
        }
    }

    /// Lets the event loop run without waiting for room (the session is being closed).
    pub(crate) fn unbound(&self) {
        self.unbounded.store(true, Relaxed);
        self.room.notify_one();
    }

    #[cfg(test)]
    pub(crate) fn high_water(&self) -> usize {
        self.high_water.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    fn values(n: u32) -> Note {
        Note::Values(vec![(n, DataValue::default())])
    }

    /// A full inbox holds the producer at `room` until the consumer takes a note, and nothing
    /// pushed is lost.
    #[tokio::test]
    async fn a_full_inbox_holds_the_producer_back_and_loses_nothing() {
        let inbox = Arc::new(Inbox::new(4));
        let producer = {
            let inbox = inbox.clone();
            tokio::spawn(async move {
                for n in 0..100u32 {
                    inbox.room().await;
                    inbox.push(values(n));
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(inbox.queue().len(), 4, "the producer stops at the bound");
        let mut got = Vec::new();
        while got.len() < 100 {
            match tokio::time::timeout(Duration::from_secs(5), inbox.next()).await {
                Ok(Note::Values(v)) => got.push(v[0].0),
                other => panic!("unexpected {other:?}"),
            }
        }
        producer.await.unwrap();
        assert_eq!(got, (0..100).collect::<Vec<_>>());
        assert!(inbox.high_water() <= 4);
    }

    #[tokio::test]
    async fn an_unbound_inbox_lets_the_producer_on() {
        let inbox = Inbox::new(1);
        inbox.push(values(1));
        inbox.unbound();
        tokio::time::timeout(Duration::from_secs(1), inbox.room())
            .await
            .expect("room once unbound");
    }
}
