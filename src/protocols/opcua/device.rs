//! An OPC UA device of the cell config resolved for the driver: one session per server.

use super::keys::OpcUaKeys;
use crate::config::locate::Problem;
use crate::config::types::Device;
use mes_edge_drivers::opcua::{
    Connection, Deadband, Identity, NodeTarget, OpcUaDevice, OpcUaNode, Secret, SecurityMode,
    SecurityPolicy, SubscriptionGroup,
};
use mes_edge_drivers::{DeviceId, TagId};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// Per (device, node) index: where the node is on its server, as the checks parsed it.
#[derive(Default)]
pub(super) struct NodeTargets(pub HashMap<(usize, usize), NodeTarget>);

/// A PKI folder not given in the config is `pki` next to the store file, so it lives with the
/// cell's other state.
pub(super) fn opcua_device(
    d: usize,
    dev: &Device,
    first_node: u32,
    node_targets: &NodeTargets,
    state_dir: &Path,
) -> Result<OpcUaDevice, Problem> {
    let none = OpcUaKeys::default();
    let keys = OpcUaKeys::of(dev).unwrap_or(&none);
    let policy = keys.security_policy.unwrap_or(SecurityPolicy::None);
    let identity = if let Some(user) = &keys.username {
        let password = match (&keys.password_file, &keys.password_env) {
            (Some(f), _) => Secret::File(f.clone()),
            (None, Some(v)) => Secret::Env(v.clone()),
            (None, None) => Secret::Value(String::new()),
        };
        Identity::UserName {
            user: user.clone(),
            password,
        }
    } else if let (Some(cert), Some(key)) = (&keys.user_cert_file, &keys.user_key_file) {
        Identity::X509 {
            cert: cert.clone(),
            key: key.clone(),
        }
    } else {
        Identity::Anonymous
    };
    let mut groups = vec![SubscriptionGroup {
        name: "default".into(),
        publishing_interval: Duration::from_millis(keys.publishing_interval_ms.unwrap_or(500)),
    }];
    groups.extend(keys.subscriptions.iter().map(|s| SubscriptionGroup {
        name: s.name.clone(),
        publishing_interval: Duration::from_millis(s.publishing_interval_ms),
    }));
    let group_of: HashMap<&str, usize> = keys
        .subscriptions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i + 1))
        .collect();
    let mut nodes = Vec::with_capacity(keys.nodes.len());
    for (n, node) in keys.nodes.iter().enumerate() {
        let target = node_targets.0.get(&(d, n)).cloned().ok_or_else(|| {
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
            endpoint: keys.endpoint.clone().unwrap_or_default(),
            policy,
            mode: keys
                .security_mode
                .unwrap_or(SecurityMode::default_for(policy)),
            identity,
            pki_dir: keys
                .pki_dir
                .clone()
                .unwrap_or_else(|| state_dir.join("pki")),
        },
        timeout: Duration::from_millis(dev.timeout_ms),
        poll_interval: Duration::from_millis(dev.poll_interval_ms),
        keep_alive: Duration::from_millis(keys.keep_alive_ms.unwrap_or(5000)),
        groups,
        nodes,
        metrics: Default::default(),
    })
}
