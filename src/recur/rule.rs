//! RRULE (RFC 5545, 3.3.10): parsing, and the iterator of a rule's wall-clock instances.
//!
//! The iterator works on local wall-clock times (`NaiveDateTime`): recurrence rules are
//! defined on the calendar of DTSTART's zone, so "every day at 09:00" stays at 09:00 across DST.
//! The caller maps each wall time to UTC ([`crate::value::tz::to_utc`] moves a time inside a
//! gap forward by the gap). One period (a year, month, week, day, hour, minute or second,
//! stepped by INTERVAL) at a time, its candidates are built by the `BYxxx` parts as RFC 5545's
//! expand/limit table says, BYSETPOS picks among them, and COUNT and UNTIL stop the series.
//!
//! Without COUNT the iterator can start at the period containing any time ([`RuleIter::seek`]),
//! so a window far from DTSTART costs no walk from DTSTART.

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Weekday};

use crate::value::date::weekday;

/// The FREQ of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Freq {
    Secondly,
    Minutely,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

/// UNTIL as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Until {
    /// A DATE: the last day of the series.
    Date(NaiveDate),
    /// A DATE-TIME without `Z`: wall-clock time in DTSTART's zone.
    Local(NaiveDateTime),
    /// A DATE-TIME with `Z`.
    Utc(NaiveDateTime),
}

/// One parsed RRULE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Rule {
    pub(crate) freq: Freq,
    pub(crate) interval: u32,
    pub(crate) count: Option<u32>,
    pub(crate) until: Option<Until>,
    by_second: Vec<u32>,
    by_minute: Vec<u32>,
    by_hour: Vec<u32>,
    /// (ordinal, weekday); ordinal 0 means every such weekday.
    by_day: Vec<(i32, Weekday)>,
    by_month_day: Vec<i32>,
    by_year_day: Vec<i32>,
    by_week_no: Vec<i32>,
    by_month: Vec<u32>,
    by_set_pos: Vec<i32>,
    wkst: Weekday,
}

/// Largest INTERVAL accepted (a larger one is a typo or an attack, not a calendar).
const MAX_INTERVAL: u32 = 100_000;
/// Periods in a row without an instance before the iterator gives up (a rule such as
/// `FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30` never matches).
pub(crate) const MAX_EMPTY_PERIODS: u32 = 50_000;
/// No instance after this year is generated.
const LAST_YEAR: i32 = 9999;

fn list<T>(value: &str, name: &str, item: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| item(p).ok_or_else(|| format!("invalid {name} value {p:?}")))
        .collect()
}

fn in_range(p: &str, lo: i32, hi: i32, signed: bool) -> Option<i32> {
    let n: i32 = p.parse().ok()?;
    let ok = if signed { n != 0 && n.abs() >= lo && n.abs() <= hi } else { n >= lo && n <= hi };
    ok.then_some(n)
}

fn unsigned(p: &str, lo: u32, hi: u32) -> Option<u32> {
    let n: u32 = p.parse().ok()?;
    (lo..=hi).contains(&n).then_some(n)
}

fn until(value: &str) -> Option<Until> {
    let value = value.trim();
    if let Some(date) = crate::value::date::basic_date(value) {
        return Some(Until::Date(date));
    }
    if let Some(utc) = value.strip_suffix(['Z', 'z']) {
        return crate::value::date::basic_date_time(utc).map(Until::Utc);
    }
    crate::value::date::basic_date_time(value).map(Until::Local)
}

