//! Time zones for a feed: IANA and Windows names from the tz database, and the feed's own
//! VTIMEZONE definitions for everything else.
//!
//! The rule, pinned by tests: a TZID that names an IANA zone (or a Windows zone, mapped to IANA)
//! uses the tz database, which knows every historical transition; any other TZID uses the
//! feed's VTIMEZONE of that name; a TZID neither knows is read as UTC, with a warning.

use std::collections::HashMap;

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveDateTime, TimeZone as _, Utc, Weekday};

use crate::value::lines::{ContentLine, Lines};

/// The VTIMEZONE definitions of one feed, by TZID.
#[derive(Debug, Default, Clone)]
pub(crate) struct Zones {
    defined: HashMap<String, Vec<Observance>>,
}

#[derive(Debug, Clone, Default)]
struct Observance {
    start: Option<NaiveDateTime>,
    offset_from: Option<i32>,
    offset_to: Option<i32>,
    rule: Option<YearlyRule>,
    rdates: Vec<NaiveDateTime>,
}

#[derive(Debug, Clone)]
struct YearlyRule {
    month: u32,
    weekday: Option<Weekday>,
    nth: i32,
    monthdays: Vec<u32>,
    until: Option<NaiveDateTime>,
}

/// How a local time was resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    Database,
    Embedded,
    /// Unknown zone: read as UTC.
    Fallback,
}

impl Zones {
    /// Adds the VTIMEZONE whose text is `component`; returns a warning for parts it could not
    /// read.
    pub(crate) fn add(&mut self, component: &[u8]) -> Vec<String> {
        let mut warnings = Vec::new();
        let mut tzid = None;
        let mut observances = Vec::new();
        let mut current: Option<Observance> = None;
        let mut depth = 0usize;
        let mut lines = Lines::new(component);
        while let Some(line) = lines.next_line() {
            let Some(cl) = ContentLine::split(line.text) else { continue };
            let value = String::from_utf8_lossy(cl.value);
            let value = value.trim();
            if cl.is(b"BEGIN") {
                depth += 1;
                if depth == 2 {
                    current = Some(Observance::default());
                }
            } else if cl.is(b"END") {
                if depth == 2 {
                    if let Some(o) = current.take() {
                        if o.offset_to.is_some() && o.offset_from.is_some() {
                            observances.push(o);
                        } else {
                            warnings.push("time zone observance without valid offsets ignored".to_owned());
                        }
                    }
                }
                depth = depth.saturating_sub(1);
            } else if depth == 1 && cl.is(b"TZID") {
                tzid = Some(value.trim_matches('"').to_owned());
            } else if let (2, Some(o)) = (depth, current.as_mut()) {
                if cl.is(b"DTSTART") {
                    o.start = local_time(value);
                } else if cl.is(b"TZOFFSETFROM") {
                    o.offset_from = offset(value);
                } else if cl.is(b"TZOFFSETTO") {
                    o.offset_to = offset(value);
                } else if cl.is(b"RRULE") {
                    o.rule = yearly_rule(value);
                    if o.rule.is_none() {
                        warnings.push(format!("time zone rule {value:?} not understood"));
                    }
                } else if cl.is(b"RDATE") {
                    o.rdates.extend(value.split(',').filter_map(local_time));
                }
            }
        }
        match tzid {
            Some(id) if !observances.is_empty() => {
                self.defined.entry(id).or_insert(observances);
            }
            Some(id) => warnings.push(format!("time zone {id:?} has no usable observance")),
            None => warnings.push("VTIMEZONE without TZID ignored".to_owned()),
        }
        warnings
    }

    /// Whether the feed defined a VTIMEZONE named `tzid`.
    /// Takes in the zones another reader found later in the same feed (a later definition of
    /// the same TZID wins, as when one reader reads both).
    pub(crate) fn absorb(&mut self, later: Self) {
        self.defined.extend(later.defined);
    }

    pub(crate) fn defines(&self, tzid: &str) -> bool {
        self.defined.contains_key(tzid.trim().trim_matches('"'))
    }

    /// `local` in zone `tzid` as UTC, and how it was resolved.
    pub(crate) fn to_utc(&self, tzid: &str, local: NaiveDateTime) -> (DateTime<Utc>, Resolution) {
        if let Some(tz) = crate::value::tz::resolve(tzid) {
            return (crate::value::tz::to_utc(tz, local), Resolution::Database);
        }
        let key = tzid.trim().trim_matches('"');
        if let Some(offset) = self.defined.get(key).and_then(|obs| offset_at(obs, local)) {
            let utc = local.checked_sub_signed(chrono::Duration::seconds(i64::from(offset))).unwrap_or(local);
            return (Utc.from_utc_datetime(&utc), Resolution::Embedded);
        }
        (Utc.from_utc_datetime(&local), Resolution::Fallback)
    }
}

/// The UTC offset (seconds) in force at `local` under these observances.
fn offset_at(observances: &[Observance], local: NaiveDateTime) -> Option<i32> {
    let mut best: Option<(NaiveDateTime, i32)> = None;
    let mut earliest: Option<(NaiveDateTime, i32)> = None;
    for o in observances {
        let (Some(to), Some(from)) = (o.offset_to, o.offset_from) else { continue };
        let Some(start) = o.start else { continue };
        if earliest.is_none_or(|(t, _)| start < t) {
            earliest = Some((start, from));
        }
        let mut onsets: Vec<NaiveDateTime> = vec![start];
        onsets.extend(o.rdates.iter().copied());
        if let Some(rule) = &o.rule {
            for year in [local.year() - 1, local.year()] {
                if let Some(day) = rule.date_in(year) {
                    let onset = day.and_time(start.time());
                    if onset >= start && rule.until.is_none_or(|u| onset <= u) {
                        onsets.push(onset);
                    }
                }
            }
        }
        for onset in onsets.into_iter().filter(|t| *t <= local) {
            if best.is_none_or(|(t, _)| onset > t) {
                best = Some((onset, to));
            }
        }
    }
    best.or(earliest).map(|(_, off)| off)
}

