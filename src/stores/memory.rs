//! An in-memory [`Store`]: always compiled; the reference for every other store.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::id::{CalendarId, Cursor, EventKey};
use crate::plan::Change;
use crate::schedule::{Claim, Finished, MemorySchedule, Outcome, Pending, Registered, Schedule, ScheduleEntry};
use crate::state::{CalendarHead, Revision, StoredEntry, StoredState};
use crate::store::{Applied, ApplyRequest, LoadScope, Store};

/// A [`Store`] that keeps everything in memory, behind one mutex.
///
/// Useful for tests, for hosts that persist elsewhere, and as the reference the other stores
/// are checked against. It counts the rows it writes ([`MemoryStore::stats`]) independently of
/// what the engine reports. It is also a [`Schedule`] (a [`MemorySchedule`]).
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    schedule: MemorySchedule,
}

#[derive(Debug, Default)]
struct Inner {
    calendars: BTreeMap<CalendarId, Calendar>,
    stats: WriteStats,
}

#[derive(Debug, Default)]
struct Calendar {
    revision: Revision,
    cursor: Option<Cursor>,
    events: HashMap<EventKey, Event>,
}

/// Rows a [`MemoryStore`] wrote since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WriteStats {
    /// Rows inserted.
    pub inserted: u64,
    /// Rows updated.
    pub updated: u64,
    /// Rows deleted.
    pub deleted: u64,
    /// Successful applies (each writes the calendar's head).
    pub applies: u64,
}

impl WriteStats {
    /// Event rows written: inserted + updated + deleted.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.inserted + self.updated + self.deleted
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied plan: apply mutates only
        // after every check passed.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stored events of `calendar`, sorted by key.
    #[must_use]
    pub fn events(&self, calendar: &CalendarId) -> Vec<Event> {
        let inner = self.lock();
        let mut events: Vec<Event> =
            inner.calendars.get(calendar).map(|c| c.events.values().cloned().collect()).unwrap_or_default();
        events.sort_by(|a, b| a.key().cmp(b.key()));
        events
    }

    /// The stored cursor of `calendar`.
    #[must_use]
    pub fn cursor(&self, calendar: &CalendarId) -> Option<Cursor> {
        self.lock().calendars.get(calendar).and_then(|c| c.cursor.clone())
    }

    /// The calendars that were ever applied.
    #[must_use]
    pub fn calendars(&self) -> Vec<CalendarId> {
        self.lock().calendars.keys().cloned().collect()
    }

    /// Rows written so far.
    #[must_use]
    pub fn stats(&self) -> WriteStats {
        self.lock().stats
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
        let inner = self.lock();
        let Some(cal) = inner.calendars.get(calendar) else {
            return Ok(StoredState::empty(calendar.clone()));
        };
        let head = CalendarHead::new(cal.cursor.clone(), cal.revision, cal.events.len() as u64);
        let entries: Vec<StoredEntry> = match scope {
            LoadScope::Head => Vec::new(),
            LoadScope::All => cal.events.values().map(StoredEntry::of_event).collect(),
            LoadScope::Touched { keys, hrefs } => cal
                .events
                .values()
                .filter(|e| keys.contains(e.key()) || e.href().is_some_and(|h| hrefs.contains(h)))
                .map(StoredEntry::of_event)
                .collect(),
        };
        StoredState::new(calendar.clone(), head, entries)
    }

    async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        let plan = request.plan;
        plan.validate()?;
        let mut inner = self.lock();
        let cal = inner.calendars.entry(plan.calendar().clone()).or_default();
        if cal.revision != request.expected {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} is at revision {} but the plan expects {}",
                    plan.calendar(),
                    cal.revision.0,
                    request.expected.0
                ),
            ));
        }
        // Count first (what an upsert / conditional update / keyed delete would touch), check,
        // and only then mutate: a failed check leaves everything as it was.
        let rows: Vec<u64> = plan
            .changes()
            .iter()
            .map(|change| match change {
                Change::Insert { event } => {
                    u64::from(cal.events.get(event.key()).is_none_or(|e| e.fingerprint() != event.fingerprint()))
                }
                Change::Update { event, .. } => {
                    u64::from(cal.events.get(event.key()).is_some_and(|e| e.fingerprint() != event.fingerprint()))
                }
                Change::Delete { key, .. } => u64::from(cal.events.contains_key(key)),
            })
            .collect();
        plan.check_rows(&rows)?;
        let mut stats = WriteStats::default();
        for change in plan.changes() {
            match change {
                Change::Insert { event } => {
                    stats.inserted += 1;
                    cal.events.insert(event.key().clone(), event.detach());
                }
                Change::Update { event, .. } => {
                    stats.updated += 1;
                    cal.events.insert(event.key().clone(), event.detach());
                }
                Change::Delete { key, .. } => {
                    stats.deleted += 1;
                    cal.events.remove(key);
                }
            }
        }
        cal.revision = cal.revision.next();
        cal.cursor = request.cursor.cloned();
        let revision = cal.revision;
        inner.stats.inserted += stats.inserted;
        inner.stats.updated += stats.updated;
        inner.stats.deleted += stats.deleted;
        inner.stats.applies += 1;
        Ok(Applied::new(revision, rows))
    }
}

#[async_trait]
impl Schedule for MemoryStore {
    async fn register(
        &self,
        calendar: &CalendarId,
        spec: &str,
        every: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Registered> {
        self.schedule.register(calendar, spec, every, now).await
    }
    async fn unregister(&self, calendar: &CalendarId) -> Result<bool> {
        self.schedule.unregister(calendar).await
    }
    async fn claim(
        &self,
        worker: &str,
        n: usize,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>> {
        self.schedule.claim(worker, n, lease, now).await
    }
    async fn finish(&self, claim: &Claim, outcome: &Outcome, now: DateTime<Utc>) -> Result<Finished> {
        self.schedule.finish(claim, outcome, now).await
    }
    async fn poke(&self, calendar: &CalendarId, now: DateTime<Utc>) -> Result<bool> {
        self.schedule.poke(calendar, now).await
    }
    async fn entries(&self) -> Result<Vec<ScheduleEntry>> {
        self.schedule.entries().await
    }
    async fn pending(&self, now: DateTime<Utc>) -> Result<Pending> {
        self.schedule.pending(now).await
    }
}
