//! The drivers' view of the devices: the file keeps one flat `[[devices]]` table (so serde's
//! errors keep their file:line:column); here it splits by protocol into driver specs, tags and
//! devices numbered as [`CellFile::numbered_tags`] numbers them.

use super::locate::Problem;
use super::types::*;
use mes_edge_drivers::modbus::{
    default_frame_gap, plan::Limits, ModbusDevice, ModbusLine, ModbusTag, SerialSettings, Transport,
};
use mes_edge_drivers::opcua::{
    Connection, Deadband, Identity, NodeTarget, OpcUaDevice, OpcUaNode, Secret, SecurityMode,
    SecurityPolicy, SubscriptionGroup,
};
use mes_edge_drivers::{DeviceId, DriverSpec, TagId};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Devices reached through the same connection (a serial port, or one host and port) form one
/// Modbus line, whose requests are serialized; each OPC UA device is a driver of its own.
pub(super) fn driver_specs(
    file: &CellFile,
    node_targets: &HashMap<(usize, usize), NodeTarget>,
) -> Result<Vec<DriverSpec>, Problem> {
    let state_dir = file.store.path.parent().unwrap_or(Path::new("."));
    let mut specs: Vec<DriverSpec> = Vec::new();
    // Tags are numbered per device: its Modbus tags, then its nodes, then its S7 tags.
    let mut next_tag = 0u32;
    for (d, dev) in file.devices.iter().enumerate() {
        let first_tag = next_tag;
        next_tag += (dev.tags.len() + dev.nodes.len() + dev.s7_tags.len()) as u32;
        let first_s7 = first_tag + (dev.tags.len() + dev.nodes.len()) as u32;
        if let Some(spec) = super::s7::device::driver(d, dev, first_s7) {
            specs.push(spec);
        } else if let Some(transport) = modbus_transport(dev) {
            let device = modbus_device(d, dev, first_tag);
            let line = specs.iter_mut().find_map(|s| match s {
                DriverSpec::Modbus(l) if same_line(&l.transport, &transport) => Some(l),
                _ => None,
            });
            match line {
                Some(line) => line.devices.push(device),
                None => specs.push(DriverSpec::Modbus(ModbusLine {
                    transport,
                    devices: vec![device],
                })),
            }
        } else if dev.protocol == Protocol::Opcua {
            let first_node = first_tag + dev.tags.len() as u32;
            specs.push(DriverSpec::OpcUa(opcua_device(
                d,
                dev,
                first_node,
                node_targets,
                state_dir,
            )?));
        }
    }
    Ok(specs)
}

fn modbus_device(d: usize, dev: &Device, first_tag: u32) -> ModbusDevice {
    let device_interval = Duration::from_millis(dev.poll_interval_ms);
    let tags = dev
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
        unit: dev.unit_id,
        timeout: Duration::from_millis(dev.timeout_ms),
        retries: dev.retries,
        request_gap: Duration::from_millis(dev.request_gap_ms),
        limits: Limits {
            max_gap: dev.max_gap,
            max_registers: dev.max_registers,
            max_bits: dev.max_bits,
        },
        single_writes: dev.single_writes,
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
    match dev.protocol {
        Protocol::ModbusTcp => Some(Transport::Tcp { address: address() }),
        Protocol::ModbusRtuOverTcp => Some(Transport::RtuOverTcp { address: address() }),
        Protocol::ModbusRtu => {
            let mut s = SerialSettings::new(dev.serial_port.clone().unwrap_or_default());
            s.baud_rate = dev.baud_rate.unwrap_or(s.baud_rate);
            s.data_bits = dev.data_bits.unwrap_or(s.data_bits);
            s.parity = dev.parity.unwrap_or(s.parity);
            s.stop_bits = dev.stop_bits.unwrap_or(s.stop_bits);
            s.frame_gap = match dev.inter_frame_delay_us {
                Some(us) => Duration::from_micros(us),
                None => default_frame_gap(s.baud_rate, s.data_bits, s.parity, s.stop_bits),
            };
            Some(Transport::Rtu(s))
        }
        _ => None,
    }
}

/// A PKI folder not given in the config is `pki` next to the store file, so it lives with the
/// cell's other state.
fn opcua_device(
    d: usize,
    dev: &Device,
    first_node: u32,
    node_targets: &HashMap<(usize, usize), NodeTarget>,
    state_dir: &Path,
) -> Result<OpcUaDevice, Problem> {
    let policy = dev.security_policy.unwrap_or(SecurityPolicy::None);
    let identity = if let Some(user) = &dev.username {
        let password = match (&dev.password_file, &dev.password_env) {
            (Some(f), _) => Secret::File(f.clone()),
            (None, Some(v)) => Secret::Env(v.clone()),
            (None, None) => Secret::Value(String::new()),
        };
        Identity::UserName {
            user: user.clone(),
            password,
        }
    } else if let (Some(cert), Some(key)) = (&dev.user_cert_file, &dev.user_key_file) {
        Identity::X509 {
            cert: cert.clone(),
            key: key.clone(),
        }
    } else {
        Identity::Anonymous
    };
    let mut groups = vec![SubscriptionGroup {
        name: "default".into(),
        publishing_interval: Duration::from_millis(dev.publishing_interval_ms.unwrap_or(500)),
    }];
    groups.extend(dev.subscriptions.iter().map(|s| SubscriptionGroup {
        name: s.name.clone(),
        publishing_interval: Duration::from_millis(s.publishing_interval_ms),
    }));
    let group_of: HashMap<&str, usize> = dev
        .subscriptions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i + 1))
        .collect();
    let mut nodes = Vec::with_capacity(dev.nodes.len());
    for (n, node) in dev.nodes.iter().enumerate() {
        let target = node_targets.get(&(d, n)).cloned().ok_or_else(|| {
            Problem::internal(&format!("node {:?} has no parsed address", node.name))
        })?;
        nodes.push(OpcUaNode {
            id: TagId(first_node + n as u32),
            name: node.name.clone(),
            target,
            expect: node.data_type,
            sampling_interval: node.sampling_interval_ms.map(Duration::from_millis),
            queue_size: node.queue_size.unwrap_or(1),
            discard_oldest: node.discard_oldest.unwrap_or(true),
            deadband: match (node.deadband_absolute, node.deadband_percent) {
                (Some(a), _) => Some(Deadband::Absolute(a)),
                (None, Some(p)) => Some(Deadband::Percent(p)),
                _ => None,
            },
            poll: node.poll,
            group: node
                .subscription
                .as_deref()
                .and_then(|name| group_of.get(name).copied())
                .unwrap_or(0),
        });
    }
    Ok(OpcUaDevice {
        id: DeviceId(d as u32),
        name: dev.name.clone(),
        connection: Connection {
            endpoint: dev.endpoint.clone().unwrap_or_default(),
            policy,
            mode: dev
                .security_mode
                .unwrap_or(SecurityMode::default_for(policy)),
            identity,
            pki_dir: dev.pki_dir.clone().unwrap_or_else(|| state_dir.join("pki")),
        },
        timeout: Duration::from_millis(dev.timeout_ms),
        poll_interval: Duration::from_millis(dev.poll_interval_ms),
        keep_alive: Duration::from_millis(dev.keep_alive_ms.unwrap_or(5000)),
        groups,
        nodes,
        metrics: Default::default(),
    })
}
