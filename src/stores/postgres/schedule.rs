//! The Postgres side of the [`Schedule`](crate::schedule::Schedule): the `schedule` table and
//! its statements, each one statement (a claim is one `UPDATE … FROM (SELECT … FOR UPDATE
//! SKIP LOCKED)`), so any number of workers claim without overlap and without waiting on each
//! other.

use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use tokio_postgres::GenericClient;

use super::sql::storage;
use crate::error::Result;
use crate::id::CalendarId;
use crate::schedule::{
    Claim, Finished, Outcome, Pending, Registered, ScheduleEntry, after, check_interval, lease_lost, next_due, seed,
};
use crate::stores::columns::{SCHEDULE_ENTRIES, count, from_millis, millis, stored_calendar, stored_error_kind};

/// Schema version 3: the schedule.
/// How errors name this store.
const STORE: &str = "postgres";

pub(super) const MIGRATION: &str = r"
CREATE TABLE schedule (
    calendar_id     text PRIMARY KEY,
    spec            text NOT NULL,
    interval_ms     bigint NOT NULL,
    next_due_at     timestamptz NOT NULL,
    syncs           bigint NOT NULL DEFAULT 0,
    failures        integer NOT NULL DEFAULT 0,
    last_error_kind text,
    last_error      text,
    last_synced_at  timestamptz,
    lease_owner     text,
    lease_until     timestamptz,
    lease_token     bigint NOT NULL DEFAULT 0,
    claimed_at      timestamptz,
    poked_at        timestamptz,
    registered_at   timestamptz NOT NULL
);
CREATE INDEX schedule_due ON schedule (next_due_at, calendar_id);
";

/// A time as Postgres keeps it (microseconds), within its range.
fn pg_time(t: DateTime<Utc>) -> DateTime<Utc> {
    let latest = DateTime::<Utc>::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::<Utc>::MAX_UTC);
    t.min(latest).trunc_subsecs(6)
}

const REGISTER: &str = "
INSERT INTO schedule AS s (calendar_id, spec, interval_ms, next_due_at, registered_at) VALUES ($1, $2, $3, $4, $4)
ON CONFLICT (calendar_id) DO UPDATE SET
    next_due_at = CASE WHEN s.spec <> EXCLUDED.spec THEN LEAST(s.next_due_at, EXCLUDED.next_due_at) ELSE s.next_due_at END,
    poked_at = CASE WHEN s.spec <> EXCLUDED.spec THEN EXCLUDED.next_due_at ELSE s.poked_at END,
    spec = EXCLUDED.spec, interval_ms = EXCLUDED.interval_ms
WHERE s.spec <> EXCLUDED.spec OR s.interval_ms <> EXCLUDED.interval_ms
RETURNING (xmax = 0) AS inserted";

pub(super) async fn register(
    client: &impl GenericClient,
    id: &CalendarId,
    spec: &str,
    every: Duration,
    now: DateTime<Utc>,
) -> Result<Registered> {
    check_interval(every)?;
    let row = client
        .query_opt(REGISTER, &[&id.as_str(), &spec, &millis(every), &pg_time(now)])
        .await
        .map_err(storage("register"))?;
    Ok(match row {
        None => Registered::Unchanged,
        Some(r) if r.try_get::<_, bool>(0).map_err(storage("register"))? => Registered::Added,
        Some(_) => Registered::Changed,
    })
}

pub(super) async fn unregister(client: &impl GenericClient, id: &CalendarId) -> Result<bool> {
    let n = client
        .execute("DELETE FROM schedule WHERE calendar_id = $1", &[&id.as_str()])
        .await
        .map_err(storage("unregister"))?;
    Ok(n > 0)
}

/// The claim, in one statement: the most overdue free rows, locked and skipped by concurrent
/// claimers, leased with a new token.
pub(super) const CLAIM: &str = "
UPDATE schedule s SET lease_owner = $1, lease_until = $2, lease_token = s.lease_token + 1, claimed_at = $3
FROM (SELECT calendar_id FROM schedule
      WHERE next_due_at <= $3 AND (lease_until IS NULL OR lease_until <= $3)
      ORDER BY next_due_at, calendar_id LIMIT $4
      FOR UPDATE SKIP LOCKED) due
WHERE s.calendar_id = due.calendar_id
RETURNING s.calendar_id, s.spec, s.lease_token, s.interval_ms, s.failures";

