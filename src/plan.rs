//! The pure planner: what a source reports + what the host stored → the minimal changes.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::fingerprint::Fingerprint;
use crate::id::{CalendarId, EventKey, Href, Uid};
use crate::source::Changes;
use crate::state::{DigestMap, KeyHasher, StoredEntry, StoredState};

/// Knobs of the planner's guards.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PlanOptions {
    /// Allow a complete but empty snapshot to delete every stored event. Default `false`.
    pub allow_empty: bool,
    /// Allow plans above [`max_change_ratio`](Self::max_change_ratio). Default `false`.
    pub allow_mass_change: bool,
    /// Largest share of the stored events a plan may delete or update. Default `0.5`.
    pub max_change_ratio: f64,
    /// The mass-change guard applies only to calendars with at least this many stored events,
    /// so that small calendars can change freely. Default `10`.
    pub mass_change_min_events: u64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self { allow_empty: false, allow_mass_change: false, max_change_ratio: 0.5, mass_change_min_events: 10 }
    }
}

impl PlanOptions {
    /// Sets [`allow_empty`](Self::allow_empty).
    #[must_use]
    pub fn allow_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
    }

    /// Sets [`allow_mass_change`](Self::allow_mass_change).
    #[must_use]
    pub fn allow_mass_change(mut self, allow: bool) -> Self {
        self.allow_mass_change = allow;
        self
    }

    /// Sets [`max_change_ratio`](Self::max_change_ratio).
    #[must_use]
    pub fn max_change_ratio(mut self, ratio: f64) -> Self {
        self.max_change_ratio = ratio;
        self
    }

    /// Sets [`mass_change_min_events`](Self::mass_change_min_events).
    #[must_use]
    pub fn mass_change_min_events(mut self, events: u64) -> Self {
        self.mass_change_min_events = events;
        self
    }
}

/// One write a plan asks the store to make.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Change {
    /// Write a new row: the key is not stored.
    Insert {
        /// The event to write.
        event: Box<Event>,
    },
    /// Rewrite a row: its fingerprint differs.
    Update {
        /// The new version.
        event: Box<Event>,
        /// The stored fingerprint being replaced.
        previous: Fingerprint,
        /// The properties that differ (empty when the store keeps no digest).
        properties: Vec<String>,
    },
    /// Delete a row.
    Delete {
        /// The stored key.
        key: EventKey,
        /// The stored fingerprint.
        previous: Fingerprint,
        /// Why the row goes.
        reason: DeleteReason,
    },
}

impl Change {
    /// The key written or deleted.
    #[must_use]
    pub fn key(&self) -> &EventKey {
        match self {
            Self::Insert { event } | Self::Update { event, .. } => event.key(),
            Self::Delete { key, .. } => key,
        }
    }

    /// The event written, for inserts and updates.
    #[must_use]
    pub fn event(&self) -> Option<&Event> {
        match self {
            Self::Insert { event } | Self::Update { event, .. } => Some(event),
            Self::Delete { .. } => None,
        }
    }

    /// A short human-readable reason.
    #[must_use]
    pub fn reason(&self) -> String {
        match self {
            Self::Insert { .. } => "not stored".to_owned(),
            Self::Update { properties, .. } if properties.is_empty() => "content changed".to_owned(),
            Self::Update { properties, .. } => format!("changed: {}", properties.join(", ")),
            Self::Delete { reason, .. } => reason.to_string(),
        }
    }
}

/// Why a [`Change::Delete`] was planned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "why", content = "href", rename_all = "snake_case")]
pub enum DeleteReason {
    /// Absent from a complete snapshot.
    NotInSnapshot,
    /// Removed explicitly by a delta.
    RemovedInDelta,
    /// Its source resource was removed.
    ResourceRemoved(Href),
    /// Its source resource was rewritten without it (an override dropped from a CalDAV object).
    ResourceRewritten(Href),
}

impl fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotInSnapshot => f.write_str("not in snapshot"),
            Self::RemovedInDelta => f.write_str("removed in delta"),
            Self::ResourceRemoved(h) => write!(f, "resource {h} removed"),
            Self::ResourceRewritten(h) => write!(f, "resource {h} rewritten without it"),
        }
    }
}

