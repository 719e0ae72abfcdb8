use crate::cell::MachineState;
use mes_edge_drivers::modbus::{ByteOrder, DataType, Table};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellConfig {
    pub cell: CellPath,
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub signals: Signals,
    pub store: StoreConfig,
    pub mqtt: MqttConfig,
}

/// Where the cell sits in the ISA-95 equipment hierarchy; it names the cell's MQTT topics.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CellPath {
    pub enterprise: String,
    pub site: String,
    pub area: String,
    pub line: String,
    pub cell: String,
}

impl CellPath {
    pub fn levels(&self) -> [&str; 5] {
        [
            &self.enterprise,
            &self.site,
            &self.area,
            &self.line,
            &self.cell,
        ]
    }

    /// `enterprise/site/area/line/cell`.
    pub fn joined(&self) -> String {
        self.levels().join("/")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    ModbusTcp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub name: String,
    pub protocol: Protocol,
    pub host: Option<String>,
    #[serde(default = "defaults::modbus_port")]
    pub port: u16,
    #[serde(default = "defaults::unit_id")]
    pub unit_id: u8,
    #[serde(default = "defaults::timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "defaults::poll_interval_ms")]
    pub poll_interval_ms: u64,
    /// Largest run of unused registers read to save a request.
    #[serde(default = "defaults::max_gap")]
    pub max_gap: u16,
    /// Largest read request in registers; some PLCs take fewer than the protocol's 125.
    #[serde(default = "defaults::max_registers")]
    pub max_registers: u16,
    #[serde(default)]
    pub tags: Vec<TagConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagConfig {
    pub name: String,
    pub table: Table,
    pub address: u16,
    #[serde(rename = "type")]
    pub data_type: DataType,
    #[serde(default)]
    pub order: ByteOrder,
    pub bit: Option<u8>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
}

/// Which tags mean what to the cell.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signals {
    pub good_count: Option<CounterSignal>,
    pub scrap_count: Option<CounterSignal>,
    pub machine_state: Option<StateSignal>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSignal {
    pub tag: String,
    /// A step back of at most this many counts past the top of the counter's range is taken as
    /// a rollover; any other step back is a reset of the counter (PLC restart, operator reset).
    #[serde(default = "defaults::rollover_window")]
    pub rollover_window: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSignal {
    pub tag: String,
    /// A tag holding the PLC's fault or reason code, reported with each state change.
    pub fault_tag: Option<String>,
    /// State word value (as a TOML key, e.g. `2 = "down"`) to machine state.
    pub states: BTreeMap<String, MachineState>,
    /// What a word missing from `states` means.
    #[serde(default = "defaults::unmapped_state")]
    pub unmapped: MachineState,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: a committed event survives a power cut.
    #[default]
    Full,
    /// fsync at WAL checkpoints: a power cut may lose the last commits, a process crash never.
    Normal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub synchronous: Synchronous,
    /// How long delivered events are kept for `outbox tail` and re-sends on MOM's request.
    #[serde(default = "defaults::retention_hours")]
    pub retention_hours: u64,
    #[serde(default = "defaults::max_size_mb")]
    pub max_size_mb: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: String,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    #[serde(default = "defaults::topic_root")]
    pub topic_root: String,
    #[serde(default = "defaults::qos")]
    pub qos: u8,
    #[serde(default = "defaults::keep_alive_s")]
    pub keep_alive_s: u64,
    /// Publishes awaiting their PUBACK at once.
    #[serde(default = "defaults::inflight")]
    pub inflight: u16,
}

mod defaults {
    use crate::cell::MachineState;
    pub fn modbus_port() -> u16 {
        502
    }
    pub fn unit_id() -> u8 {
        1
    }
    pub fn timeout_ms() -> u64 {
        1000
    }
    pub fn poll_interval_ms() -> u64 {
        500
    }
    pub fn max_gap() -> u16 {
        16
    }
    pub fn max_registers() -> u16 {
        125
    }
    pub fn rollover_window() -> u64 {
        1000
    }
    pub fn unmapped_state() -> MachineState {
        MachineState::Unknown
    }
    pub fn retention_hours() -> u64 {
        168
    }
    pub fn max_size_mb() -> u64 {
        1024
    }
    pub fn topic_root() -> String {
        "mes".into()
    }
    pub fn qos() -> u8 {
        1
    }
    pub fn keep_alive_s() -> u64 {
        15
    }
    pub fn inflight() -> u16 {
        100
    }
}
