//! Builds the drivers from the cell config, numbering tags and devices as [`crate::cell::CellModel`] does.

use crate::config::{CellConfig, CellTag, Device, Protocol};
use mes_edge_drivers::modbus::{
    default_frame_gap, plan::Limits, ModbusDevice, ModbusLine, ModbusTag, SerialSettings, Transport,
};
use mes_edge_drivers::opcua::{
    parse_browse_path, parse_node_id, Connection, Deadband, Identity, NodeTarget, OpcUaDevice,
    OpcUaNode, Secret, SecurityMode, SecurityPolicy, SubscriptionGroup,
};
use mes_edge_drivers::{DeviceId, TagId, WriteRequest};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;

/// A Modbus line's driver and the receiving end of the writes to its tags.
pub struct ModbusDriver {
    pub line: ModbusLine,
    pub writes: mpsc::Receiver<WriteRequest>,
}

/// The Modbus drivers, one per line, and where a write to each writable tag goes.
pub fn modbus_drivers(
    config: &CellConfig,
) -> (
    Vec<ModbusDriver>,
    HashMap<TagId, mpsc::Sender<WriteRequest>>,
) {
    let mut writers = HashMap::new();
    let drivers = modbus_lines(config)
        .into_iter()
        .map(|line| {
            let (tx, rx) = mpsc::channel(16);
            for tag in line.devices.iter().flat_map(|d| &d.tags) {
                if tag.writable {
                    writers.insert(tag.id, tx.clone());
                }
            }
            ModbusDriver { line, writes: rx }
        })
        .collect();
    (drivers, writers)
}

/// The drivers' view of the Modbus devices, with tags numbered as [`CellModel`] numbers them.
/// Devices reached through the same connection (a serial port, or one host and port) form one
/// line, whose requests are serialized.
pub fn modbus_lines(config: &CellConfig) -> Vec<ModbusLine> {
    let numbered = config.numbered_tags();
    let ids = tag_ids(&numbered);
    let mut lines: Vec<ModbusLine> = Vec::new();
    for (d, dev) in config.devices.iter().enumerate() {
        let Some(transport) = modbus_transport(dev) else {
            continue;
        };
        let device_interval = Duration::from_millis(dev.poll_interval_ms);
        let tags = dev
            .tags
            .iter()
            .map(|t| ModbusTag {
                id: tag_id(&ids, &t.name),
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
        let device = ModbusDevice {
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
        };
        match lines
            .iter_mut()
            .find(|l| same_line(&l.transport, &transport))
        {
            Some(line) => line.devices.push(device),
            None => lines.push(ModbusLine {
                transport,
                devices: vec![device],
            }),
        }
    }
    lines
}

fn same_line(a: &Transport, b: &Transport) -> bool {
    match (a, b) {
        (Transport::Rtu(a), Transport::Rtu(b)) => a.port == b.port,
        _ => a == b,
    }
}

fn modbus_transport(dev: &Device) -> Option<Transport> {
    let address = || format!("{}:{}", dev.host.as_deref().unwrap_or_default(), dev.port);
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

/// The ids [`CellConfig::numbered_tags`] gives the tags, by name (names are unique in a checked
/// config). A map, not a search per tag: a cell of 50,000 OPC UA nodes would take seconds.
fn tag_ids<'n>(numbered: &'n [(TagId, usize, CellTag<'_>)]) -> HashMap<&'n str, TagId> {
    numbered.iter().map(|(id, _, t)| (t.name(), *id)).collect()
}

fn tag_id(ids: &HashMap<&str, TagId>, name: &str) -> TagId {
    *ids.get(name)
        .expect("checked config: every tag has a unique name")
}

/// The OPC UA devices, tags numbered as for Modbus. A PKI folder not given in the config is
/// `pki` next to the store file, so it lives with the cell's other state.
pub fn opcua_devices(config: &CellConfig) -> Vec<OpcUaDevice> {
    let numbered = config.numbered_tags();
    let ids = tag_ids(&numbered);
    let state_dir = config
        .store
        .path
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let mut out = Vec::new();
    for (d, dev) in config.devices.iter().enumerate() {
        if dev.protocol != Protocol::Opcua {
            continue;
        }
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
        let nodes = dev
            .nodes
            .iter()
            .map(|n| OpcUaNode {
                id: tag_id(&ids, &n.name),
                name: n.name.clone(),
                target: match (&n.node_id, &n.browse_path) {
                    (Some(id), _) => NodeTarget::Id(parse_node_id(id).expect("checked config")),
                    (None, Some(p)) => {
                        NodeTarget::Path(parse_browse_path(p).expect("checked config"))
                    }
                    (None, None) => {
                        unreachable!("checked config: a node has node_id or browse_path")
                    }
                },
                expect: n.data_type,
                sampling_interval: n.sampling_interval_ms.map(Duration::from_millis),
                queue_size: n.queue_size.unwrap_or(1),
                discard_oldest: n.discard_oldest.unwrap_or(true),
                deadband: match (n.deadband_absolute, n.deadband_percent) {
                    (Some(a), _) => Some(Deadband::Absolute(a)),
                    (None, Some(p)) => Some(Deadband::Percent(p)),
                    _ => None,
                },
                poll: n.poll,
                group: n
                    .subscription
                    .as_ref()
                    .and_then(|name| dev.subscriptions.iter().position(|s| &s.name == name))
                    .map_or(0, |i| i + 1),
            })
            .collect();
        out.push(OpcUaDevice {
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
        });
    }
    out
}
