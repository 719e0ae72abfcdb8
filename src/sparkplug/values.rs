//! The cell's process values as DDATA: the sink reads the store's value batches (docs/VALUES.md)
//! behind a cursor of its own, after the events (counts, states and orders go first), and keeps
//! the last value of every tag so that a device's birth shows where it stands.

use super::devices::{Devices, LastValues};
use super::proto::payload::Metric;
use crate::cell::ValuePayload;
use crate::store::ValueRow;
use std::collections::{BTreeMap, VecDeque};

pub(super) struct ValueStream {
    /// The last batch handed to the client.
    pub live: u64,
    /// Every batch up to here acknowledged (or skipped): stored with the cursor.
    durable: u64,
    dirty: bool,
    /// Batches handed out, in order, and whether each is done.
    pending: VecDeque<(u64, bool)>,
    /// Batches up to here were committed before the connection's first birth: history.
    birth_batch: u64,
    /// The last metric published per device and tag alias.
    last: BTreeMap<String, LastValues>,
}

impl ValueStream {
    pub fn new(cursor: u64) -> Self {
        ValueStream {
            live: cursor,
            durable: cursor,
            dirty: false,
            pending: VecDeque::new(),
            birth_batch: 0,
            last: BTreeMap::new(),
        }
    }

    /// The connection's first birth: batches committed up to `last_batch` are history.
    pub fn born(&mut self, last_batch: u64) {
        self.birth_batch = last_batch;
    }

    pub fn last(&self, device: &str) -> Option<&LastValues> {
        self.last.get(device)
    }

    /// Takes the next batch: its device and DDATA metrics, or None when nothing in it is
    /// published (its device is not born, or lists none of its tags). A device that is not
    /// born (it went offline, so its DDEATH is out) gets no DDATA: the spec allows data only
    /// between a device's birth and death, and its death already tells the host its values
    /// are stale.
    pub fn take(
        &mut self,
        row: &ValueRow,
        devices: &Devices,
        born: impl Fn(&str) -> bool,
    ) -> Option<(String, Vec<Metric>)> {
        self.live = row.batch;
        let historical = row.batch <= self.birth_batch;
        let metrics = match serde_json::from_slice::<ValuePayload>(&row.payload) {
            Ok(p) if born(&row.device) => devices.data(&row.device, &p.values, historical),
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::error!(batch = row.batch, "a value batch that does not decode: {e}");
                Vec::new()
            }
        };
        self.pending.push_back((row.batch, metrics.is_empty()));
        if metrics.is_empty() {
            self.advance();
            return None;
        }
        let last = self.last.entry(row.device.clone()).or_default();
        for m in &metrics {
            if let Some(alias) = m.alias {
                last.insert(alias, m.clone());
            }
        }
        Some((row.device.clone(), metrics))
    }

    /// The broker acknowledged `batch`.
    pub fn done(&mut self, batch: u64) {
        if let Some(p) = self.pending.iter_mut().find(|p| p.0 == batch) {
            p.1 = true;
        }
        self.advance();
    }

    fn advance(&mut self) {
        while self.pending.front().is_some_and(|p| p.1) {
            let (batch, _) = self.pending.pop_front().expect("front exists");
            self.durable = batch;
            self.dirty = true;
        }
    }

    /// The acknowledged place to store, if it moved since the last time.
    pub fn to_store(&self) -> Option<u64> {
        self.dirty.then_some(self.durable)
    }

    pub fn stored(&mut self, batch: u64) {
        if self.durable == batch {
            self.dirty = false;
        }
    }
}
