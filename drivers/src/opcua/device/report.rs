//! Reporting: turning what the server sent into samples and device status, handing on only
//! changes, and counting what was seen in the device's metrics.

use crate::opcua::convert::Reading;
use crate::opcua::OpcUaDevice;
use crate::{now_ms, DeviceEvent, DeviceStatus, Quality, Sample, Value};
use tokio::sync::mpsc;

/// What the driver has said about its tags, so that only changes go out.
pub(super) struct Report<'a> {
    dev: &'a OpcUaDevice,
    tx: &'a mpsc::Sender<DeviceEvent>,
    last: Vec<Option<(Option<Value>, Quality)>>,
    /// Why a node is bad, logged when it changes rather than at every notification.
    problems: Vec<Option<String>>,
    online: Option<bool>,
}

impl<'a> Report<'a> {
    /// Nothing said yet: every tag's first reading is a change, and so is the first status.
    pub(super) fn new(dev: &'a OpcUaDevice, tx: &'a mpsc::Sender<DeviceEvent>) -> Self {
        Report {
            dev,
            tx,
            last: vec![None; dev.nodes.len()],
            problems: vec![None; dev.nodes.len()],
            online: None,
        }
    }
}

impl Report<'_> {
    pub(super) fn changed(&mut self, i: usize, r: Reading, out: &mut Vec<Sample>) {
        if let Some(source) = r.source_ts_ms {
            self.dev.metrics.clock_skew(source - r.ts_ms);
        }
        if r.quality != Quality::Bad {
            self.dev.metrics.good_read(r.ts_ms);
        }
        if r.problem != self.problems[i] {
            if let Some(p) = &r.problem {
                tracing::warn!(device = %self.dev.name, tag = %self.dev.nodes[i].name, "{p}");
            }
            self.problems[i] = r.problem;
        }
        let now = Some((r.value, r.quality));
        if self.last[i] != now {
            self.last[i] = now;
            out.push(Sample {
                tag: self.dev.nodes[i].id,
                value: r.value,
                quality: r.quality,
                ts_ms: r.ts_ms,
                source_ts_ms: r.source_ts_ms,
            });
        }
    }

    pub(super) fn bad(&mut self, i: usize, problem: String, out: &mut Vec<Sample>) {
        self.changed(
            i,
            Reading {
                value: None,
                quality: Quality::Bad,
                ts_ms: now_ms(),
                source_ts_ms: None,
                problem: Some(problem),
            },
            out,
        );
    }

    pub(super) async fn send(&self, samples: Vec<Sample>) -> bool {
        if samples.is_empty() {
            return true;
        }
        let n = samples.len();
        let sent = self
            .tx
            .send(DeviceEvent::Samples {
                device: self.dev.id,
                samples,
            })
            .await
            .is_ok();
        if sent {
            self.dev.metrics.samples(n);
        }
        sent
    }

    /// Reports the device online (once per connection) and then, if the server said, when it
    /// started: the cell tells a restart of the server from a change of it.
    pub(super) async fn went_online(&mut self, started: Option<i64>) -> bool {
        if self.online != Some(true) {
            self.online = Some(true);
            self.dev.metrics.set_connected(true);
            tracing::info!(device = %self.dev.name, "opcua device online");
            if !self.status(DeviceStatus::Online).await {
                return false;
            }
        }
        match started {
            Some(at_ms) => self.status(DeviceStatus::Started { at_ms }).await,
            None => true,
        }
    }

    async fn status(&self, status: DeviceStatus) -> bool {
        let ev = DeviceEvent::Status {
            device: self.dev.id,
            status,
            ts_ms: now_ms(),
        };
        self.tx.send(ev).await.is_ok()
    }

    /// Reports the device offline and its tags bad, once per outage.
    pub(super) async fn went_offline(&mut self, reason: crate::DriverError) -> bool {
        if self.online == Some(false) {
            return true;
        }
        self.online = Some(false);
        let ts_ms = now_ms();
        self.dev.metrics.went_offline(&reason, ts_ms);
        let mut samples = Vec::new();
        for i in 0..self.dev.nodes.len() {
            let r = Reading {
                value: None,
                quality: Quality::Bad,
                ts_ms,
                source_ts_ms: None,
                problem: None,
            };
            self.changed(i, r, &mut samples);
        }
        let status = DeviceEvent::Status {
            device: self.dev.id,
            status: DeviceStatus::Offline { reason },
            ts_ms,
        };
        self.tx.send(status).await.is_ok() && self.send(samples).await
    }
}
