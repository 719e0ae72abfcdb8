use super::cell_path::CellPath;
use super::defaults;
pub use super::device::Device;
pub use super::own_keys::OwnKeys;
use crate::vocabulary::MachineState;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellFile {
    pub cell: CellPath,
    #[serde(default)]
    pub devices: Vec<Device>,
    #[serde(default)]
    pub signals: Signals,
    pub store: StoreConfig,
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub health: HealthConfig,
    #[serde(default)]
    pub orders: OrdersConfig,
    /// Ideal cycle times by material, for orders that do not carry their own.
    #[serde(default)]
    pub products: Vec<Product>,
    pub shifts: Option<ShiftsConfig>,
    /// Groups of tags published as process values (docs/VALUES.md).
    #[serde(default)]
    pub process_values: Vec<super::values::ProcessValueGroup>,
    /// A snapshot of tags per part made, for traceability (docs/ORDERS.md "Part records").
    pub part_record: Option<PartRecordConfig>,
    /// The cell as a Sparkplug B edge node (docs/SPARKPLUG.md).
    pub sparkplug: Option<super::sparkplug::SparkplugConfig>,
    /// Who may send which commands, and how old they may be (docs/COMMANDS.md).
    #[serde(default)]
    pub commands: super::commands::CommandsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartRecordConfig {
    /// `good_count` or `scrap_count` (a step of that counter), or a bool tag (its rising edge).
    pub trigger: String,
    /// A tag carrying the part's serial number (integer or string).
    pub serial_tag: Option<String>,
    /// The tags whose last values the record carries.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrdersConfig {
    /// End the running order (Completed) when its good count reaches the target quantity.
    #[serde(default)]
    pub auto_complete: bool,
    /// How often OEE so far is published for the running order and the shift.
    #[serde(default = "defaults::oee_interval_s")]
    pub oee_interval_s: u64,
    #[serde(default)]
    pub write_back: WriteBackConfig,
    /// Tags whose readings while an order runs are summarized in its job response (count, min,
    /// max, mean, standard deviation).
    #[serde(default)]
    pub statistics: Vec<String>,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        OrdersConfig {
            auto_complete: false,
            oee_interval_s: defaults::oee_interval_s(),
            write_back: WriteBackConfig::default(),
            statistics: Vec::new(),
        }
    }
}

/// Tags the active order is written into (each must be a writable integer tag).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackConfig {
    /// The active order's number (its id, if the id is digits; 0 otherwise and with no order).
    pub order_number_tag: Option<String>,
    /// The active order's target quantity (0 with no order).
    pub target_tag: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub material: String,
    pub ideal_cycle_s: f64,
}

/// The shift calendar, in the plant's local time.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftsConfig {
    /// An IANA zone like "Europe/Berlin"; default: the PC's own.
    pub timezone: Option<String>,
    pub shift: Vec<ShiftConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftConfig {
    pub name: String,
    /// "06:00"; a shift whose end is not after its start runs past midnight.
    pub start: String,
    pub end: String,
}

/// PLC signals that start and end orders at the machine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderSignals {
    /// A bool whose rising edge starts the order named by `number_tag`.
    pub start_tag: String,
    /// An integer holding the order number (the order id, as digits).
    pub number_tag: String,
    /// A bool whose rising edge ends (Stop) the running order.
    pub end_tag: Option<String>,
}

/// Which tags mean what to the cell.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signals {
    pub good_count: Option<CounterSignal>,
    pub scrap_count: Option<CounterSignal>,
    pub machine_state: Option<StateSignal>,
    pub orders: Option<OrderSignals>,
    pub material: Option<MaterialSignal>,
}

