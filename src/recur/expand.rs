//! Series expansion: a master and its overrides, a window and a zone → instances.

use std::collections::{BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};

use super::busy::Busy;
use super::rule::{Rule, RuleIter, Until};
use crate::details::{EventDetails, EventTime, PeriodEnd};
use crate::event::Event;
use crate::id::{RecurrenceId, RecurrenceValue, Uid};
use crate::value::tz::{self, Zone};

/// Default cap on the instances one series yields in one expansion.
pub const DEFAULT_MAX_INSTANCES: usize = 10_000;

/// One occurrence of a series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Instance {
    /// The occurrence's original start (its RECURRENCE-ID), also for a moved occurrence and
    /// for a single, non-recurring event.
    pub recurrence_id: RecurrenceId,
    /// Where it starts (UTC).
    pub start: DateTime<Utc>,
    /// Where it ends (UTC; equal to `start` for a zero-length instance).
    pub end: DateTime<Utc>,
    /// Whether it blocks its time ([`Busy::of`]).
    pub busy: Busy,
}

/// What expanding one series gave.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expansion {
    /// The instances that overlap the window, sorted by start.
    pub instances: Vec<Instance>,
    /// What could not be interpreted (malformed rules, unknown zones, a cap reached).
    pub diagnostics: Vec<String>,
    /// Whether the instance cap cut the series short.
    pub truncated: bool,
}

/// One series: the master (the component without RECURRENCE-ID) and its overrides, of one UID
/// in one calendar. Either may be missing: an invitation to one occurrence arrives as an
/// override without its master.
#[derive(Clone, Debug, Default)]
pub struct Series<'a> {
    master: Option<&'a EventDetails>,
    overrides: Vec<(RecurrenceId, &'a EventDetails)>,
    /// Overrides left out because an earlier one names the same occurrence.
    duplicates: usize,
    /// The overrides' recurrence ids, once there are many (a linear scan finds few faster).
    seen: HashSet<RecurrenceId>,
}

impl<'a> Series<'a> {
    /// An empty series.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the master.
    #[must_use]
    pub fn with_master(mut self, master: &'a EventDetails) -> Self {
        self.master = Some(master);
        self
    }

    /// Adds the override of the occurrence `recurrence_id`.
    #[must_use]
    pub fn with_override(mut self, recurrence_id: RecurrenceId, details: &'a EventDetails) -> Self {
        self.push(Some(recurrence_id), details);
        self
    }

    /// Adds a component: the master when `recurrence_id` is `None`, else an override. A
    /// second override of the same occurrence (a feed's duplicate) is left out, with a
    /// diagnostic when the series is expanded: an occurrence is one instance.
    pub fn push(&mut self, recurrence_id: Option<RecurrenceId>, details: &'a EventDetails) {
        match recurrence_id {
            None => self.master = Some(details),
            Some(rid) => {
                // One occurrence, however its overrides' RANGE reads.
                let plain = |r: RecurrenceId| r.with_this_and_future(false);
                let known = if self.overrides.len() < 32 {
                    self.overrides.iter().any(|(r, _)| plain(*r) == plain(rid))
                } else {
                    if self.seen.is_empty() {
                        self.seen.extend(self.overrides.iter().map(|(r, _)| plain(*r)));
                    }
                    !self.seen.insert(plain(rid))
                };
                if known {
                    self.duplicates += 1;
                } else {
                    self.overrides.push((rid, details));
                }
            }
        }
    }
}

/// An occurrence is one instance: two walls naming one recurrence id (an hourly rule on an
/// all-day series; two local times a DST gap moves onto one instant) keep the first. Walls come
/// in order and their ids mostly ascend, so a set is built only once one does not.
#[derive(Default)]
struct OneEach {
    highest: Option<RecurrenceId>,
    emitted: HashSet<RecurrenceId>,
    collapsed: usize,
}