impl YearlyRule {
    fn date_in(&self, year: i32) -> Option<NaiveDate> {
        let first = NaiveDate::from_ymd_opt(year, self.month, 1)?;
        let days: Vec<NaiveDate> = first
            .iter_days()
            .take_while(|d| d.month() == self.month)
            .filter(|d| self.weekday.is_none_or(|w| d.weekday() == w))
            .filter(|d| self.monthdays.is_empty() || self.monthdays.contains(&d.day()))
            .collect();
        let index = if self.nth > 0 {
            usize::try_from(self.nth - 1).ok()?
        } else {
            days.len().checked_sub(usize::try_from(-self.nth).ok()?)?
        };
        days.get(index).copied()
    }
}

fn yearly_rule(value: &str) -> Option<YearlyRule> {
    let mut rule = YearlyRule { month: 0, weekday: None, nth: 1, monthdays: Vec::new(), until: None };
    let mut yearly = false;
    for part in value.split(';') {
        let (k, v) = part.split_once('=')?;
        match k.trim().to_ascii_uppercase().as_str() {
            "FREQ" => yearly = v.eq_ignore_ascii_case("YEARLY"),
            "BYMONTH" => rule.month = v.trim().parse().ok()?,
            "BYDAY" => {
                let v = v.trim();
                let split = v.len().checked_sub(2)?;
                let (n, day) = (v.get(..split)?, v.get(split..)?);
                rule.weekday = Some(crate::value::date::weekday(day)?);
                rule.nth = if n.is_empty() { 1 } else { n.trim_start_matches('+').parse().ok()? };
            }
            "BYMONTHDAY" => rule.monthdays = v.split(',').map(|d| d.trim().parse().ok()).collect::<Option<_>>()?,
            "UNTIL" => rule.until = local_time(v.trim().trim_end_matches('Z')),
            _ => {}
        }
    }
    (yearly && (1..=12).contains(&rule.month) && rule.nth != 0).then_some(rule)
}

/// A local DATE-TIME (`19701025T030000`), or a DATE read as its midnight.
fn local_time(value: &str) -> Option<NaiveDateTime> {
    let v = value.trim().trim_end_matches('Z');
    crate::value::date::basic_date_time(v)
        .or_else(|| crate::value::date::basic_date(v).and_then(|d| d.and_hms_opt(0, 0, 0)))
}

/// A UTC offset `+HHMM` or `+HHMMSS` in seconds; `None` when out of range.
fn offset(value: &str) -> Option<i32> {
    let (sign, digits) = match value.as_bytes().first()? {
        b'+' => (1, value.get(1..)?),
        b'-' => (-1, value.get(1..)?),
        _ => return None,
    };
    if !(digits.len() == 4 || digits.len() == 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hh: i32 = digits.get(0..2)?.parse().ok()?;
    let mm: i32 = digits.get(2..4)?.parse().ok()?;
    let ss: i32 = if digits.len() == 6 { digits.get(4..6)?.parse().ok()? } else { 0 };
    (hh < 24 && mm < 60 && ss < 60).then_some(sign * (hh * 3600 + mm * 60 + ss))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EASTERN: &str = "BEGIN:VTIMEZONE\r\nTZID:US-Eastern\r\nBEGIN:STANDARD\r\nDTSTART:19671029T020000\r\nRRULE:FREQ=YEARLY;BYDAY=1SU;BYMONTH=11\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19870405T020000\r\nRRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap()
    }

    #[test]
    fn embedded_rules_give_summer_and_winter_offsets() {
        let mut zones = Zones::default();
        assert!(zones.add(EASTERN.as_bytes()).is_empty());
        let (summer, how) = zones.to_utc("US-Eastern", at("20260701T120000"));
        assert_eq!((summer.to_rfc3339().as_str(), how), ("2026-07-01T16:00:00+00:00", Resolution::Embedded));
        let (winter, _) = zones.to_utc("US-Eastern", at("20260115T120000"));
        assert_eq!(winter.to_rfc3339(), "2026-01-15T17:00:00+00:00");
    }

    #[test]
    fn database_names_win_over_embedded_definitions_and_unknown_zones_fall_back_to_utc() {
        let mut zones = Zones::default();
        let _ = zones.add(EASTERN.replace("US-Eastern", "Europe/Berlin").as_bytes());
        let (t, how) = zones.to_utc("Europe/Berlin", at("20260701T120000"));
        assert_eq!((t.to_rfc3339().as_str(), how), ("2026-07-01T10:00:00+00:00", Resolution::Database));
        let (t, how) = zones.to_utc("W. Europe Standard Time", at("20260701T120000"));
        assert_eq!((t.to_rfc3339().as_str(), how), ("2026-07-01T10:00:00+00:00", Resolution::Database));
        let (t, how) = zones.to_utc("foo", at("20260701T120000"));
        assert_eq!((t.to_rfc3339().as_str(), how), ("2026-07-01T12:00:00+00:00", Resolution::Fallback));
    }

    #[test]
    fn offsets_with_seconds_and_impossible_offsets() {
        assert_eq!(offset("+034152"), Some(3 * 3600 + 41 * 60 + 52));
        assert_eq!(offset("-075258"), Some(-(7 * 3600 + 52 * 60 + 58)));
        assert_eq!(offset("+5328"), None);
        assert_eq!(offset("0100"), None);
    }
}
