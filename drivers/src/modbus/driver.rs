//! A Modbus line as a driver of the runtime.

use super::{run_line, ModbusLine};
use crate::driver::{writers, Driver, ProtocolDriver, WRITE_QUEUE};
use crate::{DeviceEvent, DeviceId, DeviceMetrics};
use tokio::sync::{mpsc, watch};

impl ProtocolDriver for ModbusLine {
    fn device_ids(&self) -> Vec<DeviceId> {
        self.devices.iter().map(|d| d.id).collect()
    }

    fn metrics_mut(&mut self) -> Vec<(&str, &mut DeviceMetrics)> {
        self.devices
            .iter_mut()
            .map(|d| (d.name.as_str(), &mut d.metrics))
            .collect()
    }

    fn start(
        self: Box<Self>,
        events: mpsc::Sender<DeviceEvent>,
        stop: watch::Receiver<bool>,
    ) -> Result<Driver, String> {
        let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
        let writable = self
            .devices
            .iter()
            .flat_map(|d| &d.tags)
            .filter(|t| t.writable);
        Ok(Driver {
            writers: writers(writable.map(|t| t.id), &write_tx),
            task: Box::pin(run_line(*self, write_rx, events, stop)),
        })
    }

    crate::spec_plumbing!();
}
