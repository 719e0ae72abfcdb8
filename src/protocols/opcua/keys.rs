//! The keys of an OPC UA device (`protocol = "opcua"`) beyond the common ones; see
//! docs/OPCUA.md.

use super::node::{NodeConfig, SubscriptionConfig};
use crate::config::Device;
use mes_edge_drivers::opcua::{SecurityMode, SecurityPolicy};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcUaKeys {
    /// `opc.tcp://host:port[/path]`
    pub endpoint: Option<String>,
    /// Default None.
    pub security_policy: Option<SecurityPolicy>,
    /// Default: None with policy None, else SignAndEncrypt.
    pub security_mode: Option<SecurityMode>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// X.509 user identity: certificate (DER or PEM) and private key (PEM).
    pub user_cert_file: Option<PathBuf>,
    pub user_key_file: Option<PathBuf>,
    /// Default: a `pki` folder next to the store file.
    pub pki_dir: Option<PathBuf>,
    /// Publishing interval of the device's default subscription; default 500.
    pub publishing_interval_ms: Option<u64>,
    /// How often the session checks that the server is alive; default 5000.
    pub keep_alive_ms: Option<u64>,
    /// More subscriptions, each with its own publishing interval; nodes pick one by name.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
}

impl OpcUaKeys {
    /// The OPC UA keys of `dev`, if it is an OPC UA device.
    pub fn of(dev: &Device) -> Option<&OpcUaKeys> {
        dev.own.get()
    }

    /// The nodes of `dev`: none if it is not an OPC UA device.
    pub fn nodes(dev: &Device) -> &[NodeConfig] {
        OpcUaKeys::of(dev).map_or(&[], |k| &k.nodes)
    }
}

#[cfg(test)]
mod tests {
    use mes_edge_drivers::opcua::{Identity, Secret};

    #[test]
    fn relative_files_are_taken_from_the_config_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cell.toml");
        let text = format!(
            "{}{}",
            crate::config::TEST_SECTIONS,
            r#"
[[devices]]
name = "srv"
protocol = "opcua"
endpoint = "opc.tcp://127.0.0.1:4840"
security_policy = "Basic256Sha256"
username = "press"
password_file = "secrets/opcua.txt"
pki_dir = "pki-of-press"
"#
        );
        std::fs::write(&path, text).unwrap();
        let config = crate::config::load(&path).unwrap();
        let device = config.opcua_devices().next().unwrap();
        assert_eq!(device.connection.pki_dir, dir.path().join("pki-of-press"));
        let Identity::UserName { password, .. } = &device.connection.identity else {
            panic!(
                "expected a user name identity, got {:?}",
                device.connection.identity
            );
        };
        let Secret::File(file) = password else {
            panic!("expected the password from a file, got {password:?}");
        };
        assert_eq!(file, &dir.path().join("secrets/opcua.txt"));
    }
}
