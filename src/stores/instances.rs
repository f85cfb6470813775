//! What the SQL stores share about materialized instances: the horizon, the rows a series
//! gives, the diff against the stored rows, and the busy answer.
//!
//! The table (`instances`) holds one row per occurrence of every stored series within a rolling
//! horizon: (`calendar_id`, `uid`, `recurrence_id`) is the key, `recurrence_id` the occurrence's
//! original start in [`RecurrenceId`](crate::RecurrenceId)'s text form, `starts_at`/`ends_at`
//! in UTC as the `events` table writes them, `busy` and `tentative` its busy state. A row is
//! written only when its interval or busy state changes.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, DurationRound as _, Utc};

use crate::details::EventDetails;
use crate::error::{Error, ErrorKind, Result};
use crate::id::{CalendarId, RecurrenceId, Uid};
use crate::recur::{Busy, BusyInterval, Expander, Series, merge, merge_lists, spans};
pub(crate) use crate::stores::columns::{for_expansion, stored_details};
use crate::value::tz::Zone;

/// How a store keeps materialized instances: the zone of floating times and dates, and the
/// rolling horizon around today (30 days back, 400 ahead by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceConfig {
    zone: Zone,
    back: Duration,
    ahead: Duration,
    max_per_series: usize,
}

impl Default for InstanceConfig {
    fn default() -> Self {
        Self { zone: Zone::UTC, back: Duration::days(30), ahead: Duration::days(400), max_per_series: 5_000 }
    }
}

impl InstanceConfig {
    /// The default: UTC for floating times and dates, 30 days back, 400 days ahead, at most
    /// 5,000 instances per series in the horizon.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The zone floating times and dates are read in (the host's).
    #[must_use]
    pub fn zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// The horizon: `back` before and `ahead` after the start of today (UTC). Negative values
    /// count as zero.
    #[must_use]
    pub fn horizon(mut self, back: Duration, ahead: Duration) -> Self {
        self.back = back.max(Duration::zero());
        self.ahead = ahead.max(Duration::zero());
        self
    }

    /// The cap on one series' instances within the horizon (a minutely rule would otherwise
    /// fill the table); reaching it is a warning of the apply.
    #[must_use]
    pub fn max_per_series(mut self, max: usize) -> Self {
        self.max_per_series = max.max(1);
        self
    }

    /// The configured zone.
    #[must_use]
    pub fn zone_of(&self) -> Zone {
        self.zone
    }

    /// The horizon on the day of `now`: whole days, so it moves once a day.
    pub(crate) fn window(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        let day = now.duration_trunc(Duration::days(1)).unwrap_or(now);
        (day - self.back, day + self.ahead)
    }

    pub(crate) fn expander(&self) -> Expander {
        Expander::new(self.zone).max_instances(self.max_per_series)
    }
}

/// Most instances one busy query expands from `events` (beyond the horizon); the rest of the
/// series are left out, with a warning.
pub(crate) const MAX_QUERY_INSTANCES: usize = 1_000_000;

/// One series' components, parsed for expansion.
pub(crate) type Components = Vec<(Option<RecurrenceId>, EventDetails)>;

/// The series an apply touched: the components it wrote (with their fields), by UID, and every
/// UID it wrote or deleted (sorted, once each, after [`Touched::seal`]).
#[derive(Default)]
pub(crate) struct Touched {
    pub(crate) written: HashMap<Uid, Components>,
    pub(crate) uids: Vec<Uid>,
}

impl Touched {
    /// Notes one row the apply wrote or deleted.
    pub(crate) fn note(&mut self, row: crate::stores::columns::Row) {
        match row {
            crate::stores::columns::Row::Upsert(u) => {
                let u = *u;
                if let Some(d) = u.series {
                    self.written.entry(u.uid.clone()).or_default().push((u.recurrence_id, *d));
                }
                self.uids.push(u.uid);
            }
            crate::stores::columns::Row::Delete { uid, .. } => self.uids.push(uid),
        }
    }

    /// Sorts the UIDs and keeps each once.
    pub(crate) fn seal(&mut self) {
        self.uids.sort_unstable();
        self.uids.dedup();
    }
}

/// One series' instance rows, expanded before the store writes them.
pub(crate) struct SeriesRows {
    pub(crate) uid: Uid,
    pub(crate) rows: Vec<InstanceRow>,
}

/// Expands the series of a calendar's first apply on the caller's side, while the store
/// writes the events: a plan's changes are sorted by key, so each series' components pass
/// one after another, and a series is expanded once the next UID begins.
pub(crate) struct FirstExpansion {
    expander: Expander,
    window: (DateTime<Utc>, DateTime<Utc>),
    calendar: String,
    current: Option<(Uid, Components)>,
    expanded: Vec<SeriesRows>,
}