/// Something the planner noticed that did not stop it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Diagnostic {
    /// Two remote events had the same key; one was kept.
    DuplicateKey {
        /// The key.
        key: EventKey,
        /// Fingerprint of the version kept.
        kept: Fingerprint,
        /// Fingerprint of the version dropped.
        dropped: Fingerprint,
    },
    /// The snapshot was incomplete: stored events absent from it were kept.
    IncompleteSnapshot {
        /// How many stored events were kept although absent.
        retained: usize,
    },
    /// A delta upserted and removed the same key; the upsert was kept.
    UpsertAndRemoval {
        /// The key.
        key: EventKey,
    },
    /// The source answered an event of another calendar; it was dropped.
    ForeignEvent {
        /// The key as answered.
        key: EventKey,
    },
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DuplicateKey { key, kept, dropped } => {
                write!(f, "duplicate event {key}: kept {kept}, dropped {dropped}")
            }
            Self::IncompleteSnapshot { retained } => {
                write!(f, "incomplete snapshot: {retained} stored events absent from it were kept")
            }
            Self::UpsertAndRemoval { key } => write!(f, "delta both upserts and removes {key}; kept the upsert"),
            Self::ForeignEvent { key } => write!(f, "source answered an event of another calendar: {key}; dropped"),
        }
    }
}

/// Why a plan must not be applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Blocked {
    /// A complete snapshot was empty while the store holds events.
    EmptySnapshot {
        /// Events stored.
        stored: u64,
    },
    /// Deletes + updates exceed the allowed share of the calendar.
    MassChange {
        /// Deletes + updates planned.
        changes: u64,
        /// Events stored.
        stored: u64,
        /// The allowed share.
        max_ratio: f64,
    },
}

impl Blocked {
    /// The error the engine reports for this block.
    #[must_use]
    pub fn to_error(&self) -> Error {
        match self {
            Self::EmptySnapshot { stored } => Error::new(
                ErrorKind::EmptySnapshot,
                format!(
                    "source returned an empty calendar while {stored} events are stored; nothing deleted (allow_empty overrides)"
                ),
            ),
            Self::MassChange { changes, stored, max_ratio } => Error::new(
                ErrorKind::MassChange,
                format!(
                    "plan deletes or updates {changes} of {stored} stored events, more than {:.0}%; nothing applied (allow_mass_change overrides)",
                    max_ratio * 100.0
                ),
            ),
        }
    }
}

/// What kind of answer a plan was made from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanBasis {
    /// A complete snapshot.
    Snapshot,
    /// A snapshot marked incomplete.
    IncompleteSnapshot,
    /// A delta.
    Delta,
}

/// The changes that bring one calendar's stored state to what the source reported.
///
/// Changes are sorted by key, so equal inputs give equal plans.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[must_use]
pub struct Plan {
    calendar: CalendarId,
    basis: PlanBasis,
    changes: Vec<Change>,
    unchanged: usize,
    diagnostics: Vec<Diagnostic>,
    blocked: Option<Blocked>,
}

impl Plan {
    /// The calendar this plan writes.
    #[must_use]
    pub fn calendar(&self) -> &CalendarId {
        &self.calendar
    }

    /// What the plan was made from.
    #[must_use]
    pub fn basis(&self) -> PlanBasis {
        self.basis
    }

    /// The changes, sorted by key.
    #[must_use]
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// Whether there is nothing to write.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Remote events that matched their stored fingerprint, plus stored events kept by an
    /// incomplete snapshot.
    #[must_use]
    pub fn unchanged(&self) -> usize {
        self.unchanged
    }

    /// Number of inserts.
    #[must_use]
    pub fn inserts(&self) -> usize {
        self.changes.iter().filter(|c| matches!(c, Change::Insert { .. })).count()
    }

    /// Number of updates.
    #[must_use]
    pub fn updates(&self) -> usize {
        self.changes.iter().filter(|c| matches!(c, Change::Update { .. })).count()
    }

    /// Number of deletes.
    #[must_use]
    pub fn deletes(&self) -> usize {
        self.changes.iter().filter(|c| matches!(c, Change::Delete { .. })).count()
    }

    /// What the planner noticed.
    #[must_use]
    pub fn diagnostics(&self) -> &[Diagnostic] {
        &self.diagnostics
    }

    /// Why the plan must not be applied, if it must not.
    #[must_use]
    pub fn blocked(&self) -> Option<&Blocked> {
        self.blocked.as_ref()
    }

