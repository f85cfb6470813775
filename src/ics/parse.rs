//! Parsing one component's properties into [`EventDetails`]: calscope's content-line splitter
//! finds names, parameters and values; TEXT values are unescaped by the `icalendar` crate
//! (RFC 5545, 3.3.11); dates, times and durations are read in their basic formats here.
//!
//! Nothing recurses, so no input can exhaust the stack.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use icalendar::parser::ParseString;

use crate::event::{EventDetails, EventStatus, EventTime, Person, Transparency};
use crate::ics::lines::{ContentLine, Lines};

/// Parses the top-level properties of `raw` (nested components such as VALARM are skipped).
pub(crate) fn details(raw: &str) -> EventDetails {
    let mut out = EventDetails::default();
    let mut depth = 0usize;
    let mut lines = Lines::new(raw.as_bytes());
    while let Some(line) = lines.next_line() {
        let Some(cl) = ContentLine::split(line.text) else {
            if !line.text.is_empty() {
                out.problems.push(format!("unreadable line at byte {}", line.offset));
            }
            continue;
        };
        if cl.is(b"BEGIN") {
            depth += 1;
        } else if cl.is(b"END") {
            depth = depth.saturating_sub(1);
        } else if depth == 1 {
            apply(&mut out, &cl);
        }
    }
    out
}

fn lossy(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// A TEXT value, unescaped.
fn text(value: &[u8]) -> String {
    let value = lossy(value);
    if value.contains('\\') {
        ParseString::from(value.as_ref()).unescape_text().as_str().to_owned()
    } else {
        value.into_owned()
    }
}

fn apply(out: &mut EventDetails, cl: &ContentLine<'_>) {
    let value = cl.value;
    if cl.is(b"SUMMARY") {
        out.summary = Some(text(value));
    } else if cl.is(b"DESCRIPTION") {
        out.description = Some(text(value));
    } else if cl.is(b"LOCATION") {
        out.location = Some(text(value));
    } else if cl.is(b"DTSTART") {
        out.start = time(out, cl);
    } else if cl.is(b"DTEND") {
        out.end = time(out, cl);
    } else if cl.is(b"DURATION") {
        let value = lossy(value);
        match duration_seconds(&value) {
            Some(secs) => out.duration_seconds = Some(secs),
            None => out.problems.push(format!("unreadable DURATION {value:?}")),
        }
    } else if cl.is(b"RRULE") {
        let value = lossy(value);
        if !value.trim().is_empty() {
            out.rrule.push(value.into_owned());
        }
    } else if cl.is(b"RDATE") {
        let list = times(out, cl);
        out.rdate.extend(list);
    } else if cl.is(b"EXDATE") {
        let list = times(out, cl);
        out.exdate.extend(list);
    } else if cl.is(b"STATUS") {
        let value = lossy(value);
        out.status = Some(match value.trim().to_ascii_uppercase().as_str() {
            "TENTATIVE" => EventStatus::Tentative,
            "CONFIRMED" => EventStatus::Confirmed,
            "CANCELLED" => EventStatus::Cancelled,
            _ => EventStatus::Other(value.into_owned()),
        });
    } else if cl.is(b"TRANSP") {
        let value = value.trim_ascii();
        out.transparency = if value.eq_ignore_ascii_case(b"TRANSPARENT") {
            Some(Transparency::Transparent)
        } else if value.eq_ignore_ascii_case(b"OPAQUE") {
            Some(Transparency::Opaque)
        } else {
            None
        };
    } else if cl.is(b"ORGANIZER") {
        out.organizer = Some(person(cl));
    } else if cl.is(b"ATTENDEE") {
        out.attendees.push(person(cl));
    }
}

fn person(cl: &ContentLine<'_>) -> Person {
    let param = |name: &[u8]| cl.param(name).map(|v| lossy(v).into_owned());
    Person {
        address: lossy(cl.value).into_owned(),
        name: param(b"CN"),
        participation: param(b"PARTSTAT"),
        role: param(b"ROLE"),
    }
}

fn time(out: &mut EventDetails, cl: &ContentLine<'_>) -> Option<EventTime> {
    let value = lossy(cl.value);
    let parsed = time_value(cl, &value);
    match &parsed {
        None => out.problems.push(format!("unreadable {} {value:?}", lossy(cl.name))),
        Some(t) => note_unknown_zone(out, t),
    }
    parsed
}

fn times(out: &mut EventDetails, cl: &ContentLine<'_>) -> Vec<EventTime> {
    let mut list = Vec::new();
    let value = lossy(cl.value);
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // A PERIOD (`start/end` or `start/duration`): its start is the instance.
        let start = part.split('/').next().unwrap_or(part);
        match time_value(cl, start) {
            Some(t) => {
                note_unknown_zone(out, &t);
                list.push(t);
            }
            None => out.problems.push(format!("unreadable {} value {part:?}", lossy(cl.name))),
        }
    }
    list
}