impl OneEach {
    /// Whether `rid` is new among `so_far` (the instances emitted so far).
    fn fresh(&mut self, rid: RecurrenceId, so_far: &[Instance]) -> bool {
        let fresh = match self.highest {
            Some(h) if rid <= h => {
                if self.emitted.is_empty() {
                    self.emitted.extend(so_far.iter().map(|i| i.recurrence_id));
                }
                self.emitted.insert(rid)
            }
            _ => {
                if !self.emitted.is_empty() {
                    self.emitted.insert(rid);
                }
                self.highest = Some(rid);
                true
            }
        };
        if !fresh {
            self.collapsed += 1;
        }
        fresh
    }

    fn report(&self, out: &mut Expansion) {
        if self.collapsed > 0 {
            out.diagnostics.push(format!(
                "{} occurrence(s) name the recurrence id of an earlier one (a sub-daily rule on an all-day \
                 series, or local times a DST change moves onto one instant); the first is kept",
                self.collapsed
            ));
        }
    }
}

/// The recurrence expander: RFC 5545 recurrence (RRULE, RDATE, EXDATE, overrides by
/// RECURRENCE-ID with RANGE=THISANDFUTURE) over a window, with a zone for floating times and
/// dates.
///
/// The rules, in short (DESIGN.md, "How does calscope expand recurrences?", has the reasons):
/// - recurrence is computed on wall-clock time in DTSTART's zone, so 09:00 stays 09:00 across
///   DST; a time inside a DST gap moves forward by the gap, an ambiguous time takes its first
///   instant; DTSTART is always the first instance;
/// - floating times and DATE values are read in the expander's [`Zone`] (the host's);
/// - no DTEND or DURATION: a DATE lasts one day, a DATE-TIME has zero length; DTEND's wall-clock
///   distance from DTSTART (or a whole-day DURATION) is kept in local time across DST;
/// - an EXDATE excludes an occurrence at the same instant or the same wall-clock time; a DATE
///   EXDATE excludes that day;
/// - an override replaces the occurrence it names (matched by instant) and is reported on its
///   own, wherever it moved; THISANDFUTURE shifts the later occurrences and gives them its
///   duration and busy state;
/// - a malformed rule gives a diagnostic and the series' DTSTART (and RDATEs); a rule with no
///   end stops at the window; a series stops at the instance cap with a diagnostic.
///
/// # Example
/// ```
/// use calscope::{CalendarId, Event, Expander, FingerprintPolicy, Series, Zone};
/// let ics = "BEGIN:VEVENT\r\nUID:standup\r\nDTSTART;TZID=Europe/Berlin:20261026T090000\r\nDURATION:PT15M\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\n";
/// let event = Event::from_ics(&CalendarId::new("work")?, ics, &FingerprintPolicy::default())?;
/// let details = event.details();
/// let from = "2026-10-01T00:00:00Z".parse()?;
/// let to = "2026-11-01T00:00:00Z".parse()?;
/// let expansion = Expander::new(Zone::UTC).expand(&Series::new().with_master(details), from, to);
/// let starts: Vec<String> = expansion.instances.iter().map(|i| i.start.to_rfc3339()).collect();
/// // 09:00 in Berlin is 08:00Z in winter time (the zone changed on 25 October).
/// assert_eq!(starts, ["2026-10-26T08:00:00+00:00", "2026-10-27T08:00:00+00:00", "2026-10-28T08:00:00+00:00"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Expander {
    zone: Zone,
    max_instances: usize,
}

impl Default for Expander {
    fn default() -> Self {
        Self::new(Zone::UTC)
    }
}

/// How an instance's end follows from its start.
#[derive(Clone, Copy, Debug)]
enum Length {
    /// A wall-clock distance (DTEND in DTSTART's zone, whole days, an all-day event).
    Wall(Duration),
    /// An exact distance.
    Exact(Duration),
}