    /// Checks that the plan may be applied: it is not blocked and every change is keyed to
    /// the plan's calendar. Stores call this before writing.
    ///
    /// # Errors
    /// The block's error ([`ErrorKind::EmptySnapshot`], [`ErrorKind::MassChange`]), or
    /// [`ErrorKind::ScopeViolation`] for a change of another calendar.
    pub fn validate(&self) -> Result<()> {
        if let Some(blocked) = &self.blocked {
            return Err(blocked.to_error());
        }
        if let Some(c) = self.changes.iter().find(|c| c.key().calendar != self.calendar) {
            return Err(Error::new(
                ErrorKind::ScopeViolation,
                format!("plan for {} holds a change of another calendar: {}", self.calendar, c.key()),
            ));
        }
        Ok(())
    }

    /// The write-amplification guard: checks that every change affected exactly one row.
    /// Stores call this with their counts before committing, and roll back on error.
    ///
    /// # Errors
    /// [`ErrorKind::ScopeViolation`] naming the first change whose count is not one, or when
    /// the number of counts differs from the number of changes.
    pub fn check_rows(&self, rows: &[u64]) -> Result<()> {
        if rows.len() != self.changes.len() {
            return Err(Error::new(
                ErrorKind::ScopeViolation,
                format!("store reported {} row counts for {} changes", rows.len(), self.changes.len()),
            ));
        }
        for (change, &n) in self.changes.iter().zip(rows) {
            if n != 1 {
                return Err(Error::new(
                    ErrorKind::ScopeViolation,
                    format!("{} of {} touched {n} rows instead of 1; rolled back", op_name(change), change.key()),
                ));
            }
        }
        Ok(())
    }
}

fn op_name(change: &Change) -> &'static str {
    match change {
        Change::Insert { .. } => "insert",
        Change::Update { .. } => "update",
        Change::Delete { .. } => "delete",
    }
}

/// How a stored event that no remote event matched relates to the answer.
#[derive(Clone, Copy, Debug)]
enum Absence<'a> {
    NotInSnapshot,
    SnapshotIncomplete,
    Removed,
    ResourceRemoved(&'a Href),
    ResourceRewritten(&'a Href),
    Untouched,
}

/// What was seen for one key: the input of the decision `match`.
enum Seen<'a> {
    /// The index of the incoming event.
    RemoteOnly(usize),
    /// The index of the incoming event, the event, and its stored row.
    Both(usize, &'a Event, &'a StoredEntry),
    StoredOnly(&'a StoredEntry, Absence<'a>),
}

const NONE: usize = usize::MAX;

/// Plans the changes that bring `stored` (the state of `calendar`) to what `changes` reports.
///
/// Synchronous, no I/O, infallible. Every per-event decision is made by
/// one `match` over what was seen (remote only, stored only, both). The rules:
///
/// | seen | condition | decision |
/// |---|---|---|
/// | remote only | | insert |
/// | both | same fingerprint | unchanged (no write) |
/// | both | fingerprints differ | update, naming the changed properties |
/// | stored only | complete snapshot | delete (`not_in_snapshot`) |
/// | stored only | incomplete snapshot | keep |
/// | stored only | delta removes the key | delete (`removed_in_delta`) |
/// | stored only | delta removes its href | delete (`resource_removed`) |
/// | stored only, an override | delta removes the href of its series' master | delete (`resource_removed`, naming the master's href) |
/// | stored only | delta rewrites its href without it | delete (`resource_rewritten`) |
/// | stored only | delta does not mention it | keep |
///
/// Before that, remote events are filtered and de-duplicated:
///
/// - an event keyed to another calendar is dropped with a diagnostic (a source bug must never
///   write into another calendar);
/// - two events with the same key: the one with the highest SEQUENCE wins, then the latest
///   LAST-MODIFIED, then the greater fingerprint. The winner depends only on the events'
///   content, never on their order, so syncs do not flip-flop;
/// - a delta that both upserts and removes a key keeps the upsert (nothing is lost).
///
/// After that, two guards can *block* a plan (the engine then refuses to apply it; a dry run
/// still shows it): a complete snapshot that is empty while the store holds events, and a plan
/// whose deletes + updates exceed a share of the calendar. See [`PlanOptions`].
///
/// # Example
/// ```
/// use calscope::{plan, CalendarId, Changes, Event, FingerprintPolicy, PlanOptions, Snapshot, StoredState};
/// let cal = CalendarId::new("alice")?;
/// let ev = Event::from_ics(&cal, "BEGIN:VEVENT\nUID:1\nSUMMARY:Hi\nEND:VEVENT", &FingerprintPolicy::default())?;
/// let remote = Changes::Snapshot(Snapshot::complete(vec![ev]));
/// let p = plan(&cal, &remote, &StoredState::empty(cal.clone()), &PlanOptions::default());
/// assert_eq!(p.inserts(), 1);
/// # Ok::<(), calscope::Error>(())
/// ```
pub fn plan(calendar: &CalendarId, changes: &Changes, stored: &StoredState, options: &PlanOptions) -> Plan {
    let incoming = incoming_events(changes);
    let decided = decide(calendar, changes, stored);
    decided.finish(calendar, stored, options, |i| incoming.get(i).cloned())
}

