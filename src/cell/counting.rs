//! Counter readings into parts: the counter rules (counter.rs) decide, this turns their steps
//! into events and credits the parts to the running order, the shift and the totals.

use super::counter::Company;
use super::{Engine, Rule, Step};
use crate::event::{Counted, CounterKind, EventBody, NewEvent};
use mes_edge_drivers::{Sample, TagId};

impl Engine {
    pub(super) fn count(
        &mut self,
        kind: CounterKind,
        raw: u64,
        s: &Sample,
        out: &mut Vec<NewEvent>,
    ) {
        let company = self.company(kind);
        let rules = &self.model.counters[&kind];
        let counter = self.state.counter(kind);
        let previous = counter.last;
        let step = counter.observe_with(raw, s.ts_ms, rules, &company);
        let reading = Reading {
            raw,
            ts: s.ts_ms,
            source_ts: s.source_ts_ms,
            tag: s.tag,
        };
        self.counted(kind, step, previous, reading, out);
    }

    /// A reading of a counter's reset tag: see [`super::Counter::reset_tag`].
    pub(super) fn reset_tag(
        &mut self,
        kind: CounterKind,
        mark: u64,
        s: &Sample,
        out: &mut Vec<NewEvent>,
    ) {
        if !self.model.counters.contains_key(&kind) {
            return;
        }
        let company = self.company(kind);
        let rules = &self.model.counters[&kind];
        let counter = self.state.counter(kind);
        let previous = counter.last;
        let Some((step, raw)) = counter.reset_tag(mark, s.ts_ms, rules, &company) else {
            return;
        };
        let Some(tag) = self.model.counter_tag(kind) else {
            return;
        };
        let reading = Reading {
            raw,
            ts: s.ts_ms,
            source_ts: s.source_ts_ms,
            tag,
        };
        self.counted(kind, step, previous, reading, out);
    }

    /// Drivers report a value when it changes, so a held reading that stays as it is gets no
    /// further readings: once it has lasted `confirm_ms` while the tag reads good, it is
    /// confirmed here (the engine ticks about once a second).
    pub(super) fn confirm_held(&mut self, now_ms: i64, out: &mut Vec<NewEvent>) {
        for kind in [CounterKind::Good, CounterKind::Scrap] {
            if !self.model.counters.contains_key(&kind) {
                continue;
            }
            let company = self.company(kind);
            let rules = &self.model.counters[&kind];
            let counter = self.state.counter(kind);
            let previous = counter.last;
            let Some((step, raw)) = counter.confirm_held(now_ms, rules, &company) else {
                continue;
            };
            let Some(tag) = self.model.counter_tag(kind) else {
                continue;
            };
            let reading = Reading {
                raw,
                ts: now_ms,
                source_ts: None,
                tag,
            };
            self.counted(kind, step, previous, reading, out);
        }
    }

    /// The events and the accounting of one step of a counter.
    fn counted(
        &mut self,
        kind: CounterKind,
        step: Step,
        previous: Option<u64>,
        reading: Reading,
        out: &mut Vec<NewEvent>,
    ) {
        let rules = &self.model.counters[&kind];
        let Reading {
            raw,
            ts,
            source_ts,
            tag,
        } = reading;
        let part = |quantity, previous_value, rule: Option<Counted>| Parts {
            kind,
            quantity,
            counter_value: raw,
            previous_value,
            rolled_over: matches!(
                rule.map(|r| r.rule),
                Some(Rule::Rollover | Rule::RolloverWhileUnread)
            ),
            rule,
            source_ts,
        };
        // Most readings make no event: the tag's name is copied only in the arms that make one.
        let source = |e: &Engine| vec![e.model.tag_name(tag).to_string()];
        match step {
            Step::Unchanged => {}
            Step::Baseline { previous_tag: None } => {
                tracing::info!(counter = ?kind, raw, "counter baseline")
            }
            Step::Held { from } => {
                tracing::info!(counter = ?kind, from, to = raw, "counter reading held until confirmed or disproved")
            }
            Step::Baseline {
                previous_tag: Some(old),
            } => {
                let tag = rules.tag.clone();
                tracing::warn!(counter = ?kind, %old, %tag, raw, "counter moved to another tag: new baseline");
                let body = EventBody::CounterReset {
                    counter: kind,
                    from: previous.unwrap_or(0),
                    to: raw,
                    rule: Some(Rule::TagChanged),
                    evidence: None,
                    counted: 0,
                    previous_tag: Some(old),
                    tag: Some(tag),
                };
                out.push(NewEvent::new(ts, source(self), body));
            }
            Step::Parts { quantity } => {
                let source = source(self);
                self.parts(part(quantity, previous.unwrap_or(0), None), ts, source, out)
            }
            Step::Correction { quantity, from } => {
                tracing::warn!(counter = ?kind, from, to = raw, "counter stepped back: parts taken back");
                let source = source(self);
                self.correction(kind, quantity, from, raw, ts, source, out);
            }
            Step::HeldCorrection {
                quantity,
                from,
                first,
                parts,
            } => {
                tracing::warn!(counter = ?kind, from, to = first, "counter stepped back while a sibling's drop was judged; no restart came of it: parts taken back");
                let source = source(self);
                self.correction(kind, quantity, from, first, ts, source.clone(), out);
                if parts > 0 {
                    self.parts(part(parts, first, None), ts, source, out);
                }
            }
            Step::Glitch {
                quantity,
                from,
                low,
                high,
                readings,
                duration_ms,
            } => {
                tracing::warn!(counter = ?kind, from, low, high, readings, duration_ms, "counter glitch: it came back; nothing counted for it");
                let source = source(self);
                let body = EventBody::CounterGlitch {
                    counter: kind,
                    value: from,
                    low,
                    high,
                    readings,
                    duration_ms,
                };
                out.push(NewEvent::new(ts, source.clone(), body));
                if quantity > 0 {
                    self.parts(part(quantity, from, None), ts, source, out);
                }
            }
            Step::Confirmed {
                rule,
                quantity,
                from,
                first,
                evidence,
            } => {
                let rolled = matches!(rule, Rule::Rollover | Rule::RolloverWhileUnread);
                let source = source(self);
                if !rolled {
                    tracing::warn!(counter = ?kind, from, first, now = raw, ?rule, ?evidence, counted = quantity, "counter reset confirmed");
                    let body = EventBody::CounterReset {
                        counter: kind,
                        from,
                        to: first,
                        rule: Some(rule),
                        evidence: Some(evidence),
                        counted: quantity,
                        previous_tag: None,
                        tag: None,
                    };
                    out.push(NewEvent::new(ts, source.clone(), body));
                }
                // The value the parts are counted from: the old one across a rollover, zero
                // for a restart from zero, the first reading after a jump.
                let base = match rule {
                    Rule::Rollover | Rule::RolloverWhileUnread => from,
                    Rule::RestartedFromZero => 0,
                    _ => first,
                };
                if quantity > 0 {
                    let counted = Counted {
                        rule,
                        evidence: Some(evidence),
                    };
                    self.parts(part(quantity, base, Some(counted)), ts, source, out);
                }
            }
        }
    }