impl Rule {
    /// Parses an RRULE value (`FREQ=WEEKLY;BYDAY=MO,WE`). Unknown parts (X- names, RSCALE,
    /// SKIP) are ignored; a missing or invalid FREQ, or an invalid value, is an error.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        let mut rule = Self {
            freq: Freq::Daily,
            interval: 1,
            count: None,
            until: None,
            by_second: Vec::new(),
            by_minute: Vec::new(),
            by_hour: Vec::new(),
            by_day: Vec::new(),
            by_month_day: Vec::new(),
            by_year_day: Vec::new(),
            by_week_no: Vec::new(),
            by_month: Vec::new(),
            by_set_pos: Vec::new(),
            wkst: Weekday::Mon,
        };
        let mut freq = None;
        // Some writers prefix the property name ("RRULE:FREQ=…").
        let value = value.trim();
        let value = value.strip_prefix("RRULE:").unwrap_or(value);
        for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, v) = part.split_once('=').ok_or_else(|| format!("rule part {part:?} has no value"))?;
            let name = name.trim().to_ascii_uppercase();
            let v = v.trim().to_ascii_uppercase();
            match name.as_str() {
                "FREQ" => {
                    freq = Some(match v.as_str() {
                        "SECONDLY" => Freq::Secondly,
                        "MINUTELY" => Freq::Minutely,
                        "HOURLY" => Freq::Hourly,
                        "DAILY" => Freq::Daily,
                        "WEEKLY" => Freq::Weekly,
                        "MONTHLY" => Freq::Monthly,
                        "YEARLY" => Freq::Yearly,
                        _ => return Err(format!("unknown FREQ {v:?}")),
                    });
                }
                "INTERVAL" => {
                    rule.interval = unsigned(&v, 1, MAX_INTERVAL).ok_or_else(|| format!("invalid INTERVAL {v:?}"))?;
                }
                "COUNT" => {
                    // A negative or zero COUNT is seen in the wild (`UNTIL=…;COUNT=-1`); it is
                    // ignored, as recurring-ical-events does (its issue 128).
                    let n: i64 = v.parse().map_err(|_| format!("invalid COUNT {v:?}"))?;
                    rule.count = (n > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX));
                }
                "UNTIL" => rule.until = Some(until(&v).ok_or_else(|| format!("invalid UNTIL {v:?}"))?),
                "BYSECOND" => rule.by_second = list(&v, "BYSECOND", |p| unsigned(p, 0, 60))?,
                "BYMINUTE" => rule.by_minute = list(&v, "BYMINUTE", |p| unsigned(p, 0, 59))?,
                "BYHOUR" => rule.by_hour = list(&v, "BYHOUR", |p| unsigned(p, 0, 23))?,
                "BYDAY" => {
                    rule.by_day = list(&v, "BYDAY", |p| {
                        let split = p.len().checked_sub(2)?;
                        let (n, day) = (p.get(..split)?, weekday(p.get(split..)?)?);
                        let n = if n.is_empty() || n == "+" { 0 } else { in_range(n, 1, 53, true)? };
                        Some((n, day))
                    })?;
                }
                "BYMONTHDAY" => rule.by_month_day = list(&v, "BYMONTHDAY", |p| in_range(p, 1, 31, true))?,
                "BYYEARDAY" => rule.by_year_day = list(&v, "BYYEARDAY", |p| in_range(p, 1, 366, true))?,
                "BYWEEKNO" => rule.by_week_no = list(&v, "BYWEEKNO", |p| in_range(p, 1, 53, true))?,
                "BYMONTH" => rule.by_month = list(&v, "BYMONTH", |p| unsigned(p, 1, 12))?,
                "BYSETPOS" => rule.by_set_pos = list(&v, "BYSETPOS", |p| in_range(p, 1, 366, true))?,
                "WKST" => rule.wkst = weekday(&v).ok_or_else(|| format!("invalid WKST {v:?}"))?,
                _ => {}
            }
        }
        rule.freq = freq.ok_or("rule has no FREQ")?;
        for list in [&mut rule.by_second, &mut rule.by_minute, &mut rule.by_hour, &mut rule.by_month] {
            list.sort_unstable();
            list.dedup();
        }
        // Leap seconds are not representable: second 60 reads as 59 (RFC 5545 allows 60).
        for s in &mut rule.by_second {
            *s = (*s).min(59);
        }
        rule.by_second.dedup();
        Ok(rule)
    }

    /// Fills in the parts DTSTART implies (RFC 5545: "missing" `BYxxx` parts take DTSTART's values).
    fn with_defaults(mut self, start: NaiveDateTime) -> Self {
        let implicit_day = self.by_week_no.is_empty()
            && self.by_year_day.is_empty()
            && self.by_month_day.is_empty()
            && self.by_day.is_empty();
        if implicit_day {
            match self.freq {
                Freq::Yearly => {
                    if self.by_month.is_empty() {
                        self.by_month = vec![start.month()];
                    }
                    self.by_month_day = vec![i32::try_from(start.day()).unwrap_or(1)];
                }
                Freq::Monthly => self.by_month_day = vec![i32::try_from(start.day()).unwrap_or(1)],
                Freq::Weekly => self.by_day = vec![(0, start.weekday())],
                _ => {}
            }
        }
        // Ordinals in BYDAY count only within a month or year.
        if !matches!(self.freq, Freq::Monthly | Freq::Yearly) {
            for d in &mut self.by_day {
                d.0 = 0;
            }
        }
        self
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let next =
        if month == 12 { NaiveDate::from_ymd_opt(year + 1, 1, 1) } else { NaiveDate::from_ymd_opt(year, month + 1, 1) };
    next.and_then(|n| n.pred_opt()).map_or(28, |d| d.day())
}

