//! Where the cell's time and parts go: to the running order (or the "no order" bucket), to the
//! shift, and to the reason of each stop. OEE is computed from these accounts.

use super::clock::CLOCK_STEP_MS;
use super::engine::{Engine, Stop};
use super::{MachineState, Role};
use crate::event::{CounterKind, EventBody, NewEvent, OeeScope};
use crate::orders::{add_scrap, adjust, CommandSource, JobCommand, ShiftAccount, UNEXPLAINED};

impl Engine {
    /// Attributes the time since the last call to the machine state the cell was in, within the
    /// running order and the shift. Time going backwards attributes nothing: a reading stamped a
    /// little before the last command is simply late; a clock stepped back by more than a
    /// minute restarts the accounting from the new time.
    pub(super) fn credit(&mut self, now_ms: i64) {
        self.credit_to(now_ms, self.state.machine_state);
    }

    /// At start: the time from the last accounted moment to `now_ms` went unseen (the runtime
    /// was down, or its last turns were not committed). It is credited to `unobserved`, not to
    /// the state the cell was last seen in, and a cell with a state word shows the interval as
    /// a `machine_state` of its own, which its next reading ends with the interval's length.
    pub(super) fn unobserved_until(&mut self, now_ms: i64, out: &mut Vec<NewEvent>) {
        let from = self.state.accounted_to;
        if from == 0 || now_ms <= from {
            return;
        }
        let state_tag = self
            .model
            .roles
            .iter()
            .find(|(_, r)| **r == Role::StateWord)
            .map(|(t, _)| *t);
        let previous = self.state.machine_state;
        if let (Some(tag), false) = (state_tag, previous == MachineState::Unobserved) {
            let since = self.state.state_since;
            let previous_reason = self.change_stop(MachineState::Unobserved, None, from);
            self.state.machine_state = MachineState::Unobserved;
            self.state.state_since = from;
            let body = EventBody::MachineState {
                state: MachineState::Unobserved,
                previous,
                previous_since: (since != 0).then_some(since),
                previous_duration_ms: if since == 0 { 0 } else { (from - since).max(0) },
                state_word: self.state.state_word,
                fault_code: self.state.fault_code,
                reason: None,
                previous_reason,
            };
            out.push(NewEvent::new(
                from,
                vec![self.model.tag_name(tag).to_string()],
                body,
            ));
        }
        tracing::info!(
            unobserved_ms = now_ms - from,
            "time since the last committed turn is accounted as unobserved"
        );
        self.credit_to(now_ms, MachineState::Unobserved);
    }

    fn credit_to(&mut self, now_ms: i64, state: MachineState) {
        let from = self.state.accounted_to;
        let now_ms = self.now.map_or(now_ms, |limit| now_ms.min(limit));
        if now_ms <= from {
            // Under the engine loop, steps are found against the monotonic clock instead.
            if self.now.is_none() && from - now_ms > CLOCK_STEP_MS {
                self.state.accounted_to = now_ms;
            }
            return;
        }
        self.state.accounted_to = now_ms;
        if from == 0 {
            return;
        }
        let dt = now_ms - from;
        let reason = state.is_stop().then(|| {
            self.state
                .stop
                .as_ref()
                .and_then(|s| s.reason.clone())
                .unwrap_or_else(|| UNEXPLAINED.to_string())
        });
        let running = self.state.orders.running_mut();
        let order_id = running.as_ref().map(|o| o.id().to_string());
        if let Some(o) = running {
            o.add_time(state, dt, reason.as_deref());
        }
        if let Some(shift) = &mut self.state.shift {
            shift.add_time(state, dt, reason.as_deref(), order_id.is_some());
        }
        if let (Some(stop), Some(id)) = (&mut self.state.stop, order_id) {
            if stop.order_id.is_none() {
                stop.order_id = Some(id.clone());
            }
            if stop.order_id.as_deref() == Some(id.as_str()) {
                stop.order_ms += dt;
            }
            if stop.shift_start.is_some()
                && stop.shift_start == self.state.shift.as_ref().map(|s| s.shift.start_ms)
            {
                stop.shift_ms += dt;
            }
        }
    }

