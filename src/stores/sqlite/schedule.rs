//! The SQLite side of the [`Schedule`](crate::schedule::Schedule): the `schedule` table and
//! its statements. Each call is one immediate transaction, so several processes on one file
//! claim without overlap.

use std::time::Duration;

use chrono::{DateTime, Datelike as _, Utc};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use super::sql::storage;
use crate::error::{Error, ErrorKind, Result};
use crate::id::CalendarId;
use crate::schedule::{
    Claim, Finished, Outcome, Pending, Registered, ScheduleEntry, after, check_interval, lease_lost, next_due, seed,
};
use crate::stores::columns::{SCHEDULE_ENTRIES, count, from_millis, millis, stored_calendar, stored_error_kind};

/// Schema version 3: the schedule.
/// How errors name this store.
const STORE: &str = "sqlite";

pub(super) const MIGRATION: &str = r"
CREATE TABLE IF NOT EXISTS schedule (
    calendar_id     TEXT PRIMARY KEY NOT NULL,
    spec            TEXT NOT NULL,
    interval_ms     INTEGER NOT NULL,
    next_due_at     TEXT NOT NULL,
    syncs           INTEGER NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    last_error_kind TEXT,
    last_error      TEXT,
    last_synced_at  TEXT,
    lease_owner     TEXT,
    lease_until     TEXT,
    lease_token     INTEGER NOT NULL DEFAULT 0,
    claimed_at      TEXT,
    poked_at        TEXT,
    registered_at   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS schedule_due ON schedule (next_due_at, calendar_id);
";

/// The latest time a column holds: text order must stay time order (four-digit years).
const LATEST: &str = "9999-12-31T23:59:59.999999Z";

/// A schedule time column's text: UTC with microseconds, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn ts(t: DateTime<Utc>) -> String {
    if t.year() > 9999 {
        return LATEST.to_owned();
    }
    if t.year() < 0 {
        return "0000-01-01T00:00:00.000000Z".to_owned();
    }
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

fn parse_ts(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::new(ErrorKind::Storage, format!("sqlite schedule: unreadable time {text:?}")))
}

fn parse_opt(text: Option<&str>) -> Result<Option<DateTime<Utc>>> {
    text.map(parse_ts).transpose()
}

pub(super) fn register(
    conn: &mut Connection,
    id: &CalendarId,
    spec: &str,
    every: Duration,
    now: DateTime<Utc>,
) -> Result<Registered> {
    check_interval(every)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage("register"))?;
    let known: Option<(String, i64)> = tx
        .query_row("SELECT spec, interval_ms FROM schedule WHERE calendar_id = ?1", params![id.as_str()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(storage("register"))?;
    let now = ts(now);
    let registered = match known {
        None => {
            tx.execute(
                "INSERT INTO schedule (calendar_id, spec, interval_ms, next_due_at, registered_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![id.as_str(), spec, millis(every), now],
            )
            .map_err(storage("register"))?;
            Registered::Added
        }
        Some((old, ms)) if old == spec && ms == millis(every) => Registered::Unchanged,
        Some((old, _)) if old == spec => {
            tx.execute(
                "UPDATE schedule SET interval_ms = ?2 WHERE calendar_id = ?1",
                params![id.as_str(), millis(every)],
            )
            .map_err(storage("register"))?;
            Registered::Changed
        }
        Some(_) => {
            tx.execute(
                "UPDATE schedule SET spec = ?2, interval_ms = ?3, next_due_at = MIN(next_due_at, ?4), poked_at = ?4 WHERE calendar_id = ?1",
                params![id.as_str(), spec, millis(every), now],
            )
            .map_err(storage("register"))?;
            Registered::Changed
        }
    };
    tx.commit().map_err(storage("register"))?;
    Ok(registered)
}

pub(super) fn unregister(conn: &mut Connection, id: &CalendarId) -> Result<bool> {
    let n = conn
        .execute("DELETE FROM schedule WHERE calendar_id = ?1", params![id.as_str()])
        .map_err(storage("unregister"))?;
    Ok(n > 0)
}

const CLAIM: &str = "
UPDATE schedule SET lease_owner = ?1, lease_until = ?2, lease_token = lease_token + 1, claimed_at = ?3
WHERE calendar_id IN (
    SELECT calendar_id FROM schedule
    WHERE next_due_at <= ?3 AND (lease_until IS NULL OR lease_until <= ?3)
    ORDER BY next_due_at, calendar_id LIMIT ?4)
RETURNING calendar_id, spec, lease_token, interval_ms, failures";

pub(super) fn claim(
    conn: &mut Connection,
    worker: &str,
    n: usize,
    lease: Duration,
    now: DateTime<Utc>,
) -> Result<Vec<Claim>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let lease_until = after(now, lease);
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage("claim"))?;
    let rows: Vec<(String, String, i64, i64, i64)> = {
        let mut stmt = tx.prepare_cached(CLAIM).map_err(storage("claim"))?;
        let limit = i64::try_from(n).unwrap_or(i64::MAX);
        stmt.query_map(params![worker, ts(lease_until), ts(now), limit], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .and_then(Iterator::collect)
        .map_err(storage("claim"))?
    };
    // As the columns hold them (microseconds), so a finish compares like with like.
    let (claimed_at, lease_until) = (parse_ts(&ts(now))?, parse_ts(&ts(lease_until))?);
    let mut claims = Vec::with_capacity(rows.len());
    for (id, spec, token, interval, failures) in rows {
        claims.push(Claim {
            calendar: stored_calendar(STORE, &id)?,
            spec,
            worker: worker.to_owned(),
            token: count(token),
            claimed_at,
            lease_until,
            every: from_millis(interval),
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
        });
    }
    tx.commit().map_err(storage("claim"))?;
    claims.sort_by(|a, b| a.calendar.cmp(&b.calendar));
    Ok(claims)
}

