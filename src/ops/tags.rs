//! The last reading of every tag, for the status page's commissioning table. The engine thread
//! writes it once per driver event it takes (one short lock, no allocation after the first
//! reading of a tag); the page reads it at most a few times a second. Nothing here is stored or
//! published: it is what the runtime saw last, not what MOM received. For the tags published
//! as process values it also keeps a short trend of their readings (`super::trend`).

use super::trend::Trend;
use crate::cell::ValueRecord;
use mes_edge_drivers::{DeviceEvent, Sample};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct TagBoard(Arc<Mutex<Board>>);

#[derive(Default)]
struct Board {
    /// (device, tag) by tag id, as [`crate::config::CellFile::numbered_tags`] numbers them.
    names: Vec<(String, String)>,
    last: Vec<Option<Sample>>,
    /// By tag id; Some for the tags published as process values.
    trends: Vec<Option<Trend>>,
}

impl TagBoard {
    /// The tags of the config in force (at start and after each reload); forgets the readings,
    /// since a reload may renumber the tags.
    pub fn set_tags(&self, config: &crate::config::CellConfig) {
        let (names, trends): (Vec<(String, String)>, Vec<Option<Trend>>) = config
            .numbered_tags()
            .into_iter()
            .map(|(id, d, t)| {
                let name = (config.devices[d].name.clone(), t.name().to_string());
                (name, config.values.contains_key(&id).then(Trend::default))
            })
            .unzip();
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        b.last = vec![None; names.len()];
        b.names = names;
        b.trends = trends;
    }

    /// The engine's hook: keeps the newest sample of each tag in `ev`.
    pub fn observe(&self, ev: &DeviceEvent) {
        let DeviceEvent::Samples { samples, .. } = ev else {
            return;
        };
        let mut b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for s in samples {
            if let (Some(Some(trend)), Some(v), false) = (
                b.trends.get_mut(s.tag.0 as usize),
                s.value,
                s.quality == mes_edge_drivers::Quality::Bad,
            ) {
                trend.add(s.ts_ms, v.as_f64());
            }
            if let Some(slot) = b.last.get_mut(s.tag.0 as usize) {
                // A backlog may hand readings in out of order across devices, never within
                // one tag; still, an older reading never hides a newer one.
                if slot.as_ref().is_none_or(|o| o.ts_ms <= s.ts_ms) {
                    *slot = Some(s.clone());
                }
            }
        }
    }

    /// The trend of each published tag, in config order: `{device, tag, points: [[ts, value]],
    /// quality}` (the quality of its last reading: while it is good, the last value holds).
    pub fn trends(&self) -> Vec<serde_json::Value> {
        let b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        b.names
            .iter()
            .zip(&b.trends)
            .zip(&b.last)
            .filter_map(|(((device, tag), t), last)| {
                let t = t.as_ref()?;
                Some(serde_json::json!({
                    "device": device,
                    "tag": tag,
                    "points": t.points(),
                    "quality": last.as_ref().map(|s| s.quality),
                }))
            })
            .collect()
    }

    /// Every tag whose name contains `filter` (case-insensitive), in config order, as
    /// `{device, tag, value, quality, ts}`; a tag never read has no value and quality null.
    pub fn snapshot(&self, filter: &str) -> Vec<serde_json::Value> {
        let filter = filter.to_lowercase();
        let b = self.0.lock().unwrap_or_else(|e| e.into_inner());
        b.names
            .iter()
            .zip(&b.last)
            .filter(|((d, t), _)| {
                filter.is_empty()
                    || t.to_lowercase().contains(&filter)
                    || d.to_lowercase().contains(&filter)
            })
            .map(|((device, tag), s)| {
                let mut v = match s {
                    Some(s) => serde_json::to_value(ValueRecord {
                        tag: tag.clone(),
                        value: s.value,
                        quality: s.quality,
                        ts: s.ts_ms,
                        source_ts: s.source_ts_ms,
                        order_id: None,
                        lot: None,
                    })
                    .unwrap_or_default(),
                    None => serde_json::json!({ "tag": tag, "value": null, "quality": null, "ts": null }),
                };
                v["device"] = device.clone().into();
                v
            })
            .collect()
    }
}