    /// Closes the current stop (if any) and opens one for `state` if it is a stop. Returns the
    /// reason of the closed stop.
    pub(super) fn change_stop(
        &mut self,
        state: MachineState,
        reason: Option<String>,
        ts_ms: i64,
    ) -> Option<String> {
        let closed = self.state.stop.take().map(|mut s| {
            s.until = Some(ts_ms);
            s
        });
        let previous_reason = closed.as_ref().and_then(|s| s.reason.clone());
        if closed.is_some() {
            self.state.last_stop = closed;
        }
        if state.is_stop() {
            self.state.stop = Some(Stop {
                state,
                since: ts_ms,
                until: None,
                reason,
                order_id: self.state.orders.active().map(|o| o.id().to_string()),
                order_ms: 0,
                shift_start: self.state.shift.as_ref().map(|s| s.shift.start_ms),
                shift_ms: 0,
            });
        }
        previous_reason
    }

    /// Gives `reason` to the current stop, or to the last one if the cell runs again, moving the
    /// time already credited to it. Returns the stop as it is now.
    pub(super) fn give_reason(&mut self, reason: &str) -> Option<Stop> {
        let stop = match (&mut self.state.stop, &mut self.state.last_stop) {
            (Some(s), _) => s,
            (None, Some(s)) => s,
            (None, None) => return None,
        };
        let old = stop
            .reason
            .replace(reason.to_string())
            .unwrap_or_else(|| UNEXPLAINED.to_string());
        let mv = |map: &mut std::collections::BTreeMap<String, i64>, ms: i64| {
            if ms > 0 && old != reason {
                let left = map.entry(old.clone()).or_default();
                *left -= ms;
                if *left <= 0 {
                    map.remove(&old);
                }
                *map.entry(reason.to_string()).or_default() += ms;
            }
        };
        let stop = stop.clone();
        if let Some(id) = &stop.order_id {
            if let Some(o) = self.state.orders.orders.iter_mut().find(|o| o.id() == id) {
                mv(&mut o.downtime, stop.order_ms);
            }
        }
        if let Some(shift) = self
            .state
            .shift
            .as_mut()
            .filter(|s| Some(s.shift.start_ms) == stop.shift_start)
        {
            mv(&mut shift.downtime, stop.shift_ms);
        }
        Some(stop)
    }

    /// Adds parts to the running order (and its shift) or to the "no order" bucket; returns the
    /// order they went to.
    pub(super) fn attribute_parts(&mut self, kind: CounterKind, quantity: u64) -> Option<String> {
        self.attribute(kind, quantity, false)
    }

    /// Takes parts back (a correction of the PLC's counter) from where parts go now.
    pub(super) fn take_back_parts(&mut self, kind: CounterKind, quantity: u64) -> Option<String> {
        self.attribute(kind, quantity, true)
    }

    fn attribute(&mut self, kind: CounterKind, quantity: u64, back: bool) -> Option<String> {
        let reason = match (kind, back) {
            (CounterKind::Scrap, false) => self.scrap_reason_now(),
            _ => None,
        };
        let running = self.state.orders.running_mut();
        let (id, ideal_cycle) = match running {
            Some(o) => {
                o.add_parts(kind, quantity, back, reason.as_deref());
                (Some(o.id().to_string()), o.ideal_cycle_ms.unwrap_or(0.0))
            }
            None => {
                let bucket = match kind {
                    CounterKind::Good => &mut self.state.orders.no_order_good,
                    CounterKind::Scrap => &mut self.state.orders.no_order_scrap,
                };
                adjust(bucket, quantity, back);
                (None, 0.0)
            }
        };
        if let Some(shift) = &mut self.state.shift {
            let count = match (id.is_some(), kind) {
                (true, CounterKind::Good) => &mut shift.good,
                (true, CounterKind::Scrap) => &mut shift.scrap,
                (false, CounterKind::Good) => &mut shift.no_order_good,
                (false, CounterKind::Scrap) => &mut shift.no_order_scrap,
            };
            let taken = adjust(count, quantity, back);
            if id.is_some() && kind == CounterKind::Scrap {
                add_scrap(&mut shift.scrap_reasons, reason.as_deref(), taken, back);
            }
            let moved = taken as f64 * ideal_cycle;
            shift.ideal_production_ms = if back {
                (shift.ideal_production_ms - moved).max(0.0)
            } else {
                shift.ideal_production_ms + moved
            };
        }
        id
    }

