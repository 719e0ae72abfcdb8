//! Checks of OPC UA devices and nodes: endpoint, security combinations, identity, node-id
//! syntax, subscriptions, and OPC UA nodes used as the cell's signals.

use super::device::NodeTargets;
use super::keys::OpcUaKeys;
use super::node::NodeConfig;
use crate::config::parsed::Parsed;
use crate::config::*;
use crate::config::{Problem, Seg};
use mes_edge_drivers::opcua::{
    parse_browse_path, parse_node_id, security_mismatch, NodeTarget, NodeType, SecurityMode,
    SecurityPolicy,
};
use std::collections::{HashMap, HashSet};

/// Names of the OPC UA nodes of the cell, first definition wins.
pub fn nodes(c: &CellFile) -> HashMap<&str, &NodeConfig> {
    let mut out = HashMap::new();
    for n in c.devices.iter().flat_map(OpcUaKeys::nodes) {
        out.entry(n.name.as_str()).or_insert(n);
    }
    out
}

pub fn check_device(d: usize, dev: &Device, parsed: &mut Parsed, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, key];
    // Its keys on another protocol's device were refused when they were handed out.
    let Some(keys) = OpcUaKeys::of(dev) else {
        return;
    };
    match keys.endpoint.as_deref().map(str::trim) {
        None | Some("") => p.push(Problem::at(
            path!["devices", d],
            "an opcua device needs `endpoint` (like \"opc.tcp://192.168.10.22:4840\")",
        )),
        Some(url) => {
            let host = url
                .strip_prefix("opc.tcp://")
                .map(|rest| rest.split(['/', ':']).next().unwrap_or_default());
            if host.is_none_or(str::is_empty) {
                p.push(Problem::at(
                    at("endpoint"),
                    format!("expected an endpoint like \"opc.tcp://host:4840\", found {url:?}"),
                ));
            } else if let Some(port) = bad_port(url) {
                // The client would fail to parse it at every connect, and the device stay offline.
                p.push(Problem::at(
                    at("endpoint"),
                    format!("expected a port from 1 to 65535 in the endpoint, found {port:?}"),
                ));
            }
        }
    }
    if dev.host.is_some() {
        p.push(Problem::at(
            at("host"),
            "`host` belongs to a Modbus device; an OPC UA device has `endpoint`",
        ));
    }
    let policy = keys.security_policy.unwrap_or(SecurityPolicy::None);
    let mode = keys
        .security_mode
        .unwrap_or(SecurityMode::default_for(policy));
    if let Some(why) = security_mismatch(policy, mode) {
        let key = if keys.security_mode.is_some() {
            "security_mode"
        } else {
            "security_policy"
        };
        p.push(Problem::at(at(key), why));
    }
    check_identity(d, keys, p);
    check_policy_written(d, keys, p);
    if keys.publishing_interval_ms == Some(0) {
        p.push(Problem::at(
            at("publishing_interval_ms"),
            "expected a publishing interval of at least 1 ms, found 0",
        ));
    }
    if let Some(k) = keys.keep_alive_ms.filter(|&k| k < 1000) {
        p.push(Problem::at(
            at("keep_alive_ms"),
            format!("expected a keep-alive of at least 1000 ms, found {k}"),
        ));
    }
    let mut groups = HashSet::new();
    for (s, sub) in keys.subscriptions.iter().enumerate() {
        if sub.name.trim().is_empty() || sub.name == "default" || !groups.insert(sub.name.as_str())
        {
            p.push(Problem::at(
                path!["devices", d, "subscriptions", s, "name"],
                format!(
                    "expected a subscription name unique in the device and not \"default\", found {:?}",
                    sub.name
                ),
            ));
        }
        if sub.publishing_interval_ms == 0 {
            p.push(Problem::at(
                path!["devices", d, "subscriptions", s, "publishing_interval_ms"],
                "expected a publishing interval of at least 1 ms, found 0",
            ));
        }
    }
    for (n, node) in keys.nodes.iter().enumerate() {
        if let Some(target) = check_node(d, n, node, &groups, p) {
            parsed.own_mut::<NodeTargets>().0.insert((d, n), target);
        }
    }
}

/// The port of an `opc.tcp://host[:port][/path]` endpoint, if it is not one.
fn bad_port(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("opc.tcp://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
        None => authority.find(':').map_or("", |i| &authority[i..]),
    };
    let port = after_host.strip_prefix(':').filter(|p| !p.is_empty())?;
    match port.parse::<u16>() {
        Ok(n) if n > 0 => None,
        _ => Some(port),
    }
}

/// A device that proves who it is must say which security it does so over: the default None
/// would send the credential on a channel neither signed nor encrypted (docs/OPCUA.md).
fn check_policy_written(d: usize, dev: &OpcUaKeys, p: &mut Vec<Problem>) {
    let credential = if dev.username.is_some() {
        "username"
    } else if dev.user_cert_file.is_some() {
        "user_cert_file"
    } else {
        return;
    };
    if dev.security_policy.is_none() {
        p.push(Problem::at(
            path!["devices", d, credential],
            format!(
                "`{credential}` needs `security_policy` written out: expected e.g. \"Basic256Sha256\", or \"None\" to send the credential on an unencrypted channel knowingly"
            ),
        ));
    }
}

/// User names and passwords on a None channel: allowed when written out, never quietly.
pub fn warnings(c: &CellFile, w: &mut Vec<Problem>) {
    for (d, dev) in c.devices.iter().enumerate() {
        let Some(dev) = OpcUaKeys::of(dev) else {
            continue;
        };
        if dev.username.is_some() && dev.security_policy == Some(SecurityPolicy::None) {
            w.push(Problem::at(
                path!["devices", d, "security_policy"],
                "warning: a user name and password over security policy None: the session is neither signed nor encrypted, and the password is protected only if the server's user token policy encrypts it; use Basic256Sha256 or stronger",
            ));
        }
    }
}