/// The material lot loaded at the machine, as the PLC holds it: every part made consumes
/// `quantity_per_part` of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaterialSignal {
    /// The loaded lot's number (an integer or string tag).
    pub lot_tag: String,
    pub material: String,
    pub quantity_per_part: f64,
    #[serde(default = "defaults::pieces")]
    pub unit: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CounterSignal {
    pub tag: String,
    /// A step back of at most this many counts past the top of the counter's range is taken as
    /// a rollover; any other step back is a reset of the counter (PLC restart, operator reset).
    #[serde(default = "defaults::rollover_window")]
    pub rollover_window: u64,
    /// A reading below the last one (or a jump past `max_step`) is only believed once it has
    /// lasted this many good readings and `confirm_ms`; one that comes back sooner was a
    /// glitch (a gateway answering 0 for a moment). See docs/EVENTS.md "How counts are derived".
    #[serde(default = "defaults::confirm_readings")]
    pub confirm_readings: u32,
    #[serde(default = "defaults::confirm_ms")]
    pub confirm_ms: u64,
    /// A step back of at most this many counts (to above zero) is the PLC taking parts back:
    /// published at once as a negative `count_correction`.
    #[serde(default = "defaults::max_correction")]
    pub max_correction: u64,
    /// The most parts one reading may add; a larger jump is held like a drop. Default: no limit.
    pub max_step: Option<u64>,
    /// A tag that tells a reset of this counter for certain: a bool the PLC raises when it
    /// resets the counter, or a count of resets it keeps. Its rise (or increase) makes the
    /// counter's drop, or its next reading, a restart (docs/EVENTS.md rule 7).
    pub reset_tag: Option<String>,
    /// Scrap counter only: a tag holding the PLC's reject code for the parts it counts, read
    /// with the counter (docs/ORDERS.md "Scrap reasons").
    pub reason_tag: Option<String>,
    /// Reject code (as a TOML key) to scrap reason.
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
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
    /// Fault code (as a TOML key) to the downtime reason a stop with that code gets.
    #[serde(default)]
    pub reasons: BTreeMap<String, String>,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    /// After commits to the store have failed for this long without one succeeding (a full
    /// disk, an I/O error, a read-only remount), the runtime stops feeding systemd's watchdog,
    /// which restarts the service. 0: never.
    #[serde(default = "defaults::restart_after_failing_commits_s")]
    pub restart_after_failing_commits_s: u64,
    /// Most process values held undelivered; over it the oldest value batches are dropped
    /// (counted, alarmed). Production events are never dropped.
    #[serde(default = "defaults::values_max_count")]
    pub values_max_count: u64,
    /// Undelivered process values older than this are dropped as stale.
    #[serde(default = "defaults::values_retention_hours")]
    pub values_retention_hours: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:port` or `mqtts://host:port`.
    #[serde(default)]
    pub url: Option<String>,
    /// Instead of `url`: brokers in order of preference (an active and a standby, or the nodes
    /// of a cluster; docs/RELIABILITY.md "Brokers that fail over"), each a url (with this
    /// section's TLS and login settings) or a table with its own (config/broker.rs).
    #[serde(default)]
    pub urls: Option<Vec<super::broker::BrokerEntry>>,
    /// With `urls`: how long a lost broker has to come back before the cell moves to the next.
    #[serde(default = "defaults::failover_after_s")]
    pub failover_after_s: u64,
    /// With `urls`: go back to the first broker once it answers again.
    #[serde(default = "defaults::prefer_primary")]
    pub prefer_primary: bool,
    /// With `urls`: on a move to another broker after a loss, the events the lost broker
    /// acknowledged in this many seconds before it went are published again (0: none).
    #[serde(default = "defaults::resend_window_s")]
    pub resend_window_s: u64,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    /// The name of an environment variable holding the password.
    pub password_env: Option<String>,
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
    /// `"5"` (default) or `"3.1.1"` for a broker that does not speak MQTT 5. Only MQTT 5 lets
    /// the broker say it refused a publish; under 3.1.1 a refused publish looks delivered.
    #[serde(default)]
    pub protocol_version: MqttVersion,
    /// MQTT 5: how long the broker keeps the cell's session (its subscription to commands and
    /// the commands queued for it) after the connection drops. 3.1.1 sessions never expire.
    #[serde(default = "defaults::session_expiry_s")]
    pub session_expiry_s: u32,
}

/// The MQTT protocol version the forwarder speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum MqttVersion {
    #[default]
    #[serde(rename = "5")]
    V5,
    #[serde(rename = "3.1.1")]
    V311,
}

/// The health and metrics endpoint (`/health`, `/metrics`), for the plant's monitoring.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default = "HealthConfig::default_enabled")]
    pub enabled: bool,
    /// `address:port`; loopback by default, so only the PC itself (or a local agent) can ask.
    #[serde(default = "HealthConfig::default_listen")]
    pub listen: String,
    /// `/health` answers 503 when the oldest undelivered event is older than this.
    #[serde(default = "HealthConfig::default_max_undelivered_age_s")]
    pub max_undelivered_age_s: u64,
    /// The status page and `/api/v1` ask for this token (the file's first line) when `listen`
    /// is not a loopback address; without it they refuse. `/health` and `/metrics` stay open.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl HealthConfig {
    fn default_enabled() -> bool {
        true
    }
    fn default_listen() -> String {
        "127.0.0.1:9464".into()
    }
    fn default_max_undelivered_age_s() -> u64 {
        300
    }
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: Self::default_enabled(),
            listen: Self::default_listen(),
            max_undelivered_age_s: Self::default_max_undelivered_age_s(),
            token_file: None,
        }
    }
}
