//! The cell's process values as DDATA: the sink reads the store's value batches (docs/VALUES.md)
//! behind a cursor of its own, after the events (counts, states and orders go first), and keeps
//! the last value of every tag so that a device's birth shows where it stands.

use super::devices::{quality, Devices, LastValues, QUALITY_STALE};
use super::payload;
use super::proto::payload::Metric;
use crate::cell::ValuePayload;
use crate::forwarder::window::InOrder;
use crate::store::ValueRow;
use std::collections::{BTreeMap, BTreeSet};

/// The last metric of every tag, per device: what a birth shows. Kept by the sink across its
/// connections and stored with its cursor, so that a restart does not birth known tags as null.
#[derive(Debug, Clone, Default)]
pub struct DeviceValues {
    by_device: BTreeMap<String, LastValues>,
    /// Devices changed since they were last stored.
    changed: BTreeSet<String>,
}

impl DeviceValues {
    /// What the store kept (each device's metrics as an encoded payload), marked stale: they
    /// were published by an earlier process, and hold until the device reports again.
    pub fn from_stored(stored: Vec<(String, Vec<u8>)>) -> Self {
        let mut v = DeviceValues::default();
        for (device, bytes) in stored {
            let Some(p) = payload::decode(&bytes) else {
                continue;
            };
            let last: LastValues = p
                .metrics
                .into_iter()
                .filter_map(|m| Some((m.alias?, m)))
                .collect();
            v.by_device.insert(device.clone(), last);
            v.stale(&device);
            v.changed.clear();
        }
        v
    }

    pub fn get(&self, device: &str) -> Option<&LastValues> {
        self.by_device.get(device)
    }

    fn set(&mut self, device: &str, metrics: &[Metric]) {
        let last = self.by_device.entry(device.to_string()).or_default();
        for m in metrics {
            if let Some(alias) = m.alias {
                last.insert(alias, m.clone());
            }
        }
        self.changed.insert(device.to_string());
    }

    /// The device died: its values stay, as stale, until it reports again.
    pub fn stale(&mut self, device: &str) {
        if let Some(last) = self.by_device.get_mut(device) {
            for m in last.values_mut() {
                m.properties = Some(quality(QUALITY_STALE));
            }
            self.changed.insert(device.to_string());
        }
    }

    /// The changed devices' metrics, encoded, to store; and forgets that they changed.
    pub fn take_changed(&mut self) -> Vec<(String, Vec<u8>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|d| {
                let metrics = self
                    .by_device
                    .get(&d)
                    .map(|l| l.values().cloned().collect());
                (d, payload::encode(metrics.unwrap_or_default(), None, 0))
            })
            .collect()
    }
}

pub(super) struct ValueStream {
    /// The last batch handed to the client (or folded into a birth).
    pub live: u64,
    /// Every batch up to here acknowledged (or skipped): stored with the cursor.
    durable: u64,
    dirty: bool,
    /// Batches handed out, in order, and whether each is done.
    pending: InOrder<()>,
    /// Batches up to here were committed before the connection's first birth: history.
    birth_batch: u64,
    pub last: DeviceValues,
}

impl ValueStream {
    pub fn new(cursor: u64, last: DeviceValues) -> Self {
        ValueStream {
            live: cursor,
            durable: cursor,
            dirty: false,
            pending: InOrder::default(),
            birth_batch: 0,
            last,
        }
    }

    /// The connection's first birth: batches committed up to `last_batch` are history.
    pub fn born(&mut self, last_batch: u64) {
        self.birth_batch = last_batch;
    }

    pub fn birth_batch(&self) -> u64 {
        self.birth_batch
    }

    /// Takes a batch committed before the birth into the last values, without publishing it:
    /// the birth shows the newest values, and the batch goes out later as history.
    pub fn fold(&mut self, row: &ValueRow, devices: &Devices) {
        if let Some(p) = decode(row) {
            let metrics = devices.data(&row.device, &p.values, false);
            self.last.set(&row.device, &metrics);
        }
    }

    /// Takes the next batch: its device and DDATA metrics (in time order), or None when
    /// nothing in it is published (its device is not born, or lists none of its tags). A
    /// device that is not born (it went offline, so its DDEATH is out) gets no DDATA: the spec
    /// allows data only between a device's birth and its death, and its death already tells the
    /// host its values are stale.
    pub fn take(
        &mut self,
        row: &ValueRow,
        devices: &Devices,
        born: impl Fn(&str) -> bool,
    ) -> Option<(String, Vec<Metric>)> {
        self.live = row.batch;
        let historical = row.batch <= self.birth_batch;
        let mut metrics = match decode(row) {
            Some(p) if born(&row.device) => devices.data(&row.device, &p.values, historical),
            _ => Vec::new(),
        };
        self.pending.push(row.batch, ());
        if metrics.is_empty() {
            self.pending.answered(row.batch, |_| ());
        }
        if metrics.is_empty() {
            self.advance();
            return None;
        }
        metrics.sort_by_key(|m| m.timestamp);
        // History is older than what the birth showed (folded in): it does not replace it.
        if !historical {
            self.last.set(&row.device, &metrics);
        }
        Some((row.device.clone(), metrics))
    }

    /// The broker acknowledged `batch`.
    pub fn done(&mut self, batch: u64) {
        self.pending.answered(batch, |_| ());
        self.advance();
    }

    fn advance(&mut self) {
        while let Some((batch, ())) = self.pending.pop_answered() {
            self.durable = batch;
            self.dirty = true;
        }
    }

    /// The acknowledged place, if it moved since it was last stored.
    pub fn to_store(&self) -> Option<u64> {
        self.dirty.then_some(self.durable)
    }

    pub fn durable(&self) -> u64 {
        self.durable
    }

    pub fn stored(&mut self) {
        self.dirty = false;
    }
}

fn decode(row: &ValueRow) -> Option<ValuePayload<'_>> {
    serde_json::from_slice(&row.payload)
        .map_err(|e| tracing::error!(batch = row.batch, "a value batch that does not decode: {e}"))
        .ok()
}