fn days_in_year(year: i32) -> u32 {
    if NaiveDate::from_ymd_opt(year, 2, 29).is_some() { 366 } else { 365 }
}

/// The start of the week that holds `date`, weeks starting on `wkst`.
fn week_start(date: NaiveDate, wkst: Weekday) -> NaiveDate {
    let back = (date.weekday().num_days_from_monday() + 7 - wkst.num_days_from_monday()) % 7;
    date - Duration::days(i64::from(back))
}

/// The first day of week 1 of `year` (the first week with at least 4 days of the year).
fn week_one(year: i32, wkst: Weekday) -> Option<NaiveDate> {
    let jan1 = NaiveDate::from_ymd_opt(year, 1, 1)?;
    let start = week_start(jan1, wkst);
    let days_before = (jan1 - start).num_days();
    Some(if days_before <= 3 { start } else { start + Duration::days(7) })
}

/// (week number, weeks in that numbering year) of `date`, per RFC 5545's BYWEEKNO.
fn week_no(date: NaiveDate, wkst: Weekday) -> Option<(i32, i32)> {
    let year = date.year();
    let weeks_of = |y: i32| -> Option<i32> {
        let (a, b) = (week_one(y, wkst)?, week_one(y + 1, wkst)?);
        i32::try_from((b - a).num_days() / 7).ok()
    };
    let this = week_one(year, wkst)?;
    let next = week_one(year + 1, wkst)?;
    let (base, weeks) = if date < this {
        (week_one(year - 1, wkst)?, weeks_of(year - 1)?)
    } else if date >= next {
        (next, weeks_of(year + 1)?)
    } else {
        (this, weeks_of(year)?)
    };
    Some((i32::try_from((date - base).num_days() / 7).ok()? + 1, weeks))
}

fn matches_signed(list: &[i32], value: i32, count: i32) -> bool {
    list.iter().any(|&n| n == value || (n < 0 && count + n + 1 == value))
}

/// The wall-clock instances of one rule from DTSTART on, in order.
#[derive(Debug)]
pub(crate) struct RuleIter {
    rule: Rule,
    start: NaiveDateTime,
    /// The current period's first moment (midnight of its first day for Y/M/W/D).
    period: NaiveDateTime,
    /// Periods stepped since DTSTART's period (for the alignment of seeks).
    buffer: Vec<NaiveDateTime>,
    next: usize,
    /// Whether DTSTART was produced (or skipped by a seek).
    started: bool,
    /// Instances the rule produced, for COUNT (DTSTART counts only when the rule produces it).
    emitted: u32,
    empty_run: u32,
    days: Vec<NaiveDate>,
    times: Vec<NaiveTime>,
    /// Why the iterator stopped early, if it did.
    pub(crate) gave_up: Option<String>,
    done: bool,
}

impl RuleIter {
    /// Instances of `rule` for a series starting at `start` (wall-clock time; midnight for a
    /// DATE). `until` is UNTIL as a wall-clock time in the series' zone (the caller converts a
    /// UTC UNTIL); DTSTART is the first instance whether or not the rule matches it.
    pub(crate) fn new(rule: Rule, start: NaiveDateTime) -> Self {
        let rule = rule.with_defaults(start);
        let period = period_of(&rule, start);
        Self {
            rule,
            start,
            period,
            buffer: Vec::new(),
            next: 0,
            started: false,
            emitted: 0,
            empty_run: 0,
            days: Vec::new(),
            times: Vec::new(),
            gave_up: None,
            done: false,
        }
    }

