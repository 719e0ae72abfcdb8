//! What a driver has told the runtime about one device: whether it is online, and each tag's
//! last value and quality. Only changes go out, an outage is reported once, and every tag turns
//! bad with it, so the cell never counts on a value that is no longer read.

use crate::{
    now_ms, DeviceEvent, DeviceId, DeviceMetrics, DeviceStatus, Quality, Sample, TagId, Value,
};
use tokio::sync::mpsc;

/// Each tag's last value and quality handed on, so that only changes go out.
pub struct LastValues {
    tags: Vec<TagId>,
    last: Vec<Option<(Option<Value>, Quality)>>,
}

impl LastValues {
    pub fn new(tags: Vec<TagId>) -> LastValues {
        LastValues {
            last: vec![None; tags.len()],
            tags,
        }
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether tag `i` was last handed on as bad.
    pub fn is_bad(&self, i: usize) -> bool {
        matches!(self.last[i], Some((_, Quality::Bad)))
    }

    /// Adds a sample for tag `i` to `out` if its value or quality changed; no value is bad.
    pub fn changed(&mut self, i: usize, value: Option<Value>, ts_ms: i64, out: &mut Vec<Sample>) {
        let quality = if value.is_some() {
            Quality::Good
        } else {
            Quality::Bad
        };
        let now = Some((value, quality));
        if self.last[i] != now {
            self.last[i] = now;
            out.push(Sample {
                tag: self.tags[i],
                value,
                quality,
                ts_ms,
                source_ts_ms: None,
            });
        }
    }
}

pub struct Presence {
    device: DeviceId,
    name: String,
    metrics: DeviceMetrics,
    values: LastValues,
    online: Option<bool>,
}

impl Presence {
    pub fn new(device: DeviceId, name: &str, metrics: DeviceMetrics, tags: Vec<TagId>) -> Presence {
        Presence {
            device,
            name: name.to_string(),
            metrics,
            values: LastValues::new(tags),
            online: None,
        }
    }

    /// Whether tag `i` was last handed on as bad.
    pub fn is_bad(&self, i: usize) -> bool {
        self.values.is_bad(i)
    }

    /// Adds a sample for tag `i` to `out` if its value or quality changed; no value is bad.
    pub fn changed(&mut self, i: usize, value: Option<Value>, ts_ms: i64, out: &mut Vec<Sample>) {
        self.values.changed(i, value, ts_ms, out);
    }

    async fn send(&self, samples: Vec<Sample>, tx: &mpsc::Sender<DeviceEvent>) -> bool {
        self.metrics.samples(samples.len());
        samples.is_empty()
            || tx
                .send(DeviceEvent::Samples {
                    device: self.device,
                    samples,
                })
                .await
                .is_ok()
    }

    async fn status(
        &self,
        status: DeviceStatus,
        ts_ms: i64,
        tx: &mpsc::Sender<DeviceEvent>,
    ) -> bool {
        let ev = DeviceEvent::Status {
            device: self.device,
            status,
            ts_ms,
        };
        tx.send(ev).await.is_ok()
    }

    /// Reports the device online (once per outage), then `samples`. False if the runtime is gone.
    pub async fn report(&mut self, samples: Vec<Sample>, tx: &mpsc::Sender<DeviceEvent>) -> bool {
        if self.online != Some(true) {
            self.online = Some(true);
            self.metrics.set_connected(true);
            tracing::info!(device = %self.name, "device online");
            if !self.status(DeviceStatus::Online, now_ms(), tx).await {
                return false;
            }
        }
        self.send(samples, tx).await
    }

    /// Reports the device offline and every tag bad (once per outage), with `samples` of the
    /// poll that failed. False if the runtime is gone.
    pub async fn went_offline(
        &mut self,
        reason: crate::DriverError,
        mut samples: Vec<Sample>,
        tx: &mpsc::Sender<DeviceEvent>,
    ) -> bool {
        if self.online == Some(false) {
            return self.send(samples, tx).await;
        }
        let ts_ms = now_ms();
        self.metrics.went_offline(&reason, ts_ms);
        tracing::warn!(device = %self.name, %reason, kind = reason.kind.name(), "device offline");
        self.online = Some(false);
        for i in 0..self.values.len() {
            self.values.changed(i, None, ts_ms, &mut samples);
        }
        self.status(DeviceStatus::Offline { reason }, ts_ms, tx)
            .await
            && self.send(samples, tx).await
    }
}
