//! A `[[devices]]` entry of the cell config, as the file writes it: one flat table whatever
//! the protocol (serde's `flatten` and internally tagged enums lose `deny_unknown_fields` and
//! the line and column of errors). What each protocol's keys mean is decided in its folder
//! (`modbus/`, `opcua/`, `s7/`), which also refuses its keys on another protocol's device.

use super::types::{defaults, NodeConfig, SubscriptionConfig, TagConfig};
use mes_edge_drivers::opcua::{SecurityMode, SecurityPolicy};
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    ModbusTcp,
    /// Modbus RTU over a serial port (`serial_port`, `baud_rate`, ...).
    ModbusRtu,
    /// Modbus RTU frames over TCP (serial-to-Ethernet gateways in transparent mode).
    ModbusRtuOverTcp,
    Opcua,
    /// Siemens S7 over S7comm (PUT/GET); see docs/S7.md.
    S7,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    pub name: String,
    pub protocol: Protocol,
    pub host: Option<String>,
    /// Default: the protocol's own (502 for Modbus, 102 for S7); see [`Device::port`].
    #[serde(rename = "port")]
    pub port_set: Option<u16>,
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
    /// Largest coil or discrete input read in bits (protocol ceiling 2000).
    #[serde(default = "defaults::max_bits")]
    pub max_bits: u16,
    /// Modbus: further attempts after a request got no answer or a broken reply.
    #[serde(default = "defaults::retries")]
    pub retries: u8,
    /// Modbus: least time between the end of one request and the next to this device.
    #[serde(default)]
    pub request_gap_ms: u64,
    /// Modbus: FC 5 / FC 6 for one coil or register; false sends FC 15 / FC 16 for those too.
    #[serde(default = "defaults::yes")]
    pub single_writes: bool,
    // Modbus RTU (`protocol = "modbus-rtu"`); devices on one port share its settings.
    /// e.g. `/dev/ttyUSB0`.
    pub serial_port: Option<String>,
    /// Default 19200.
    pub baud_rate: Option<u32>,
    /// 7 or 8; default 8.
    pub data_bits: Option<u8>,
    /// Default even (the Modbus serial line default).
    pub parity: Option<mes_edge_drivers::modbus::Parity>,
    /// 1 or 2; default 1.
    pub stop_bits: Option<u8>,
    /// Silence before each request; default 3.5 characters at the baud rate (1750 µs above 19200).
    pub inter_frame_delay_us: Option<u64>,
    #[serde(default)]
    pub tags: Vec<TagConfig>,
    // OPC UA (`protocol = "opcua"`); see docs/OPCUA.md.
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
    /// A source timestamp (OPC UA) further than this from the runtime's clock raises a
    /// `clock_skew` warning. Time is always accounted on the runtime's clock.
    #[serde(default = "defaults::clock_tolerance_ms")]
    pub clock_tolerance_ms: u64,
    /// Optional tags of this device that tell its restarts to the counter rules (docs/EVENTS.md
    /// rule 7): a count that grows while the PLC runs (going back is a restart), and a count of
    /// its restarts (going up is one). Unscaled integers.
    pub uptime_tag: Option<String>,
    pub restart_count_tag: Option<String>,
    /// More subscriptions, each with its own publishing interval; nodes pick one by name.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionConfig>,
    #[serde(default)]
    pub nodes: Vec<NodeConfig>,
    // S7 (`protocol = "s7"`); see docs/S7.md.
    /// Rack and slot of the CPU (default 0 and 1), or the TSAPs instead.
    pub rack: Option<u8>,
    pub slot: Option<u8>,
    pub local_tsap: Option<u16>,
    pub remote_tsap: Option<u16>,
    /// The PDU size offered to the CPU (default 960; the CPU answers with what it accepts).
    pub pdu_size: Option<u16>,
    #[serde(default)]
    pub s7_tags: Vec<super::s7::tag::S7TagConfig>,
}