/// [`plan`] over an answer the caller gives away: the changes take the events instead of
/// copying them, so a large first sync holds each event once.
pub fn plan_owned(calendar: &CalendarId, changes: Changes, stored: &StoredState, options: &PlanOptions) -> Plan {
    let decided = decide(calendar, &changes, stored);
    let mut slots: Vec<Option<Event>> = match changes {
        Changes::Snapshot(s) => s.into_events(),
        Changes::Delta(d) => d.upserts,
    }
    .into_iter()
    .map(Some)
    .collect();
    decided.finish(calendar, stored, options, |i| slots.get_mut(i).and_then(Option::take))
}

fn incoming_events(changes: &Changes) -> &[Event] {
    match changes {
        Changes::Snapshot(s) => s.events(),
        Changes::Delta(d) => &d.upserts,
    }
}

/// A decision that needs an incoming event, by its index.
enum Pending {
    Insert(usize),
    Update { event: usize, previous: Fingerprint, properties: Vec<String> },
    Ready(Change),
}

/// The decision table's outcome before the events are taken or copied into changes.
struct Decided {
    basis: PlanBasis,
    pending: Vec<Pending>,
    unchanged: usize,
    remote_count: usize,
    diagnostics: Vec<Diagnostic>,
}

impl Decided {
    fn finish(
        self,
        calendar: &CalendarId,
        stored: &StoredState,
        options: &PlanOptions,
        mut event: impl FnMut(usize) -> Option<Event>,
    ) -> Plan {
        let Self { basis, pending, unchanged, remote_count, mut diagnostics } = self;
        let mut out: Vec<Change> = pending
            .into_iter()
            .filter_map(|p| match p {
                Pending::Insert(i) => event(i).map(|e| Change::Insert { event: Box::new(e) }),
                Pending::Update { event: i, previous, properties } => {
                    event(i).map(|e| Change::Update { event: Box::new(e), previous, properties })
                }
                Pending::Ready(change) => Some(change),
            })
            .collect();
        out.shrink_to_fit();
        out.sort_by(|a, b| a.key().cmp(b.key()));
        diagnostics.sort_by(|a, b| diagnostic_key(a).cmp(&diagnostic_key(b)));
        let blocked = guard(basis, remote_count, &out, stored, options);
        Plan { calendar: calendar.clone(), basis, changes: out, unchanged, diagnostics, blocked }
    }
}