    /// Moves to the period that contains `at` (aligned to INTERVAL), unless COUNT needs the walk
    /// from DTSTART or `at` is before the current period. Instances before `at` in that period
    /// are still produced.
    pub(crate) fn seek(&mut self, at: NaiveDateTime) {
        if self.rule.count.is_some() || at <= self.period || !self.started && at <= self.start {
            return;
        }
        let Some(target) = aligned_period(&self.rule, self.start, at) else { return };
        if target > self.period {
            self.period = target;
            self.buffer.clear();
            self.next = 0;
            // DTSTART lies before the new period; it is no longer owed.
            self.started = true;
        }
    }

    /// The next wall-clock instance; `until` is UNTIL as wall-clock time (see [`Self::new`]).
    pub(crate) fn next_until(&mut self, until: Option<NaiveDateTime>) -> Option<NaiveDateTime> {
        if self.done {
            return None;
        }
        if !self.started {
            // DTSTART is always the first instance. It counts toward COUNT when the rule
            // produces it too; a DTSTART the rule does not match (RFC 5545: "undefined") is an
            // extra instance, as dateutil-based expanders and most clients have it.
            self.started = true;
            return Some(self.start);
        }
        loop {
            if let Some(&t) = self.buffer.get(self.next) {
                self.next += 1;
                if t < self.start {
                    continue;
                }
                if t == self.start {
                    self.emitted += 1;
                    continue;
                }
                if until.is_some_and(|u| t > u) || self.rule.count.is_some_and(|c| self.emitted >= c) {
                    self.done = true;
                    return None;
                }
                self.emitted += 1;
                return Some(t);
            }
            if self.period.year() > LAST_YEAR || until.is_some_and(|u| self.period > u) {
                self.done = true;
                return None;
            }
            self.fill();
            if self.buffer.is_empty() {
                self.empty_run += 1;
                if self.empty_run > MAX_EMPTY_PERIODS {
                    self.gave_up = Some(format!("no instance in {MAX_EMPTY_PERIODS} periods in a row"));
                    self.done = true;
                    return None;
                }
            } else {
                self.empty_run = 0;
            }
            if !self.advance() {
                // The period could not advance (calendar overflow); the buffer is the last one.
                if self.buffer.is_empty() {
                    self.done = true;
                    return None;
                }
                self.done_after_buffer();
            }
        }
    }

    fn done_after_buffer(&mut self) {
        self.period = NaiveDate::from_ymd_opt(LAST_YEAR + 1, 1, 1).unwrap_or(NaiveDate::MAX).and_time(NaiveTime::MIN);
    }

    /// Steps the period by INTERVAL; false when the calendar ends.
    fn advance(&mut self) -> bool {
        let n = self.rule.interval;
        let next = match self.rule.freq {
            Freq::Yearly => NaiveDate::from_ymd_opt(self.period.year().saturating_add_unsigned(n), 1, 1),
            Freq::Monthly => {
                let idx = i64::from(self.period.year()) * 12 + i64::from(self.period.month0()) + i64::from(n);
                i32::try_from(idx.div_euclid(12))
                    .ok()
                    .and_then(|y| NaiveDate::from_ymd_opt(y, u32::try_from(idx.rem_euclid(12)).ok()? + 1, 1))
            }
            Freq::Weekly => self.period.date().checked_add_signed(Duration::weeks(i64::from(n))),
            Freq::Daily => self.period.date().checked_add_signed(Duration::days(i64::from(n))),
            Freq::Hourly | Freq::Minutely | Freq::Secondly => {
                let step = step_seconds(self.rule.freq) * i64::from(n);
                let mut next = self.period.checked_add_signed(Duration::seconds(step));
                // A day the day parts exclude: jump to the first period of a later day.
                if let Some(p) = next
                    && !self.day_matches(p.date())
                {
                    let midnight = p.date().succ_opt().map(|d| d.and_time(NaiveTime::MIN));
                    if let Some(m) = midnight {
                        let gap = (m - p).num_seconds();
                        let steps = (gap + step - 1) / step;
                        next = p.checked_add_signed(Duration::seconds(steps * step));
                    }
                }
                return match next {
                    Some(p) => {
                        self.period = p;
                        true
                    }
                    None => false,
                };
            }
        };
        match next {
            Some(d) => {
                self.period = d.and_time(NaiveTime::MIN);
                true
            }
            None => false,
        }
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        let r = &self.rule;
        if !r.by_month.is_empty() && !r.by_month.contains(&d.month()) {
            return false;
        }
        let (day, mdays) =
            (i32::try_from(d.day()).unwrap_or(0), i32::try_from(days_in_month(d.year(), d.month())).unwrap_or(0));
        if !r.by_month_day.is_empty() && !matches_signed(&r.by_month_day, day, mdays) {
            return false;
        }
        let (yday, ydays) =
            (i32::try_from(d.ordinal()).unwrap_or(0), i32::try_from(days_in_year(d.year())).unwrap_or(0));
        if !r.by_year_day.is_empty() && !matches_signed(&r.by_year_day, yday, ydays) {
            return false;
        }
        if !r.by_week_no.is_empty() {
            match week_no(d, r.wkst) {
                Some((w, weeks)) if matches_signed(&r.by_week_no, w, weeks) => {}
                _ => return false,
            }
        }
        if !r.by_day.is_empty() {
            let month_scope = r.freq == Freq::Monthly || (r.freq == Freq::Yearly && !r.by_month.is_empty());
            let (pos, len) = if month_scope { (day, mdays) } else { (yday, ydays) };
            let (nth, nth_back) = ((pos - 1) / 7 + 1, -((len - pos) / 7 + 1));
            let hit = r.by_day.iter().any(|&(n, wd)| wd == d.weekday() && (n == 0 || n == nth || n == nth_back));
            if !hit {
                return false;
            }
        }
        true
    }

