//! What the Sparkplug sink runs with: its MQTT session's options, its topics, its devices and
//! the engine's command door for DCMD writes.

use super::devices::Devices;
use super::servers::Servers;
use super::topics::Topics;
use crate::cell::CommandIn;
use rumqttc::QoS;
use tokio::sync::mpsc;

/// The engine's command door.
pub type Writes = mpsc::Sender<CommandIn>;

/// The cursor's name in the store.
pub const SINK: &str = "sparkplug";

pub struct SparkplugSettings {
    /// The MQTT servers, one session at a time; each server's options are without a will: each
    /// connect sets its own NDEATH.
    pub mqtt: Servers,
    pub topics: Topics,
    pub primary_host: Option<String>,
    /// Births and data.
    pub qos: QoS,
    /// Sparkplug only (`json = false`): the session stands in for the absent JSON forwarder in
    /// /health and to the watchdog.
    pub only_output: bool,
    /// Messages awaiting their acknowledgement at once.
    pub window: usize,
    pub devices: Devices,
    /// The engine's command door, where DCMD writes go as write_tag commands; None: refused.
    pub writes: Option<Writes>,
    /// What `/health` and `/metrics` show of the session.
    pub probe: crate::ops::SparkplugProbe,
}