/// The properties an occurrence takes from the component that defines it.
#[derive(Clone, Copy)]
struct Props<'a> {
    details: &'a EventDetails,
    length: Length,
}

/// A THISANDFUTURE override: from its occurrence on, occurrences shift and take its properties.
struct Range<'a> {
    from: DateTime<Utc>,
    shift: Duration,
    props: Props<'a>,
}

impl Expander {
    /// An expander reading floating times and dates in `zone`, with the default instance cap.
    #[must_use]
    pub fn new(zone: Zone) -> Self {
        Self { zone, max_instances: DEFAULT_MAX_INSTANCES }
    }

    /// The same expander with another cap on instances per series (at least 1).
    #[must_use]
    pub fn max_instances(mut self, max: usize) -> Self {
        self.max_instances = max.max(1);
        self
    }

    /// The zone floating times and dates are read in.
    #[must_use]
    pub fn zone(&self) -> Zone {
        self.zone
    }

    /// An instant of a value: dates and floating times in the expander's zone.
    fn utc_of(&self, t: &EventTime) -> DateTime<Utc> {
        match t {
            EventTime::Date { date } => self.zone.to_utc(date.and_time(NaiveTime::MIN)),
            EventTime::Floating { local } => self.zone.to_utc(*local),
            EventTime::Utc { at } => *at,
            // An unknown zone: the wall-clock time is read as floating (in the host's zone).
            EventTime::Zoned { utc, local, tzid } => utc
                .or_else(|| tz::resolve(tzid).map(|z| tz::to_utc(z, *local)))
                .unwrap_or_else(|| self.zone.to_utc(*local)),
        }
    }

    /// The instant a RECURRENCE-ID names, dates and floating times read in `zone`.
    fn rid_instant(zone: Zone, rid: &RecurrenceId) -> DateTime<Utc> {
        match rid.value() {
            RecurrenceValue::Date(d) => zone.to_utc(d.and_time(NaiveTime::MIN)),
            RecurrenceValue::Floating(t) => zone.to_utc(t),
            RecurrenceValue::Instant(t) => t,
        }
    }

    /// The length of a component's occurrences.
    fn length(&self, d: &EventDetails, start: &EventTime) -> Length {
        if let Some(end) = &d.end {
            let same_wall = match (start, end) {
                (EventTime::Date { date: a }, EventTime::Date { date: b }) => {
                    return Length::Wall(*b - *a);
                }
                (EventTime::Floating { local: a }, EventTime::Floating { local: b }) => Some((*a, *b)),
                (EventTime::Zoned { local: a, tzid: za, .. }, EventTime::Zoned { local: b, tzid: zb, .. })
                    if za == zb =>
                {
                    Some((*a, *b))
                }
                _ => None,
            };
            if let Some((a, b)) = same_wall {
                return Length::Wall(b - a);
            }
            return Length::Exact(self.utc_of(end) - self.utc_of(start));
        }
        match (d.duration_seconds, start) {
            // Whole days are nominal (RFC 5545, 3.3.6): the same wall-clock time days later.
            (Some(secs), _) if secs % 86_400 == 0 => Length::Wall(Duration::seconds(secs)),
            (Some(secs), _) => Length::Exact(Duration::seconds(secs)),
            (None, EventTime::Date { .. }) => Length::Wall(Duration::days(1)),
            (None, _) => Length::Exact(Duration::zero()),
        }
    }

    /// The interval of an occurrence. An end before the start (DTEND before DTSTART, a negative
    /// DURATION) is read as the two swapped, the writer's evident intent.
    fn span(zone: Zone, start: DateTime<Utc>, wall: NaiveDateTime, length: Length) -> (DateTime<Utc>, DateTime<Utc>) {
        let end = match length {
            Length::Wall(d) => wall.checked_add_signed(d).map_or(start, |w| zone.to_utc(w)),
            Length::Exact(d) => start.checked_add_signed(d).unwrap_or(start),
        };
        (start.min(end), start.max(end))
    }

