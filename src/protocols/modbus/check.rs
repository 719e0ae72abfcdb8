//! Modbus checks: which fields go with which transport, serial settings, several devices on
//! one line, string and writable tags.

use super::keys::ModbusKeysOf;
use super::tag::TagConfig;
use super::{RTU, RTU_OVER_TCP, TCP};
use crate::config::*;
use crate::config::{Problem, Seg};
use mes_edge_drivers::modbus::encoding::MAX_STRING_REGISTERS;
use mes_edge_drivers::modbus::{DataType, Table};
use mes_edge_drivers::modbus::{MAX_READ_BITS, MAX_READ_REGISTERS};

/// The serial settings a device sets, by key.
fn serial_fields(dev: &Device) -> Vec<&'static str> {
    [
        ("serial_port", dev.modbus().serial_port.is_some()),
        ("baud_rate", dev.modbus().baud_rate.is_some()),
        ("data_bits", dev.modbus().data_bits.is_some()),
        ("parity", dev.modbus().parity.is_some()),
        ("stop_bits", dev.modbus().stop_bits.is_some()),
        (
            "inter_frame_delay_us",
            dev.modbus().inter_frame_delay_us.is_some(),
        ),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect()
}

pub fn check_device(d: usize, dev: &Device, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, key];
    let has_host = dev.host.as_deref().is_some_and(|h| !h.trim().is_empty());
    match dev.protocol.as_str() {
        TCP | RTU_OVER_TCP => {
            if !has_host {
                p.push(Problem::at(
                    path!["devices", d],
                    if dev.protocol == TCP {
                        "a modbus-tcp device needs `host` (name or IP address of the PLC)"
                    } else {
                        "a modbus-rtu-over-tcp device needs `host` (name or IP address of the gateway)"
                    },
                ));
            }
            for key in serial_fields(dev) {
                p.push(Problem::at(
                    at(key),
                    format!("`{key}` is a serial line setting; expected it only with protocol = \"modbus-rtu\""),
                ));
            }
        }
        RTU => check_serial(d, dev, p),
        // Its keys on another protocol's device were refused when they were handed out.
        _ => return,
    }
    if !(1..=MAX_READ_REGISTERS).contains(&dev.modbus().max_registers) {
        p.push(Problem::at(
            at("max_registers"),
            format!(
                "expected 1 to {MAX_READ_REGISTERS} registers per request, found {}",
                dev.modbus().max_registers
            ),
        ));
    }
    if !(1..=MAX_READ_BITS).contains(&dev.modbus().max_bits) {
        p.push(Problem::at(
            at("max_bits"),
            format!(
                "expected 1 to {MAX_READ_BITS} bits per request, found {}",
                dev.modbus().max_bits
            ),
        ));
    }
    if dev.modbus().retries > 10 {
        p.push(Problem::at(
            at("retries"),
            format!(
                "expected at most 10 retries, found {}",
                dev.modbus().retries
            ),
        ));
    }
    for (t, tag) in dev.modbus().tags.iter().enumerate() {
        check_tag(d, t, dev, tag, p);
    }
}

fn check_serial(d: usize, dev: &Device, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, key];
    if dev
        .modbus()
        .serial_port
        .as_deref()
        .is_none_or(|s| s.trim().is_empty())
    {
        p.push(Problem::at(
            path!["devices", d],
            "a modbus-rtu device needs `serial_port` (e.g. \"/dev/ttyUSB0\")",
        ));
    }
    if dev.host.is_some() {
        p.push(Problem::at(
            at("host"),
            "a modbus-rtu device is reached through `serial_port`; `host` goes with modbus-tcp or modbus-rtu-over-tcp",
        ));
    }
    if dev.modbus().baud_rate == Some(0) {
        p.push(Problem::at(
            at("baud_rate"),
            "expected a baud rate above 0, e.g. 9600 or 19200",
        ));
    }
    if let Some(bits) = dev.modbus().data_bits.filter(|b| !(7..=8).contains(b)) {
        p.push(Problem::at(
            at("data_bits"),
            format!("expected 7 or 8 data bits, found {bits}"),
        ));
    }
    if let Some(bits) = dev.modbus().stop_bits.filter(|b| !(1..=2).contains(b)) {
        p.push(Problem::at(
            at("stop_bits"),
            format!("expected 1 or 2 stop bits, found {bits}"),
        ));
    }
    if !(1..=247).contains(&dev.modbus().unit_id) {
        p.push(Problem::at(
            at("unit_id"),
            format!(
                "expected a unit id from 1 to 247 on a serial line (0 is broadcast, which no device answers), found {}",
                dev.modbus().unit_id
            ),
        ));
    }
}

