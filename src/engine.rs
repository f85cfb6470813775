//! The sync engine: fetch → load → plan → apply, per calendar, with bounded concurrency.
//!
//! The engine owns no runtime: its futures run on whatever executor the host polls them with
//! (tokio, async-std, `futures::executor::block_on`, …).

use std::time::Instant;

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use tracing::Instrument as _;

use crate::error::{Error, ErrorKind, Result};
use crate::id::{CalendarId, EventKey, Href};
use crate::plan::{Plan, PlanOptions, plan_owned};
use crate::source::{CalendarSource, Changes, FetchRequest, Fetched, SnapshotNotice};
use crate::store::{ApplyRequest, LoadScope, Store};

/// How the engine syncs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncOptions {
    /// The planner's guards.
    pub plan: PlanOptions,
    /// How many calendars [`Engine::sync_all`] syncs at once. Default 4.
    pub concurrency: usize,
    /// Plan without applying; reports carry the plans. Default `false`.
    pub dry_run: bool,
    /// How many times a calendar is synced again (fetch, load, plan, apply) when its apply
    /// fails with [`ErrorKind::Conflict`]: another worker synced it meanwhile, so the plan was
    /// stale and the store refused it. Default 3.
    pub conflict_retries: u32,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self { plan: PlanOptions::default(), concurrency: 4, dry_run: false, conflict_retries: 3 }
    }
}

impl SyncOptions {
    /// Sets the planner's guards.
    #[must_use]
    pub fn plan(mut self, plan: PlanOptions) -> Self {
        self.plan = plan;
        self
    }

    /// Sets the concurrency of [`Engine::sync_all`] (at least 1).
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }

    /// Sets dry-run mode.
    #[must_use]
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets how often a calendar whose apply conflicted is synced again.
    #[must_use]
    pub fn conflict_retries(mut self, n: u32) -> Self {
        self.conflict_retries = n;
        self
    }
}

/// One calendar to sync from one source.
#[derive(Debug, Clone, Copy)]
pub struct SyncJob<'a> {
    /// Where the calendar comes from.
    pub source: &'a dyn CalendarSource,
    /// Which calendar.
    pub calendar: &'a CalendarId,
}

impl<'a> SyncJob<'a> {
    /// A job syncing `calendar` from `source`.
    #[must_use]
    pub fn new(source: &'a dyn CalendarSource, calendar: &'a CalendarId) -> Self {
        Self { source, calendar }
    }
}

/// Whether a calendar synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncStatus {
    /// Synced (or planned, in a dry run).
    Ok,
    /// Failed; nothing of it was applied.
    Error,
}

/// What happened to one calendar.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[must_use]
#[non_exhaustive]
pub struct CalendarReport {
    /// The calendar.
    pub calendar: CalendarId,
    /// Whether it synced.
    pub status: SyncStatus,
    /// Rows inserted (planned, in a dry run).
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Events whose stored fingerprint matched.
    pub unchanged: u64,
    /// Things worth a look that did not stop the sync.
    pub warnings: Vec<String>,
    /// Wall time of the calendar's sync, in milliseconds.
    pub duration_ms: f64,
    /// How many times the sync started over because another worker synced the calendar
    /// meanwhile ([`SyncOptions::conflict_retries`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
    /// Requests the source sent for the applied fetch ([`Fetched::requests`]).
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub requests: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The kind of the failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<ErrorKind>,
    /// The plan, in a dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Plan>,
}

impl CalendarReport {
    /// Whether the calendar synced.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.status == SyncStatus::Ok
    }

    /// Rows written: inserted + updated + deleted.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

/// What happened to every calendar of a [`Engine::sync_all`] run, in job order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[must_use]
#[non_exhaustive]
pub struct SyncReport {
    /// One report per job, in the order the jobs were given.
    pub calendars: Vec<CalendarReport>,
}

impl SyncReport {
    /// A report over calendar reports (for hosts that drive [`Engine::sync`] themselves, to
    /// show progress, say).
    pub fn from_calendars(calendars: Vec<CalendarReport>) -> Self {
        Self { calendars }
    }

