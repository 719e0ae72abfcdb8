use super::{CellModel, Counter, DeviceSession, MachineState, Role};
use crate::event::{CounterKind, EventBody, NewEvent};
use crate::orders::{OrderBook, ShiftAccount};
use mes_edge_drivers::{DeviceEvent, DeviceStatus, Quality, Sample};
use serde::{Deserialize, Serialize};

/// Everything events are derived from. It is committed with the events it produced, so after a
/// crash the engine resumes exactly where the committed events left off: same counters, same
/// orders in the same states with the same counts, same time accounts.
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
    pub orders: OrderBook,
    pub shift: Option<ShiftAccount>,
    /// Machine-state time has been attributed to orders and shifts up to here, UTC ms.
    pub accounted_to: i64,
    /// The stop the cell is in, and the one before: reasons can be attached to either.
    pub stop: Option<Stop>,
    pub last_stop: Option<Stop>,
    pub last_oee_ms: i64,
    /// Last readings of the PLC's order signals, so that edges survive a restart.
    pub order_start_bit: Option<bool>,
    pub order_end_bit: Option<bool>,
    pub order_number: Option<i64>,
    /// Devices whose clock is off by more than their tolerance (warned once).
    pub clock_skewed: std::collections::BTreeSet<String>,
    /// The PLC's last reject code (read with the scrap counter).
    pub reject_code: Option<i64>,
    /// The material lot loaded at the machine, and what the running order used of it so far.
    pub loaded_lot: Option<String>,
    pub lot_in_use: Option<LotInUse>,
    /// Last reading of the part-record trigger bit, so that edges survive a restart.
    pub part_trigger_bit: Option<bool>,
    /// The last tag write's number: each accepted write gets the next.
    pub last_write_id: u64,
    /// Accepted writes whose driver has not answered yet, by number.
    pub pending_writes: std::collections::BTreeMap<u64, super::write::PendingWrite>,
    /// Each device's connection session, by name: a counter drop across a new session is a
    /// restart (docs/EVENTS.md, rule 7).
    pub sessions: std::collections::BTreeMap<String, DeviceSession>,
}

/// The loaded lot's consumption by one order, not yet published.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotInUse {
    pub order_id: String,
    pub lot: String,
    pub quantity: f64,
}

impl CellState {
    pub fn counter(&mut self, kind: CounterKind) -> &mut Counter {
        match kind {
            CounterKind::Good => &mut self.good,
            CounterKind::Scrap => &mut self.scrap,
        }
    }
}

/// A stop interval, and the time credited to it so far (under its reason, or "unexplained"),
/// so that a reason given later can move that time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stop {
    pub state: MachineState,
    pub since: i64,
    pub until: Option<i64>,
    pub reason: Option<String>,
    pub order_id: Option<String>,
    pub order_ms: i64,
    pub shift_start: Option<i64>,
    pub shift_ms: i64,
}

pub struct Engine {
    pub model: CellModel,
    pub state: CellState,
    /// The engine loop's clock at this turn: no reading or command is credited time beyond it.
    /// None for an engine driven without the loop (tests), which then takes a step back of
    /// the clock of more than a minute as a new start of the accounting.
    pub(super) now: Option<i64>,
    /// Last readings of the tags part records carry (re-read at every start, so not state).
    pub(super) last_values: std::collections::HashMap<
        mes_edge_drivers::TagId,
        (Option<mes_edge_drivers::Value>, Quality),
    >,
    /// Tag writes accepted in this batch, for the runtime to hand to the drivers once it is
    /// committed (see [`Engine::take_writes`]).
    pub(super) writes: Vec<super::write::TagWrite>,
    /// What the order write-back last wrote (order id and target, or None for no order);
    /// None before the first write of this run, so that it writes what is active at start.
    pub(super) written_back: Option<Option<(String, u64)>>,
    /// Counters whose reading in the batch being applied drops by more than a correction:
    /// their siblings' step backs in the same read wait for their verdict.
    pub(super) dropping_now: Vec<CounterKind>,
}