/// A DATE or DATE-TIME value under the line's TZID parameter. A DATE-TIME under VALUE=DATE is
/// read as a DATE-TIME (venue feeds write it); a value ending in `Z` is UTC even when a TZID is
/// given.
fn time_value(cl: &ContentLine<'_>, value: &str) -> Option<EventTime> {
    let value = value.trim();
    if let Some(date) = basic_date(value) {
        return Some(EventTime::Date { date });
    }
    if let Some(utc) = value.strip_suffix(['Z', 'z']) {
        return basic_date_time(utc).map(|t| EventTime::Utc { at: Utc.from_utc_datetime(&t) });
    }
    let local = basic_date_time(value)?;
    Some(match cl.param(b"TZID") {
        Some(tzid) => {
            let tzid = lossy(tzid).into_owned();
            let utc = crate::tz::resolve(&tzid).map(|tz| crate::tz::to_utc(tz, local));
            EventTime::Zoned { local, tzid, utc }
        }
        None => EventTime::Floating { local },
    })
}

fn note_unknown_zone(out: &mut EventDetails, t: &EventTime) {
    if let EventTime::Zoned { tzid, utc: None, .. } = t {
        let msg = format!("unknown time zone {tzid:?}");
        if !out.problems.contains(&msg) {
            out.problems.push(msg);
        }
    }
}

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

    #[test]
    fn details_read_fields_and_skip_alarms() {
        let raw = "BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Lunch\\, then walk\r\nDTSTART;TZID=Europe/Berlin:20240105T120000\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY\r\nEXDATE;TZID=Europe/Berlin:20240112T120000,20240119T120000\r\nSTATUS:confirmed\r\nTRANSP:TRANSPARENT\r\nORGANIZER;CN=Ann:mailto:ann@x.org\r\nATTENDEE;CN=\"Bo, B\";PARTSTAT=ACCEPTED:mailto:bo@x.org\r\nBEGIN:VALARM\r\nSUMMARY:alarm text\r\nEND:VALARM\r\nEND:VEVENT\r\n";
        let d = details(raw);
        assert_eq!(d.summary.as_deref(), Some("Lunch, then walk"));
        let start = d.start.clone().unwrap();
        assert_eq!(start.to_utc().unwrap().to_rfc3339(), "2024-01-05T11:00:00+00:00");
        assert_eq!(d.duration_seconds, Some(3600));
        assert_eq!(d.end_utc().unwrap().to_rfc3339(), "2024-01-05T12:00:00+00:00");
        assert_eq!(d.rrule, vec!["FREQ=WEEKLY".to_owned()]);
        assert_eq!(d.exdate.len(), 2);
        assert_eq!(d.status, Some(EventStatus::Confirmed));
        assert_eq!(d.transparency, Some(Transparency::Transparent));
        assert_eq!(d.organizer.unwrap().name.as_deref(), Some("Ann"));
        assert_eq!(d.attendees[0].name.as_deref(), Some("Bo, B"));
        assert_eq!(d.attendees[0].participation.as_deref(), Some("ACCEPTED"));
        assert!(d.problems.is_empty(), "{:?}", d.problems);
    }

    #[test]
    fn all_day_and_problems() {
        let d = details("BEGIN:VEVENT\nUID:1\nDTSTART:20240105\nDTEND;TZID=Nowhere/Land:20240106T000000\nEND:VEVENT");
        assert!(d.is_all_day());
        assert_eq!(d.problems, vec!["unknown time zone \"Nowhere/Land\"".to_owned()]);
        let d = details("BEGIN:VEVENT\nDTSTART:garbage\nEND:VEVENT");
        assert!(d.start.is_none());
        assert_eq!(d.problems.len(), 1);
    }
}
