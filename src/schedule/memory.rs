//! [`MemorySchedule`]: the schedule in memory, the reference the SQL stores are checked against.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::due::{
    Claim, Finished, Outcome, Pending, Registered, Schedule, ScheduleEntry, after, check_interval, lease_lost,
    next_due, seed,
};
use crate::error::Result;
use crate::id::CalendarId;

/// A [`Schedule`] in memory, behind one mutex: for tests, single-process hosts, and as the
/// reference of the schedule's behavior. [`MemoryStore`](crate::MemoryStore) holds one.
#[derive(Debug, Default)]
pub struct MemorySchedule {
    rows: Mutex<BTreeMap<CalendarId, Row>>,
}

#[derive(Debug, Clone)]
struct Row {
    entry: ScheduleEntry,
    poked_at: Option<DateTime<Utc>>,
}

impl MemorySchedule {
    /// An empty schedule.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<CalendarId, Row>> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn leased_at(entry: &ScheduleEntry, now: DateTime<Utc>) -> bool {
    entry.lease_until.is_some_and(|until| until > now)
}

#[async_trait]
impl Schedule for MemorySchedule {
    async fn register(
        &self,
        calendar: &CalendarId,
        spec: &str,
        every: Duration,
        now: DateTime<Utc>,
    ) -> Result<Registered> {
        check_interval(every)?;
        let mut rows = self.lock();
        let Some(row) = rows.get_mut(calendar) else {
            let entry = ScheduleEntry {
                calendar: calendar.clone(),
                spec: spec.to_owned(),
                every,
                next_due_at: now,
                syncs: 0,
                failures: 0,
                last_error_kind: None,
                last_error: None,
                last_synced_at: None,
                lease_owner: None,
                lease_until: None,
                claims: 0,
            };
            rows.insert(calendar.clone(), Row { entry, poked_at: None });
            return Ok(Registered::Added);
        };
        if row.entry.spec == spec && row.entry.every == every {
            return Ok(Registered::Unchanged);
        }
        if row.entry.spec != spec {
            spec.clone_into(&mut row.entry.spec);
            row.entry.next_due_at = now;
            row.poked_at = Some(now);
        }
        row.entry.every = every;
        Ok(Registered::Changed)
    }

    async fn unregister(&self, calendar: &CalendarId) -> Result<bool> {
        Ok(self.lock().remove(calendar).is_some())
    }

    async fn claim(&self, worker: &str, n: usize, lease: Duration, now: DateTime<Utc>) -> Result<Vec<Claim>> {
        let mut rows = self.lock();
        let mut due: Vec<(DateTime<Utc>, CalendarId)> = rows
            .values()
            .filter(|r| r.entry.next_due_at <= now && !leased_at(&r.entry, now))
            .map(|r| (r.entry.next_due_at, r.entry.calendar.clone()))
            .collect();
        due.sort();
        let lease_until = after(now, lease);
        let mut claims = Vec::new();
        for (_, calendar) in due.into_iter().take(n) {
            let Some(row) = rows.get_mut(&calendar) else { continue };
            let e = &mut row.entry;
            e.claims += 1;
            e.lease_owner = Some(worker.to_owned());
            e.lease_until = Some(lease_until);
            claims.push(Claim {
                calendar,
                spec: e.spec.clone(),
                worker: worker.to_owned(),
                token: e.claims,
                claimed_at: now,
                lease_until,
                every: e.every,
                failures: e.failures,
            });
        }
        Ok(claims)
    }

    async fn finish(&self, claim: &Claim, outcome: &Outcome, now: DateTime<Utc>) -> Result<Finished> {
        let mut rows = self.lock();
        let Some(row) = rows.get_mut(&claim.calendar).filter(|r| r.entry.claims == claim.token) else {
            return Err(lease_lost(claim));
        };
        let mut finished = next_due(claim, outcome, now, seed(claim, now));
        if row.poked_at.is_some_and(|p| p >= claim.claimed_at) {
            finished.next_due_at = now;
        }
        let e = &mut row.entry;
        match outcome.error() {
            None => {
                e.syncs += 1;
                e.last_synced_at = Some(now);
                e.last_error_kind = None;
                e.last_error = None;
            }
            Some((kind, message)) => {
                e.last_error_kind = Some(kind);
                e.last_error = Some(message.to_owned());
            }
        }
        e.failures = finished.failures;
        e.next_due_at = finished.next_due_at;
        e.lease_owner = None;
        e.lease_until = None;
        Ok(finished)
    }

    async fn poke(&self, calendar: &CalendarId, now: DateTime<Utc>) -> Result<bool> {
        let mut rows = self.lock();
        let Some(row) = rows.get_mut(calendar) else { return Ok(false) };
        row.entry.next_due_at = row.entry.next_due_at.min(now);
        row.poked_at = Some(now);
        Ok(true)
    }

    async fn entries(&self) -> Result<Vec<ScheduleEntry>> {
        Ok(self.lock().values().map(|r| r.entry.clone()).collect())
    }

    async fn pending(&self, now: DateTime<Utc>) -> Result<Pending> {
        let rows = self.lock();
        let mut pending = Pending::default();
        for Row { entry: e, .. } in rows.values() {
            let at = if leased_at(e, now) {
                pending.leased += 1;
                e.lease_until
            } else {
                if e.next_due_at <= now {
                    pending.due += 1;
                }
                Some(e.next_due_at)
            };
            pending.next_at = match (pending.next_at, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(pending)
    }
}