    /// The instances of `series` that overlap `[from, to)`.
    ///
    /// Overlap is RFC 4791's (9.9): an instance overlaps when it starts before `to` and ends
    /// after `from`; a zero-length instance when it starts in `[from, to)`.
    #[must_use]
    pub fn expand(&self, series: &Series<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Expansion {
        let mut out = Expansion::default();
        if series.duplicates > 0 {
            out.diagnostics
                .push(format!("{} override(s) name an occurrence named before; the first is kept", series.duplicates));
        }
        let Some(master) = series.master else {
            for (rid, d) in &series.overrides {
                self.push_override(&mut out, rid, d, None, from, to);
            }
            out.instances.sort_by_key(|i| (i.start, i.end));
            return out;
        };
        let Some(start) = master.start.as_ref() else {
            out.diagnostics.push("master has no DTSTART".to_owned());
            for (rid, d) in &series.overrides {
                self.push_override(&mut out, rid, d, None, from, to);
            }
            return out;
        };
        // The zone the series recurs in, and DTSTART's wall-clock time there.
        let mut unknown_zone = false;
        let (zone, wall_start, all_day) = match start {
            EventTime::Date { date } => (self.zone, date.and_time(NaiveTime::MIN), true),
            EventTime::Floating { local } => (self.zone, *local, false),
            EventTime::Utc { at } => (Zone::UTC, at.naive_utc(), false),
            EventTime::Zoned { local, tzid, .. } => {
                if let Some(z) = tz::resolve(tzid) {
                    (Zone(z), *local, false)
                } else {
                    out.diagnostics.push(format!("unknown time zone {tzid:?}; the series is read as floating time"));
                    unknown_zone = true;
                    (self.zone, *local, false)
                }
            }
        };
        let master_props = Props { details: master, length: self.length(master, start) };
        let rid_of = |wall: NaiveDateTime, utc: DateTime<Utc>| match start {
            EventTime::Date { .. } => RecurrenceId::date(wall.date()),
            EventTime::Floating { .. } => RecurrenceId::floating(wall),
            _ => RecurrenceId::instant(utc),
        };

        let (replaced, replaced_days, ranges) =
            self.overrides(series, zone, all_day, unknown_zone, master_props.length);

        let (gen_from, gen_to) = Self::generated_span(zone, (from, to), master_props.length, &ranges);

        let mut walls: BTreeSet<NaiveDateTime> = BTreeSet::new();
        let any_rule = self.rule_walls(master, zone, wall_start, all_day, (gen_from, gen_to), &mut walls, &mut out);
        if !any_rule && (gen_from..=gen_to).contains(&wall_start) {
            walls.insert(wall_start);
        }
        let (exact, period_end) = self.rdate_walls(master, zone, (gen_from, gen_to), &mut walls);
        if walls.len() > self.max_instances {
            out.truncated = true;
            out.diagnostics
                .push(format!("more than {} instances in the window; the rest are left out", self.max_instances));
            let keep: Vec<_> = walls.iter().copied().take(self.max_instances).collect();
            walls = keep.into_iter().collect();
        }

        let ex = Exclusions::of(self, master, zone);

        let mut once = OneEach::default();
        for wall in walls {
            let original = exact.get(&wall).copied().unwrap_or_else(|| zone.to_utc(wall));
            if ex.day.contains(&wall.date()) || ex.wall.contains(&wall) || ex.instant.contains(&original) {
                continue;
            }
            if replaced.contains(&original) || all_day && replaced_days.contains(&wall.date()) {
                continue;
            }
            let range = ranges.iter().rev().find(|r| r.from < original);
            let (props, start_wall) = match range {
                Some(r) => (r.props, wall.checked_add_signed(r.shift).unwrap_or(wall)),
                None => (master_props, wall),
            };
            let start = if range.is_some() { zone.to_utc(start_wall) } else { original };
            let (start, end) = match period_end.get(&wall) {
                Some(e) if range.is_none() => (start.min(*e), start.max(*e)),
                _ => Self::span(zone, start, start_wall, props.length),
            };
            if overlaps(start, end, from, to) {
                let rid = rid_of(wall, original);
                if !once.fresh(rid, &out.instances) {
                    continue;
                }
                let busy = Busy::of(props.details.status.as_ref(), props.details.transparency, start, end);
                out.instances.push(Instance { recurrence_id: rid, start, end, busy });
            }
        }
        once.report(&mut out);
        for (rid, d) in &series.overrides {
            // An override of an occurrence the master's EXDATE removes is stale (the master was
            // changed after it): it is dropped.
            let at = Self::rid_instant(zone, rid);
            let excluded = ex.instant.contains(&at)
                || ex.day.contains(&zone.wall(at).date())
                || matches!(rid.value(), RecurrenceValue::Floating(t) if ex.wall.contains(&t));
            if !excluded {
                self.push_override(&mut out, rid, d, Some((zone, master_props.length)), from, to);
            }
        }
        out.instances.sort_by_key(|i| (i.start, i.end));
        out
    }

    /// Adds the wall-clock occurrences of the master's RRULEs in `span` to `walls`; false when
    /// no rule could be read.
    #[allow(clippy::too_many_arguments)]
    fn rule_walls(
        &self,
        master: &EventDetails,
        zone: Zone,
        wall_start: NaiveDateTime,
        all_day: bool,
        (gen_from, gen_to): (NaiveDateTime, NaiveDateTime),
        walls: &mut BTreeSet<NaiveDateTime>,
        out: &mut Expansion,
    ) -> bool {
        let mut any_rule = false;
        for text in &master.rrule {
            match Rule::parse(text) {
                Ok(rule) => {
                    any_rule = true;
                    let until = rule.until.map(|u| match u {
                        Until::Date(d) => d.and_time(NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN)),
                        Until::Local(t) => t,
                        Until::Utc(t) => zone.wall(t.and_utc()),
                    });
                    let until = if all_day { until.map(|u| u.date().and_time(NaiveTime::MIN)) } else { until };
                    // The window's end bounds the walk too: a rule whose periods stay empty (a
                    // sixth Wednesday, COUNT never reached) stops there, not after its empty-period
                    // budget (a fuzzer's find: seconds under the sanitizer).
                    let until = Some(until.map_or(gen_to, |u| u.min(gen_to)));
                    let mut it = RuleIter::new(rule, wall_start);
                    it.seek(gen_from);
                    while let Some(w) = it.next_until(until) {
                        if w > gen_to {
                            break;
                        }
                        if w >= gen_from {
                            walls.insert(w);
                            if walls.len() > self.max_instances {
                                break;
                            }
                        }
                    }
                    if let Some(why) = it.gave_up {
                        out.diagnostics.push(format!("RRULE {text:?}: {why}"));
                    }
                }
                Err(why) => out.diagnostics.push(format!("RRULE {text:?} ignored: {why}")),
            }
        }
        any_rule
    }

