//! Process values reported by exception: which readings of the published tags leave the cell.
//!
//! A reading is published when it differs from the last published one by more than the tag's
//! deadband (any change for text and bools), or its quality changed; not sooner than the tag's
//! minimum interval after the last publish (the latest change goes out when it ends); and again
//! after `max_interval_ms` without a publish (the heartbeat). A tag that has never given a
//! value publishes nothing; a bad reading is published once per change of quality, and no
//! heartbeat repeats it. The drivers
//! hand on changes only, so the latest reading of a tag is its value until the next one.

use super::value_batch::{ValueBatch, ValueRecord};
use crate::config::values::{Deadband, ValuePlan, ValueRule};
use mes_edge_drivers::{Quality, Sample, TagId, Value};
use std::collections::{BTreeMap, HashMap};

/// Values per message at most: a device with more changes in one turn gets several batches.
/// About 100 bytes a value keeps a batch far under the forwarder's 1 MiB packet limit.
pub const MAX_VALUES_PER_BATCH: usize = 2_000;

/// The order and lot running at the cell: every value carries them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Running {
    pub order_id: Option<String>,
    pub lot: Option<String>,
}

#[derive(Debug, Clone, Default)]
struct Track {
    /// The last value and quality published, and when.
    published: Option<(Option<Value>, Quality, i64)>,
    /// The latest reading, as it would be published.
    latest: Option<ValueRecord>,
    /// The latest reading should be published once the minimum interval has passed.
    waiting: bool,
}

pub struct ProcessValues {
    rules: ValuePlan,
    tracks: HashMap<TagId, Track>,
    /// Values to publish, by device, since the last `take`.
    open: BTreeMap<String, Vec<ValueRecord>>,
    /// No heartbeat or held change is due before this (loop clock, UTC ms).
    next_due: i64,
}

/// Whether `now` moved away from `last` by more than the deadband.
pub fn exceeds(deadband: Deadband, last: Option<Value>, now: Option<Value>) -> bool {
    let number = |v: Option<Value>| match v {
        Some(Value::Int(_) | Value::UInt(_) | Value::Float(_)) => v.map(|v| v.as_f64()),
        _ => None,
    };
    match (number(last), number(now)) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() => {
            let moved = (b - a).abs();
            match deadband {
                Deadband::None => moved > 0.0,
                Deadband::Absolute(d) => moved > d,
                Deadband::Percent(p) => moved > a.abs() * p / 100.0 || (a == 0.0 && moved > 0.0),
            }
        }
        // Text, bools, a value appearing or vanishing, NaN: any change.
        _ => last != now,
    }
}

impl ProcessValues {
    pub fn new(rules: ValuePlan) -> ProcessValues {
        ProcessValues {
            rules,
            tracks: HashMap::new(),
            open: BTreeMap::new(),
            next_due: i64::MAX,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Takes one reading of a tag, publishing it if it is news.
    pub fn observe(&mut self, s: &Sample, running: &Running) {
        let Some(rule) = self.rules.get(&s.tag) else {
            return;
        };
        let track = self.tracks.entry(s.tag).or_default();
        if s.value.is_none() && track.latest.is_none() {
            return;
        }
        let record = ValueRecord {
            tag: rule.tag.clone(),
            value: s.value,
            quality: s.quality,
            ts: s.ts_ms,
            source_ts: s.source_ts_ms,
            order_id: running.order_id.clone(),
            lot: running.lot.clone(),
        };
        let news = match track.published {
            None => true,
            Some((value, quality, _)) => {
                quality != s.quality
                    || (s.quality != Quality::Bad && exceeds(rule.deadband, value, s.value))
            }
        };
        track.latest = Some(record);
        track.waiting = false;
        if !news {
            return;
        }
        let free_at = track.published.map_or(i64::MIN, |(_, _, at)| {
            at.saturating_add(rule.min_interval_ms)
        });
        if s.ts_ms >= free_at {
            publish(rule, track, s.ts_ms, None, &mut self.open);
            if let Some(max) = rule.max_interval_ms {
                self.next_due = self.next_due.min(s.ts_ms.saturating_add(max));
            }
        } else {
            track.waiting = true;
            self.next_due = self.next_due.min(free_at);
        }
    }

    /// Publishes held changes whose minimum interval has passed and heartbeats that are due.
    pub fn due(&mut self, now: i64, running: &Running) {
        if now < self.next_due {
            return;
        }
        let mut next = i64::MAX;
        for (tag, track) in &mut self.tracks {
            let (Some(rule), Some((_, _, at))) = (self.rules.get(tag), track.published) else {
                continue;
            };
            if track.waiting {
                let free_at = at.saturating_add(rule.min_interval_ms);
                if now >= free_at {
                    let ts = track.latest.as_ref().map_or(now, |r| r.ts);
                    publish(rule, track, ts.max(free_at), None, &mut self.open);
                } else {
                    next = next.min(free_at);
                    continue;
                }
            } else if let Some(max) = rule.max_interval_ms {
                // A bad value is said once per change of quality, not repeated.
                let bad = track
                    .latest
                    .as_ref()
                    .is_some_and(|r| r.quality == Quality::Bad);
                if !bad && now >= at.saturating_add(max) {
                    // Still this value now: the drivers would have handed on a change.
                    publish(rule, track, now, Some((now, running)), &mut self.open);
                }
            }
            if let (Some(max), Some((_, _, at))) = (rule.max_interval_ms, track.published) {
                next = next.min(at.saturating_add(max));
            }
        }
        self.next_due = next;
    }

    /// The batches made since the last call: one per device (more past
    /// [`MAX_VALUES_PER_BATCH`]), each value in the order it was published.
    pub fn take(&mut self, now: i64) -> Vec<ValueBatch> {
        let mut out = Vec::new();
        for (device, values) in std::mem::take(&mut self.open) {
            for chunk in values.chunks(MAX_VALUES_PER_BATCH) {
                out.push(ValueBatch {
                    device: device.clone(),
                    ts_ms: now,
                    values: chunk.to_vec(),
                });
            }
        }
        out
    }
}

/// Publishes the tag's latest reading at `at`; a heartbeat restamps it and gives it the order
/// running now.
fn publish(
    rule: &ValueRule,
    track: &mut Track,
    at: i64,
    heartbeat: Option<(i64, &Running)>,
    open: &mut BTreeMap<String, Vec<ValueRecord>>,
) {
    let Some(latest) = &track.latest else { return };
    let mut record = latest.clone();
    if let Some((now, running)) = heartbeat {
        record.ts = now;
        record.source_ts = None;
        record.order_id.clone_from(&running.order_id);
        record.lot.clone_from(&running.lot);
    }
    track.published = Some((record.value, record.quality, at));
    track.waiting = false;
    open.entry(rule.device.clone()).or_default().push(record);
}

#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
