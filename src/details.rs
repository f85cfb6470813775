//! The fields of an event that hosts schedule with ([`EventDetails`]), and their parser.
//!
//! Parsing one component's properties into [`EventDetails`]: calscope's content-line splitter
//! finds names, parameters and values; TEXT values are unescaped by the `icalendar` crate
//! (RFC 5545, 3.3.11); dates, times and durations are read in their basic formats here.
//!
//! Nothing recurses, so no input can exhaust the stack.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use icalendar::parser::ParseString;
use serde::{Deserialize, Serialize};

use crate::value::date::{basic_date, basic_date_time, duration_seconds};
use crate::value::lines::{ContentLine, Lines};
use crate::value::tz::{self, ZoneAliases};

/// Parses the top-level properties of `raw` (nested components such as VALARM are skipped).
pub(crate) fn parse(raw: &str) -> EventDetails {
    parse_in(raw, &ZoneAliases::NONE)
}

/// [`parse`], reading TZIDs the feed defined itself through `zones` (the tz database zone each
/// definition matches): such a time is [`EventTime::Zoned`] under that zone's IANA name.
pub(crate) fn parse_in(raw: &str, zones: &ZoneAliases) -> EventDetails {
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
            apply(&mut out, &cl, zones);
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

fn apply(out: &mut EventDetails, cl: &ContentLine<'_>, zones: &ZoneAliases) {
    let value = cl.value;
    if cl.is(b"SUMMARY") {
        out.summary = Some(text(value));
    } else if cl.is(b"DESCRIPTION") {
        out.description = Some(text(value));
    } else if cl.is(b"LOCATION") {
        out.location = Some(text(value));
    } else if cl.is(b"DTSTART") {
        out.start = time(out, cl, zones);
    } else if cl.is(b"DTEND") {
        out.end = time(out, cl, zones);
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
        let list = times(out, cl, zones);
        out.rdate.extend(list);
        periods(out, cl, zones);
    } else if cl.is(b"EXDATE") {
        let list = times(out, cl, zones);
        out.exdate.extend(list);
    } else if cl.is(b"SEQUENCE") {
        out.sequence = lossy(value).trim().parse().ok();
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

fn time(out: &mut EventDetails, cl: &ContentLine<'_>, zones: &ZoneAliases) -> Option<EventTime> {
    let value = lossy(cl.value);
    let parsed = time_value(cl, &value, zones);
    match &parsed {
        None => out.problems.push(format!("unreadable {} {value:?}", lossy(cl.name))),
        Some(t) => note_unknown_zone(out, t),
    }
    parsed
}

fn times(out: &mut EventDetails, cl: &ContentLine<'_>, zones: &ZoneAliases) -> Vec<EventTime> {
    let mut list = Vec::new();
    let value = lossy(cl.value);
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        // A PERIOD (`start/end` or `start/duration`): its start is the instance.
        let start = part.split('/').next().unwrap_or(part);
        match time_value(cl, start, zones) {
            Some(t) => {
                note_unknown_zone(out, &t);
                list.push(t);
            }
            None => out.problems.push(format!("unreadable {} value {part:?}", lossy(cl.name))),
        }
    }
    list
}

/// The ends of RDATE;VALUE=PERIOD values (`start/end` or `start/duration`); their starts are in
/// `rdate` already.
fn periods(out: &mut EventDetails, cl: &ContentLine<'_>, zones: &ZoneAliases) {
    let value = lossy(cl.value);
    for part in value.split(',').map(str::trim) {
        let Some((start, end)) = part.split_once('/') else { continue };
        let Some(start) = time_value(cl, start, zones) else { continue };
        let end = end.trim();
        let end = if end.starts_with(['P', 'p', '-', '+']) {
            duration_seconds(end).map(PeriodEnd::Seconds)
        } else {
            time_value(cl, end, zones).map(PeriodEnd::At)
        };
        match end {
            Some(end) => out.rdate_periods.push(RdatePeriod { start, end }),
            None => out.problems.push(format!("unreadable RDATE period {part:?}")),
        }
    }
}

/// A DATE or DATE-TIME value under the line's TZID parameter. A DATE-TIME under VALUE=DATE is
/// read as a DATE-TIME (venue feeds write it); a value ending in `Z` is UTC even when a TZID is
/// given.
fn time_value(cl: &ContentLine<'_>, value: &str, zones: &ZoneAliases) -> Option<EventTime> {
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
            match tz::resolve(&tzid) {
                Some(zone) => EventTime::Zoned { local, utc: Some(tz::to_utc(zone, local)), tzid },
                // A zone only the feed defines: under the name of the zone it matches.
                None => match zones.resolve(&tzid) {
                    Some(zone) => {
                        EventTime::Zoned { local, utc: Some(tz::to_utc(zone, local)), tzid: zone.name().to_owned() }
                    }
                    None => EventTime::Zoned { local, tzid, utc: None },
                },
            }
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

/// The fields of an event that hosts schedule with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventDetails {
    /// SUMMARY, unescaped.
    pub summary: Option<String>,
    /// DESCRIPTION, unescaped.
    pub description: Option<String>,
    /// LOCATION, unescaped.
    pub location: Option<String>,
    /// DTSTART.
    pub start: Option<EventTime>,
    /// DTEND.
    pub end: Option<EventTime>,
    /// DURATION in seconds (negative durations are kept as written).
    pub duration_seconds: Option<i64>,
    /// RRULE values as written (normally one).
    pub rrule: Vec<String>,
    /// RDATE instants.
    pub rdate: Vec<EventTime>,
    /// RDATE;VALUE=PERIOD values: an instance with its own end (its start is in `rdate` too).
    pub rdate_periods: Vec<RdatePeriod>,
    /// EXDATE instants.
    pub exdate: Vec<EventTime>,
    /// SEQUENCE (the revision of the component).
    pub sequence: Option<i64>,
    /// STATUS.
    pub status: Option<EventStatus>,
    /// TRANSP.
    pub transparency: Option<Transparency>,
    /// ORGANIZER.
    pub organizer: Option<Person>,
    /// ATTENDEE lines.
    pub attendees: Vec<Person>,
    /// What could not be interpreted (unknown time zones, unreadable dates, …).
    pub problems: Vec<String>,
}

impl EventDetails {
    /// Whether the event is all-day (its start is a DATE).
    #[must_use]
    pub fn is_all_day(&self) -> bool {
        matches!(self.start, Some(EventTime::Date { .. }))
    }

    /// The end as UTC: DTEND, else DTSTART + DURATION, else DTSTART (+1 day for a DATE).
    ///
    /// When both DTEND and DURATION are present (invalid, but Thunderbird writes it), DTEND
    /// wins.
    #[must_use]
    pub fn end_utc(&self) -> Option<DateTime<Utc>> {
        if let Some(end) = self.end.as_ref().and_then(EventTime::to_utc) {
            return Some(end);
        }
        let start = self.start.as_ref()?;
        let begin = start.to_utc()?;
        match (self.duration_seconds, start) {
            (Some(secs), _) => begin.checked_add_signed(chrono::Duration::seconds(secs)),
            (None, EventTime::Date { .. }) => begin.checked_add_signed(chrono::Duration::days(1)),
            (None, _) => Some(begin),
        }
    }
}

/// A DTSTART / DTEND / RDATE / EXDATE value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventTime {
    /// An all-day date.
    Date {
        /// The date.
        date: NaiveDate,
    },
    /// A floating local time (no zone: the same wall-clock time everywhere).
    Floating {
        /// The wall-clock time.
        local: NaiveDateTime,
    },
    /// A UTC instant.
    Utc {
        /// The instant.
        at: DateTime<Utc>,
    },
    /// A local time in a named zone.
    Zoned {
        /// The wall-clock time.
        local: NaiveDateTime,
        /// The TZID as written; for a TZID only the feed's own VTIMEZONE defines, the IANA name
        /// of the tz database zone that definition matches (the feed's definition is not kept).
        tzid: String,
        /// The instant, when the zone is known.
        utc: Option<DateTime<Utc>>,
    },
}

impl EventTime {
    /// The instant in UTC. Dates and floating times are read as UTC (midnight for a date);
    /// a zoned time with an unknown zone has none.
    #[must_use]
    pub fn to_utc(&self) -> Option<DateTime<Utc>> {
        match self {
            Self::Date { date } => date.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
            Self::Floating { local } => Some(local.and_utc()),
            Self::Utc { at } => Some(*at),
            Self::Zoned { utc, .. } => *utc,
        }
    }
}

/// An RDATE period (RFC 5545, 3.3.9): an extra instance that keeps its own end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdatePeriod {
    /// Where the instance starts.
    pub start: EventTime,
    /// Where it ends.
    pub end: PeriodEnd,
}