impl Engine {
    pub fn new(model: CellModel, state: CellState) -> Self {
        Engine {
            model,
            state,
            now: None,
            last_values: Default::default(),
            writes: Vec::new(),
            written_back: None,
            dropping_now: Vec::new(),
        }
    }

    /// Applies one driver event, appending the production events it causes.
    pub fn apply(&mut self, ev: &DeviceEvent, out: &mut Vec<NewEvent>) {
        match ev {
            DeviceEvent::Status {
                device,
                status,
                ts_ms,
            } => {
                self.credit(*ts_ms);
                let (online, reason) = match status {
                    DeviceStatus::Online => (true, None),
                    DeviceStatus::Offline { reason } => (false, Some(reason.to_string())),
                    // Not an event of its own: it tells the counters' rules of a restart.
                    DeviceStatus::Started { at_ms } => {
                        self.session_of(device.0 as usize).server_started(*at_ms);
                        return;
                    }
                };
                self.session_of(device.0 as usize).status(online);
                let device = self.model.device_name(*device).to_string();
                let body = EventBody::DeviceStatus {
                    device: device.clone(),
                    online,
                    reason,
                };
                out.push(NewEvent::new(*ts_ms, vec![device], body));
            }
            DeviceEvent::Samples { device, samples } => {
                if let Some(first) = samples.first() {
                    self.credit(first.ts_ms);
                }
                for s in samples {
                    self.check_clock(*device, s, out);
                    self.remember_for_record(s);
                }
                // The fault code, the order number, the reject code and the lot first: a state
                // change, an order start or a part in the same read goes with them.
                let (first, rest): (Vec<&Sample>, Vec<&Sample>) = samples.iter().partition(|s| {
                    matches!(
                        self.model.roles.get(&s.tag),
                        Some(
                            Role::FaultCode
                                | Role::OrderNumber
                                | Role::RejectCode
                                | Role::MaterialLot
                                | Role::ResetTag(_)
                                | Role::Restarts(..)
                        )
                    )
                });
                self.dropping_now = self.drops_in(samples);
                for s in first.into_iter().chain(rest) {
                    self.apply_sample(s, out);
                }
                self.dropping_now.clear();
            }
        }
    }

    /// The counters whose good reading in `samples` is below their baseline by more than a
    /// correction (or to zero): drops whose verdict their siblings' step backs wait for.
    fn drops_in(&self, samples: &[Sample]) -> Vec<CounterKind> {
        samples
            .iter()
            .filter(|s| s.quality == Quality::Good)
            .filter_map(|s| match self.model.roles.get(&s.tag) {
                Some(Role::Counter(kind)) => Some((*kind, s.value?.as_u64()?)),
                _ => None,
            })
            .filter(|(kind, raw)| {
                let last = match kind {
                    CounterKind::Good => self.state.good.last,
                    CounterKind::Scrap => self.state.scrap.last,
                };
                let reach = self
                    .model
                    .counters
                    .get(kind)
                    .map_or(0, |r| r.max_correction);
                last.is_some_and(|last| *raw < last && (*raw == 0 || last - raw > reach))
            })
            .map(|(kind, _)| kind)
            .collect()
    }

