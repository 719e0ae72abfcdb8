//! Times of day and time zones as a config writes them (the shift calendar).

use jiff::civil::Time;
use jiff::tz::TimeZone;

/// Parses `HH:MM` (or `HH:MM:SS`).
pub fn parse_time(s: &str) -> Result<Time, String> {
    s.parse::<Time>()
        .map_err(|_| format!("expected a time of day like \"06:00\", found {s:?}"))
}

pub fn parse_zone(name: Option<&str>) -> Result<TimeZone, String> {
    match name {
        None => Ok(TimeZone::system()),
        Some(n) => TimeZone::get(n)
            .map_err(|e| format!("unknown time zone {n:?} ({e}); expected e.g. \"Europe/Berlin\"")),
    }
}