    /// Whether every calendar synced.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        self.calendars.iter().all(CalendarReport::is_ok)
    }

    /// The calendars that failed.
    pub fn failed(&self) -> impl Iterator<Item = &CalendarReport> {
        self.calendars.iter().filter(|r| !r.is_ok())
    }

    /// Rows written over all calendars.
    #[must_use]
    pub fn writes(&self) -> u64 {
        self.calendars.iter().map(CalendarReport::writes).sum()
    }
}

/// Syncs calendars from sources into a [`Store`].
///
/// # Example
/// ```
/// use calscope::{CalendarId, Engine, Event, FingerprintPolicy, MemorySource, MemoryStore};
/// # futures::executor::block_on(async {
/// let cal = CalendarId::new("alice")?;
/// let source = MemorySource::new();
/// source.put(Event::from_ics(&cal, "BEGIN:VEVENT\nUID:1\nSUMMARY:Hi\nEND:VEVENT", &FingerprintPolicy::default())?);
/// let engine = Engine::new(MemoryStore::new());
/// let first = engine.sync(&source, &cal).await;
/// assert_eq!(first.inserted, 1);
/// let again = engine.sync(&source, &cal).await;
/// assert_eq!(again.writes(), 0);
/// # Ok::<(), calscope::Error>(()) }).unwrap();
/// ```
#[derive(Debug)]
pub struct Engine<S> {
    store: S,
    options: SyncOptions,
}

struct Outcome {
    plan: Plan,
    warnings: Vec<String>,
    requests: u64,
}

impl<S: Store> Engine<S> {
    /// An engine over `store` with default options.
    pub fn new(store: S) -> Self {
        Self { store, options: SyncOptions::default() }
    }

