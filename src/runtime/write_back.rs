//! The write queues: every accepted write (a write_tag, a DCMD, the order write-back) goes to
//! its tag's driver through one queue per driver, in the order the engine accepted them, one
//! at a time. A write still waiting when a newer write to the same tag arrives is superseded:
//! the newest accepted value is what the machine ends with, and an older value is never
//! written after a newer one. Each write's result goes back to the engine, which commits it
//! as a `tag_write` event.

use crate::cell::{TagWrite, WriteOutcome, WriteResult};
use mes_edge_drivers::{now_ms, DriverError, TagId, Value, WriteRequest};
use std::collections::{HashMap, VecDeque};
use tokio::sync::{mpsc, oneshot};

/// Where writes to each writable tag go.
pub type Writers = HashMap<TagId, mpsc::Sender<WriteRequest>>;

pub struct WriteQueues {
    by_tag: HashMap<TagId, mpsc::UnboundedSender<TagWrite>>,
    outcomes: mpsc::UnboundedSender<WriteOutcome>,
}

impl WriteQueues {
    /// One queue (a task on `handle`) per driver of `writers`.
    pub fn start(
        writers: &Writers,
        outcomes: mpsc::UnboundedSender<WriteOutcome>,
        handle: &tokio::runtime::Handle,
    ) -> WriteQueues {
        let mut queues: Vec<(mpsc::Sender<WriteRequest>, mpsc::UnboundedSender<TagWrite>)> =
            Vec::new();
        let mut by_tag = HashMap::new();
        for (tag, driver) in writers {
            let queue = match queues.iter().find(|(d, _)| d.same_channel(driver)) {
                Some((_, q)) => q.clone(),
                None => {
                    let (tx, rx) = mpsc::unbounded_channel();
                    handle.spawn(drive(driver.clone(), rx, outcomes.clone()));
                    queues.push((driver.clone(), tx.clone()));
                    tx
                }
            };
            by_tag.insert(*tag, queue);
        }
        WriteQueues { by_tag, outcomes }
    }

    /// Hands a committed write to its driver's queue.
    pub fn push(&self, w: TagWrite) {
        let id = w.id;
        let refused = match self.by_tag.get(&w.tag) {
            Some(q) => q.send(w).err().map(|_| "the driver's write queue stopped"),
            None => Some("no driver takes writes to this tag"),
        };
        if let Some(why) = refused {
            let _ = self.outcomes.send(WriteOutcome {
                id,
                result: WriteResult::Failed(why.into()),
                ts_ms: now_ms(),
            });
        }
    }
}

/// One driver's queue: writes in order, each after the one before has been answered.
async fn drive(
    driver: mpsc::Sender<WriteRequest>,
    mut incoming: mpsc::UnboundedReceiver<TagWrite>,
    outcomes: mpsc::UnboundedSender<WriteOutcome>,
) {
    let mut queue: VecDeque<TagWrite> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match incoming.recv().await {
                Some(w) => queue.push_back(w),
                None => return,
            }
        }
        while let Ok(w) = incoming.try_recv() {
            queue.push_back(w);
        }
        let Some(w) = queue.pop_front() else { continue };
        let result = match queue.iter().rev().find(|n| n.tag == w.tag) {
            Some(newer) => WriteResult::Superseded { by: newer.id },
            None => match write(&driver, w.tag, w.value).await {
                Ok(()) => {
                    tracing::info!(tag = %w.name, value = ?w.value, "tag written");
                    WriteResult::Written
                }
                Err(e) => {
                    let kind = e.kind.name();
                    tracing::warn!(tag = %w.name, value = ?w.value, kind, "tag write failed: {e}");
                    WriteResult::Failed(e.to_string())
                }
            },
        };
        let outcome = WriteOutcome {
            id: w.id,
            result,
            ts_ms: now_ms(),
        };
        if outcomes.send(outcome).is_err() {
            return;
        }
    }
}

/// Writes `value` to `tag` through its driver and waits for the driver's answer.
pub async fn write(
    tx: &mpsc::Sender<WriteRequest>,
    tag: TagId,
    value: Value,
) -> Result<(), DriverError> {
    let (reply, answer) = oneshot::channel();
    let req = WriteRequest { tag, value, reply };
    let stopped = || DriverError::transient("the driver stopped");
    match tx.send(req).await {
        Ok(()) => answer.await.unwrap_or_else(|_| Err(stopped())),
        Err(_) => Err(stopped()),
    }
}
