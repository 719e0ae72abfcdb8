//! The one shape every protocol's driver takes, so the runtime wires a cell with one loop and
//! no knowledge of protocols: a spec from the config, started into a task and the writers of
//! its writable tags. Each protocol's folder implements [`ProtocolDriver`] for what its driver
//! is built from (a Modbus line, an OPC UA server, an S7 CPU); `lib.rs` registers the folder.

use crate::{DeviceEvent, DeviceId, DeviceMetrics, TagId, WriteRequest};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, watch};

/// Writes waiting for one driver: a Modbus line, an OPC UA session or an S7 connection
/// serializes its requests, and a write-back happens when an order changes, so a few slots are
/// plenty.
pub const WRITE_QUEUE: usize = 16;

/// What one protocol's driver is built from.
pub trait ProtocolDriver: std::fmt::Debug + Send + Sync + 'static {
    /// The devices this driver drives.
    fn device_ids(&self) -> Vec<DeviceId>;

    /// Each device's name with the metrics handle the runtime's `/metrics` reads.
    fn metrics_mut(&mut self) -> Vec<(&str, &mut DeviceMetrics)>;

    /// The driver, handing its samples and status to `events` until `stop` turns true, with a
    /// writer for each tag a write may set. An error says the build cannot drive this protocol.
    fn start(
        self: Box<Self>,
        events: mpsc::Sender<DeviceEvent>,
        stop: watch::Receiver<bool>,
    ) -> Result<Driver, String>;

    fn clone_box(&self) -> Box<dyn ProtocolDriver>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// What a driver is built from: one Modbus line (the devices behind one connection), one
/// OPC UA server or one S7 CPU, whichever it is.
#[derive(Debug)]
pub struct DriverSpec(Box<dyn ProtocolDriver>);

impl Clone for DriverSpec {
    fn clone(&self) -> Self {
        DriverSpec(self.0.clone_box())
    }
}

/// A started driver: the task that polls or subscribes until the stop signal turns true, and
/// where a write to each of its writable tags goes.
pub struct Driver {
    pub task: Pin<Box<dyn Future<Output = ()> + Send>>,
    pub writers: Vec<(TagId, mpsc::Sender<WriteRequest>)>,
}

impl DriverSpec {
    pub fn new(driver: impl ProtocolDriver) -> DriverSpec {
        DriverSpec(Box::new(driver))
    }

    /// The protocol's own spec, if this is one of type `T` (a commissioning command wants the
    /// Modbus lines, say).
    pub fn get<T: ProtocolDriver>(&self) -> Option<&T> {
        self.0.as_any().downcast_ref()
    }

    pub fn get_mut<T: ProtocolDriver>(&mut self) -> Option<&mut T> {
        self.0.as_any_mut().downcast_mut()
    }

    /// The devices this driver drives.
    pub fn device_ids(&self) -> Vec<DeviceId> {
        self.0.device_ids()
    }

    /// Each device's name with the metrics handle the runtime's `/metrics` reads.
    pub fn metrics_mut(&mut self) -> Vec<(&str, &mut DeviceMetrics)> {
        self.0.metrics_mut()
    }

    /// The driver, handing its samples and status to `events` until `stop` turns true. An error
    /// says the build cannot drive this protocol.
    pub fn start(
        self,
        events: mpsc::Sender<DeviceEvent>,
        stop: watch::Receiver<bool>,
    ) -> Result<Driver, String> {
        self.0.start(events, stop)
    }
}

/// The writers of a driver whose writes all go through one queue: one per tag in `tags`.
pub fn writers(
    tags: impl Iterator<Item = TagId>,
    queue: &mpsc::Sender<WriteRequest>,
) -> Vec<(TagId, mpsc::Sender<WriteRequest>)> {
    tags.map(|t| (t, queue.clone())).collect()
}

/// The [`ProtocolDriver`] methods every spec type fills in the same way.
#[macro_export]
macro_rules! spec_plumbing {
    () => {
        fn clone_box(&self) -> Box<dyn $crate::ProtocolDriver> {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
        fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
            self
        }
    };
}