    /// Adds the master's RDATEs in `span` to `walls` (in the series' zone); returns the instants
    /// of those given in UTC or another zone, and the ends of periods.
    fn rdate_walls(
        &self,
        master: &EventDetails,
        zone: Zone,
        (gen_from, gen_to): (NaiveDateTime, NaiveDateTime),
        walls: &mut BTreeSet<NaiveDateTime>,
    ) -> (HashMap<NaiveDateTime, DateTime<Utc>>, HashMap<NaiveDateTime, DateTime<Utc>>) {
        // RDATEs, in the series' zone; periods keep their own end.
        let mut period_end: HashMap<NaiveDateTime, DateTime<Utc>> = HashMap::new();
        // RDATE instants given in UTC or another zone keep their instant (a wall-clock time in
        // the autumn fold would otherwise take the first of its two).
        let mut exact: HashMap<NaiveDateTime, DateTime<Utc>> = HashMap::new();
        for r in &master.rdate {
            let wall = match r {
                EventTime::Date { date } => Some(date.and_time(NaiveTime::MIN)),
                EventTime::Floating { local } => Some(*local),
                other => {
                    let u = self.utc_of(other);
                    let w = zone.wall(u);
                    exact.insert(w, u);
                    Some(w)
                }
            };
            if let Some(w) = wall.filter(|w| (gen_from..=gen_to).contains(w)) {
                walls.insert(w);
            }
        }
        for p in &master.rdate_periods {
            let s = self.utc_of(&p.start);
            let w = match &p.start {
                EventTime::Date { date } => date.and_time(NaiveTime::MIN),
                EventTime::Floating { local } => *local,
                _ => zone.wall(s),
            };
            let end = match &p.end {
                PeriodEnd::At(e) => Some(self.utc_of(e)),
                PeriodEnd::Seconds(secs) => s.checked_add_signed(Duration::seconds(*secs)),
            };
            if let Some(e) = end {
                period_end.insert(w, e.max(s));
            }
        }
        (exact, period_end)
    }