fn check_tag(d: usize, t: usize, dev: &Device, tag: &TagConfig, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, "tags", t, key];
    if tag.data_type == DataType::String {
        match tag.length {
            None => p.push(Problem::at(
                at("type"),
                format!("a string needs `length` (registers, two characters each; 1 to {MAX_STRING_REGISTERS})"),
            )),
            Some(n) if !(1..=MAX_STRING_REGISTERS).contains(&n) => p.push(Problem::at(
                at("length"),
                format!("expected a length of 1 to {MAX_STRING_REGISTERS} registers, found {n}"),
            )),
            Some(_) => {}
        }
        if tag.scale.is_some() || tag.offset.is_some() {
            p.push(Problem::at(at("scale"), "a string cannot be scaled"));
        }
    } else if tag.length.is_some() {
        p.push(Problem::at(
            at("length"),
            "`length` goes with type \"string\"",
        ));
    }
    if !tag.table.is_bits() && tag.span() > dev.modbus().max_registers {
        p.push(Problem::at(
            at("type"),
            format!(
                "the tag spans {} registers, more than one request may read (max_registers = {})",
                tag.span(),
                dev.modbus().max_registers
            ),
        ));
    }
    if tag.poll_interval_ms == Some(0) {
        p.push(Problem::at(
            at("poll_interval_ms"),
            "expected a poll interval of at least 1 ms, found 0",
        ));
    }
    if tag.write && matches!(tag.table, Table::Input | Table::DiscreteInput) {
        p.push(Problem::at(
            at("write"),
            format!(
                "{} are read-only in Modbus; `write = true` goes with holding registers and coils",
                if tag.table == Table::Input {
                    "input registers"
                } else {
                    "discrete inputs"
                }
            ),
        ));
    }
}

/// Devices on one serial port share its settings and need different unit ids; one host and
/// port speaks one framing.
pub fn check_lines(c: &CellFile, p: &mut Vec<Problem>) {
    for (d, dev) in c.devices.iter().enumerate() {
        for (e, first) in c.devices[..d].iter().enumerate() {
            if !super::speaks(&dev.protocol) || !super::speaks(&first.protocol) {
                continue;
            }
            let serial = dev.protocol == RTU
                && first.protocol == RTU
                && dev.modbus().serial_port.is_some()
                && dev.modbus().serial_port == first.modbus().serial_port;
            let networked = |x: &Device| x.protocol != RTU && x.host.is_some();
            let same_endpoint = networked(dev)
                && networked(first)
                && dev.host == first.host
                && dev.port() == first.port();
            if serial {
                let settings = |x: &Device| {
                    (
                        x.modbus().baud_rate,
                        x.modbus().data_bits,
                        x.modbus().parity,
                        x.modbus().stop_bits,
                        x.modbus().inter_frame_delay_us,
                    )
                };
                if settings(dev) != settings(first) {
                    p.push(Problem::at(
                        path!["devices", d, "serial_port"],
                        format!(
                            "device {:?} uses this serial port with other settings; expected the same \
                             baud_rate, data_bits, parity, stop_bits and inter_frame_delay_us on one port",
                            first.name
                        ),
                    ));
                }
            }
            if same_endpoint && dev.protocol != first.protocol {
                p.push(Problem::at(
                    path!["devices", d, "protocol"],
                    format!(
                        "device {:?} reaches this host and port with protocol {:?}; one connection speaks one framing",
                        first.name,
                        first.protocol
                    ),
                ));
            }
            // Two Modbus TCP devices may well name one unit of a PLC twice; on a serial line or
            // a transparent gateway the same unit id twice is two devices answering at once.
            let shared_bus = serial || (same_endpoint && dev.protocol == RTU_OVER_TCP);
            if shared_bus
                && dev.protocol == first.protocol
                && dev.modbus().unit_id == first.modbus().unit_id
            {
                p.push(Problem::at(
                    path!["devices", d, "unit_id"],
                    format!(
                        "unit id {} on this line is already used by device {:?} (device #{}); expected a unique unit id per line",
                        dev.modbus().unit_id,
                        first.name,
                        e + 1
                    ),
                ));
            }
        }
    }
}
