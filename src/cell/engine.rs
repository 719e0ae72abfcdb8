use super::{CellModel, Counter, MachineState, Role, Step};
use crate::event::{CounterKind, EventBody, NewEvent};
use mes_edge_drivers::{DeviceEvent, DeviceStatus, Quality, Sample};
use serde::{Deserialize, Serialize};

/// Everything events are derived from. It is committed with the events it produced, so after a
/// crash the engine resumes exactly where the committed events left off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CellState {
    pub good: Counter,
    pub scrap: Counter,
    pub machine_state: MachineState,
    pub state_since: i64,
    pub state_word: Option<i64>,
    pub fault_code: Option<i64>,
    /// Parts counted since the store was created, for operators and tests.
    pub good_total: u64,
    pub scrap_total: u64,
}

pub struct Engine {
    pub model: CellModel,
    pub state: CellState,
}

impl Engine {
    pub fn new(model: CellModel, state: CellState) -> Self {
        Engine { model, state }
    }

    /// Applies one driver event, appending the production events it causes.
    pub fn apply(&mut self, ev: &DeviceEvent, out: &mut Vec<NewEvent>) {
        match ev {
            DeviceEvent::Status { device, status, ts_ms } => {
                let (online, reason) = match status {
                    DeviceStatus::Online => (true, None),
                    DeviceStatus::Offline { reason } => (false, Some(reason.clone())),
                };
                let device = self.model.device_name(*device).to_string();
                out.push(NewEvent::new(*ts_ms, vec![device.clone()], EventBody::DeviceStatus { device, online, reason }));
            }
            DeviceEvent::Samples { samples, .. } => {
                // The fault code first, so a state change in the same read reports the new code.
                let (faults, rest): (Vec<&Sample>, Vec<&Sample>) =
                    samples.iter().partition(|s| self.model.roles.get(&s.tag) == Some(&Role::FaultCode));
                for s in faults.into_iter().chain(rest) {
                    self.apply_sample(s, out);
                }
            }
        }
    }

    fn apply_sample(&mut self, s: &Sample, out: &mut Vec<NewEvent>) {
        let Some(&role) = self.model.roles.get(&s.tag) else { return };
        let good = s.quality == Quality::Good;
        match role {
            // A bad reading says nothing about parts: the counter keeps its baseline, and the next
            // good reading counts everything made in between.
            Role::Counter { kind, bits, rollover_window } => {
                if let (true, Some(raw)) = (good, s.value.and_then(|v| v.as_u64())) {
                    self.count(kind, raw, bits, rollover_window, s, out);
                }
            }
            Role::FaultCode => {
                self.state.fault_code = if good { s.value.map(|v| v.as_f64() as i64) } else { None };
            }
            Role::StateWord => {
                let word = if good { s.value.map(|v| v.as_f64() as i64) } else { None };
                let state = match word {
                    None => MachineState::Unknown,
                    Some(w) => self.model.states.get(&w).copied().unwrap_or(self.model.unmapped),
                };
                self.state.state_word = word;
                if state != self.state.machine_state {
                    let previous = self.state.machine_state;
                    let since = self.state.state_since;
                    self.state.machine_state = state;
                    self.state.state_since = s.ts_ms;
                    let body = EventBody::MachineState {
                        state,
                        previous,
                        previous_since: since,
                        // A clock stepped back must not give a negative duration.
                        previous_duration_ms: if since == 0 { 0 } else { (s.ts_ms - since).max(0) },
                        state_word: word,
                        fault_code: self.state.fault_code,
                    };
                    out.push(NewEvent::new(s.ts_ms, vec![self.model.tag_name(s.tag).to_string()], body));
                }
            }
        }
    }

    fn count(&mut self, kind: CounterKind, raw: u64, bits: u32, window: u64, s: &Sample, out: &mut Vec<NewEvent>) {
        let counter = match kind {
            CounterKind::Good => &mut self.state.good,
            CounterKind::Scrap => &mut self.state.scrap,
        };
        let previous = counter.last;
        let source = || vec![self.model.tag_name(s.tag).to_string()];
        match counter.observe(raw, bits, window) {
            Step::Baseline => tracing::info!(counter = ?kind, raw, "counter baseline"),
            Step::Unchanged => {}
            Step::Parts { quantity, rolled_over } => {
                match kind {
                    CounterKind::Good => self.state.good_total += quantity,
                    CounterKind::Scrap => self.state.scrap_total += quantity,
                }
                let body = EventBody::PartCount {
                    counter: kind,
                    quantity,
                    counter_value: raw,
                    previous_value: previous.unwrap_or(0),
                    rolled_over,
                };
                out.push(NewEvent::new(s.ts_ms, source(), body));
            }
            Step::Reset { from } => {
                tracing::warn!(counter = ?kind, from, to = raw, "counter went back: reset, nothing counted");
                out.push(NewEvent::new(s.ts_ms, source(), EventBody::CounterReset { counter: kind, from, to: raw }));
            }
        }
    }
}
