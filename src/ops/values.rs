//! Counts of process values for `/metrics`: published (committed), delivered, and dropped
//! unsent by tag (over `[store] values_max_count` or older than `values_retention_hours`).

use crate::store::ValueDrops;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct ValueProbe(Arc<Inner>);

#[derive(Default)]
struct Inner {
    committed: AtomicU64,
    delivered: AtomicU64,
    /// The values' own broker connection is up.
    connected: AtomicBool,
    /// When the broker last acknowledged a batch (UTC ms; 0: not since the start).
    last_ack_ms: AtomicI64,
    dropped: Mutex<BTreeMap<String, u64>>,
    /// Woken at each commit with values: the values' forwarder connects at the first.
    commits: tokio::sync::Notify,
}

impl ValueProbe {
    pub fn committed(&self, values: u64) {
        self.0.committed.fetch_add(values, Relaxed);
        self.0.commits.notify_one();
    }

    /// Returns at the next commit with values (at once if one came since the last call).
    pub async fn next_commit(&self) {
        self.0.commits.notified().await;
    }

    pub fn delivered(&self, values: u64) {
        self.0.delivered.fetch_add(values, Relaxed);
        self.0
            .last_ack_ms
            .store(mes_edge_drivers::now_ms(), Relaxed);
    }

    pub fn set_connected(&self, yes: bool) {
        self.0.connected.store(yes, Relaxed);
    }

    pub fn connected(&self) -> bool {
        self.0.connected.load(Relaxed)
    }

    /// When the broker last acknowledged a batch, if it has since the start.
    pub fn last_ack_ms(&self) -> Option<i64> {
        Some(self.0.last_ack_ms.load(Relaxed)).filter(|&t| t != 0)
    }

    pub fn dropped(&self, drops: &ValueDrops) {
        let mut by_tag = self.0.dropped.lock().unwrap_or_else(|e| e.into_inner());
        for (tag, n) in &drops.by_tag {
            *by_tag.entry(tag.clone()).or_default() += n;
        }
    }

    /// (committed, delivered, dropped by tag) since the process started.
    pub fn counts(&self) -> (u64, u64, BTreeMap<String, u64>) {
        let by_tag = self
            .0
            .dropped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        (
            self.0.committed.load(Relaxed),
            self.0.delivered.load(Relaxed),
            by_tag,
        )
    }
}
