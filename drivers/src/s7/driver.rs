//! An S7 CPU as a driver of the runtime.

use super::{run, S7Device};
use crate::driver::{writers, Driver, ProtocolDriver, WRITE_QUEUE};
use crate::{DeviceEvent, DeviceId, DeviceMetrics};
use tokio::sync::{mpsc, watch};

impl ProtocolDriver for S7Device {
    fn device_ids(&self) -> Vec<DeviceId> {
        vec![self.id]
    }

    fn metrics_mut(&mut self) -> Vec<(&str, &mut DeviceMetrics)> {
        vec![(self.name.as_str(), &mut self.metrics)]
    }

    fn start(
        self: Box<Self>,
        events: mpsc::Sender<DeviceEvent>,
        stop: watch::Receiver<bool>,
    ) -> Result<Driver, String> {
        let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
        let writable = self.tags.iter().filter(|t| t.writable);
        Ok(Driver {
            writers: writers(writable.map(|t| t.id), &write_tx),
            task: Box::pin(run(*self, write_rx, events, stop)),
        })
    }

    crate::spec_plumbing!();
}