pub(super) async fn claim(
    client: &impl GenericClient,
    worker: &str,
    n: usize,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Claim>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let now = pg_time(now);
    let lease_until = pg_time(after(now, lease));
    let limit = i64::try_from(n).unwrap_or(i64::MAX);
    let rows = client.query(CLAIM, &[&worker, &lease_until, &now, &limit]).await.map_err(storage("claim"))?;
    let mut claims = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get(0).map_err(storage("claim"))?;
        let failures: i32 = r.try_get(4).map_err(storage("claim"))?;
        claims.push(Claim {
            calendar: stored_calendar(STORE, &id)?,
            spec: r.try_get(1).map_err(storage("claim"))?,
            worker: worker.to_owned(),
            token: count(r.try_get(2).map_err(storage("claim"))?),
            claimed_at: now,
            lease_until,
            every: from_millis(r.try_get(3).map_err(storage("claim"))?),
            failures: u32::try_from(failures).unwrap_or(0),
        });
    }
    claims.sort_by(|a, b| a.calendar.cmp(&b.calendar));
    Ok(claims)
}

const FINISH: &str = "
UPDATE schedule SET
    next_due_at = CASE WHEN poked_at IS NOT NULL AND poked_at >= $3::timestamptz THEN $4::timestamptz ELSE $5::timestamptz END,
    failures = $6,
    syncs = syncs + $7::bigint,
    last_synced_at = CASE WHEN $7::bigint = 1 THEN $4::timestamptz ELSE last_synced_at END,
    last_error_kind = $8, last_error = $9,
    lease_owner = NULL, lease_until = NULL
WHERE calendar_id = $1 AND lease_token = $2
RETURNING next_due_at";

pub(super) async fn finish(
    client: &impl GenericClient,
    claim: &Claim,
    outcome: &Outcome,
    now: DateTime<Utc>,
) -> Result<Finished> {
    let now = pg_time(now);
    let planned = next_due(claim, outcome, now, seed(claim, now));
    let (kind, message) = match outcome.error() {
        Some((kind, message)) => (Some(kind.code()), Some(message)),
        None => (None, None),
    };
    let token = i64::try_from(claim.token).unwrap_or(i64::MAX);
    let failures = i32::try_from(planned.failures).unwrap_or(i32::MAX);
    let row = client
        .query_opt(
            FINISH,
            &[
                &claim.calendar.as_str(),
                &token,
                &pg_time(claim.claimed_at),
                &now,
                &pg_time(planned.next_due_at),
                &failures,
                &i64::from(outcome.is_ok()),
                &kind,
                &message,
            ],
        )
        .await
        .map_err(storage("finish"))?;
    let row = row.ok_or_else(|| lease_lost(claim))?;
    Ok(Finished { next_due_at: row.try_get(0).map_err(storage("finish"))?, ..planned })
}

pub(super) async fn poke(client: &impl GenericClient, id: &CalendarId, now: DateTime<Utc>) -> Result<bool> {
    let n = client
        .execute(
            "UPDATE schedule SET next_due_at = LEAST(next_due_at, $2), poked_at = $2 WHERE calendar_id = $1",
            &[&id.as_str(), &pg_time(now)],
        )
        .await
        .map_err(storage("poke"))?;
    Ok(n > 0)
}

pub(super) async fn entries(client: &impl GenericClient) -> Result<Vec<ScheduleEntry>> {
    let rows = client.query(SCHEDULE_ENTRIES, &[]).await.map_err(storage("schedule entries"))?;
    let get = storage("schedule entries");
    rows.iter()
        .map(|r| {
            let id: String = r.try_get(0).map_err(&get)?;
            let kind: Option<String> = r.try_get(6).map_err(&get)?;
            let failures: i32 = r.try_get(5).map_err(&get)?;
            Ok(ScheduleEntry {
                calendar: stored_calendar(STORE, &id)?,
                spec: r.try_get(1).map_err(&get)?,
                every: from_millis(r.try_get(2).map_err(&get)?),
                next_due_at: r.try_get(3).map_err(&get)?,
                syncs: count(r.try_get(4).map_err(&get)?),
                failures: u32::try_from(failures).unwrap_or(0),
                last_error_kind: stored_error_kind(kind.as_deref()),
                last_error: r.try_get(7).map_err(&get)?,
                last_synced_at: r.try_get(8).map_err(&get)?,
                lease_owner: r.try_get(9).map_err(&get)?,
                lease_until: r.try_get(10).map_err(&get)?,
                claims: count(r.try_get(11).map_err(&get)?),
            })
        })
        .collect()
}

const PENDING: &str = "
SELECT
    COUNT(*) FILTER (WHERE next_due_at <= $1 AND (lease_until IS NULL OR lease_until <= $1)),
    COUNT(*) FILTER (WHERE lease_until > $1),
    MIN(CASE WHEN lease_until > $1 THEN lease_until ELSE next_due_at END)
FROM schedule";

pub(super) async fn pending(client: &impl GenericClient, now: DateTime<Utc>) -> Result<Pending> {
    let row = client.query_one(PENDING, &[&pg_time(now)]).await.map_err(storage("pending"))?;
    let get = storage("pending");
    Ok(Pending {
        due: count(row.try_get(0).map_err(&get)?),
        leased: count(row.try_get(1).map_err(&get)?),
        next_at: row.try_get(2).map_err(&get)?,
    })
}