    /// Ends the running order when it reaches its target, if the config asks for it.
    pub(super) fn auto_complete(&mut self, ts_ms: i64, out: &mut Vec<NewEvent>) {
        if !self.model.orders.auto_complete {
            return;
        }
        let done = self
            .state
            .orders
            .running_mut()
            .filter(|o| o.spec.quantity > 0 && o.good >= o.spec.quantity)
            .map(|o| o.id().to_string());
        if let Some(id) = done {
            let reason = Some("target quantity reached".to_string());
            if let Err(e) = self.state.orders.command(
                &id,
                JobCommand::Stop,
                CommandSource::Cell,
                reason,
                ts_ms,
                out,
            ) {
                tracing::error!(order = %id, "auto-complete refused: {e}");
            }
            self.state.orders.begin_next(ts_ms, out);
        }
    }

    /// Called about once a second: attributes time, rolls the shift over, publishes OEE.
    pub fn tick(&mut self, now_ms: i64, out: &mut Vec<NewEvent>) {
        self.credit(now_ms);
        self.confirm_held(now_ms, out);
        self.flush_lot_of_stopped_order(now_ms, out);
        if let Some(calendar) = &self.model.orders.calendar {
            let current = calendar.at(now_ms);
            let same = |a: &ShiftAccount| {
                current
                    .as_ref()
                    .is_some_and(|c| c.start_ms == a.shift.start_ms && c.name == a.shift.name)
            };
            if let Some(ended) = self.state.shift.take_if(|a| !same(a)) {
                out.push(shift_oee(&ended, now_ms.min(ended.shift.end_ms), true));
            }
            if self.state.shift.is_none() {
                self.state.shift = current.map(ShiftAccount::new);
            }
        }
        if self.state.last_oee_ms == 0 || now_ms < self.state.last_oee_ms {
            self.state.last_oee_ms = now_ms;
        } else if now_ms - self.state.last_oee_ms >= self.model.orders.oee_interval_ms {
            self.state.last_oee_ms = now_ms;
            if let Some(o) = self.state.orders.active() {
                let body = EventBody::Oee {
                    scope: OeeScope::Order,
                    id: o.id().to_string(),
                    from: o.started_ms.unwrap_or(o.stored_ms),
                    to: now_ms,
                    is_final: false,
                    time_in_state_ms: o.times.clone(),
                    downtime_ms: o.downtime.clone(),
                    scrap_by_reason: o.scrap_reasons.clone(),
                    no_order_ms: None,
                    no_order_good: None,
                    no_order_scrap: None,
                    figures: o.oee(),
                };
                out.push(NewEvent::new(now_ms, vec![o.id().to_string()], body));
            }
            if let Some(shift) = &self.state.shift {
                out.push(shift_oee(shift, now_ms, false));
            }
        }
    }
}

fn shift_oee(a: &ShiftAccount, to: i64, is_final: bool) -> NewEvent {
    let body = EventBody::Oee {
        scope: OeeScope::Shift,
        id: a.shift.name.clone(),
        from: a.shift.start_ms,
        to,
        is_final,
        time_in_state_ms: a.times.clone(),
        downtime_ms: a.downtime.clone(),
        scrap_by_reason: a.scrap_reasons.clone(),
        no_order_ms: Some(a.no_order_ms),
        no_order_good: Some(a.no_order_good),
        no_order_scrap: Some(a.no_order_scrap),
        figures: a.oee(),
    };
    NewEvent::new(to, vec![a.shift.name.clone()], body)
}