    fn apply_sample(&mut self, s: &Sample, out: &mut Vec<NewEvent>) {
        self.observe_statistic(s);
        let Some(&role) = self.model.roles.get(&s.tag) else {
            return;
        };
        let good = s.quality == Quality::Good;
        let int = || s.value.filter(|_| good).map(|v| v.as_f64() as i64);
        match role {
            // A bad reading says nothing about parts: the counter keeps its baseline, and the next
            // good reading counts everything made in between.
            Role::Counter(kind) => match s.value.and_then(|v| v.as_u64()).filter(|_| good) {
                Some(raw) => self.count(kind, raw, s, out),
                // Unreadable: a reading held meanwhile is not confirmed by time.
                None => self.state.counter(kind).readable = false,
            },
            Role::ResetTag(kind) => {
                let mark = s.value.filter(|_| good).map(|v| v.as_f64().max(0.0) as u64);
                if let Some(mark) = mark {
                    self.reset_tag(kind, mark, s, out);
                }
            }
            Role::Restarts(device, sign) => {
                if let Some(v) = s.value.filter(|_| good).and_then(|v| v.as_u64()) {
                    self.session_of(device).restart_tag(sign, v);
                }
            }
            Role::FaultCode => self.state.fault_code = int(),
            Role::RejectCode => self.state.reject_code = int(),
            Role::PartTrigger => self.trigger_bit(s, out),
            Role::MaterialLot => self.lot_reading(s, out),
            Role::OrderNumber => {
                if let Some(n) = int() {
                    self.state.order_number = Some(n);
                }
            }
            Role::OrderStartBit | Role::OrderEndBit => {
                let Some(on) = s.value.filter(|_| good).map(|v| v.as_f64() != 0.0) else {
                    return;
                };
                let start = role == Role::OrderStartBit;
                let last = if start {
                    &mut self.state.order_start_bit
                } else {
                    &mut self.state.order_end_bit
                };
                // No edge on the first reading ever: a bit already set at commissioning is not a
                // command.
                let rising = *last == Some(false) && on;
                *last = Some(on);
                if rising {
                    self.plc_order_signal(start, s.ts_ms, out);
                }
            }
            Role::StateWord => self.state_word(int(), s, out),
        }
    }

