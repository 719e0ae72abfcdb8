//! The PLC's dates and times as the cell shows them: text like `2026-03-01T06:07:08.123` in the
//! CPU's own local time, no zone. Both DATE_AND_TIME (8 bytes of BCD) and DTL (12 bytes of
//! binary fields, S7-1200/1500) are written from the same text, checked here once.

/// A calendar date and time of day, nanoseconds included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Clock {
    pub year: u32,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub nanos: u32,
}

impl Clock {
    const fn at(
        year: u32,
        month: u32,
        day: u32,
        hour: u32,
        minute: u32,
        second: u32,
        nanos: u32,
    ) -> Clock {
        Clock {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
        }
    }

    /// `YYYY-MM-DDTHH:MM:SS` and, if `digits` > 0, that many digits of the second's fraction.
    pub fn text(&self, digits: u32) -> String {
        let c = self;
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        );
        if digits > 0 {
            let frac = c.nanos / 10u32.pow(9 - digits);
            s.push_str(&format!(".{frac:0width$}", width = digits as usize));
        }
        s
    }

    /// Whether every field is in its range (the day within its month, leap years counted).
    pub fn valid(&self) -> bool {
        (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
            && self.nanos < 1_000_000_000
    }

    /// The day of the week as S7 CPUs count it: 1 for Sunday to 7 for Saturday.
    pub fn weekday(&self) -> u8 {
        // Sakamoto's method, which gives 0 for Sunday.
        let offsets = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
        let y = if self.month < 3 {
            self.year - 1
        } else {
            self.year
        };
        ((y + y / 4 - y / 100 + y / 400 + offsets[self.month as usize - 1] + self.day) % 7 + 1)
            as u8
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Text like `2026-03-01T06:00:00` with up to `max_digits` digits of the second's fraction, for
/// a type holding `first..=last`; `example` is how the type's text looks, for the error.
pub(super) fn parse(
    s: &str,
    max_digits: usize,
    first: Clock,
    last: Clock,
    example: &str,
) -> Result<Clock, String> {
    let bad = || {
        format!(
            "{s:?} is not a date and time like {example} ({} to {})",
            first.year, last.year
        )
    };
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = s.get(r).ok_or_else(bad)?;
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse().map_err(|_| bad())
    };
    let seps = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if s.len() < 19 || seps.iter().any(|&(i, c)| s.as_bytes()[i] != c) {
        return Err(bad());
    }
    let nanos = match s.get(19..) {
        Some("") => 0,
        Some(frac) if frac.starts_with('.') && (2..=max_digits + 1).contains(&frac.len()) => {
            num(20..s.len())? * 10u32.pow(10 - frac.len() as u32)
        }
        _ => return Err(bad()),
    };
    let c = Clock {
        year: num(0..4)?,
        month: num(5..7)?,
        day: num(8..10)?,
        hour: num(11..13)?,
        minute: num(14..16)?,
        second: num(17..19)?,
        nanos,
    };
    if !c.valid() || c < first || c > last {
        return Err(bad());
    }
    Ok(c)
}

fn bcd(b: u8) -> Option<u32> {
    let (hi, lo) = (b >> 4, b & 0x0F);
    (hi < 10 && lo < 10).then_some(hi as u32 * 10 + lo as u32)
}

fn to_bcd(v: u32) -> u8 {
    (((v / 10) << 4) | (v % 10)) as u8
}

const DT_FIRST: Clock = Clock::at(1990, 1, 1, 0, 0, 0, 0);
const DT_LAST: Clock = Clock::at(2089, 12, 31, 23, 59, 59, 999_000_000);

/// DATE_AND_TIME's 8 BCD bytes: year (90..99 is 1990s), month, day, hour, minute, second, then
/// three digits of milliseconds and the weekday in the last nibble.
pub(super) fn date_and_time(b: &[u8]) -> Option<String> {
    let yy = bcd(b[0])?;
    let c = Clock {
        year: if yy >= 90 { 1900 + yy } else { 2000 + yy },
        month: bcd(b[1])?,
        day: bcd(b[2])?,
        hour: bcd(b[3])?,
        minute: bcd(b[4])?,
        second: bcd(b[5])?,
        nanos: (bcd(b[6])? * 10 + bcd(b[7] & 0xF0)? / 10) * 1_000_000,
    };
    c.valid().then(|| c.text(3))
}

pub(super) fn encode_date_and_time(s: &str) -> Result<Vec<u8>, String> {
    let c = parse(s, 3, DT_FIRST, DT_LAST, "2026-03-01T06:00:00.000")?;
    let ms = c.nanos / 1_000_000;
    Ok(vec![
        to_bcd(c.year % 100),
        to_bcd(c.month),
        to_bcd(c.day),
        to_bcd(c.hour),
        to_bcd(c.minute),
        to_bcd(c.second),
        to_bcd(ms / 10),
        ((ms % 10) << 4) as u8 | c.weekday(),
    ])
}

/// DTL's range as Siemens documents it (a 64-bit count of nanoseconds from 1970).
const DTL_FIRST: Clock = Clock::at(1970, 1, 1, 0, 0, 0, 0);
const DTL_LAST: Clock = Clock::at(2262, 4, 11, 23, 47, 16, 854_775_807);

/// DTL's 12 bytes: year (u16), month, day, weekday, hour, minute, second (u8 each), nanoseconds
/// (u32), big-endian. The weekday is the CPU's to keep; the date says which day it is.
pub(super) fn dtl(b: &[u8]) -> Option<String> {
    let c = Clock {
        year: u16::from_be_bytes([b[0], b[1]]) as u32,
        month: b[2] as u32,
        day: b[3] as u32,
        hour: b[5] as u32,
        minute: b[6] as u32,
        second: b[7] as u32,
        nanos: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
    };
    (c.valid() && (DTL_FIRST..=DTL_LAST).contains(&c)).then(|| c.text(9))
}

pub(super) fn encode_dtl(s: &str) -> Result<Vec<u8>, String> {
    let c = parse(s, 9, DTL_FIRST, DTL_LAST, "2026-03-01T06:00:00.123456789")?;
    let mut out = (c.year as u16).to_be_bytes().to_vec();
    out.extend([
        c.month as u8,
        c.day as u8,
        c.weekday(),
        c.hour as u8,
        c.minute as u8,
        c.second as u8,
    ]);
    out.extend(c.nanos.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_and_time_is_bcd() {
        // 2026-03-01 06:07:08.123, a Sunday (weekday 1).
        let bytes = [0x26, 0x03, 0x01, 0x06, 0x07, 0x08, 0x12, 0x31];
        assert_eq!(
            date_and_time(&bytes).as_deref(),
            Some("2026-03-01T06:07:08.123")
        );
        assert_eq!(
            encode_date_and_time("2026-03-01T06:07:08.123").unwrap(),
            bytes
        );
        assert_eq!(date_and_time(&[0x9A, 1, 1, 0, 0, 0, 0, 0]), None, "not BCD");
        // A DATE_AND_TIME holds milliseconds: a finer fraction is refused, not rounded.
        assert!(encode_date_and_time("2026-03-01T06:07:08.1234").is_err());
        assert!(encode_date_and_time("2090-01-01T00:00:00").is_err());
    }

    #[test]
    fn dtl_is_binary_fields_with_nanoseconds() {
        // 2026-03-01 06:07:08.123456789, a Sunday (weekday 1): year 0x07EA.
        let bytes = [
            0x07, 0xEA, 3, 1, 1, 6, 7, 8, 0x07, 0x5B, 0xCD, 0x15, // 123456789 = 0x075BCD15
        ];
        assert_eq!(
            dtl(&bytes).as_deref(),
            Some("2026-03-01T06:07:08.123456789")
        );
        assert_eq!(encode_dtl("2026-03-01T06:07:08.123456789").unwrap(), bytes);
        // Fewer digits are the same fraction: .5 is 500,000,000 ns. 2027-12-31 is a Friday (6).
        assert_eq!(
            encode_dtl("2027-12-31T23:59:58.5").unwrap(),
            [0x07, 0xEB, 12, 31, 6, 23, 59, 58, 0x1D, 0xCD, 0x65, 0x00]
        );
        assert_eq!(
            encode_dtl("1970-01-01T00:00:00").unwrap(),
            [0x07, 0xB2, 1, 1, 5, 0, 0, 0, 0, 0, 0, 0],
            "a Thursday"
        );
        // A DB never written holds zeros: month 0 is no date.
        assert_eq!(dtl(&[0; 12]), None);
        let mut feb30 = bytes;
        feb30[2..4].copy_from_slice(&[2, 30]);
        assert_eq!(dtl(&feb30), None);
        let mut too_fine = bytes;
        too_fine[8..12].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(dtl(&too_fine), None, "a second or more of nanoseconds");
        for bad in [
            "1969-12-31T23:59:59",
            "2262-04-11T23:47:16.854775808",
            "2026-02-29T00:00:00",
            "2026-03-01T06:07:08.1234567890",
            "2026-03-01 06:07:08",
            "2026-03-01T06:07:08.",
        ] {
            assert!(encode_dtl(bad).is_err(), "{bad}");
        }
    }
}
