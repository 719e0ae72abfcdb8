//! Builds the drivers from the cell config, numbering tags and devices as [`crate::cell::CellModel`] does.

use crate::config::{CellConfig, Protocol};
use mes_edge_drivers::modbus::{plan::Limits, ModbusTag, ModbusTcpDevice};
use mes_edge_drivers::{DeviceId, TagId};
use std::time::Duration;

/// The drivers' view of the config, with tags numbered as [`CellModel`] numbers them.
pub fn modbus_devices(config: &CellConfig) -> Vec<ModbusTcpDevice> {
    let mut next_tag = 0u32;
    let mut out = Vec::new();
    for (d, dev) in config.devices.iter().enumerate() {
        let tags = dev
            .tags
            .iter()
            .map(|t| {
                next_tag += 1;
                ModbusTag {
                    id: TagId(next_tag - 1),
                    table: t.table,
                    address: t.address,
                    data_type: t.data_type,
                    order: t.order,
                    bit: t.bit,
                    scale: t.scale,
                    offset: t.offset,
                }
            })
            .collect();
        match dev.protocol {
            Protocol::ModbusTcp => out.push(ModbusTcpDevice {
                id: DeviceId(d as u32),
                name: dev.name.clone(),
                address: format!("{}:{}", dev.host.as_deref().unwrap_or_default(), dev.port),
                unit: dev.unit_id,
                timeout: Duration::from_millis(dev.timeout_ms),
                poll_interval: Duration::from_millis(dev.poll_interval_ms),
                limits: Limits {
                    max_gap: dev.max_gap,
                    max_registers: dev.max_registers,
                    ..Limits::default()
                },
                tags,
            }),
        }
    }
    out
}