fn check_identity(d: usize, dev: &OpcUaKeys, p: &mut Vec<Problem>) {
    let at = |key: &str| path!["devices", d, key];
    let secret = [
        ("password_file", dev.password_file.is_some()),
        ("password_env", dev.password_env.is_some()),
    ];
    match &dev.username {
        Some(user) => {
            if user.trim().is_empty() {
                p.push(Problem::at(
                    at("username"),
                    "expected a non-empty user name",
                ));
            }
            match secret.iter().filter(|(_, set)| *set).count() {
                0 => p.push(Problem::at(
                    at("username"),
                    "a user name needs its password from `password_file` or `password_env` \
                     (never written in the config)",
                )),
                2 => p.push(Problem::at(
                    at("password_env"),
                    "expected `password_file` or `password_env`, not both",
                )),
                _ => {}
            }
            if dev.user_cert_file.is_some() {
                p.push(Problem::at(
                    at("user_cert_file"),
                    "expected one user identity: a user name or a user certificate, not both",
                ));
            }
        }
        None => {
            for (key, set) in secret {
                if set {
                    p.push(Problem::at(at(key), "a password goes with `username`"));
                }
            }
        }
    }
    if dev.user_cert_file.is_some() != dev.user_key_file.is_some() {
        p.push(Problem::at(
            path!["devices", d],
            "an X.509 user identity needs both `user_cert_file` and `user_key_file`",
        ));
    }
    if let Some(v) = &dev.password_env {
        if v.is_empty() || v.contains(['=', '\0']) {
            p.push(Problem::at(
                at("password_env"),
                format!("expected the name of an environment variable, found {v:?}"),
            ));
        }
    }
}

/// The node's address on its server, if it parses.
fn check_node(
    d: usize,
    n: usize,
    node: &NodeConfig,
    groups: &HashSet<&str>,
    p: &mut Vec<Problem>,
) -> Option<NodeTarget> {
    let at = |key: &str| path!["devices", d, "nodes", n, key];
    if node.name.trim().is_empty() {
        p.push(Problem::at(at("name"), "expected a non-empty tag name"));
    }
    let target = match (&node.node_id, &node.browse_path) {
        (Some(_), Some(_)) => {
            p.push(Problem::at(
                at("browse_path"),
                "expected `node_id` or `browse_path`, not both",
            ));
            None
        }
        (None, None) => {
            p.push(Problem::at(
                path!["devices", d, "nodes", n],
                "a node needs `node_id` (like \"ns=3;s=Line1.Press.Count\") or `browse_path`",
            ));
            None
        }
        (Some(id), None) => parse_node_id(id)
            .map(NodeTarget::Id)
            .map_err(|e| p.push(Problem::at(at("node_id"), e)))
            .ok(),
        (None, Some(bp)) => parse_browse_path(bp)
            .map(NodeTarget::Path)
            .map_err(|e| p.push(Problem::at(at("browse_path"), e)))
            .ok(),
    };
    if node.sampling_interval_ms.is_some_and(|s| s > 3_600_000) {
        p.push(Problem::at(
            at("sampling_interval_ms"),
            "expected a sampling interval of at most an hour",
        ));
    }
    match (node.deadband_absolute, node.deadband_percent) {
        (Some(_), Some(_)) => p.push(Problem::at(
            at("deadband_percent"),
            "expected `deadband_absolute` or `deadband_percent`, not both",
        )),
        (Some(v), None) if !(v >= 0.0 && v.is_finite()) => p.push(Problem::at(
            at("deadband_absolute"),
            format!("expected a deadband of 0 or more, found {v}"),
        )),
        (None, Some(v)) if !(0.0..=100.0).contains(&v) => p.push(Problem::at(
            at("deadband_percent"),
            format!("expected a percentage from 0 to 100, found {v}"),
        )),
        _ => {}
    }
    let deadband = node.deadband_absolute.is_some() || node.deadband_percent.is_some();
    if deadband
        && node
            .data_type
            .is_some_and(|t| matches!(t, NodeType::Bool | NodeType::String | NodeType::DateTime))
    {
        p.push(Problem::at(
            at("type"),
            "a deadband applies to numbers; expected a numeric `type`",
        ));
    }
    if node.poll {
        let subscribed_only = [
            ("sampling_interval_ms", node.sampling_interval_ms.is_some()),
            ("queue_size", node.queue_size.is_some()),
            ("discard_oldest", node.discard_oldest.is_some()),
            ("deadband_absolute", node.deadband_absolute.is_some()),
            ("deadband_percent", node.deadband_percent.is_some()),
            ("subscription", node.subscription.is_some()),
        ];
        for (key, set) in subscribed_only {
            if set {
                p.push(Problem::at(
                    at(key),
                    format!("`{key}` applies to subscribed nodes; this node has `poll = true`"),
                ));
            }
        }
    }
    if let Some(s) = &node.subscription {
        if !groups.contains(s.as_str()) {
            let mut names: Vec<&str> = groups.iter().copied().collect();
            names.sort_unstable();
            p.push(Problem::at(
                at("subscription"),
                format!(
                    "unknown subscription {s:?}; expected one of the device's [[devices.subscriptions]]: {}",
                    if names.is_empty() { "(none defined)".to_string() } else { names.join(", ") }
                ),
            ));
        }
    }
    target
}