    /// The same engine with `options`.
    #[must_use]
    pub fn with_options(mut self, options: SyncOptions) -> Self {
        self.options = options;
        self
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &SyncOptions {
        &self.options
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Syncs one calendar. Never fails as a whole: a failure is reported in the
    /// [`CalendarReport`], and nothing of that calendar was applied.
    ///
    /// Each sync runs in a `tracing` span `sync` (target `calscope::sync`) with the calendar, the
    /// source's [`kind`](CalendarSource::kind), and once done its outcome, error kind, row
    /// counts, requests, retries and duration; with the `metrics` feature it also counts
    /// syncs, rows written and durations (see the crate's "Observability" docs).
    pub async fn sync(&self, source: &dyn CalendarSource, calendar: &CalendarId) -> CalendarReport {
        let span = crate::observe::sync_span(calendar, source.kind());
        let report = self.sync_in_span(source, calendar).instrument(span.clone()).await;
        let done = crate::observe::SyncDone {
            source: source.kind(),
            error_kind: report.error_kind,
            inserted: report.inserted,
            updated: report.updated,
            deleted: report.deleted,
            unchanged: report.unchanged,
            requests: report.requests,
            retries: report.retries,
            duration: std::time::Duration::from_secs_f64(report.duration_ms.max(0.0) / 1000.0),
        };
        crate::observe::sync_done(&span, &done);
        report
    }

    async fn sync_in_span(&self, source: &dyn CalendarSource, calendar: &CalendarId) -> CalendarReport {
        let started = Instant::now();
        let mut warnings = Vec::new();
        let mut retries = 0;
        let result = loop {
            // Warnings of an attempt that conflicted belong to a fetch that was not applied.
            warnings.clear();
            match self.run(source, calendar, &mut warnings).await {
                Err(e) if e.kind() == ErrorKind::Conflict && retries < self.options.conflict_retries => {
                    tracing::debug!(target: "calscope::sync", retries, "the calendar changed meanwhile; syncing again");
                    retries += 1;
                }
                other => break other,
            }
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(Outcome { plan, warnings: more, requests }) => {
                warnings.extend(more);
                CalendarReport {
                    calendar: calendar.clone(),
                    status: SyncStatus::Ok,
                    inserted: plan.inserts() as u64,
                    updated: plan.updates() as u64,
                    deleted: plan.deletes() as u64,
                    unchanged: plan.unchanged() as u64,
                    warnings,
                    duration_ms,
                    retries,
                    requests,
                    error: None,
                    error_kind: None,
                    plan: self.options.dry_run.then_some(plan),
                }
            }
            Err(err) => CalendarReport {
                calendar: calendar.clone(),
                status: SyncStatus::Error,
                inserted: 0,
                updated: 0,
                deleted: 0,
                unchanged: 0,
                warnings,
                duration_ms,
                retries,
                requests: 0,
                error: Some(error_chain(&err)),
                error_kind: Some(err.kind()),
                plan: None,
            },
        }
    }

    /// Syncs many calendars, at most [`SyncOptions::concurrency`] at once. One calendar's
    /// failure never stops the others.
    pub async fn sync_all<'a>(&self, jobs: impl IntoIterator<Item = SyncJob<'a>>) -> SyncReport {
        let mut reports: Vec<(usize, CalendarReport)> = futures::stream::iter(jobs.into_iter().enumerate())
            .map(|(i, job)| async move { (i, self.sync(job.source, job.calendar).await) })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        reports.sort_by_key(|(i, _)| *i);
        SyncReport { calendars: reports.into_iter().map(|(_, r)| r).collect() }
    }

    async fn run(
        &self,
        source: &dyn CalendarSource,
        calendar: &CalendarId,
        warnings: &mut Vec<String>,
    ) -> Result<Outcome> {
        let head = self.store.load(calendar, LoadScope::Head).await?;
        let head_cursor = head.head().cursor.clone();
        let expected = head.head().revision;

        // A source that knows early that it will answer a snapshot says so
        // (`FetchRequest::snapshot_coming`): the whole stored state then loads while it reads.
        let (notice, coming) = SnapshotNotice::new();
        let fetch = async {
            let fetched = source.fetch(FetchRequest::new(calendar, head_cursor.as_ref()).with_notice(&notice)).await;
            notice.close();
            fetched
        };
        let early = async {
            match coming.await {
                Ok(()) => Some(self.store.load(calendar, LoadScope::All).await),
                Err(_) => None,
            }
        };
        let (fetched, early) = futures::future::join(fetch, early).await;
        let fetched = match fetched {
            Err(e) if e.kind() == ErrorKind::CursorExpired && head_cursor.is_some() => {
                warnings.push("cursor expired; synced from a full snapshot".to_owned());
                crate::observe::cursor_expired(calendar);
                source.fetch(FetchRequest::new(calendar, None)).await?
            }
            other => other?,
        };
        let Fetched { changes, cursor, warnings: fetch_warnings, requests, .. } = fetched;
        warnings.extend(fetch_warnings);

        let state = match (&changes, early) {
            // The whole state serves a delta too; a failed early load leaves a delta its own.
            (Changes::Snapshot(_), Some(loaded)) => loaded?,
            (Changes::Delta(_), Some(Ok(loaded))) => loaded,
            (Changes::Snapshot(_), None) => self.store.load(calendar, LoadScope::All).await?,
            // Nothing changed (a feed's 304, an empty sync round): the head loaded first is all
            // the planner needs, so an unchanged calendar costs one read.
            (Changes::Delta(d), _) if d.is_empty() => head,
            (Changes::Delta(d), _) => {
                let keys: Vec<EventKey> =
                    d.upserts.iter().map(|e| e.key().clone()).chain(d.removals.iter().cloned()).collect();
                let hrefs: Vec<Href> =
                    d.upserts.iter().filter_map(|e| e.href().cloned()).chain(d.removed_hrefs.iter().cloned()).collect();
                self.store.load(calendar, LoadScope::Touched { keys: &keys, hrefs: &hrefs }).await?
            }
        };
        if state.head().revision != expected {
            return Err(Error::new(ErrorKind::Conflict, format!("{calendar} changed in the store during the sync")));
        }

        // The plan takes the events it writes; the rest of the answer and the stored state go
        // before the apply, which is when a big first sync peaks.
        let plan = plan_owned(calendar, changes, &state, &self.options.plan);
        drop(state);
        let notes: Vec<String> = plan.diagnostics().iter().map(ToString::to_string).collect();
        warnings.extend(notes);
        if let Some(blocked) = plan.blocked() {
            return Err(blocked.to_error());
        }
        if self.options.dry_run || (plan.is_empty() && cursor == head_cursor) {
            return Ok(Outcome { plan, warnings: Vec::new(), requests });
        }
        let applied = self.store.apply(ApplyRequest::new(&plan, expected, cursor.as_ref())).await?;
        // The store checked before committing; a store that did not is caught here.
        plan.check_rows(&applied.rows)?;
        Ok(Outcome { plan, warnings: applied.warnings, requests })
    }
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

fn error_chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
