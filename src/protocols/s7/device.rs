//! An `protocol = "s7"` device of the cell config resolved to the driver's [`S7Device`].

use super::keys::S7Keys;
use super::tag::{DEFAULT_LOCAL_TSAP, DEFAULT_PDU, MAX_GAP};
use crate::config::types::{CellFile, Device};
use mes_edge_drivers::s7::frame::remote_tsap;
use mes_edge_drivers::s7::{Endpoint, S7Device};
use mes_edge_drivers::{DeviceId, DriverSpec, TagId};
use std::time::Duration;

/// The driver of an S7 device whose first tag is numbered `first_tag`. The config was
/// checked, so every address parses.
pub(crate) fn driver(d: usize, dev: &Device, first_tag: u32) -> DriverSpec {
    let interval = Duration::from_millis(dev.poll_interval_ms);
    let tags = S7Keys::tags(dev)
        .iter()
        .enumerate()
        .filter_map(|(i, t)| t.driver_tag(TagId(first_tag + i as u32), interval))
        .collect();
    DriverSpec::new(S7Device {
        id: DeviceId(d as u32),
        name: dev.name.clone(),
        endpoint: endpoint(dev),
        timeout: Duration::from_millis(dev.timeout_ms),
        max_gap: MAX_GAP,
        tags,
        // The runtime hands in the handle its metrics endpoint reads.
        metrics: Default::default(),
    })
}

pub fn endpoint(dev: &Device) -> Endpoint {
    let none = S7Keys::default();
    let keys = S7Keys::of(dev).unwrap_or(&none);
    Endpoint {
        host: dev.host.clone().unwrap_or_default(),
        port: dev.port(),
        local_tsap: keys.local_tsap.unwrap_or(DEFAULT_LOCAL_TSAP),
        remote_tsap: keys
            .remote_tsap
            .unwrap_or_else(|| remote_tsap(keys.rack.unwrap_or(0), keys.slot.unwrap_or(1))),
        pdu_size: keys.pdu_size.unwrap_or(DEFAULT_PDU),
    }
}

/// The names of device `id`'s S7 tags, in the driver's order.
pub fn tag_names(file: &CellFile, id: DeviceId) -> Vec<String> {
    file.devices
        .get(id.0 as usize)
        .map(|d| S7Keys::tags(d).iter().map(|t| t.name.clone()).collect())
        .unwrap_or_default()
}