    /// The candidate days of the current period, in order.
    fn candidate_days(&mut self) {
        let mut days = std::mem::take(&mut self.days);
        days.clear();
        let date = self.period.date();
        let r = &self.rule;
        let whole_month = |days: &mut Vec<NaiveDate>, y: i32, m: u32| {
            if r.by_day.is_empty() && !r.by_month_day.is_empty() && r.by_year_day.is_empty() {
                // Direct: the named days of the month, sorted (negative ones counted from the end).
                let len = i32::try_from(days_in_month(y, m)).unwrap_or(28);
                let start = days.len();
                for &n in &r.by_month_day {
                    let d = if n > 0 { n } else { len + n + 1 };
                    if (1..=len).contains(&d)
                        && let Some(day) = NaiveDate::from_ymd_opt(y, m, u32::try_from(d).unwrap_or(0))
                    {
                        days.push(day);
                    }
                }
                if let Some(tail) = days.get_mut(start..) {
                    tail.sort_unstable();
                }
                days.dedup();
            } else if let Some(first) = NaiveDate::from_ymd_opt(y, m, 1) {
                days.extend(first.iter_days().take(days_in_month(y, m) as usize));
            }
        };
        match r.freq {
            Freq::Yearly => {
                let y = date.year();
                if !r.by_year_day.is_empty() || !r.by_week_no.is_empty() {
                    if let Some(first) = NaiveDate::from_ymd_opt(y, 1, 1) {
                        days.extend(first.iter_days().take(days_in_year(y) as usize));
                    }
                } else if r.by_month.is_empty() {
                    for m in 1..=12 {
                        whole_month(&mut days, y, m);
                    }
                } else {
                    for &m in &r.by_month {
                        whole_month(&mut days, y, m);
                    }
                }
            }
            Freq::Monthly => whole_month(&mut days, date.year(), date.month()),
            Freq::Weekly => days.extend(date.iter_days().take(7)),
            _ => days.push(date),
        }
        days.retain(|&d| self.day_matches(d));
        self.days = days;
    }

    fn candidate_times(&mut self) {
        let r = &self.rule;
        let s = self.start;
        let or = |list: &Vec<u32>, default: u32| if list.is_empty() { vec![default] } else { list.clone() };
        let p = self.period;
        let (hours, minutes, seconds) = match r.freq {
            Freq::Secondly => {
                let keep = (r.by_hour.is_empty() || r.by_hour.contains(&p.hour()))
                    && (r.by_minute.is_empty() || r.by_minute.contains(&p.minute()))
                    && (r.by_second.is_empty() || r.by_second.contains(&p.second()));
                if keep { (vec![p.hour()], vec![p.minute()], vec![p.second()]) } else { (vec![], vec![], vec![]) }
            }
            Freq::Minutely => {
                let keep = (r.by_hour.is_empty() || r.by_hour.contains(&p.hour()))
                    && (r.by_minute.is_empty() || r.by_minute.contains(&p.minute()));
                if keep {
                    (vec![p.hour()], vec![p.minute()], or(&r.by_second, s.second()))
                } else {
                    (vec![], vec![], vec![])
                }
            }
            Freq::Hourly => {
                if r.by_hour.is_empty() || r.by_hour.contains(&p.hour()) {
                    (vec![p.hour()], or(&r.by_minute, s.minute()), or(&r.by_second, s.second()))
                } else {
                    (vec![], vec![], vec![])
                }
            }
            _ => (or(&r.by_hour, s.hour()), or(&r.by_minute, s.minute()), or(&r.by_second, s.second())),
        };
        self.times.clear();
        for &h in &hours {
            for &m in &minutes {
                for &sec in &seconds {
                    if let Some(t) = NaiveTime::from_hms_opt(h, m, sec) {
                        self.times.push(t);
                    }
                }
            }
        }
    }