fn decide<'s>(calendar: &CalendarId, changes: &Changes, stored: &'s StoredState) -> Decided {
    let mut diagnostics = Vec::new();
    let (basis, incoming, removals, removed_hrefs): (_, &[Event], &[EventKey], &[Href]) = match changes {
        Changes::Snapshot(s) if s.is_complete() => (PlanBasis::Snapshot, s.events(), &[], &[]),
        Changes::Snapshot(s) => (PlanBasis::IncompleteSnapshot, s.events(), &[], &[]),
        Changes::Delta(d) => (PlanBasis::Delta, &d.upserts, &d.removals, &d.removed_hrefs),
    };

    let Winners { matched, fresh, fresh_order, remote_count } =
        pick_winners(calendar, incoming, stored, &mut diagnostics);

    // Delta bookkeeping: which keys and hrefs the answer mentions.
    let upserted_hrefs: HashSet<&Href> = match basis {
        PlanBasis::Delta => incoming.iter().filter_map(Event::href).collect(),
        _ => HashSet::new(),
    };
    let removed_keys: HashSet<&EventKey, KeyHasher> = removals.iter().filter(|k| &k.calendar == calendar).collect();
    for key in removals.iter().filter(|k| &k.calendar != calendar) {
        diagnostics.push(Diagnostic::ForeignEvent { key: key.clone() });
    }
    for key in &removed_keys {
        if stored.position(key).is_some_and(|si| matched.get(si).is_some_and(|&m| m != NONE))
            || fresh.contains_key(&key.digest())
        {
            diagnostics.push(Diagnostic::UpsertAndRemoval { key: (*key).clone() });
        }
    }
    let removed_href_set: HashSet<&Href> = removed_hrefs.iter().collect();
    let removed_series = removed_series(stored, &matched, &removed_href_set);
    let absence = |entry: &'s StoredEntry| -> Absence<'s> {
        match basis {
            PlanBasis::Snapshot => Absence::NotInSnapshot,
            PlanBasis::IncompleteSnapshot => Absence::SnapshotIncomplete,
            PlanBasis::Delta => {
                if removed_keys.contains(&entry.key) {
                    Absence::Removed
                } else {
                    match (entry.href.as_ref(), &entry.key.recurrence_id) {
                        (Some(h), _) if removed_href_set.contains(h) => Absence::ResourceRemoved(h),
                        (_, Some(_)) if removed_series.contains_key(&entry.key.uid) => removed_series
                            .get(&entry.key.uid)
                            .map_or(Absence::Untouched, |h| Absence::ResourceRemoved(h)),
                        (Some(h), _) if upserted_hrefs.contains(h) => Absence::ResourceRewritten(h),
                        _ => Absence::Untouched,
                    }
                }
            }
        }
    };

    let seen = stored
        .entries()
        .iter()
        .zip(&matched)
        .map(|(entry, &m)| match incoming.get(m) {
            Some(event) => Seen::Both(m, event, entry),
            None => Seen::StoredOnly(entry, absence(entry)),
        })
        .chain(
            fresh_order
                .iter()
                .filter_map(|k| fresh.get(&k.digest()).copied())
                .filter(|&i| i < incoming.len())
                .map(Seen::RemoteOnly),
        );

    let mut out = Vec::new();
    let mut unchanged = 0usize;
    let mut retained = 0usize;
    for item in seen {
        // The decision table: one arm per row.
        match item {
            Seen::RemoteOnly(i) => out.push(Pending::Insert(i)),
            Seen::Both(_, event, entry) if is_unchanged(event, entry) => unchanged += 1,
            Seen::Both(i, event, entry) => out.push(Pending::Update {
                event: i,
                previous: entry.fingerprint,
                properties: entry.digest.as_ref().map(|d| event.changed_properties(d)).unwrap_or_default(),
            }),
            Seen::StoredOnly(entry, Absence::NotInSnapshot) => {
                out.push(Pending::Ready(delete(entry, DeleteReason::NotInSnapshot)));
            }
            Seen::StoredOnly(_, Absence::SnapshotIncomplete) => {
                retained += 1;
                unchanged += 1;
            }
            Seen::StoredOnly(entry, Absence::Removed) => {
                out.push(Pending::Ready(delete(entry, DeleteReason::RemovedInDelta)));
            }
            Seen::StoredOnly(entry, Absence::ResourceRemoved(h)) => {
                out.push(Pending::Ready(delete(entry, DeleteReason::ResourceRemoved(h.clone()))));
            }
            Seen::StoredOnly(entry, Absence::ResourceRewritten(h)) => {
                out.push(Pending::Ready(delete(entry, DeleteReason::ResourceRewritten(h.clone()))));
            }
            Seen::StoredOnly(_, Absence::Untouched) => {}
        }
    }
    if retained > 0 {
        diagnostics.push(Diagnostic::IncompleteSnapshot { retained });
    }
    Decided { basis, pending: out, unchanged, remote_count, diagnostics }
}

/// The UIDs whose master's resource a delta removes (with that href): a removed master takes
/// its series along, the overrides of its UID too, whatever resources hold them (sources such
/// as Google keep each override as a resource of its own).
fn removed_series<'s>(
    stored: &'s StoredState,
    matched: &[usize],
    removed: &HashSet<&Href>,
) -> HashMap<&'s Uid, &'s Href> {
    if removed.is_empty() {
        return HashMap::new();
    }
    stored
        .entries()
        .iter()
        .zip(matched)
        .filter(|(e, m)| **m == NONE && e.key.recurrence_id.is_none())
        .filter_map(|(e, _)| e.href.as_ref().filter(|h| removed.contains(h)).map(|h| (&e.key.uid, h)))
        .collect()
}

