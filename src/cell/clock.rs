//! The cell's time: the engine loop's clock and its steps, and the clocks of the devices.
//! Durations are accounted on the runtime's clock only; a device's timestamps are information,
//! and a device whose clock is off is warned about, never believed.

use super::Engine;
use crate::event::{EventBody, NewEvent};
use mes_edge_drivers::{DeviceId, Sample};

/// A step back of the clock larger than this, seen at start (no monotonic reference across a
/// restart), is a clock step, not a late reading.
pub(super) const CLOCK_STEP_MS: i64 = 60_000;

impl Engine {
    /// The engine loop's clock, read once per turn after any step of it was corrected for (see
    /// [`Engine::clock_stepped`]). A reading stamped before a step and applied after it can
    /// then neither credit the step nor restart the accounting in the old clock's time.
    pub fn set_now(&mut self, now_ms: i64) {
        self.now = Some(now_ms);
    }

    /// At start, from a committed state: a clock found more than a minute behind the last
    /// accounted time (set back while the runtime was down) restarts the accounting at `now_ms`
    /// rather than crediting nothing until it catches up. The time between is unobserved
    /// (see [`Engine::unobserved_until`]).
    pub fn resume_at(&mut self, now_ms: i64, out: &mut Vec<NewEvent>) {
        let behind = self.state.accounted_to - now_ms;
        if self.state.accounted_to != 0 && behind > CLOCK_STEP_MS {
            self.clock_stepped(-behind);
        }
        self.unobserved_until(now_ms, out);
    }

    /// The runtime's clock stepped by `step_ms` (NTP, an operator) between two turns of the
    /// engine loop, as measured against the monotonic clock. Everything durations are measured
    /// from moves with it, so a step forward is never credited to the current state and a step
    /// back eats no time: durations follow the monotonic clock.
    pub fn clock_stepped(&mut self, step_ms: i64) {
        let st = &mut self.state;
        for t in [
            &mut st.accounted_to,
            &mut st.state_since,
            &mut st.last_oee_ms,
        ] {
            if *t != 0 {
                *t = t.saturating_add(step_ms);
            }
        }
        st.good.clock_stepped(step_ms);
        st.scrap.clock_stepped(step_ms);
    }

    /// Warns once when a device's clock leaves its tolerance, and once when it is back.
    pub(super) fn check_clock(&mut self, device: DeviceId, s: &Sample, out: &mut Vec<NewEvent>) {
        let Some(source_ts) = s.source_ts_ms else {
            return;
        };
        let skew = source_ts - s.ts_ms;
        let tolerance = self
            .model
            .clock_tolerance_ms
            .get(device.0 as usize)
            .copied()
            .unwrap_or(i64::MAX);
        let warned = self
            .state
            .clock_skewed
            .contains(self.model.device_name(device));
        // Back within half the tolerance to clear: a clock hovering at the limit does not
        // flap.
        let within = if warned {
            skew.abs() <= tolerance / 2
        } else {
            skew.abs() <= tolerance
        };
        if within != warned {
            return;
        }
        // Only a change of side gets this far: the name is copied once per warning.
        let name = self.model.device_name(device).to_string();
        if within {
            self.state.clock_skewed.remove(&name);
            tracing::info!(device = %name, skew_ms = skew, "device clock back within tolerance");
        } else {
            self.state.clock_skewed.insert(name.clone());
            tracing::warn!(device = %name, skew_ms = skew, tolerance_ms = tolerance, "device clock is off; time is accounted on the runtime's clock");
        }
        let body = EventBody::ClockSkew {
            device: name.clone(),
            skew_ms: skew,
            tolerance_ms: tolerance,
            within_tolerance: within,
        };
        out.push(NewEvent::new(s.ts_ms, vec![name], body));
    }
}