impl FirstExpansion {
    /// Expansion over the horizon `config` gives on the day of `now`.
    pub(crate) fn new(config: &InstanceConfig, calendar: &CalendarId, now: DateTime<Utc>) -> Self {
        Self {
            expander: config.expander(),
            window: config.window(now),
            calendar: calendar.as_str().to_owned(),
            current: None,
            expanded: Vec::new(),
        }
    }

    /// The horizon the rows are expanded over.
    pub(crate) fn window(&self) -> (DateTime<Utc>, DateTime<Utc>) {
        self.window
    }

    /// Takes the expansion fields of a row the apply writes (in plan order).
    pub(crate) fn push(&mut self, row: &mut crate::stores::columns::Row, warnings: &mut Vec<String>) {
        let crate::stores::columns::Row::Upsert(u) = row else { return };
        let Some(details) = u.series.take() else { return };
        if self.current.as_ref().is_some_and(|(uid, _)| *uid != u.uid) {
            self.expand_current(warnings);
        }
        match &mut self.current {
            Some((_, comps)) => comps.push((u.recurrence_id, *details)),
            None => self.current = Some((u.uid.clone(), vec![(u.recurrence_id, *details)])),
        }
    }

    /// The rows of the series completed so far.
    pub(crate) fn take(&mut self) -> Vec<SeriesRows> {
        std::mem::take(&mut self.expanded)
    }

    /// The rows of the last series too (the plan's end).
    pub(crate) fn finish(&mut self, warnings: &mut Vec<String>) -> Vec<SeriesRows> {
        self.expand_current(warnings);
        self.take()
    }

    fn expand_current(&mut self, warnings: &mut Vec<String>) {
        let Some((uid, comps)) = self.current.take() else { return };
        let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
        let (rows, notes) = rows_of(&self.expander, &refs, self.window.0, self.window.1);
        warnings.extend(notes.into_iter().map(|n| format!("{}/{uid}: {n}", self.calendar)));
        if !rows.is_empty() {
            self.expanded.push(SeriesRows { uid, rows });
        }
    }
}

/// A stored `recurrence_id` column (`''` for a master).
///
/// # Errors
/// A storage error naming `store` when the text is no recurrence id.
pub(crate) fn parse_rid(store: &str, rid: &str) -> Result<Option<RecurrenceId>> {
    if rid.is_empty() {
        return Ok(None);
    }
    rid.parse()
        .map(Some)
        .map_err(|_| Error::new(ErrorKind::Storage, format!("{store}: unreadable stored recurrence_id {rid:?}")))
}

/// One row of the `instances` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InstanceRow {
    pub(crate) rid: String,
    pub(crate) starts_at: DateTime<Utc>,
    pub(crate) ends_at: DateTime<Utc>,
    pub(crate) busy: bool,
    pub(crate) tentative: bool,
}