/// One remote event per key: `matched[i]` is the index in `incoming` of the event for stored
/// entry `i` (or [`NONE`]); `fresh` maps keys that are not stored to their event.
struct Winners<'e> {
    matched: Vec<usize>,
    fresh: DigestMap<usize>,
    fresh_order: Vec<&'e EventKey>,
    remote_count: usize,
}

fn pick_winners<'e>(
    calendar: &CalendarId,
    incoming: &'e [Event],
    stored: &StoredState,
    diagnostics: &mut Vec<Diagnostic>,
) -> Winners<'e> {
    let mut matched = vec![NONE; stored.len()];
    let mut fresh: DigestMap<usize> = DigestMap::default();
    let mut fresh_order: Vec<&EventKey> = Vec::new();
    let mut remote_count = 0usize;
    let mut hint = 0usize;
    for (i, event) in incoming.iter().enumerate() {
        if &event.key().calendar != calendar {
            diagnostics.push(Diagnostic::ForeignEvent { key: event.key().clone() });
            continue;
        }
        remote_count += 1;
        let found = stored.position_by_digest(event.key_digest(), hint);
        if let Some(si) = found {
            hint = si + 1;
        }
        let slot = match found.and_then(|si| matched.get_mut(si)) {
            Some(slot) => slot,
            None => fresh.entry(event.key_digest()).or_insert_with(|| {
                fresh_order.push(event.key());
                NONE
            }),
        };
        if *slot == NONE {
            *slot = i;
        } else if let Some(current) = incoming.get(*slot) {
            let event_wins = wins(event, current);
            let (kept, dropped) = if event_wins { (event, current) } else { (current, event) };
            diagnostics.push(Diagnostic::DuplicateKey {
                key: event.key().clone(),
                kept: kept.fingerprint(),
                dropped: dropped.fingerprint(),
            });
            if event_wins {
                *slot = i;
            }
        }
    }
    Winners { matched, fresh, fresh_order, remote_count }
}

fn delete(entry: &StoredEntry, reason: DeleteReason) -> Change {
    Change::Delete { key: entry.key.clone(), previous: entry.fingerprint, reason }
}

/// Whether a reported event matches its stored row: the source hash settles it when the store
/// kept one and it matches (no fingerprint computed); otherwise the fingerprints decide.
fn is_unchanged(event: &Event, entry: &StoredEntry) -> bool {
    entry.source_hash == Some(event.source_hash()) || event.fingerprint() == entry.fingerprint
}

/// Whether `a` beats `b` among duplicates: highest SEQUENCE, then latest LAST-MODIFIED, then
/// the greater fingerprint (`None` loses to any value).
fn wins(a: &Event, b: &Event) -> bool {
    (a.recency(), a.fingerprint()) > (b.recency(), b.fingerprint())
}

fn diagnostic_key(d: &Diagnostic) -> (u8, Option<&EventKey>) {
    match d {
        Diagnostic::ForeignEvent { key } => (0, Some(key)),
        Diagnostic::DuplicateKey { key, .. } => (1, Some(key)),
        Diagnostic::UpsertAndRemoval { key } => (2, Some(key)),
        Diagnostic::IncompleteSnapshot { .. } => (3, None),
    }
}

fn guard(
    basis: PlanBasis,
    remote: usize,
    changes: &[Change],
    stored: &StoredState,
    o: &PlanOptions,
) -> Option<Blocked> {
    let total = stored.head().events.max(stored.len() as u64);
    if basis == PlanBasis::Snapshot && remote == 0 && total > 0 && !o.allow_empty {
        return Some(Blocked::EmptySnapshot { stored: total });
    }
    if o.allow_mass_change || total < o.mass_change_min_events {
        return None;
    }
    let churn = changes.iter().filter(|c| !matches!(c, Change::Insert { .. })).count() as u64;
    #[allow(clippy::cast_precision_loss)] // event counts are far below 2^52
    let over = churn as f64 > o.max_change_ratio * total as f64;
    over.then_some(Blocked::MassChange { changes: churn, stored: total, max_ratio: o.max_change_ratio })
}
