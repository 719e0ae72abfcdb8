//! The shift calendar: which shift a moment belongs to, in the plant's local time.

use super::oee::{compute, Oee, StateTimes};
use crate::vocabulary::MachineState;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct ShiftCalendar {
    tz: TimeZone,
    shifts: Vec<(String, Time, Time)>,
}

/// One occurrence of a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftInstance {
    pub name: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl ShiftCalendar {
    /// `shifts`: (name, start, end) as checked by the config; a shift whose end is not after its
    /// start runs past midnight.
    pub fn new(tz: TimeZone, shifts: Vec<(String, Time, Time)>) -> Self {
        ShiftCalendar { tz, shifts }
    }

    /// The shift `ts_ms` falls in, if any.
    pub fn at(&self, ts_ms: i64) -> Option<ShiftInstance> {
        let now = Timestamp::from_millisecond(ts_ms).ok()?;
        let today = now.to_zoned(self.tz.clone()).date();
        for (name, start, end) in &self.shifts {
            // A shift that began yesterday may still be running (night shift).
            for date in [today, today.yesterday().ok()?] {
                let s = date.to_datetime(*start).to_zoned(self.tz.clone()).ok()?;
                let end_date = if end > start {
                    date
                } else {
                    date.tomorrow().ok()?
                };
                let e = end_date.to_datetime(*end).to_zoned(self.tz.clone()).ok()?;
                let (s, e) = (
                    s.timestamp().as_millisecond(),
                    e.timestamp().as_millisecond(),
                );
                if s <= ts_ms && ts_ms < e {
                    return Some(ShiftInstance {
                        name: name.clone(),
                        start_ms: s,
                        end_ms: e,
                    });
                }
            }
        }
        None
    }
}

/// Everything attributed to one shift occurrence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftAccount {
    pub shift: ShiftInstance,
    /// Machine-state time while an order was running.
    pub times: StateTimes,
    pub downtime: BTreeMap<String, i64>,
    pub good: u64,
    pub scrap: u64,
    pub ideal_production_ms: f64,
    /// Time, good and scrap parts with no order running.
    pub no_order_ms: i64,
    pub no_order_good: u64,
    pub no_order_scrap: u64,
    /// Scrap made under orders, by reason.
    #[serde(default)]
    pub scrap_reasons: super::actuals::ScrapReasons,
}

impl ShiftAccount {
    pub fn new(shift: ShiftInstance) -> Self {
        ShiftAccount {
            shift,
            times: StateTimes::new(),
            downtime: BTreeMap::new(),
            good: 0,
            scrap: 0,
            ideal_production_ms: 0.0,
            no_order_ms: 0,
            no_order_good: 0,
            no_order_scrap: 0,
            scrap_reasons: Default::default(),
        }
    }

    pub fn add_time(
        &mut self,
        state: MachineState,
        ms: i64,
        stop_reason: Option<&str>,
        order_running: bool,
    ) {
        if !order_running {
            self.no_order_ms += ms;
            return;
        }
        *self.times.entry(state).or_default() += ms;
        if let Some(reason) = stop_reason {
            *self.downtime.entry(reason.to_string()).or_default() += ms;
        }
    }

    pub fn oee(&self) -> Oee {
        compute(&self.times, self.good, self.scrap, self.ideal_production_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_time, parse_zone};

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn day_and_night_shifts_in_local_time_across_dst() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let t = |s| parse_time(s).unwrap();
        let cal = ShiftCalendar::new(
            tz,
            vec![
                ("early".into(), t("06:00"), t("14:00")),
                ("late".into(), t("14:00"), t("22:00")),
                ("night".into(), t("22:00"), t("06:00")),
            ],
        );
        // 2026-07-01 05:30 Berlin (CEST, UTC+2) is 03:30Z: the night shift that began the day before.
        let s = cal.at(ms("2026-07-01T03:30:00Z")).unwrap();
        assert_eq!(s.name, "night");
        assert_eq!(
            (s.start_ms, s.end_ms),
            (ms("2026-06-30T20:00:00Z"), ms("2026-07-01T04:00:00Z"))
        );
        assert_eq!(cal.at(ms("2026-07-01T04:00:00Z")).unwrap().name, "early");
        // The night of the switch to winter time (25 Oct 2026, 03:00 CEST → 02:00 CET) is 9 h long.
        let n = cal.at(ms("2026-10-25T01:00:00Z")).unwrap();
        assert_eq!(n.end_ms - n.start_ms, 9 * 3_600_000);
    }

    #[test]
    fn no_shift_outside_the_calendar() {
        let cal = ShiftCalendar::new(
            TimeZone::UTC,
            vec![(
                "day".into(),
                parse_time("08:00").unwrap(),
                parse_time("16:00").unwrap(),
            )],
        );
        assert!(cal.at(ms("2026-07-01T07:59:59Z")).is_none());
        assert_eq!(cal.at(ms("2026-07-01T08:00:00Z")).unwrap().name, "day");
        assert!(parse_time("25:00").is_err());
        assert!(parse_zone(Some("Mars/Olympus")).is_err());
    }
}
