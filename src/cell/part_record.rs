//! Part records: traceability at the cell. On each part-complete trigger (a step of a counter,
//! or a rising edge of a bool tag) one `part_record` event carries the last values of the
//! configured tags and the part's serial number, with the order and lot it was made under.

use super::engine::Engine;
use crate::config::PartTrigger;
use crate::event::{CounterKind, EventBody, NewEvent, RecordedValue};
use mes_edge_drivers::{Quality, Sample, Value};
use std::collections::BTreeMap;

impl Engine {
    /// Keeps the last reading of the tags a record carries (read before the trigger in the same
    /// poll, so a record has the values the part was made with).
    pub(super) fn remember_for_record(&mut self, s: &Sample) {
        // A writable tag's last value is the `previous` of a write to it.
        if self.model.written_tags.contains(&s.tag) {
            self.last_values.insert(s.tag, (s.value, s.quality));
        }
        let Some(plan) = &self.model.part_record else {
            return;
        };
        if plan.serial == Some(s.tag) || plan.tags.iter().any(|(t, _)| *t == s.tag) {
            self.last_values.insert(s.tag, (s.value, s.quality));
        }
    }

    /// A counter stepped: a record if that counter is the trigger.
    pub(super) fn record_parts(
        &mut self,
        kind: CounterKind,
        parts: u64,
        ts_ms: i64,
        out: &mut Vec<NewEvent>,
    ) {
        let triggered = self
            .model
            .part_record
            .as_ref()
            .is_some_and(|p| p.trigger == PartTrigger::Counter(kind));
        if triggered && parts > 0 {
            self.record(Some(kind), parts, ts_ms, out);
        }
    }

    /// A reading of the trigger bit: a record on its rising edge (not on the first reading
    /// ever, which is no edge).
    pub(super) fn trigger_bit(&mut self, s: &Sample, out: &mut Vec<NewEvent>) {
        let Some(on) = s
            .value
            .filter(|_| s.quality == Quality::Good)
            .map(|v| v.as_f64() != 0.0)
        else {
            return;
        };
        let rising = self.state.part_trigger_bit == Some(false) && on;
        self.state.part_trigger_bit = Some(on);
        if rising {
            self.record(None, 1, s.ts_ms, out);
        }
    }

    fn record(
        &mut self,
        counter: Option<CounterKind>,
        parts: u64,
        ts_ms: i64,
        out: &mut Vec<NewEvent>,
    ) {
        let Some(plan) = &self.model.part_record else {
            return;
        };
        let serial = plan
            .serial
            .and_then(|t| self.last_values.get(&t))
            .and_then(|(v, q)| v.filter(|_| *q == Quality::Good))
            .map(|v| match v {
                Value::Text(t) => t.as_str().trim().to_string(),
                v => format!("{}", v.as_f64() as i64),
            });
        let values: BTreeMap<String, RecordedValue> = plan
            .tags
            .iter()
            .filter_map(|(t, name)| {
                let (v, q) = self.last_values.get(t)?;
                Some((name.clone(), RecordedValue::of(*v, *q)))
            })
            .collect();
        let order = self.state.orders.active();
        let body = EventBody::PartRecord {
            order_id: order.map(|o| o.id().to_string()),
            lot: order.and_then(|o| o.spec.lot.clone()),
            serial,
            counter,
            parts,
            values,
        };
        let key = order.map_or_else(|| "no order".to_string(), |o| o.id().to_string());
        out.push(NewEvent::new(ts_ms, vec![key], body));
    }
}
