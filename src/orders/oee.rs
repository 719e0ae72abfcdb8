//! OEE per ISO 22400-2, from the time a cell spent in each machine state while an order ran and
//! the parts it made.
//!
//! - Planned busy time (PBT): time with an order running, less planned stops.
//! - Actual production time (APT): time in `running`.
//! - Availability = APT / PBT.
//! - Performance (effectiveness) = ideal time of the parts produced / APT, where the ideal time
//!   of a part is its order's ideal cycle time (ISO 22400's planned run time per item).
//! - Quality = good / (good + scrap).
//! - OEE = availability × performance × quality.
//!
//! Down, starved, blocked, idle, setup and unknown (device offline) all count against
//! availability. Unobserved time (the runtime was not running) is in neither APT nor PBT: the
//! figures are those of the time that was seen (docs/ORDERS.md says why). Performance is reported as measured, even above 1 (an ideal cycle time set too
//! slow shows up instead of being hidden). A figure whose denominator is zero is null.

use crate::vocabulary::MachineState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Milliseconds in each machine state.
pub type StateTimes = BTreeMap<MachineState, i64>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Oee {
    pub planned_busy_ms: i64,
    /// Time the runtime did not see, left out of planned busy time.
    #[serde(default)]
    pub unobserved_ms: i64,
    pub actual_production_ms: i64,
    pub good: u64,
    pub scrap: u64,
    pub ideal_production_ms: f64,
    pub availability: Option<f64>,
    pub performance: Option<f64>,
    pub quality: Option<f64>,
    pub oee: Option<f64>,
    /// Figures outside 0..=1, each with what it says about the inputs; empty when all are in
    /// range. The figures are reported as computed all the same.
    #[serde(default)]
    pub warnings: Vec<OeeWarning>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OeeWarning {
    /// `availability`, `performance`, `quality` or `oee`.
    pub figure: String,
    pub value: f64,
    pub message: String,
}

/// A warning for each figure outside 0..=1. Performance above 1 is the usual one: the parts
/// were made faster than the ideal cycle time allows, so the ideal cycle time is set too slow
/// (or the counter counts more than one part per cycle).
fn warnings(figures: [(&str, Option<f64>); 4]) -> Vec<OeeWarning> {
    figures
        .into_iter()
        .filter_map(|(figure, v)| v.map(|v| (figure, v)))
        .filter(|(_, v)| !(0.0..=1.0).contains(v))
        .map(|(figure, value)| OeeWarning {
            figure: figure.to_string(),
            value,
            message: match figure {
                "performance" if value > 1.0 => format!(
                    "performance {value:.2} is above 1: the parts were made faster than the ideal \
                     cycle time allows; the ideal cycle time is set too slow (or the counter \
                     counts more than one part per cycle)"
                ),
                "oee" if value > 1.0 => {
                    format!("OEE {value:.2} is above 1 because a figure it multiplies is")
                }
                _ => format!("{figure} {value:.2} is outside 0 to 1"),
            },
        })
        .collect()
}

pub fn compute(times: &StateTimes, good: u64, scrap: u64, ideal_production_ms: f64) -> Oee {
    let total: i64 = times.values().sum();
    let planned_stop = times.get(&MachineState::PlannedStop).copied().unwrap_or(0);
    let unobserved = times.get(&MachineState::Unobserved).copied().unwrap_or(0);
    let pbt = total - planned_stop - unobserved;
    let apt = times.get(&MachineState::Running).copied().unwrap_or(0);
    let ratio = |num: f64, den: f64| (den > 0.0).then(|| num / den);
    let availability = ratio(apt as f64, pbt as f64);
    let performance = ratio(ideal_production_ms, apt as f64)
        .filter(|_| ideal_production_ms > 0.0 || good + scrap == 0);
    let quality = ratio(good as f64, (good + scrap) as f64);
    let oee = match (availability, performance, quality) {
        (Some(a), Some(p), Some(q)) => Some(a * p * q),
        _ => None,
    };
    Oee {
        planned_busy_ms: pbt,
        unobserved_ms: unobserved,
        actual_production_ms: apt,
        good,
        scrap,
        ideal_production_ms,
        availability,
        performance,
        quality,
        oee,
        warnings: warnings([
            ("availability", availability),
            ("performance", performance),
            ("quality", quality),
            ("oee", oee),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MachineState::*;

    /// A shift's order worked out by hand, the way a plant's OEE sheet does it.
    ///
    /// The order ran 8 h = 480 min: 400 min running, 30 min down (a die jam), 20 min setup,
    /// 30 min planned stop (the break). Ideal cycle 1.2 s; 18,000 parts made, 17,100 good.
    ///   PBT          = 480 - 30 (planned)       = 450 min = 27,000,000 ms
    ///   APT          = 400 min                  = 24,000,000 ms
    ///   availability = 400 / 450                = 0.888…
    ///   ideal time   = 18,000 × 1.2 s = 21,600 s = 21,600,000 ms
    ///   performance  = 21,600,000 / 24,000,000  = 0.9
    ///   quality      = 17,100 / 18,000          = 0.95
    ///   OEE          = 0.888… × 0.9 × 0.95      = 0.76
    #[test]
    fn a_shift_computed_by_hand() {
        let min = 60_000;
        let times = StateTimes::from([
            (Running, 400 * min),
            (Down, 30 * min),
            (Setup, 20 * min),
            (PlannedStop, 30 * min),
        ]);
        let o = compute(&times, 17_100, 900, 18_000.0 * 1_200.0);
        assert_eq!(o.planned_busy_ms, 27_000_000);
        assert_eq!(o.actual_production_ms, 24_000_000);
        assert!((o.availability.unwrap() - 400.0 / 450.0).abs() < 1e-12);
        assert!((o.performance.unwrap() - 0.9).abs() < 1e-12);
        assert!((o.quality.unwrap() - 0.95).abs() < 1e-12);
        assert!((o.oee.unwrap() - 0.76).abs() < 1e-12, "{:?}", o.oee);
    }

    #[test]
    fn an_ideal_cycle_time_set_too_slow_warns() {
        // The documented example: performance 1.65 and OEE 1.34 must not pass in silence.
        let o = compute(&StateTimes::from([(Running, 60_000)]), 99, 0, 99_000.0);
        assert!((o.performance.unwrap() - 1.65).abs() < 1e-12);
        let figures: Vec<&str> = o.warnings.iter().map(|w| w.figure.as_str()).collect();
        assert_eq!(figures, ["performance", "oee"]);
        assert!(o.warnings[0]
            .message
            .contains("ideal cycle time is set too slow"));
        let fine = compute(&StateTimes::from([(Running, 60_000)]), 50, 0, 50_000.0);
        assert!(fine.warnings.is_empty());
    }

    #[test]
    fn nothing_to_divide_by_is_null_not_zero_or_nan() {
        let o = compute(&StateTimes::new(), 0, 0, 0.0);
        assert_eq!(
            (o.availability, o.performance, o.quality, o.oee),
            (None, None, None, None)
        );
        // Parts but no ideal cycle time known: no performance, so no OEE.
        let o = compute(&StateTimes::from([(Running, 1000)]), 5, 0, 0.0);
        assert_eq!(
            (o.availability, o.performance, o.quality, o.oee),
            (Some(1.0), None, Some(1.0), None)
        );
    }
}