    /// Fills the buffer with the current period's instances (BYSETPOS applied), in order.
    fn fill(&mut self) {
        self.buffer.clear();
        self.next = 0;
        self.candidate_days();
        if self.days.is_empty() {
            return;
        }
        self.candidate_times();
        for d in &self.days {
            for t in &self.times {
                self.buffer.push(d.and_time(*t));
            }
        }
        if !self.rule.by_set_pos.is_empty() {
            let len = i32::try_from(self.buffer.len()).unwrap_or(i32::MAX);
            let mut picked: Vec<NaiveDateTime> = self
                .rule
                .by_set_pos
                .iter()
                .filter_map(|&pos| {
                    let i = if pos > 0 { pos - 1 } else { len + pos };
                    usize::try_from(i).ok().and_then(|i| self.buffer.get(i).copied())
                })
                .collect();
            picked.sort_unstable();
            picked.dedup();
            self.buffer = picked;
        }
    }
}

fn step_seconds(freq: Freq) -> i64 {
    match freq {
        Freq::Hourly => 3600,
        Freq::Minutely => 60,
        _ => 1,
    }
}

/// The first moment of the period that holds `t`.
fn period_of(rule: &Rule, t: NaiveDateTime) -> NaiveDateTime {
    let d = t.date();
    let day = match rule.freq {
        Freq::Yearly => NaiveDate::from_ymd_opt(d.year(), 1, 1),
        Freq::Monthly => NaiveDate::from_ymd_opt(d.year(), d.month(), 1),
        Freq::Weekly => Some(week_start(d, rule.wkst)),
        Freq::Daily => Some(d),
        Freq::Hourly => return d.and_time(NaiveTime::from_hms_opt(t.hour(), 0, 0).unwrap_or(NaiveTime::MIN)),
        Freq::Minutely => {
            return d.and_time(NaiveTime::from_hms_opt(t.hour(), t.minute(), 0).unwrap_or(NaiveTime::MIN));
        }
        Freq::Secondly => return t,
    };
    day.unwrap_or(d).and_time(NaiveTime::MIN)
}

