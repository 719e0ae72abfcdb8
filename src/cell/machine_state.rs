use serde::{Deserialize, Serialize};

/// What the cell is doing, in the categories OEE's time model needs (ISO 22400-2): each maps to
/// one of running, idle, a stop with a cause, or unknown while the cell cannot be seen.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum MachineState {
    Running,
    Idle,
    /// Waiting for material from upstream.
    Starved,
    /// Cannot hand parts on downstream.
    Blocked,
    /// Unplanned stop: a fault, a jam.
    Down,
    PlannedStop,
    /// Setup or changeover.
    Setup,
    /// The state word cannot be read (device offline, bad quality) or is not in the map.
    #[default]
    Unknown,
}

impl MachineState {
    /// States in which the cell is not producing: their time is downtime, with a reason.
    pub fn is_stop(self) -> bool {
        !matches!(self, MachineState::Running)
    }
}
