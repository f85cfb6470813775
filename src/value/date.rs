//! iCalendar DATE, DATE-TIME and DURATION values in their basic formats (RFC 5545, 3.3.4,
//! 3.3.5, 3.3.6), read strictly and without chrono's (far slower) format parser.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc, Weekday};

/// Reads a UTC DATE-TIME (`20240105T090000Z`); a floating value is read as UTC and a DATE as
/// its midnight.
pub(crate) fn utc_time(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    let local = value.strip_suffix('Z').unwrap_or(value);
    if let Some(t) = basic_date_time(local) {
        return Some(Utc.from_utc_datetime(&t));
    }
    basic_date(local)?.and_hms_opt(0, 0, 0).map(|t| t.and_utc())
}

fn digits(s: &[u8]) -> Option<u32> {
    s.iter().try_fold(0u32, |n, &b| b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0')))
}

/// `YYYYMMDD`, strictly (the iCalendar basic format; chrono's parser is far slower).
pub(crate) fn basic_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 8 {
        return None;
    }
    let year = i32::try_from(digits(b.get(0..4)?)?).ok()?;
    NaiveDate::from_ymd_opt(year, digits(b.get(4..6)?)?, digits(b.get(6..8)?)?)
}

/// `YYYYMMDDTHHMMSS`, strictly (no zone suffix). Second 60 (a leap second) is not accepted.
pub(crate) fn basic_date_time(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 15 || !matches!(b.get(8), Some(b'T' | b't')) {
        return None;
    }
    let date = basic_date(s.get(0..8)?)?;
    date.and_hms_opt(digits(b.get(9..11)?)?, digits(b.get(11..13)?)?, digits(b.get(13..15)?)?)
}

/// A weekday code of RFC 5545 (`MO` … `SU`, any case).
pub(crate) fn weekday(code: &str) -> Option<Weekday> {
    Some(match code.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Mon,
        "TU" => Weekday::Tue,
        "WE" => Weekday::Wed,
        "TH" => Weekday::Thu,
        "FR" => Weekday::Fri,
        "SA" => Weekday::Sat,
        "SU" => Weekday::Sun,
        _ => return None,
    })
}

/// Reads an RFC 5545 DURATION (`P1W`, `-PT15M`, `P1DT2H`, `P0DT0H10M0S`) as seconds.
pub(crate) fn duration_seconds(value: &str) -> Option<i64> {
    let v = value.trim();
    let (sign, v) = match v.as_bytes().first()? {
        b'-' => (-1, v.get(1..)?),
        b'+' => (1, v.get(1..)?),
        _ => (1, v),
    };
    let v = v.strip_prefix('P').or_else(|| v.strip_prefix('p'))?;
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    let mut in_time = false;
    let mut any = false;
    for c in v.chars() {
        match c.to_ascii_uppercase() {
            'T' if !in_time && num.is_none() => in_time = true,
            d @ '0'..='9' => {
                let digit = i64::from(d.to_digit(10)?);
                num = Some(num.unwrap_or(0).checked_mul(10)?.checked_add(digit)?);
            }
            unit => {
                let n = num.take()?;
                let factor = match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
                total = total.checked_add(n.checked_mul(factor)?)?;
                any = true;
            }
        }
    }
    if num.is_some() || !any {
        return None;
    }
    Some(sign * total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_formats() {
        assert_eq!(basic_date("20240229").unwrap().to_string(), "2024-02-29");
        assert!(basic_date("20230229").is_none());
        assert!(basic_date("2024022").is_none());
        assert!(basic_date("2024-2-1").is_none());
        assert_eq!(basic_date_time("20240105T235959").unwrap().to_string(), "2024-01-05 23:59:59");
        assert!(basic_date_time("20240105T246000").is_none());
        assert!(basic_date_time("20240105 090000").is_none());
        assert!(basic_date_time("20240105T0900").is_none());
    }

    #[test]
    fn durations() {
        assert_eq!(duration_seconds("PT15M"), Some(900));
        assert_eq!(duration_seconds("-P0DT0H10M0S"), Some(-600));
        assert_eq!(duration_seconds("P1W"), Some(604_800));
        assert_eq!(duration_seconds("P1DT2H"), Some(93_600));
        assert_eq!(duration_seconds("PT"), None);
        assert_eq!(duration_seconds("P1H"), None);
        assert_eq!(duration_seconds(""), None);
        assert_eq!(duration_seconds("P99999999999999999999D"), None);
    }
}
