//! Time zones for a feed: IANA and Windows names from the tz database, and the feed's own
//! VTIMEZONE definitions for everything else.
//!
//! The rule, pinned by tests: a TZID that names an IANA zone (or a Windows zone, mapped to IANA)
//! uses the tz database, which knows every historical transition; any other TZID uses the
//! feed's VTIMEZONE of that name; a TZID neither knows is read as UTC, with a warning.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use chrono::{
    DateTime, Datelike as _, LocalResult, NaiveDate, NaiveDateTime, Offset as _, TimeZone as _, Utc, Weekday,
};
use chrono_tz::Tz;

use crate::value::lines::{ContentLine, Lines};

/// Most feed-defined zones matched to the tz database per feed.
const MAX_MATCHED: usize = 64;

/// The VTIMEZONE definitions of one feed, by TZID.
#[derive(Debug, Default, Clone)]
pub(crate) struct Zones {
    defined: HashMap<String, Vec<Observance>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Observance {
    start: Option<NaiveDateTime>,
    offset_from: Option<i32>,
    offset_to: Option<i32>,
    rule: Option<YearlyRule>,
    rdates: Vec<NaiveDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

    /// The zones this feed defines under names the tz database does not know, each with the
    /// tz database zone its definition matches ([`equivalent`]), at most [`MAX_MATCHED`] of
    /// them (a warning says when there were more). Definitions that match none are left out:
    /// their events keep reading as floating time, with a problem noted.
    pub(crate) fn aliases(&self) -> (crate::value::tz::ZoneAliases, Option<String>) {
        let mut custom: Vec<(&String, &Vec<Observance>)> =
            self.defined.iter().filter(|(tzid, _)| crate::value::tz::resolve(tzid).is_none()).collect();
        custom.sort_by(|a, b| a.0.cmp(b.0));
        // Each definition is matched against the tz database once (about a millisecond): a
        // feed defining thousands of zones is not let to spend seconds on them.
        let note = (custom.len() > MAX_MATCHED).then(|| {
            format!(
                "{} time zones defined; the first {MAX_MATCHED} (by TZID) are matched to the tz database, the rest read as floating time",
                custom.len()
            )
        });
        let pairs = custom
            .into_iter()
            .take(MAX_MATCHED)
            .filter_map(|(tzid, observances)| Some((tzid.clone(), equivalent(tzid, observances)?)))
            .collect();
        (crate::value::tz::ZoneAliases::new(pairs), note)
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

/// The tz database zone whose UTC offsets agree with a VTIMEZONE definition at noon on every
/// day of 2025 and 2026 (where the definition changes offset, the days on either side pin the
/// change's date): the zone a feed's custom TZID ("US-Eastern", "GMT +0100 (Standard) / GMT
/// +0200 (Daylight)", "`Europe_London`") stands for. Preferred, in order: a zone named in the
/// TZID ("london" in "`Europe_London`"); for a definition without changes, the fixed `Etc/GMT±N`
/// zone; the primary zone of a Windows name; any zone. Rules no zone has fall back to the
/// fixed zone of the offset the definition holds most of those days. Answers are kept per
/// definition for the process (a feed is read again and again).
fn equivalent(tzid: &str, observances: &[Observance]) -> Option<Tz> {
    /// Definitions matched so far: (TZID, observances) → zone.
    type Matched = HashMap<(String, Vec<Observance>), Option<Tz>>;
    static KNOWN: OnceLock<Mutex<Matched>> = OnceLock::new();
    let known = KNOWN.get_or_init(Mutex::default);
    let key = (tzid.to_owned(), observances.to_vec());
    if let Some(answer) = known.lock().ok().and_then(|k| k.get(&key).copied()) {
        return answer;
    }
    let answer = search(tzid, observances);
    if let Ok(mut k) = known.lock() {
        if k.len() > 1024 {
            k.clear();
        }
        k.insert(key, answer);
    }
    answer
}

fn search(tzid: &str, observances: &[Observance]) -> Option<Tz> {
    let first = NaiveDate::from_ymd_opt(2025, 1, 1)?;
    let noons: Vec<NaiveDateTime> = first.iter_days().take(730).filter_map(|d| d.and_hms_opt(12, 0, 0)).collect();
    let offsets: Vec<i32> = noons.iter().map(|t| offset_at(observances, *t)).collect::<Option<_>>()?;
    // Every 15 days, and the days on either side of each change.
    let mut probes: Vec<usize> = (0..noons.len()).step_by(15).collect();
    for (i, pair) in offsets.windows(2).enumerate() {
        if pair.first() != pair.get(1) {
            probes.extend([i, i + 1]);
        }
    }
    let agrees = |tz: &Tz| {
        probes.iter().all(|&i| match (noons.get(i), offsets.get(i)) {
            (Some(t), Some(&off)) => match tz.offset_from_local_datetime(t) {
                LocalResult::Single(o) => o.fix().local_minus_utc() == off,
                _ => false,
            },
            _ => false,
        })
    };
    let words: String =
        tzid.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { ' ' }).collect();
    // A zone named in the TZID: its last segment appears ("london" in "Europe_London"); the
    // more of its segments appear, the better ("US/Eastern" over "Canada/Eastern").
    let padded = format!(" {words} ");
    let appears = |segment: &str| {
        let segment = segment.to_ascii_lowercase().replace('_', " ");
        segment.len() >= 2 && padded.contains(&format!(" {segment} "))
    };
    let named = chrono_tz::TZ_VARIANTS
        .iter()
        .filter(|tz| tz.name().rsplit('/').next().is_some_and(|last| last.len() > 2 && appears(last)))
        .filter(|tz| agrees(tz))
        .max_by_key(|tz| (tz.name().split('/').filter(|s| appears(s)).count(), std::cmp::Reverse(tz.name())));
    if let Some(tz) = named {
        return Some(*tz);
    }
    if let Some(tz) = offsets.first().filter(|&&o| offsets.iter().all(|x| *x == o)).and_then(|&o| fixed(o)) {
        return Some(tz);
    }
    crate::value::tz::primary_zones().chain(chrono_tz::TZ_VARIANTS.iter().copied()).find(|tz| agrees(tz)).or_else(
        || {
            // Rules no zone has (a country's summer time since abolished): the offset the
            // definition holds most of the year, as a fixed zone, beats reading it as floating.
            let mut counts: HashMap<i32, usize> = HashMap::new();
            for o in &offsets {
                *counts.entry(*o).or_default() += 1;
            }
            let (&usual, _) = counts.iter().max_by_key(|(o, n)| (**n, -**o))?;
            fixed(usual)
        },
    )
}

/// The `Etc/GMT±N` zone of a whole-hour offset (POSIX signs: `Etc/GMT+5` is UTC-5).
fn fixed(offset: i32) -> Option<Tz> {
    if offset % 3600 != 0 {
        return None;
    }
    let name = match -offset / 3600 {
        0 => "Etc/GMT".to_owned(),
        h => format!("Etc/GMT{h:+}"),
    };
    name.parse().ok()
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
    use std::fmt::Write as _;

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

    fn zone(tzid: &str, std: &str, dst: Option<(&str, &str, &str)>) -> String {
        let mut z = format!(
            "BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n{}TZOFFSETFROM:{}\r\nTZOFFSETTO:{std}\r\nEND:STANDARD\r\n",
            dst.map_or(String::new(), |(_, _, std_rule)| format!("RRULE:{std_rule}\r\n")),
            dst.map_or(std, |(off, _, _)| off),
        );
        if let Some((off, rule, _)) = dst {
            let _ = write!(
                z,
                "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:{rule}\r\nTZOFFSETFROM:{std}\r\nTZOFFSETTO:{off}\r\nEND:DAYLIGHT\r\n"
            );
        }
        z + "END:VTIMEZONE\r\n"
    }

    /// A TZID only the feed defines stands for the tz database zone whose offsets the
    /// definition has (pinned to the day of each change): named in the TZID if one is, a fixed
    /// `Etc/GMT±N` for a definition without changes; a definition no zone has stays unknown.
    #[test]
    fn feed_defined_zones_match_the_tz_database_zone_with_their_offsets() {
        let eu = Some(("+0200", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU"));
        let mut zones = Zones::default();
        assert!(zones.add(EASTERN.as_bytes()).is_empty());
        assert!(zones.add(zone("GMT +0100 (Standard) / GMT +0200 (Daylight)", "+0100", eu).as_bytes()).is_empty());
        assert!(
            zones
                .add(
                    zone(
                        "Europe_London",
                        "+0000",
                        Some(("+0100", "FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU"))
                    )
                    .as_bytes()
                )
                .is_empty()
        );
        assert!(zones.add(zone("UTC+11", "+1100", None).as_bytes()).is_empty());
        // Summer time from the second Sunday of February: no zone does that. Its usual offset
        // then (+02:00 from February to late October), as a fixed zone.
        let odd = Some(("+0200", "FREQ=YEARLY;BYMONTH=2;BYDAY=2SU", "FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU"));
        assert!(zones.add(zone("Fictitious", "+0100", odd).as_bytes()).is_empty());
        assert!(zones.add(zone("Europe/Berlin", "+0100", eu).as_bytes()).is_empty());
        let (aliases, note) = zones.aliases();
        assert_eq!(note, None);
        let of = |tzid: &str| aliases.resolve(tzid).map(Tz::name);
        let eastern: Tz = "America/New_York".parse().unwrap();
        let matched = aliases.resolve("US-Eastern").unwrap();
        for day in NaiveDate::from_ymd_opt(2025, 1, 1).unwrap().iter_days().take(730) {
            let t = day.and_hms_opt(12, 0, 0).unwrap().and_utc();
            assert_eq!(t.with_timezone(&matched).offset().fix(), t.with_timezone(&eastern).offset().fix(), "{t}");
        }
        assert_eq!(of("Europe_London"), Some("Europe/London"));
        assert_eq!(of("UTC+11"), Some("Etc/GMT-11"));
        let gmt1 = aliases.resolve("GMT +0100 (Standard) / GMT +0200 (Daylight)").unwrap();
        let summer = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap().and_hms_opt(12, 0, 0).unwrap().and_utc();
        assert_eq!(summer.with_timezone(&gmt1).offset().fix().local_minus_utc(), 7200, "{}", gmt1.name());
        assert_eq!(of("Fictitious"), Some("Etc/GMT-2"));
        // A name the tz database knows needs no alias.
        assert_eq!(of("Europe/Berlin"), Some("Europe/Berlin"));
        assert_eq!(aliases.len(), 5, "{aliases:?}");
        assert_eq!(of("US-Eastern"), Some("US/Eastern"));
    }
}
