//! OPC UA: a device is a server session with subscriptions (monitored items, per-tag sampling,
//! queue and deadband) and optional polled reads; writes and method calls go over the same
//! session. The client is async-opcua (feature `opcua`); the config words (node ids, browse
//! paths, security, types) are here without it so that a config can be checked in any build.

mod address;
mod driver;
mod settings;

#[cfg(feature = "opcua")]
mod argument;
#[cfg(feature = "opcua")]
mod client;
#[cfg(feature = "opcua")]
pub mod commission;
#[cfg(feature = "opcua")]
mod convert;
#[cfg(feature = "opcua")]
mod device;
/// For the fuzz targets in fuzz/ only.
#[cfg(feature = "opcua")]
#[doc(hidden)]
pub mod fuzzing;
#[cfg(feature = "opcua")]
mod inbox;
#[cfg(feature = "opcua")]
mod resolve;

pub use address::{parse_browse_path, parse_node_id, BrowseStep, Namespace, NodeAddress};
pub use settings::{security_mismatch, Deadband, NodeType, SecurityMode, SecurityPolicy};

#[cfg(feature = "opcua")]
pub use client::{ClientSettings, ConnectError};
#[cfg(feature = "opcua")]
pub use device::run;

use crate::{DeviceId, TagId};
use std::path::PathBuf;
use std::time::Duration;

/// An OPC UA server as the driver needs it.
#[derive(Debug, Clone)]
pub struct OpcUaDevice {
    pub id: DeviceId,
    pub name: String,
    pub connection: Connection,
    /// Bound on each request (read, write, call, create subscription).
    pub timeout: Duration,
    /// How often polled nodes are read.
    pub poll_interval: Duration,
    /// How often the session checks that the server is still there.
    pub keep_alive: Duration,
    /// Subscriptions; nodes name theirs by index. Index 0 is the device's default.
    pub groups: Vec<SubscriptionGroup>,
    pub nodes: Vec<OpcUaNode>,
    /// Where the driver counts what it sees of the server (connected, last read, clock skew).
    pub metrics: crate::DeviceMetrics,
}

/// How to reach a server and prove who we are: shared by the driver and the commissioning
/// commands, so `mes-edge opcua read` connects exactly as the running cell would.
#[derive(Debug, Clone)]
pub struct Connection {
    /// `opc.tcp://host:port[/path]`
    pub endpoint: String,
    pub policy: SecurityPolicy,
    pub mode: SecurityMode,
    pub identity: Identity,
    /// own/ (our application instance certificate, created at first start), private/,
    /// trusted/ (server certificates we trust) and rejected/.
    pub pki_dir: PathBuf,
}

#[derive(Debug, Clone)]
pub enum Identity {
    Anonymous,
    UserName { user: String, password: Secret },
    X509 { cert: PathBuf, key: PathBuf },
}

/// A secret kept out of the config file; read at every connect, so a rotated password is
/// picked up without a restart.
#[derive(Debug, Clone)]
pub enum Secret {
    File(PathBuf),
    Env(String),
    /// Given directly (command line prompt or tests); never from a config file.
    Value(String),
}

impl Secret {
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
                .map_err(|e| format!("cannot read the password file {}: {e}", p.display())),
            Secret::Env(var) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} (the password) is not set")),
            Secret::Value(v) => Ok(v.clone()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SubscriptionGroup {
    pub name: String,
    pub publishing_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct OpcUaNode {
    pub id: TagId,
    pub name: String,
    pub target: NodeTarget,
    /// Values of another type are reported bad: a counter's width decides its rollover.
    pub expect: Option<NodeType>,
    /// None: the server samples at the publishing interval.
    pub sampling_interval: Option<Duration>,
    pub queue_size: u32,
    pub discard_oldest: bool,
    pub deadband: Option<Deadband>,
    /// Read every poll interval instead of subscribing.
    pub poll: bool,
    /// Index into [`OpcUaDevice::groups`].
    pub group: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeTarget {
    Id(NodeAddress),
    /// Browse names from the Objects folder down.
    Path(Vec<BrowseStep>),
}

impl std::fmt::Display for NodeTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeTarget::Id(a) => write!(f, "{a}"),
            NodeTarget::Path(steps) => {
                for s in steps {
                    write!(f, "/{}:{}", s.namespace, s.name)?;
                }
                Ok(())
            }
        }
    }
}