/// The end of an [`RdatePeriod`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodEnd {
    /// An explicit end.
    At(EventTime),
    /// A duration from the start, in seconds.
    Seconds(i64),
}

/// STATUS of an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// TENTATIVE.
    Tentative,
    /// CONFIRMED.
    Confirmed,
    /// CANCELLED.
    Cancelled,
    /// Anything else, as written.
    Other(String),
}

/// TRANSP of an event: whether it blocks time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transparency {
    /// OPAQUE: busy.
    Opaque,
    /// TRANSPARENT: free.
    Transparent,
}

/// An ORGANIZER or ATTENDEE.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Person {
    /// The calendar address as written (usually `mailto:`).
    pub address: String,
    /// CN, the display name.
    pub name: Option<String>,
    /// PARTSTAT (attendees).
    pub participation: Option<String>,
    /// ROLE (attendees).
    pub role: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_read_fields_and_skip_alarms() {
        let raw = "BEGIN:VEVENT\r\nUID:1\r\nSUMMARY:Lunch\\, then walk\r\nDTSTART;TZID=Europe/Berlin:20240105T120000\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY\r\nEXDATE;TZID=Europe/Berlin:20240112T120000,20240119T120000\r\nSTATUS:confirmed\r\nTRANSP:TRANSPARENT\r\nORGANIZER;CN=Ann:mailto:ann@x.org\r\nATTENDEE;CN=\"Bo, B\";PARTSTAT=ACCEPTED:mailto:bo@x.org\r\nBEGIN:VALARM\r\nSUMMARY:alarm text\r\nEND:VALARM\r\nEND:VEVENT\r\n";
        let d = parse(raw);
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
        let d = parse("BEGIN:VEVENT\nUID:1\nDTSTART:20240105\nDTEND;TZID=Nowhere/Land:20240106T000000\nEND:VEVENT");
        assert!(d.is_all_day());
        assert_eq!(d.problems, vec!["unknown time zone \"Nowhere/Land\"".to_owned()]);
        let d = parse("BEGIN:VEVENT\nDTSTART:garbage\nEND:VEVENT");
        assert!(d.start.is_none());
        assert_eq!(d.problems.len(), 1);
    }
}