    fn state_word(&mut self, word: Option<i64>, s: &Sample, out: &mut Vec<NewEvent>) {
        let state = match word {
            None => MachineState::Unknown,
            Some(w) => self
                .model
                .states
                .get(&w)
                .copied()
                .unwrap_or(self.model.unmapped),
        };
        self.state.state_word = word;
        if state == self.state.machine_state {
            return;
        }
        let previous = self.state.machine_state;
        let since = self.state.state_since;
        let reason = match word {
            None => Some("device offline".to_string()),
            Some(_) if state.is_stop() => self
                .state
                .fault_code
                .and_then(|c| self.model.orders.reasons.get(&c).cloned()),
            Some(_) => None,
        };
        let previous_reason = self.change_stop(state, reason.clone(), s.ts_ms);
        self.state.machine_state = state;
        self.state.state_since = s.ts_ms;
        let body = EventBody::MachineState {
            state,
            previous,
            previous_since: (since != 0).then_some(since),
            // A clock stepped back must not give a negative duration.
            previous_duration_ms: if since == 0 {
                0
            } else {
                (s.ts_ms - since).max(0)
            },
            state_word: word,
            fault_code: self.state.fault_code,
            reason,
            previous_reason,
        };
        out.push(NewEvent::new(
            s.ts_ms,
            vec![self.model.tag_name(s.tag).to_string()],
            body,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::{Role, Rule};
    use mes_edge_drivers::{DeviceId, TagId, Value};
    use std::collections::HashMap;

    const GOOD: TagId = TagId(0);
    const STATE: TagId = TagId(1);
    const FAULT: TagId = TagId(2);

    fn engine() -> Engine {
        let model = CellModel {
            cell_path: "a/b/c/d/e".into(),
            tag_names: vec!["good".into(), "state".into(), "fault".into()],
            device_names: vec!["plc".into()],
            roles: HashMap::from([
                (GOOD, Role::Counter(CounterKind::Good)),
                (STATE, Role::StateWord),
                (FAULT, Role::FaultCode),
            ]),
            counters: HashMap::from([(
                CounterKind::Good,
                crate::cell::CounterRules {
                    bits: 16,
                    rollover_window: 100,
                    confirm_readings: 2,
                    confirm_ms: 1_000,
                    max_correction: 5,
                    max_step: None,
                    tag: "plc/holding:0/u16/ABCD".into(),
                    device: 0,
                },
            )]),
            clock_tolerance_ms: vec![10_000],
            states: HashMap::from([
                (0, MachineState::Idle),
                (1, MachineState::Running),
                (2, MachineState::Down),
            ]),
            unmapped: MachineState::Unknown,
            orders: crate::cell::OrderModel {
                reasons: HashMap::new(),
                products: HashMap::new(),
                calendar: None,
                auto_complete: false,
                oee_interval_ms: 60_000,
            },
            reject: None,
            material: None,
            statistics: HashMap::new(),
            part_record: None,
            writable: HashMap::new(),
            policy: crate::cell::CommandPolicy::from_config(&Default::default()),
            write_back: [None, None],
            written_tags: Default::default(),
        };
        Engine::new(model, CellState::default())
    }

    fn samples(list: &[(TagId, Option<u64>, i64)]) -> DeviceEvent {
        let samples = list
            .iter()
            .map(|&(tag, v, ts_ms)| Sample {
                tag,
                value: v.map(Value::UInt),
                quality: if v.is_some() {
                    Quality::Good
                } else {
                    Quality::Bad
                },
                ts_ms,
                source_ts_ms: None,
            })
            .collect();
        DeviceEvent::Samples {
            device: DeviceId(0),
            samples,
        }
    }

    fn run(e: &mut Engine, ev: DeviceEvent) -> Vec<EventBody> {
        let mut out = Vec::new();
        e.apply(&ev, &mut out);
        out.into_iter().map(|e| e.body).collect()
    }

    #[test]
    fn bad_readings_keep_the_baseline_and_the_next_good_one_counts_everything() {
        let mut e = engine();
        assert!(run(&mut e, samples(&[(GOOD, Some(10), 1)])).is_empty());
        assert!(run(&mut e, samples(&[(GOOD, None, 2)])).is_empty());
        let out = run(&mut e, samples(&[(GOOD, Some(15), 3)]));
        assert!(matches!(
            out[..],
            [EventBody::PartCount {
                quantity: 5,
                counter_value: 15,
                previous_value: 10,
                ..
            }]
        ));
        assert_eq!(e.state.good_total, 5);
    }

    #[test]
    fn a_rollover_and_a_reset_are_confirmed_then_counted() {
        let mut e = engine();
        run(&mut e, samples(&[(GOOD, Some(65_530), 1)]));
        // Past the top of the range: held until confirmed (two readings, a second).
        assert!(run(&mut e, samples(&[(GOOD, Some(4), 2)])).is_empty());
        let out = run(&mut e, samples(&[(GOOD, Some(5), 1_002)]));
        assert!(matches!(
            out[..],
            [EventBody::PartCount {
                quantity: 11,
                rolled_over: true,
                rule: Some(crate::event::Counted {
                    rule: Rule::Rollover,
                    evidence: Some(crate::cell::Evidence::Readings),
                }),
                ..
            }]
        ));
        // Back to zero and confirmed: a reset, nothing counted for the step itself.
        assert!(run(&mut e, samples(&[(GOOD, Some(0), 2_000)])).is_empty());
        let out = run(&mut e, samples(&[(GOOD, Some(0), 3_000)]));
        assert_eq!(
            out,
            vec![EventBody::CounterReset {
                counter: CounterKind::Good,
                from: 5,
                to: 0,
                rule: Some(Rule::RestartedFromZero),
                evidence: Some(crate::cell::Evidence::Readings),
                counted: 0,
                previous_tag: None,
                tag: None,
            }]
        );
        assert_eq!(e.state.good_total, 11);
        // Restarted from zero and made 2 before this reading: the reset, then those 2 and the
        // one made while it was being confirmed.
        run(&mut e, samples(&[(GOOD, Some(500), 4_000)]));
        run(&mut e, samples(&[(GOOD, Some(2), 5_000)]));
        let out = run(&mut e, samples(&[(GOOD, Some(3), 6_000)]));
        assert_eq!(out.len(), 2);
        assert!(matches!(
            out[1],
            EventBody::PartCount {
                quantity: 3,
                counter_value: 3,
                previous_value: 0,
                ..
            }
        ));
        assert_eq!(e.state.good_total, 11 + 500 + 3);
    }

    #[test]
    fn a_reset_that_holds_still_is_confirmed_at_a_tick() {
        let mut e = engine();
        run(&mut e, samples(&[(GOOD, Some(500), 1_000)]));
        // Reset to 3 and nothing more reported (drivers report changes only).
        assert!(run(&mut e, samples(&[(GOOD, Some(3), 2_000)])).is_empty());
        let mut out = Vec::new();
        e.tick(2_500, &mut out);
        assert!(out
            .iter()
            .all(|ev| !matches!(ev.body, EventBody::PartCount { .. })));
        e.tick(3_000, &mut out);
        let counted: Vec<_> = out
            .iter()
            .filter_map(|ev| match &ev.body {
                EventBody::CounterReset { rule, counted, .. } => Some((*rule, *counted)),
                _ => None,
            })
            .collect();
        assert_eq!(counted, [(Some(Rule::RestartedFromZero), 3)]);
        assert_eq!(e.state.good_total, 3);
    }

    #[test]
    fn a_step_back_is_a_negative_correction_taken_off_the_totals() {
        let mut e = engine();
        run(&mut e, samples(&[(GOOD, Some(5_000), 1)]));
        run(&mut e, samples(&[(GOOD, Some(5_003), 1)]));
        let out = run(&mut e, samples(&[(GOOD, Some(5_002), 2)]));
        assert!(matches!(
            out[..],
            [EventBody::CountCorrection {
                quantity: -1,
                counter_value: 5_002,
                previous_value: 5_003,
                ..
            }]
        ));
        run(&mut e, samples(&[(GOOD, Some(5_003), 3)]));
        assert_eq!(e.state.good_total, 3);
    }

    #[test]
    fn state_changes_carry_the_fault_code_read_with_them_and_durations() {
        let mut e = engine();
        run(&mut e, samples(&[(STATE, Some(1), 1_000)]));
        // The fault code comes after the state word in the same read; it is applied first.
        let out = run(
            &mut e,
            samples(&[(STATE, Some(2), 4_000), (FAULT, Some(17), 4_000)]),
        );
        assert_eq!(
            out,
            vec![EventBody::MachineState {
                state: MachineState::Down,
                previous: MachineState::Running,
                previous_since: Some(1_000),
                previous_duration_ms: 3_000,
                state_word: Some(2),
                fault_code: Some(17),
                reason: None,
                previous_reason: None,
            }]
        );
        // Unreadable: unknown. An unmapped word: the configured default (unknown as well here).
        let out = run(&mut e, samples(&[(STATE, None, 5_000)]));
        assert!(matches!(
            out[..],
            [EventBody::MachineState {
                state: MachineState::Unknown,
                ..
            }]
        ));
        run(&mut e, samples(&[(STATE, Some(1), 6_000)]));
        let out = run(&mut e, samples(&[(STATE, Some(99), 7_000)]));
        assert!(matches!(
            out[..],
            [EventBody::MachineState {
                state: MachineState::Unknown,
                state_word: Some(99),
                ..
            }]
        ));
    }

    #[test]
    fn device_status_becomes_an_event() {
        let mut e = engine();
        let ev = DeviceEvent::Status {
            device: DeviceId(0),
            status: DeviceStatus::Offline {
                reason: mes_edge_drivers::DriverError::transient("timeout"),
            },
            ts_ms: 9,
        };
        assert_eq!(
            run(&mut e, ev),
            vec![EventBody::DeviceStatus {
                device: "plc".into(),
                online: false,
                reason: Some("timeout".into())
            }]
        );
    }
}
