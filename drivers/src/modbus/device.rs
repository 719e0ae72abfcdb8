//! One Modbus device (a unit id on a line) and what the driver keeps about it between polls:
//! its planned requests, when each is due, what it has refused, its status and the last value
//! handed on for each tag.

use super::plan::{plan_groups, Limits, PollGroup, ReadBlock, Refusals};
use super::tag::{ModbusTag, Table};
use crate::presence::LastValues;
use crate::{
    now_ms, Backoff, DeviceEvent, DeviceId, DeviceMetrics, DeviceStatus, DriverError, Sample, Value,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A device as the driver needs it.
#[derive(Debug, Clone)]
pub struct ModbusDevice {
    pub id: DeviceId,
    pub name: String,
    /// Unit id (slave address) on its line.
    pub unit: u8,
    /// Bound on each request.
    pub timeout: Duration,
    /// Further attempts after a request got no answer, a broken or a busy reply.
    pub retries: u8,
    /// Least time between the end of one request and the next one to this device, for PLCs
    /// that cannot keep up with back-to-back requests.
    pub request_gap: Duration,
    pub limits: Limits,
    /// FC 5 / FC 6 for one coil or register; false sends FC 15 / FC 16 for those too (some
    /// devices implement only the multiple-write functions).
    pub single_writes: bool,
    pub tags: Vec<ModbusTag>,
    /// Counted into for the runtime's health and metrics endpoint.
    pub metrics: DeviceMetrics,
}

impl ModbusDevice {
    /// A device with the defaults of a config entry that gives only its unit id and tags.
    pub fn new(id: DeviceId, name: impl Into<String>, unit: u8, tags: Vec<ModbusTag>) -> Self {
        ModbusDevice {
            id,
            name: name.into(),
            unit,
            timeout: Duration::from_millis(1000),
            retries: 1,
            request_gap: Duration::ZERO,
            limits: Limits::default(),
            single_writes: true,
            tags,
            metrics: DeviceMetrics::default(),
        }
    }
}

pub(super) struct DeviceState {
    pub groups: Vec<PollGroup>,
    /// When each group is next read.
    pub due: Vec<Instant>,
    pub refusals: Refusals,
    /// What was last handed on for each tag; only changes go out.
    last: LastValues,
    /// The registers each block last read, by (table, start, count): a block that reads the
    /// same words again holds the same values, so it is not decoded. Emptied whenever a tag's
    /// last value is set other than by decoding its block (bad, offline, a refusal's halves,
    /// a new plan), so that a skipped decode never hides a change.
    raw: HashMap<(Table, u16, u16), Vec<u16>>,
    pub online: Option<bool>,
    probe: Backoff,
    /// While offline: when the device is next tried (one request, no retries).
    pub next_probe: Instant,
}

impl DeviceState {
    pub fn new(dev: &ModbusDevice) -> DeviceState {
        let groups = plan_groups(&dev.tags, dev.limits, &Refusals::default());
        let now = Instant::now();
        DeviceState {
            due: vec![now; groups.len()],
            groups,
            refusals: Refusals::default(),
            last: LastValues::new(dev.tags.iter().map(|t| t.id).collect()),
            raw: HashMap::new(),
            online: None,
            probe: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
            next_probe: now,
        }
    }

    /// The next group to read and when.
    pub fn next(&self) -> Option<(Instant, usize)> {
        if self.groups.is_empty() {
            return None;
        }
        if self.online == Some(false) {
            return Some((self.next_probe, 0));
        }
        crate::schedule::earliest(&self.due)
    }

    /// Whether `regs` are the words `block` read last time; if not, remembers them.
    pub fn same_as_last_read(&mut self, block: &ReadBlock, regs: &[u16]) -> bool {
        let last = self
            .raw
            .entry((block.table, block.start, block.count))
            .or_default();
        if last.as_slice() == regs {
            return true;
        }
        last.clear();
        last.extend_from_slice(regs);
        false
    }

    /// Forgets every block's last words: the next read of each is decoded.
    pub fn forget_reads(&mut self) {
        self.raw.clear();
    }

    pub fn replan(&mut self, dev: &ModbusDevice) {
        self.raw.clear();
        // The intervals do not change, so group indices and their due times stay valid.
        self.groups = plan_groups(&dev.tags, dev.limits, &self.refusals);
    }

    pub fn reschedule(&mut self, g: usize, now: Instant) {
        let next = self.due[g] + self.groups[g].interval;
        self.due[g] = next.max(now);
    }

    /// Reads the group holding tag `i` at once (after a write, so the new value shows soon).
    pub fn hurry(&mut self, i: usize, now: Instant) {
        if let Some(g) = self.groups.iter().position(|g| g.tags.contains(&i)) {
            self.due[g] = now;
        }
    }

    pub fn changed(
        &mut self,
        dev: &ModbusDevice,
        i: usize,
        value: Option<Value>,
        ts_ms: i64,
        out: &mut Vec<Sample>,
    ) {
        debug_assert_eq!(self.last.len(), dev.tags.len());
        self.last.changed(i, value, ts_ms, out);
    }

    /// Reports the device online (once per outage) and hands on the samples. False if the
    /// runtime is gone.
    pub async fn report(
        &mut self,
        dev: &ModbusDevice,
        samples: Vec<Sample>,
        tx: &mpsc::Sender<DeviceEvent>,
    ) -> bool {
        if self.online != Some(true) {
            let was_offline = self.online == Some(false);
            self.online = Some(true);
            self.probe.reset();
            if was_offline {
                // Back after an outage: what it refused before may have changed with it.
                self.refusals = Refusals::default();
                self.replan(dev);
                let now = Instant::now();
                self.due.iter_mut().for_each(|d| *d = now);
            }
            dev.metrics.set_connected(true);
            tracing::info!(device = %dev.name, unit = dev.unit, "modbus device online");
            let ev = DeviceEvent::Status {
                device: dev.id,
                status: DeviceStatus::Online,
                ts_ms: now_ms(),
            };
            if tx.send(ev).await.is_err() {
                return false;
            }
        }
        samples.is_empty()
            || tx
                .send(DeviceEvent::Samples {
                    device: dev.id,
                    samples,
                })
                .await
                .is_ok()
    }

    /// Reports the device offline and its tags bad (once per outage), with `samples` (the bad
    /// ones of the poll that failed), and schedules the next try. False if the runtime is gone.
    pub async fn went_offline(
        &mut self,
        dev: &ModbusDevice,
        reason: DriverError,
        mut samples: Vec<Sample>,
        tx: &mpsc::Sender<DeviceEvent>,
    ) -> bool {
        self.next_probe = Instant::now() + self.probe.next_delay();
        if self.online == Some(false) {
            return samples.is_empty()
                || tx
                    .send(DeviceEvent::Samples {
                        device: dev.id,
                        samples,
                    })
                    .await
                    .is_ok();
        }
        let ts_ms = now_ms();
        dev.metrics.went_offline(&reason, ts_ms);
        tracing::warn!(device = %dev.name, unit = dev.unit, %reason, kind = reason.kind.name(), "modbus device offline");
        self.online = Some(false);
        self.raw.clear();
        for i in 0..dev.tags.len() {
            self.changed(dev, i, None, ts_ms, &mut samples);
        }
        let status = DeviceEvent::Status {
            device: dev.id,
            status: DeviceStatus::Offline { reason },
            ts_ms,
        };
        tx.send(status).await.is_ok()
            && (samples.is_empty()
                || tx
                    .send(DeviceEvent::Samples {
                        device: dev.id,
                        samples,
                    })
                    .await
                    .is_ok())
    }

    /// After the line came back: try every offline device now.
    pub fn line_restored(&mut self, now: Instant) {
        if self.online == Some(false) {
            self.next_probe = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_decoded_again_only_when_its_words_change_or_were_forgotten() {
        let tags = vec![ModbusTag::new(
            crate::TagId(0),
            Table::Holding,
            0,
            super::super::encoding::DataType::U16,
        )];
        let dev = ModbusDevice::new(DeviceId(0), "plc", 1, tags);
        let mut st = DeviceState::new(&dev);
        let block = st.groups[0].blocks[0].clone();
        assert!(!st.same_as_last_read(&block, &[7]));
        assert!(st.same_as_last_read(&block, &[7]));
        assert!(!st.same_as_last_read(&block, &[8]));
        st.forget_reads();
        assert!(!st.same_as_last_read(&block, &[8]));
        st.replan(&dev);
        assert!(!st.same_as_last_read(&block, &[8]));
    }
}