const FINISH: &str = "
UPDATE schedule SET
    next_due_at = CASE WHEN poked_at IS NOT NULL AND poked_at >= ?3 THEN ?4 ELSE ?5 END,
    failures = ?6,
    syncs = syncs + ?7,
    last_synced_at = CASE WHEN ?7 = 1 THEN ?4 ELSE last_synced_at END,
    last_error_kind = ?8, last_error = ?9,
    lease_owner = NULL, lease_until = NULL
WHERE calendar_id = ?1 AND lease_token = ?2
RETURNING next_due_at";

pub(super) fn finish(conn: &mut Connection, claim: &Claim, outcome: &Outcome, now: DateTime<Utc>) -> Result<Finished> {
    let planned = next_due(claim, outcome, now, seed(claim, now));
    let (kind, message) = match outcome.error() {
        Some((kind, message)) => (Some(kind.code()), Some(message)),
        None => (None, None),
    };
    let token = i64::try_from(claim.token).unwrap_or(i64::MAX);
    let due: Option<String> = conn
        .prepare_cached(FINISH)
        .and_then(|mut s| {
            s.query_row(
                params![
                    claim.calendar.as_str(),
                    token,
                    ts(claim.claimed_at),
                    ts(now),
                    ts(planned.next_due_at),
                    planned.failures,
                    i64::from(outcome.is_ok()),
                    kind,
                    message
                ],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(storage("finish"))?;
    let due = due.ok_or_else(|| lease_lost(claim))?;
    Ok(Finished { next_due_at: parse_ts(&due)?, ..planned })
}

pub(super) fn poke(conn: &mut Connection, id: &CalendarId, now: DateTime<Utc>) -> Result<bool> {
    let now = ts(now);
    let n = conn
        .prepare_cached("UPDATE schedule SET next_due_at = MIN(next_due_at, ?2), poked_at = ?2 WHERE calendar_id = ?1")
        .and_then(|mut s| s.execute(params![id.as_str(), now]))
        .map_err(storage("poke"))?;
    Ok(n > 0)
}

type EntryRow = (
    String,
    String,
    i64,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

pub(super) fn entries(conn: &mut Connection) -> Result<Vec<ScheduleEntry>> {
    let rows: Vec<EntryRow> = conn
        .prepare_cached(SCHEDULE_ENTRIES)
        .and_then(|mut s| {
            s.query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                    r.get(10)?,
                    r.get(11)?,
                ))
            })
            .and_then(Iterator::collect)
        })
        .map_err(storage("schedule entries"))?;
    rows.into_iter()
        .map(|(id, spec, interval, due, syncs, failures, kind, error, synced, owner, until, token)| {
            Ok(ScheduleEntry {
                calendar: stored_calendar(STORE, &id)?,
                spec,
                every: from_millis(interval),
                next_due_at: parse_ts(&due)?,
                syncs: count(syncs),
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                last_error_kind: stored_error_kind(kind.as_deref()),
                last_error: error,
                last_synced_at: parse_opt(synced.as_deref())?,
                lease_owner: owner,
                lease_until: parse_opt(until.as_deref())?,
                claims: count(token),
            })
        })
        .collect()
}

const PENDING: &str = "
SELECT
    COUNT(*) FILTER (WHERE next_due_at <= ?1 AND (lease_until IS NULL OR lease_until <= ?1)),
    COUNT(*) FILTER (WHERE lease_until > ?1),
    MIN(CASE WHEN lease_until > ?1 THEN lease_until ELSE next_due_at END)
FROM schedule";

pub(super) fn pending(conn: &mut Connection, now: DateTime<Utc>) -> Result<Pending> {
    let (due, leased, next): (i64, i64, Option<String>) = conn
        .prepare_cached(PENDING)
        .and_then(|mut s| s.query_row(params![ts(now)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
        .map_err(storage("pending"))?;
    Ok(Pending { due: count(due), leased: count(leased), next_at: parse_opt(next.as_deref())? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_orders_like_time_and_reads_back() {
        let a = DateTime::<Utc>::from_timestamp(1_800_000_000, 123_456_000).unwrap();
        let b = a + chrono::Duration::microseconds(1);
        assert!(ts(a) < ts(b));
        assert_eq!(parse_ts(&ts(a)).unwrap(), a);
        assert_eq!(ts(DateTime::<Utc>::MAX_UTC), LATEST);
        assert!(ts(a) < ts(DateTime::<Utc>::MAX_UTC));
    }
}
