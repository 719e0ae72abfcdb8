//! An OPC UA server as a driver of the runtime.

use super::OpcUaDevice;
use crate::driver::{Driver, ProtocolDriver};
use crate::{DeviceEvent, DeviceId, DeviceMetrics};
use tokio::sync::{mpsc, watch};

impl ProtocolDriver for OpcUaDevice {
    fn device_ids(&self) -> Vec<DeviceId> {
        vec![self.id]
    }

    fn metrics_mut(&mut self) -> Vec<(&str, &mut DeviceMetrics)> {
        vec![(self.name.as_str(), &mut self.metrics)]
    }

    #[cfg(feature = "opcua")]
    fn start(
        self: Box<Self>,
        events: mpsc::Sender<DeviceEvent>,
        stop: watch::Receiver<bool>,
    ) -> Result<Driver, String> {
        let (write_tx, write_rx) = mpsc::channel(crate::driver::WRITE_QUEUE);
        let writers = crate::driver::writers(self.nodes.iter().map(|n| n.id), &write_tx);
        // Nothing in the runtime calls methods yet (the write-back writes nodes): the calls
        // channel starts closed, and the driver serves writes only.
        let (_, calls) = mpsc::channel(1);
        Ok(Driver {
            task: Box::pin(super::run(*self, events, write_rx, calls, stop)),
            writers,
        })
    }

    #[cfg(not(feature = "opcua"))]
    fn start(
        self: Box<Self>,
        _: mpsc::Sender<DeviceEvent>,
        _: watch::Receiver<bool>,
    ) -> Result<Driver, String> {
        Err(format!(
            "device {:?} is OPC UA, and this build has no OPC UA driver (built without the `opcua` feature)",
            self.name
        ))
    }

    crate::spec_plumbing!();
}
