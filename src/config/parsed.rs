//! What the checks parse on their way through the file, handed to [`super::CellConfig`]: the
//! general checks and each protocol's folder fill it in, the resolution reads it.

use super::Broker;
use crate::vocabulary::MachineState;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use mes_edge_drivers::opcua::NodeTarget;
use std::collections::HashMap;

/// What the checks parsed on their way through the file.
#[derive(Default)]
pub(crate) struct Parsed {
    /// `[mqtt] url`, or every one of `urls` in order, if they parsed, with their settings.
    pub brokers: Vec<Broker>,
    pub zone: Option<TimeZone>,
    /// (name, start, end) of each shift whose times parsed.
    pub shifts: Vec<(String, Time, Time)>,
    pub states: HashMap<i64, MachineState>,
    pub reasons: HashMap<i64, String>,
    pub reject_reasons: HashMap<i64, String>,
    /// Per (device, node) index: where the node is on its server.
    pub node_targets: HashMap<(usize, usize), NodeTarget>,
    pub values: super::values::ValuePlan,
}
