//! What an order used and what it measured, beyond its counts: material consumed (by lot),
//! scrap by reason, and statistics of process values while it ran. These end up in the ISA-95
//! job response (material actuals, data values).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Scrap not (yet) given a reason.
pub const UNEXPLAINED: &str = "unexplained";

/// ISA-95 MaterialActual: a quantity of one material lot the order consumed or produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterialActual {
    pub material: String,
    pub lot: Option<String>,
    pub quantity: f64,
    pub unit: String,
    #[serde(rename = "use")]
    pub use_: MaterialUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaterialUse {
    Consumed,
    Produced,
}

/// Adds `quantity` of (material, lot, unit) to the consumed actuals, one entry per lot.
pub fn add_consumed(
    actuals: &mut Vec<MaterialActual>,
    material: &str,
    lot: Option<&str>,
    quantity: f64,
    unit: &str,
) {
    let same = |a: &&mut MaterialActual| {
        a.material == material && a.lot.as_deref() == lot && a.unit == unit
    };
    match actuals.iter_mut().find(same) {
        Some(a) => a.quantity += quantity,
        None => actuals.push(MaterialActual {
            material: material.to_string(),
            lot: lot.map(str::to_string),
            quantity,
            unit: unit.to_string(),
            use_: MaterialUse::Consumed,
        }),
    }
}

/// Scrap parts by reason, summing to the scrap count: parts go to "unexplained" unless the PLC
/// gave a reject code with them, and a reason given later moves them out of "unexplained".
pub type ScrapReasons = BTreeMap<String, u64>;

/// Adds scrap parts under `reason`, or takes them back: from "unexplained" first, then from
/// the reasons in order, so the reasons never add up to more than the count.
pub fn add_scrap(reasons: &mut ScrapReasons, reason: Option<&str>, quantity: u64, back: bool) {
    if !back {
        *reasons
            .entry(reason.unwrap_or(UNEXPLAINED).to_string())
            .or_default() += quantity;
        return;
    }
    let mut left = quantity;
    let keys: Vec<String> = std::iter::once(UNEXPLAINED.to_string())
        .chain(reasons.keys().filter(|k| *k != UNEXPLAINED).cloned())
        .collect();
    for k in keys {
        if left == 0 {
            break;
        }
        if let Some(n) = reasons.get_mut(&k) {
            let taken = left.min(*n);
            *n -= taken;
            left -= taken;
            if *n == 0 {
                reasons.remove(&k);
            }
        }
    }
}

/// Moves `quantity` unexplained scrap parts to `reason`; an error says how many there are.
pub fn explain_scrap(reasons: &mut ScrapReasons, reason: &str, quantity: u64) -> Result<(), u64> {
    let open = reasons.get(UNEXPLAINED).copied().unwrap_or(0);
    if quantity > open {
        return Err(open);
    }
    add_scrap(reasons, None, quantity, true);
    add_scrap(reasons, Some(reason), quantity, false);
    Ok(())
}

/// Count, min, max, mean and standard deviation of the values one tag took while an order ran
/// (Welford's method: one pass, no stored readings, stable for long orders). Drivers report a
/// tag when it changes, so these are over its changes: a value held for an hour counts once,
/// and a reading equal to the last one (a driver reconnecting, the runtime restarting) is not
/// a new value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValueStats {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sum of squared differences from the mean; the standard deviation is derived from it.
    m2: f64,
    #[serde(default)]
    last: Option<f64>,
}

impl ValueStats {
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() || self.last == Some(x) {
            return;
        }
        self.last = Some(x);
        if self.count == 0 {
            self.min = x;
            self.max = x;
        }
        self.count += 1;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// Population standard deviation of the readings.
    pub fn sd(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).sqrt()
        }
    }

    pub fn summary(&self) -> DataValue {
        DataValue {
            count: self.count,
            min: self.min,
            max: self.max,
            mean: self.mean,
            sd: self.sd(),
        }
    }
}

/// A process value summarized over an order, as the job response carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataValue {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub sd: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_match_a_direct_computation() {
        let xs = [20.5, 21.0, 19.75, 22.25, 20.0, 20.5];
        let mut s = ValueStats::default();
        xs.iter().for_each(|x| s.add(*x));
        // The same value read again (a reconnect) is no new value.
        s.add(20.5);
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert_eq!((s.count, s.min, s.max), (6, 19.75, 22.25));
        assert!((s.mean - mean).abs() < 1e-12 && (s.sd() - sd).abs() < 1e-12);
    }

    #[test]
    fn scrap_reasons_sum_to_the_count_when_parts_are_taken_back() {
        let mut r = ScrapReasons::new();
        add_scrap(&mut r, Some("burr"), 3, false);
        add_scrap(&mut r, None, 2, false);
        add_scrap(&mut r, None, 4, true);
        assert_eq!(r, ScrapReasons::from([("burr".into(), 1)]));
        assert_eq!(explain_scrap(&mut r, "crack", 1), Err(0));
        add_scrap(&mut r, None, 2, false);
        explain_scrap(&mut r, "crack", 2).unwrap();
        assert_eq!(r.values().sum::<u64>(), 3);
        assert_eq!(r.get("crack"), Some(&2));
    }
}
