//! The one shape every protocol's driver takes, so the runtime wires a cell with one loop and
//! no knowledge of protocols: a spec from the config, started into a task and the writers of
//! its writable tags.

use crate::modbus::{run_line, ModbusLine};
use crate::opcua::OpcUaDevice;
use crate::s7::S7Device;
use crate::{DeviceEvent, DeviceId, DeviceMetrics, TagId, WriteRequest};
use std::future::Future;
use std::pin::Pin;
use tokio::sync::{mpsc, watch};

/// Writes waiting for one driver: a Modbus line or an OPC UA session serializes its requests,
/// and a write-back happens when an order changes, so a few slots are plenty.
const WRITE_QUEUE: usize = 16;

/// What a driver is built from: one Modbus line (the devices behind one connection), one
/// OPC UA server or one S7 CPU.
#[derive(Debug, Clone)]
pub enum DriverSpec {
    Modbus(ModbusLine),
    OpcUa(OpcUaDevice),
    S7(S7Device),
}

/// A started driver: the task that polls or subscribes until the stop signal turns true, and
/// where a write to each of its writable tags goes.
pub struct Driver {
    pub task: Pin<Box<dyn Future<Output = ()> + Send>>,
    pub writers: Vec<(TagId, mpsc::Sender<WriteRequest>)>,
}

impl DriverSpec {
    /// The devices this driver drives.
    pub fn device_ids(&self) -> Vec<DeviceId> {
        match self {
            DriverSpec::Modbus(line) => line.devices.iter().map(|d| d.id).collect(),
            DriverSpec::OpcUa(dev) => vec![dev.id],
            DriverSpec::S7(dev) => vec![dev.id],
        }
    }

    /// Each device's name with the metrics handle the runtime's `/metrics` reads.
    pub fn metrics_mut(&mut self) -> Vec<(&str, &mut DeviceMetrics)> {
        match self {
            DriverSpec::Modbus(line) => line
                .devices
                .iter_mut()
                .map(|d| (d.name.as_str(), &mut d.metrics))
                .collect(),
            DriverSpec::OpcUa(dev) => vec![(dev.name.as_str(), &mut dev.metrics)],
            DriverSpec::S7(dev) => vec![(dev.name.as_str(), &mut dev.metrics)],
        }
    }

    /// The driver, handing its samples and status to `events` until `stop` turns true. An error
    /// says the build cannot drive this protocol.
    pub fn start(
        self,
        events: mpsc::Sender<DeviceEvent>,
        stop: watch::Receiver<bool>,
    ) -> Result<Driver, String> {
        let (write_tx, write_rx) = mpsc::channel(WRITE_QUEUE);
        match self {
            DriverSpec::Modbus(line) => {
                let writers = line
                    .devices
                    .iter()
                    .flat_map(|d| &d.tags)
                    .filter(|t| t.writable)
                    .map(|t| (t.id, write_tx.clone()))
                    .collect();
                Ok(Driver {
                    task: Box::pin(run_line(line, write_rx, events, stop)),
                    writers,
                })
            }
            DriverSpec::OpcUa(dev) => start_opcua(dev, write_tx, write_rx, events, stop),
            DriverSpec::S7(dev) => Ok(Driver {
                writers: dev
                    .tags
                    .iter()
                    .filter(|t| t.writable)
                    .map(|t| (t.id, write_tx.clone()))
                    .collect(),
                task: Box::pin(crate::s7::run(dev, write_rx, events, stop)),
            }),
        }
    }
}

#[cfg(feature = "opcua")]
fn start_opcua(
    dev: OpcUaDevice,
    write_tx: mpsc::Sender<WriteRequest>,
    write_rx: mpsc::Receiver<WriteRequest>,
    events: mpsc::Sender<DeviceEvent>,
    stop: watch::Receiver<bool>,
) -> Result<Driver, String> {
    let writers = dev.nodes.iter().map(|n| (n.id, write_tx.clone())).collect();
    // Nothing in the runtime calls methods yet (the write-back writes nodes): the calls channel
    // starts closed, and the driver serves writes only.
    let (_, calls) = mpsc::channel(1);
    Ok(Driver {
        task: Box::pin(crate::opcua::run(dev, events, write_rx, calls, stop)),
        writers,
    })
}

#[cfg(not(feature = "opcua"))]
fn start_opcua(
    dev: OpcUaDevice,
    _: mpsc::Sender<WriteRequest>,
    _: mpsc::Receiver<WriteRequest>,
    _: mpsc::Sender<DeviceEvent>,
    _: watch::Receiver<bool>,
) -> Result<Driver, String> {
    Err(format!(
        "device {:?} is OPC UA, and this build has no OPC UA driver (built without the `opcua` feature)",
        dev.name
    ))
}