/// The rows one series gives in `[from, to)`, by recurrence id, and its diagnostics.
pub(crate) fn rows_of(
    expander: &Expander,
    components: &[(Option<RecurrenceId>, &EventDetails)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (Vec<InstanceRow>, Vec<String>) {
    let mut series = Series::new();
    for (rid, d) in components {
        series.push(*rid, d);
    }
    let x = expander.expand(&series, from, to);
    let mut rows: Vec<InstanceRow> = x
        .instances
        .into_iter()
        .map(|i| InstanceRow {
            rid: i.recurrence_id.to_string(),
            starts_at: i.start,
            ends_at: i.end,
            busy: i.busy != Busy::Free,
            tentative: i.busy == Busy::Tentative,
        })
        .collect();
    // One row per occurrence: two components naming the same one (a feed's duplicate) keep the
    // first.
    rows.sort_by(|a, b| a.rid.cmp(&b.rid));
    rows.dedup_by(|a, b| a.rid == b.rid);
    (rows, x.diagnostics)
}

/// Busy intervals of one calendar's series expanded over `[from, to)` (a busy answer beyond
/// the horizon); stops, with a warning, once `count` passes [`MAX_QUERY_INSTANCES`].
pub(crate) fn expanded_busy(
    expander: &Expander,
    calendar: &str,
    series: BTreeMap<String, Components>,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    count: &mut usize,
    warnings: &mut Vec<String>,
) -> Vec<BusyInterval> {
    let mut out = Vec::new();
    for (uid, comps) in series {
        if *count > MAX_QUERY_INSTANCES {
            warnings.push(format!("{calendar}: more than {MAX_QUERY_INSTANCES} instances expanded; the rest left out"));
            break;
        }
        let refs: Vec<_> = comps.iter().map(|(r, d)| (*r, d)).collect();
        let (rows, notes) = rows_of(expander, &refs, from, to);
        *count += rows.len();
        warnings.extend(notes.into_iter().map(|n| format!("{calendar}/{uid}: {n}")));
        out.extend(rows.iter().filter(|r| r.busy).map(|r| BusyInterval::new(r.starts_at, r.ends_at, r.tentative)));
    }
    out
}

/// The writes that take `stored` rows to `wanted` ones (both of one series): upserts of new or
/// changed rows, each with the stored row it changes (`None` for a new one), and the rows to
/// delete, sorted by recurrence id. Equal rows are not written.
pub(crate) fn changes(
    stored: Vec<InstanceRow>,
    wanted: Vec<InstanceRow>,
) -> (Vec<(InstanceRow, Option<InstanceRow>)>, Vec<InstanceRow>) {
    let mut old: HashMap<String, InstanceRow> = stored.into_iter().map(|r| (r.rid.clone(), r)).collect();
    let mut upserts = Vec::new();
    for w in wanted {
        match old.remove(&w.rid) {
            Some(o) if o == w => {}
            o => upserts.push((w, o)),
        }
    }
    let mut removed: Vec<InstanceRow> = old.into_values().collect();
    removed.sort_unstable_by(|a, b| a.rid.cmp(&b.rid));
    (upserts, removed)
}

/// What sliding the horizon did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SlideReport {
    /// Calendars whose horizon moved.
    pub calendars: usize,
    /// Instance rows written (new or changed occurrences in the newly covered days).
    pub written: u64,
    /// What could not be interpreted while expanding.
    pub warnings: Vec<String>,
}

/// A busy query's answer: per calendar and merged across them, clipped to the window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BusyAnswer {
    /// Each asked calendar's busy intervals, sorted and merged (tentative where only tentative
    /// instances cover the time). A calendar the store does not know has an empty list.
    pub calendars: BTreeMap<CalendarId, Vec<BusyInterval>>,
    /// Busy time across all asked calendars, merged the same way.
    pub merged: Vec<BusyInterval>,
    /// Calendars the store does not know.
    pub unknown: Vec<CalendarId>,
    /// Whether the answer was expanded from `events` (a window beyond the stored horizon, or
    /// another zone than the instances were written in) rather than read from `instances`.
    pub expanded: bool,
    /// What could not be interpreted while expanding.
    pub warnings: Vec<String>,
}

impl BusyAnswer {
    /// Builds the answer from each calendar's busy intervals (any order).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))] // SQLite reads its lists merged
    pub(crate) fn of(
        per_calendar: Vec<(CalendarId, Vec<BusyInterval>)>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Self {
        let merged = per_calendar.into_iter().map(|(cal, intervals)| (cal, merge(intervals, from, to))).collect();
        Self::of_merged(merged, from, to)
    }

    /// Builds the answer from each calendar's busy intervals, already merged and clipped to
    /// `[from, to)` (as [`merge`] gives them).
    pub(crate) fn of_merged(
        per_calendar: Vec<(CalendarId, Vec<BusyInterval>)>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Self {
        let merged = match per_calendar.as_slice() {
            [(_, one)] => one.clone(),
            many => merge_lists(&many.iter().map(|(_, i)| i.as_slice()).collect::<Vec<_>>(), from, to),
        };
        Self { calendars: per_calendar.into_iter().collect(), merged, ..Self::default() }
    }

    /// The merged busy time as plain spans (tentative counted as busy).
    #[must_use]
    pub fn merged_spans(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        spans(&self.merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(rid: &str, h: u32, busy: bool) -> InstanceRow {
        let at = |h: u32| format!("2026-12-01T{h:02}:00:00Z").parse().unwrap();
        InstanceRow { rid: rid.into(), starts_at: at(h), ends_at: at(h + 1), busy, tentative: false }
    }

    #[test]
    fn diff_writes_only_changed_rows() {
        let stored = vec![row("a", 9, true), row("b", 10, true), row("c", 11, true)];
        let wanted = vec![row("a", 9, true), row("b", 12, true), row("d", 13, false)];
        let (upserts, deletes) = changes(stored.clone(), wanted);
        assert_eq!(upserts, [(row("b", 12, true), Some(row("b", 10, true))), (row("d", 13, false), None)]);
        assert_eq!(deletes, [row("c", 11, true)]);
        assert_eq!(changes(stored.clone(), stored), (vec![], vec![]));
    }

    #[test]
    fn the_horizon_moves_by_whole_days() {
        let c = InstanceConfig::new();
        let a = c.window("2026-12-01T00:00:01Z".parse().unwrap());
        let b = c.window("2026-12-01T23:59:59Z".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.0.to_rfc3339(), "2026-11-01T00:00:00+00:00");
    }
}
