//! What the general keys of a cell config are when the file leaves them out (a protocol's own
//! keys have theirs in its folder).

use crate::vocabulary::MachineState;

pub fn pieces() -> String {
    "pcs".into()
}
pub fn timeout_ms() -> u64 {
    1000
}
pub fn poll_interval_ms() -> u64 {
    500
}
pub fn rollover_window() -> u64 {
    1000
}
pub fn clock_tolerance_ms() -> u64 {
    10_000
}
pub fn confirm_readings() -> u32 {
    3
}
pub fn confirm_ms() -> u64 {
    5_000
}
pub fn max_correction() -> u64 {
    5
}
pub fn unmapped_state() -> MachineState {
    MachineState::Unknown
}
pub fn retention_hours() -> u64 {
    168
}
pub fn restart_after_failing_commits_s() -> u64 {
    60
}
pub fn max_size_mb() -> u64 {
    1024
}
pub fn values_max_count() -> u64 {
    1_000_000
}
pub fn values_retention_hours() -> u64 {
    24
}
pub fn oee_interval_s() -> u64 {
    60
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
pub fn session_expiry_s() -> u32 {
    86_400
}
pub fn failover_after_s() -> u64 {
    10
}
pub fn prefer_primary() -> bool {
    true
}
pub fn resend_window_s() -> u64 {
    60
}
