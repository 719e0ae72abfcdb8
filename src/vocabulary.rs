//! The ground floor: the words every part of the runtime shares — what a machine is doing,
//! which counter a part came from, which rule counted it. Everything imports these from here;
//! this imports nothing of the runtime.

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
    /// The runtime was not running (or lost its record of the time with an uncommitted turn):
    /// nobody looked. Never a state a PLC's word maps to; neither running nor down, and not in
    /// OEE's planned busy time (docs/ORDERS.md).
    Unobserved,
}

impl MachineState {
    /// States in which the cell is not producing: their time is downtime, with a reason.
    /// Unobserved time is not: nothing says the cell was not producing.
    pub fn is_stop(self) -> bool {
        !matches!(self, MachineState::Running | MachineState::Unobserved)
    }
}

/// Which of the cell's two part counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CounterKind {
    Good,
    Scrap,
}

/// Which rule decided a reading that did not simply count up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Crossed the top of its range by at most `rollover_window` counts.
    Rollover,
    /// Crossed the top of its range after being unread for a while: the parts this implies
    /// match the cell's recent rate over that time better than a restart from zero does.
    RolloverWhileUnread,
    /// Restarted from zero (the first reading after the drop was within `rollover_window`
    /// of zero): everything since zero is counted.
    RestartedFromZero,
    /// Jumped back to a value not near zero: only the parts seen after the jump are counted.
    JumpedBack,
    /// Jumped forward by more than `max_step`, and stayed: the jump itself is not counted.
    ImplausibleJump,
    /// The signal now reads another tag (device, address, type, byte order or node id): a new
    /// baseline, nothing counted across the two tags.
    TagChanged,
}

/// What told a rule that a drop was a restart, besides the counter's own readings
/// (docs/EVENTS.md "How counts are derived", rule 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// The counter's own readings, nothing else.
    Readings,
    /// Another counter of the same device restarted from zero at the same moment.
    SiblingRestarted,
    /// The device went offline and came back between the counter's last reading and the drop.
    SessionRestarted,
    /// The counter's `reset_tag` rose (a bool) or went up (a count of resets).
    ResetTag,
    /// The device's server reported another start time (OPC UA `ServerStatus/StartTime`) since
    /// the counter's last reading: it restarted, also if the runtime was down meanwhile.
    ServerRestarted,
    /// The device's `uptime_tag` went back since the counter's last reading.
    UptimeWentBack,
    /// The device's `restart_count_tag` went up since the counter's last reading.
    RestartCountRose,
}

/// Which of a device's tags tells its restarts (`[[devices]] uptime_tag`, `restart_count_tag`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartSign {
    /// Grows while the device runs: going back is a restart.
    Uptime,
    /// The device's own count of its restarts: going up is one.
    RestartCount,
}