    /// The overrides by the instant they replace (and, for an all-day series, the day), and the
    /// THISANDFUTURE ones as ranges, in order.
    fn overrides<'a>(
        &self,
        series: &Series<'a>,
        zone: Zone,
        all_day: bool,
        unknown_zone: bool,
        master_length: Length,
    ) -> (HashSet<DateTime<Utc>>, HashSet<chrono::NaiveDate>, Vec<Range<'a>>) {
        // Overrides by the instant they replace; THISANDFUTURE ones also as ranges.
        let mut replaced: HashSet<DateTime<Utc>> = HashSet::new();
        let mut replaced_days: HashSet<chrono::NaiveDate> = HashSet::new();
        let mut ranges: Vec<Range<'_>> = Vec::new();
        for (rid, d) in &series.overrides {
            let at = Self::rid_instant(zone, rid);
            replaced.insert(at);
            if let (true, RecurrenceValue::Instant(t)) = (unknown_zone, rid.value()) {
                // The reader reads a RECURRENCE-ID in an unknown zone as UTC.
                replaced.insert(zone.to_utc(t.naive_utc()));
            }
            if all_day {
                // An all-day series' override named by a DATE-TIME (Exchange writes midnight in
                // its own zone): the day whose midnight is nearest, in any zone.
                replaced_days.insert(match rid.value() {
                    RecurrenceValue::Date(d) => d,
                    _ => (at + Duration::hours(12)).date_naive(),
                });
            }
            if rid.is_this_and_future() {
                let new_start = d.start.as_ref().map_or(at, |s| self.utc_of(s));
                let length = d.start.as_ref().map_or(master_length, |s| self.length(d, s));
                ranges.push(Range {
                    from: at,
                    shift: zone.wall(new_start) - zone.wall(at),
                    props: Props { details: d, length },
                });
            }
        }
        ranges.sort_by_key(|r| r.from);
        (replaced, replaced_days, ranges)
    }

    /// The wall-clock span to generate for a window: widened by the longest length and by how
    /// far THISANDFUTURE overrides move occurrences, and a day of slack.
    fn generated_span(
        zone: Zone,
        (from, to): (DateTime<Utc>, DateTime<Utc>),
        master_length: Length,
        ranges: &[Range<'_>],
    ) -> (NaiveDateTime, NaiveDateTime) {
        let longest = std::iter::once(master_length)
            .chain(ranges.iter().map(|r| r.props.length))
            .map(|l| match l {
                Length::Wall(d) | Length::Exact(d) => d,
            })
            .max()
            .unwrap_or_else(Duration::zero)
            .max(Duration::zero());
        let earliest_shift = ranges.iter().map(|r| r.shift).min().unwrap_or_else(Duration::zero).min(Duration::zero());
        let latest_shift = ranges.iter().map(|r| r.shift).max().unwrap_or_else(Duration::zero).max(Duration::zero());
        let slack = Duration::days(1);
        let gen_from = zone.wall(from).checked_sub_signed(longest + latest_shift + slack).unwrap_or(NaiveDateTime::MIN);
        let gen_to = zone.wall(to).checked_add_signed(slack - earliest_shift).unwrap_or(NaiveDateTime::MAX);
        (gen_from, gen_to)
    }

    /// Reports one override on its own. Without DTSTART it keeps its occurrence's start and
    /// the master's length.
    fn push_override(
        &self,
        out: &mut Expansion,
        rid: &RecurrenceId,
        d: &EventDetails,
        master: Option<(Zone, Length)>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) {
        let zone = master.map_or(self.zone, |(z, _)| z);
        let original = Self::rid_instant(zone, rid);
        let (start, length) = match d.start.as_ref() {
            Some(s) => (self.utc_of(s), self.length(d, s)),
            None => (original, master.map_or(Length::Exact(Duration::zero()), |(_, l)| l)),
        };
        let wall_zone = match d.start.as_ref() {
            Some(EventTime::Zoned { tzid, .. }) => tz::resolve(tzid).map_or(self.zone, Zone),
            Some(EventTime::Utc { .. }) => Zone::UTC,
            _ => self.zone,
        };
        let (start, end) = Self::span(wall_zone, start, wall_zone.wall(start), length);
        if overlaps(start, end, from, to) {
            let busy = Busy::of(d.status.as_ref(), d.transparency, start, end);
            out.instances.push(Instance { recurrence_id: rid.with_this_and_future(false), start, end, busy });
        }
    }

    /// Expands events of any UIDs (one calendar's): grouped into series by UID, in UID order.
    #[must_use]
    pub fn expand_events(&self, events: &[Event], from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<(Uid, Expansion)> {
        let details: Vec<_> = events.iter().map(Event::details).collect();
        let mut by_uid: std::collections::BTreeMap<&Uid, Series<'_>> = std::collections::BTreeMap::new();
        for (e, d) in events.iter().zip(&details) {
            by_uid.entry(&e.key().uid).or_default().push(e.key().recurrence_id, d);
        }
        by_uid.into_iter().map(|(uid, s)| (uid.clone(), self.expand(&s, from, to))).collect()
    }
}

/// A master's EXDATEs: by instant, by wall-clock time as written, and whole days for DATEs.
struct Exclusions {
    instant: HashSet<DateTime<Utc>>,
    wall: HashSet<NaiveDateTime>,
    day: HashSet<chrono::NaiveDate>,
}

impl Exclusions {
    fn of(expander: &Expander, master: &EventDetails, zone: Zone) -> Self {
        let mut instant: HashSet<DateTime<Utc>> = HashSet::new();
        let mut wall: HashSet<NaiveDateTime> = HashSet::new();
        let mut day: HashSet<chrono::NaiveDate> = HashSet::new();
        for x in &master.exdate {
            match x {
                EventTime::Date { date } => {
                    day.insert(*date);
                }
                EventTime::Floating { local } => {
                    wall.insert(*local);
                    instant.insert(zone.to_utc(*local));
                }
                EventTime::Utc { at } => {
                    instant.insert(*at);
                }
                EventTime::Zoned { local, .. } => {
                    wall.insert(*local);
                    instant.insert(expander.utc_of(x));
                }
            }
        }
        Self { instant, wall, day }
    }
}

/// RFC 4791's overlap (9.9), with zero-length instances counted where they start.
fn overlaps(start: DateTime<Utc>, end: DateTime<Utc>, from: DateTime<Utc>, to: DateTime<Utc>) -> bool {
    if end > start { start < to && end > from } else { from <= start && start < to }
}
