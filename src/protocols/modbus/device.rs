//! A Modbus device of the cell config resolved for the driver: devices reached through the
//! same connection (a serial port, or one host and port) form one Modbus line, whose requests
//! are serialized.

use super::keys::ModbusKeysOf;
use super::{RTU, RTU_OVER_TCP, TCP};
use crate::config::types::Device;
use mes_edge_drivers::modbus::{
    default_frame_gap, plan::Limits, ModbusDevice, ModbusLine, ModbusTag, SerialSettings, Transport,
};
use mes_edge_drivers::{DeviceId, DriverSpec, TagId};
use std::time::Duration;

/// Adds device `d` (its first tag numbered `first_tag`) to the line of its connection in
/// `specs`, or starts that line.
pub(super) fn add_to_line(d: usize, dev: &Device, first_tag: u32, specs: &mut Vec<DriverSpec>) {
    let Some(transport) = modbus_transport(dev) else {
        return;
    };
    let device = modbus_device(d, dev, first_tag);
    let line = specs
        .iter_mut()
        .filter_map(|s| s.get_mut::<ModbusLine>())
        .find(|l| same_line(&l.transport, &transport));
    match line {
        Some(line) => line.devices.push(device),
        None => specs.push(DriverSpec::new(ModbusLine {
            transport,
            devices: vec![device],
        })),
    }
}

fn modbus_device(d: usize, dev: &Device, first_tag: u32) -> ModbusDevice {
    let device_interval = Duration::from_millis(dev.poll_interval_ms);
    let tags = dev
        .modbus()
        .tags
        .iter()
        .enumerate()
        .map(|(i, t)| ModbusTag {
            id: TagId(first_tag + i as u32),
            table: t.table,
            address: t.address,
            data_type: t.data_type,
            order: t.order,
            bit: t.bit,
            length: t.length,
            scale: t.scale,
            offset: t.offset,
            poll_interval: t
                .poll_interval_ms
                .map_or(device_interval, Duration::from_millis),
            writable: t.write,
        })
        .collect();
    ModbusDevice {
        id: DeviceId(d as u32),
        name: dev.name.clone(),
        unit: dev.modbus().unit_id,
        timeout: Duration::from_millis(dev.timeout_ms),
        retries: dev.modbus().retries,
        request_gap: Duration::from_millis(dev.modbus().request_gap_ms),
        limits: Limits {
            max_gap: dev.modbus().max_gap,
            max_registers: dev.modbus().max_registers,
            max_bits: dev.modbus().max_bits,
        },
        single_writes: dev.modbus().single_writes,
        tags,
        // The runtime hands in the handle its metrics endpoint reads.
        metrics: Default::default(),
    }
}

fn same_line(a: &Transport, b: &Transport) -> bool {
    match (a, b) {
        (Transport::Rtu(a), Transport::Rtu(b)) => a.port == b.port,
        _ => a == b,
    }
}

fn modbus_transport(dev: &Device) -> Option<Transport> {
    let address = || format!("{}:{}", dev.host.as_deref().unwrap_or_default(), dev.port());
    match dev.protocol.as_str() {
        TCP => Some(Transport::Tcp { address: address() }),
        RTU_OVER_TCP => Some(Transport::RtuOverTcp { address: address() }),
        RTU => {
            let mut s = SerialSettings::new(dev.modbus().serial_port.clone().unwrap_or_default());
            s.baud_rate = dev.modbus().baud_rate.unwrap_or(s.baud_rate);
            s.data_bits = dev.modbus().data_bits.unwrap_or(s.data_bits);
            s.parity = dev.modbus().parity.unwrap_or(s.parity);
            s.stop_bits = dev.modbus().stop_bits.unwrap_or(s.stop_bits);
            s.frame_gap = match dev.modbus().inter_frame_delay_us {
                Some(us) => Duration::from_micros(us),
                None => default_frame_gap(s.baud_rate, s.data_bits, s.parity, s.stop_bits),
            };
            Some(Transport::Rtu(s))
        }
        _ => None,
    }
}