/// The latest period at or before `at` that the rule's INTERVAL steps reach from DTSTART's.
fn aligned_period(rule: &Rule, start: NaiveDateTime, at: NaiveDateTime) -> Option<NaiveDateTime> {
    let first = period_of(rule, start);
    let target = period_of(rule, at);
    let n = i64::from(rule.interval);
    Some(match rule.freq {
        Freq::Yearly => {
            let steps = i64::from(target.year() - first.year()).div_euclid(n);
            NaiveDate::from_ymd_opt(first.year() + i32::try_from(steps * n).ok()?, 1, 1)?.and_time(NaiveTime::MIN)
        }
        Freq::Monthly => {
            let idx = |t: NaiveDateTime| i64::from(t.year()) * 12 + i64::from(t.month0());
            let steps = (idx(target) - idx(first)).div_euclid(n);
            let m = idx(first) + steps * n;
            NaiveDate::from_ymd_opt(
                i32::try_from(m.div_euclid(12)).ok()?,
                u32::try_from(m.rem_euclid(12)).ok()? + 1,
                1,
            )?
            .and_time(NaiveTime::MIN)
        }
        Freq::Weekly | Freq::Daily | Freq::Hourly | Freq::Minutely | Freq::Secondly => {
            let unit = match rule.freq {
                Freq::Weekly => 7 * 86_400,
                Freq::Daily => 86_400,
                f => step_seconds(f),
            };
            let steps = (target - first).num_seconds().div_euclid(unit * n);
            first.checked_add_signed(Duration::seconds(steps * unit * n))?
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%S").unwrap()
    }

    fn run(rule: &str, start: &str, n: usize) -> Vec<String> {
        let mut it = RuleIter::new(Rule::parse(rule).unwrap(), t(start));
        std::iter::from_fn(|| it.next_until(None)).take(n).map(|d| d.format("%Y%m%dT%H%M%S").to_string()).collect()
    }

    fn until(rule: &str, start: &str, until: &str) -> Vec<String> {
        let mut it = RuleIter::new(Rule::parse(rule).unwrap(), t(start));
        let u = Some(t(until));
        std::iter::from_fn(|| it.next_until(u)).map(|d| d.format("%Y%m%d").to_string()).collect()
    }

    // The examples of RFC 5545, 3.8.5.3, by their wording.

    #[test]
    fn rfc_daily_for_10_occurrences() {
        assert_eq!(run("FREQ=DAILY;COUNT=10", "19970902T090000", 20).len(), 10);
    }

    #[test]
    fn rfc_every_other_day_forever() {
        let got = run("FREQ=DAILY;INTERVAL=2", "19970902T090000", 4);
        assert_eq!(got, ["19970902T090000", "19970904T090000", "19970906T090000", "19970908T090000"]);
    }

    #[test]
    fn rfc_every_10_days_5_occurrences() {
        let got = run("FREQ=DAILY;INTERVAL=10;COUNT=5", "19970902T090000", 9);
        assert_eq!(got.last().map(String::as_str), Some("19971012T090000"));
        assert_eq!(got.len(), 5);
    }

    #[test]
    fn rfc_every_day_in_january_for_3_years() {
        let a = until("FREQ=YEARLY;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA", "19980101T090000", "20000131T140000");
        let b = until("FREQ=DAILY;BYMONTH=1", "19980101T090000", "20000131T140000");
        assert_eq!(a.len(), 93);
        assert_eq!(a, b);
    }

    #[test]
    fn rfc_weekly_on_tuesday_and_thursday_for_five_weeks() {
        let got = until("FREQ=WEEKLY;WKST=SU;BYDAY=TU,TH", "19970902T090000", "19971007T000000");
        assert_eq!(got.len(), 10);
        assert_eq!(got.last().map(String::as_str), Some("19971002"));
    }

    #[test]
    fn rfc_every_other_week_wkst_changes_the_result() {
        let mo = run("FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO", "19970805T090000", 9);
        let su = run("FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU", "19970805T090000", 9);
        let day = |v: Vec<String>| v.iter().map(|s| s.get(..8).unwrap_or_default().to_owned()).collect::<Vec<_>>();
        assert_eq!(day(mo), ["19970805", "19970810", "19970819", "19970824"]);
        assert_eq!(day(su), ["19970805", "19970817", "19970819", "19970831"]);
    }

    #[test]
    fn rfc_monthly_on_the_first_friday_and_negative_byday() {
        let got = run("FREQ=MONTHLY;COUNT=10;BYDAY=1FR", "19970905T090000", 20);
        assert_eq!(got.get(1).map(String::as_str), Some("19971003T090000"));
        let last = run("FREQ=MONTHLY;COUNT=6;BYDAY=-2MO", "19970922T090000", 9);
        assert_eq!(last.get(1).map(String::as_str), Some("19971020T090000"));
        let both = run("FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU", "19970907T090000", 20);
        assert_eq!(both.get(1).map(String::as_str), Some("19970928T090000"));
        assert_eq!(both.get(2).map(String::as_str), Some("19971102T090000"));
    }

    #[test]
    fn rfc_bymonthday_negative_and_invalid_days_skipped() {
        let got = run("FREQ=MONTHLY;BYMONTHDAY=-3", "19970928T090000", 3);
        assert_eq!(got, ["19970928T090000", "19971029T090000", "19971128T090000"]);
        // The 31st exists in 7 months only; months without it are skipped, not clamped.
        let got = run("FREQ=MONTHLY;BYMONTHDAY=31", "20260131T090000", 4);
        assert_eq!(got, ["20260131T090000", "20260331T090000", "20260531T090000", "20260731T090000"]);
    }

    #[test]
    fn rfc_bysetpos_last_work_day_of_month() {
        let got = run("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1", "19970930T090000", 3);
        assert_eq!(got, ["19970930T090000", "19971031T090000", "19971128T090000"]);
        let got = run("FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3", "19970904T090000", 9);
        assert_eq!(got, ["19970904T090000", "19971007T090000", "19971106T090000"]);
    }

    #[test]
    fn rfc_yearly_byweekno_byyearday_and_nth_weekday_of_year() {
        let got = run("FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", "19970512T090000", 3);
        assert_eq!(got, ["19970512T090000", "19980511T090000", "19990517T090000"]);
        let got = run("FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200", "19970101T090000", 4);
        assert_eq!(got, ["19970101T090000", "19970410T090000", "19970719T090000", "20000101T090000"]);
        let got = run("FREQ=YEARLY;BYDAY=20MO", "19970519T090000", 3);
        assert_eq!(got, ["19970519T090000", "19980518T090000", "19990517T090000"]);
        let got = run("FREQ=YEARLY;BYMONTH=3;BYDAY=TH", "19970313T090000", 3);
        assert_eq!(got, ["19970313T090000", "19970320T090000", "19970327T090000"]);
    }

    #[test]
    fn rfc_friday_the_13th_and_us_election_day() {
        let got = run("FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13", "19970902T090000", 3);
        assert_eq!(got, ["19970902T090000", "19980213T090000", "19980313T090000"]);
        let got = run("FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8", "19961105T090000", 3);
        assert_eq!(got, ["19961105T090000", "20001107T090000", "20041102T090000"]);
    }

    #[test]
    fn rfc_hourly_minutely_and_byhour_byminute() {
        let got = until("FREQ=HOURLY;INTERVAL=3", "19970902T090000", "19970902T170000");
        assert_eq!(got.len(), 3);
        let got = run("FREQ=MINUTELY;INTERVAL=15;COUNT=6", "19970902T090000", 9);
        assert_eq!(got.last().map(String::as_str), Some("19970902T101500"));
        let a = run("FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16;BYMINUTE=0,20,40", "19970902T090000", 30);
        let b = run("FREQ=MINUTELY;INTERVAL=20;BYHOUR=9,10,11,12,13,14,15,16", "19970902T090000", 30);
        assert_eq!(a, b);
        assert_eq!(a.get(24).map(String::as_str), Some("19970903T090000"));
    }

    #[test]
    fn yearly_feb_29_only_in_leap_years_and_impossible_rules_give_up() {
        let got = run("FREQ=YEARLY", "20240229T090000", 3);
        assert_eq!(got, ["20240229T090000", "20280229T090000", "20320229T090000"]);
        let mut it = RuleIter::new(Rule::parse("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30").unwrap(), t("20260101T090000"));
        assert_eq!(it.next_until(None), Some(t("20260101T090000")));
        assert_eq!(it.next_until(None), None);
        assert!(it.gave_up.is_some());
    }

    #[test]
    fn seek_lands_on_interval_aligned_periods() {
        let rule = Rule::parse("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO").unwrap();
        let mut it = RuleIter::new(rule, t("20260105T090000"));
        it.seek(t("20270101T000000"));
        // The two-week period holding 2027-01-01 starts 2026-12-21 (50 weeks after DTSTART's).
        assert_eq!(it.next_until(None).unwrap(), t("20261221T090000"));
        assert_eq!(it.next_until(None).unwrap(), t("20270104T090000"));
        let rule = Rule::parse("FREQ=MONTHLY;INTERVAL=5").unwrap();
        let mut it = RuleIter::new(rule, t("20260131T090000"));
        it.seek(t("20300101T000000"));
        // Every five months from January 2026: October 2029, then March 2030.
        assert_eq!(it.next_until(None).unwrap(), t("20291031T090000"));
        assert_eq!(it.next_until(None).unwrap(), t("20300331T090000"));
    }

    #[test]
    fn invalid_rules_are_errors() {
        for bad in [
            "",
            "FREQ=FORTNIGHTLY",
            "FREQ=DAILY;INTERVAL=0",
            "FREQ=DAILY;BYDAY=XX",
            "FREQ=DAILY;BYMONTH=13",
            "BYDAY=MO",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Rule::parse("freq=daily;x-name=1;count=-3").unwrap().count, None);
    }
}