    /// What the rest of the cell says at a reading of `kind`: the session of its device and
    /// the other counter of the same device, if there is one.
    fn company(&self, kind: CounterKind) -> Company {
        let rules = &self.model.counters[&kind];
        let device = self
            .model
            .device_name(mes_edge_drivers::DeviceId(rules.device as u32));
        let session = self.state.sessions.get(device);
        let mut co = Company {
            session: session.map_or(0, |s| s.number),
            session_evidence: session.and_then(|s| s.evidence),
            ..Company::default()
        };
        let other = match kind {
            CounterKind::Good => CounterKind::Scrap,
            CounterKind::Scrap => CounterKind::Good,
        };
        let same_device = |r: &super::CounterRules| r.device == rules.device;
        if self.model.counters.get(&other).is_some_and(same_device) {
            let sibling = match other {
                CounterKind::Good => &self.state.good,
                CounterKind::Scrap => &self.state.scrap,
            };
            co.sibling_restarted_at = sibling.restarted_at;
            co.sibling_dropping = self.dropping_now.contains(&other)
                || sibling.pending.as_ref().is_some_and(|p| {
                    !p.correction && sibling.last.is_some_and(|last| p.first < last)
                });
        }
        co
    }

    fn parts(&mut self, p: Parts, ts_ms: i64, source: Vec<String>, out: &mut Vec<NewEvent>) {
        match p.kind {
            CounterKind::Good => self.state.good_total += p.quantity,
            CounterKind::Scrap => self.state.scrap_total += p.quantity,
        }
        let reason = match p.kind {
            CounterKind::Scrap => self.scrap_reason_now(),
            CounterKind::Good => None,
        };
        self.consume_for_parts(p.quantity, false, ts_ms, out);
        let order_id = self.attribute_parts(p.kind, p.quantity);
        let body = EventBody::PartCount {
            counter: p.kind,
            quantity: p.quantity,
            counter_value: p.counter_value,
            previous_value: p.previous_value,
            rolled_over: p.rolled_over,
            order_id,
            rule: p.rule,
            source_ts: p.source_ts,
            reason,
        };
        out.push(NewEvent::new(ts_ms, source, body));
        self.record_parts(p.kind, p.quantity, ts_ms, out);
        self.auto_complete(ts_ms, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn correction(
        &mut self,
        kind: CounterKind,
        quantity: u64,
        from: u64,
        to: u64,
        ts_ms: i64,
        source: Vec<String>,
        out: &mut Vec<NewEvent>,
    ) {
        let total = match kind {
            CounterKind::Good => &mut self.state.good_total,
            CounterKind::Scrap => &mut self.state.scrap_total,
        };
        *total = total.saturating_sub(quantity);
        self.consume_for_parts(quantity, true, ts_ms, out);
        let order_id = self.take_back_parts(kind, quantity);
        let body = EventBody::CountCorrection {
            counter: kind,
            quantity: -(quantity.min(i64::MAX as u64) as i64),
            counter_value: to,
            previous_value: from,
            order_id,
        };
        out.push(NewEvent::new(ts_ms, source, body));
    }
}

/// Parts about to be counted, and what the event says of them.
struct Parts {
    kind: CounterKind,
    quantity: u64,
    counter_value: u64,
    previous_value: u64,
    rolled_over: bool,
    rule: Option<Counted>,
    source_ts: Option<i64>,
}

/// The reading a step was taken from, as its events name it.
struct Reading {
    raw: u64,
    ts: i64,
    source_ts: Option<i64>,
    tag: TagId,
}
