//! Conformance checks for [`Schedule`] implementations: one per `# Behavior` bullet.
//!
//! Each check takes a schedule that holds no calendars, registers its own
//! (`testkit-<check>-…`), drives time itself (from 2030-01-01, whatever the clock says) and
//! unregisters them at the end, so the checks run one after another on one schedule.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};

use super::store::{calendar, ensure, fail};
use crate::error::{ErrorKind, Result};
use crate::id::CalendarId;
use crate::schedule::{Claim, MIN_BACKOFF, Outcome, Registered, Schedule, ScheduleEntry};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn at(secs: i64) -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(secs)
}

const HOUR: Duration = Duration::from_secs(3600);
const LEASE: Duration = Duration::from_secs(60);

async fn entry(schedule: &dyn Schedule, check: &str, cal: &CalendarId) -> Result<ScheduleEntry> {
    schedule
        .entries()
        .await?
        .into_iter()
        .find(|e| &e.calendar == cal)
        .ok_or_else(|| fail(check, format!("{cal} is not among the entries")))
}

async fn cleanup(schedule: &dyn Schedule, calendars: &[CalendarId]) -> Result<()> {
    for cal in calendars {
        schedule.unregister(cal).await?;
    }
    Ok(())
}

fn failed() -> Outcome {
    Outcome::Failed { kind: ErrorKind::Transport, message: "testkit: the server is down".to_owned() }
}

fn secs_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    #[allow(clippy::cast_precision_loss)] // test times are seconds apart, far below 2^53 ms
    let ms = (b - a).num_milliseconds() as f64;
    ms / 1000.0
}

/// Registering is idempotent: new calendars are due at once, the same registration writes
/// nothing, a new interval keeps the due time, a new spec makes it due.
///
/// # Errors
/// What the schedule did wrong.
pub async fn check_register(schedule: &dyn Schedule) -> Result<()> {
    let check = "register";
    let cal = calendar(check, 0)?;
    let got = schedule.register(&cal, "spec-a", HOUR, at(0)).await?;
    ensure(check, got == Registered::Added, || format!("a new calendar registered as {got:?}"))?;
    let e = entry(schedule, check, &cal).await?;
    ensure(check, e.next_due_at == at(0) && e.syncs == 0 && e.spec == "spec-a" && e.every == HOUR, || {
        format!("a new calendar reads back as {e:?}")
    })?;
    let got = schedule.register(&cal, "spec-a", HOUR, at(10)).await?;
    ensure(check, got == Registered::Unchanged, || format!("the same registration answered {got:?}"))?;
    let got = schedule.register(&cal, "spec-a", HOUR * 2, at(20)).await?;
    let e = entry(schedule, check, &cal).await?;
    ensure(check, got == Registered::Changed && e.every == HOUR * 2 && e.next_due_at == at(0), || {
        format!("a new interval answered {got:?} and left {e:?}")
    })?;
    ensure(check, schedule.register(&cal, "spec-a", Duration::ZERO, at(0)).await.is_err(), || {
        "a zero interval was accepted".to_owned()
    })?;
    cleanup(schedule, &[cal]).await
}

/// Claims hand out due, unleased calendars only, most overdue first, never one twice while
/// its lease lives.
///
/// # Errors
/// What the schedule did wrong.
pub async fn check_claim(schedule: &dyn Schedule) -> Result<()> {
    let check = "claim";
    let cals: Vec<CalendarId> = (0..5).map(|i| calendar(check, i)).collect::<Result<_>>()?;
    for (i, cal) in (0i64..).zip(&cals) {
        schedule.register(cal, "spec", HOUR, at(10 - i)).await?;
    }
    let early = schedule.claim("w1", 10, LEASE, at(0)).await?;
    ensure(check, early.is_empty(), || format!("claimed {} calendars before they were due", early.len()))?;
    let first = schedule.claim("w1", 3, LEASE, at(10)).await?;
    let mut names: Vec<&str> = first.iter().map(|c| c.calendar.as_str()).collect();
    names.sort_unstable();
    let want: Vec<&str> = cals.iter().skip(2).map(CalendarId::as_str).collect();
    ensure(check, names == want, || format!("the first claim of 3 took {names:?}, not the most overdue {want:?}"))?;
    ensure(check, first.iter().all(|c| c.worker == "w1" && c.lease_until == at(70) && c.token >= 1), || {
        format!("claims read {first:?}")
    })?;
    let second = schedule.claim("w2", 10, LEASE, at(11)).await?;
    ensure(check, second.len() == 2 && second.iter().all(|c| !first.iter().any(|f| f.calendar == c.calendar)), || {
        format!("a second worker got {second:?}")
    })?;
    let third = schedule.claim("w3", 10, LEASE, at(12)).await?;
    ensure(check, third.is_empty(), || format!("live leases were claimed again: {third:?}"))?;
    let pending = schedule.pending(at(12)).await?;
    ensure(check, pending.due == 0 && pending.leased == 5 && pending.next_at == Some(at(70)), || {
        format!("pending with 5 leases out: {pending:?}")
    })?;
    let e = entry(schedule, check, &cals[0]).await?;
    ensure(check, e.lease_owner.as_deref() == Some("w2"), || format!("the lease owner reads {:?}", e.lease_owner))?;
    cleanup(schedule, &cals).await
}

/// A success counts one sync and makes the calendar due after its interval (±10 %); a failure
/// backs off from a minute, doubling, capped at the interval, and keeps the error; a success
/// resets the streak.
///
/// # Errors
/// What the schedule did wrong.
pub async fn check_finish_and_backoff(schedule: &dyn Schedule) -> Result<()> {
    let check = "finish_and_backoff";
    let cal = calendar(check, 0)?;
    let every = Duration::from_secs(600);
    schedule.register(&cal, "spec", every, at(0)).await?;
    let mut now = at(0);
    let claim_one = |now| async move {
        let mut claims = schedule.claim("w", 1, LEASE, now).await?;
        claims.pop().ok_or_else(|| fail(check, format!("nothing was due at {now}")))
    };
    let c = claim_one(now).await?;
    let done = schedule.finish(&c, &Outcome::Synced, now).await?;
    let wait = secs_between(now, done.next_due_at);
    ensure(check, (540.0..=660.0).contains(&wait) && done.failures == 0, || {
        format!("a success is due again after {wait} s with interval 600 s")
    })?;
    let e = entry(schedule, check, &cal).await?;
    ensure(check, e.syncs == 1 && e.last_synced_at == Some(now) && e.lease_owner.is_none(), || {
        format!("after one success: {e:?}")
    })?;
    let again = schedule.claim("w", 1, LEASE, now).await?;
    ensure(check, again.is_empty(), || "a calendar just synced was claimable again".to_owned())?;
    // Failures: 60, 120, 240, 480, then the interval (600).
    let mut waits = Vec::new();
    now = done.next_due_at;
    for _ in 0..6 {
        let c = claim_one(now).await?;
        let done = schedule.finish(&c, &failed(), now).await?;
        waits.push(secs_between(now, done.next_due_at));
        now = done.next_due_at;
    }
    let bases = [60.0, 120.0, 240.0, 480.0, 600.0, 600.0];
    let ok = waits.iter().zip(bases).all(|(w, b)| *w >= 60.0 && *w >= b * 0.9 - 0.01 && *w <= b * 1.1 + 0.01);
    ensure(check, ok, || format!("backoff waits {waits:?}, expected about {bases:?} (±10 %, at least 60 s)"))?;
    let e = entry(schedule, check, &cal).await?;
    ensure(
        check,
        e.failures == 6
            && e.syncs == 1
            && e.last_error_kind == Some(ErrorKind::Transport)
            && e.last_error.as_deref() == Some("testkit: the server is down"),
        || format!("after six failures: {e:?}"),
    )?;
    let c = claim_one(now).await?;
    ensure(check, c.failures == 6, || format!("a claim after six failures says {}", c.failures))?;
    schedule.finish(&c, &Outcome::Synced, now).await?;
    let e = entry(schedule, check, &cal).await?;
    ensure(check, e.failures == 0 && e.syncs == 2 && e.last_error.is_none(), || format!("after recovering: {e:?}"))?;
    let _ = MIN_BACKOFF;
    cleanup(schedule, &[cal]).await
}

/// A lease that expired makes its calendar claimable again, and the old holder's finish is
/// refused (lease lost), never counted; a lease that expired but was not taken over still
/// finishes.
///
/// # Errors
/// What the schedule did wrong.
pub async fn check_lease_fencing(schedule: &dyn Schedule) -> Result<()> {
    let check = "lease_fencing";
    let cal = calendar(check, 0)?;
    schedule.register(&cal, "spec", HOUR, at(0)).await?;
    let stale: Claim = schedule
        .claim("old", 1, LEASE, at(0))
        .await?
        .pop()
        .ok_or_else(|| fail(check, "nothing to claim".to_owned()))?;
    let early = schedule.claim("new", 1, LEASE, at(59)).await?;
    ensure(check, early.is_empty(), || "a live lease was taken over".to_owned())?;
    let fresh = schedule
        .claim("new", 1, LEASE, at(61))
        .await?
        .pop()
        .ok_or_else(|| fail(check, "an expired lease did not make the calendar claimable".to_owned()))?;
    ensure(check, fresh.token > stale.token, || {
        format!("tokens did not move on: {} then {}", stale.token, fresh.token)
    })?;
    let refused = schedule.finish(&stale, &Outcome::Synced, at(62)).await;
    ensure(check, refused.as_ref().is_err_and(|e| e.kind() == ErrorKind::LeaseLost), || {
        format!("a finish under a lease taken over answered {refused:?}")
    })?;
    let e = entry(schedule, check, &cal).await?;
    ensure(check, e.syncs == 0 && e.lease_owner.as_deref() == Some("new"), || {
        format!("the refused finish wrote: {e:?}")
    })?;
    schedule.finish(&fresh, &failed(), at(63)).await?;
    let e = entry(schedule, check, &cal).await?;
    ensure(check, e.syncs == 0 && e.failures == 1, || format!("the newer claim's outcome: {e:?}"))?;
    // Late but not taken over: accepted.
    let late = schedule
        .claim("slow", 1, LEASE, e.next_due_at)
        .await?
        .pop()
        .ok_or_else(|| fail(check, "not due after its backoff".to_owned()))?;
    let done = schedule.finish(&late, &Outcome::Synced, e.next_due_at + chrono::Duration::seconds(600)).await;
    ensure(check, done.is_ok(), || format!("a late finish nobody overtook answered {done:?}"))?;
    cleanup(schedule, &[cal]).await
}

/// A poke makes a calendar due at once, also when it arrives while the calendar is being
/// synced (the finish then keeps it due); poking an unknown calendar answers false.
///
/// # Errors
/// What the schedule did wrong.
pub async fn check_poke(schedule: &dyn Schedule) -> Result<()> {
    let check = "poke";
    let cal = calendar(check, 0)?;
    schedule.register(&cal, "spec", HOUR, at(0)).await?;
    let c = schedule.claim("w", 1, LEASE, at(0)).await?.pop().ok_or_else(|| fail(check, "nothing due".to_owned()))?;
    schedule.finish(&c, &Outcome::Synced, at(1)).await?;
    ensure(check, schedule.claim("w", 1, LEASE, at(2)).await?.is_empty(), || "due right after a sync".to_owned())?;
    ensure(check, schedule.poke(&cal, at(3)).await?, || "poke of a registered calendar answered false".to_owned())?;
    let c = schedule
        .claim("w", 1, LEASE, at(3))
        .await?
        .pop()
        .ok_or_else(|| fail(check, "a poked calendar was not due".to_owned()))?;
    // Poked again mid-sync: due again right after the finish.
    schedule.poke(&cal, at(4)).await?;
    let done = schedule.finish(&c, &Outcome::Synced, at(5)).await?;
    ensure(check, done.next_due_at <= at(5), || format!("poked mid-sync, yet due at {}", done.next_due_at))?;
    let c = schedule
        .claim("w", 1, LEASE, at(5))
        .await?
        .pop()
        .ok_or_else(|| fail(check, "a calendar poked mid-sync was not due after it".to_owned()))?;
    let done = schedule.finish(&c, &Outcome::Synced, at(6)).await?;
    ensure(check, done.next_due_at > at(3000), || "an old poke kept the calendar due".to_owned())?;
    let unknown = calendar(check, 1)?;
    ensure(check, !schedule.poke(&unknown, at(6)).await?, || "poke of an unknown calendar answered true".to_owned())?;
    cleanup(schedule, &[cal]).await
}

/// Runs every schedule check, in order, stopping at the first failure.
///
/// # Errors
/// The first check that failed, naming it.
pub async fn run_schedule_checks(schedule: &dyn Schedule) -> Result<()> {
    check_register(schedule).await?;
    check_claim(schedule).await?;
    check_finish_and_backoff(schedule).await?;
    check_lease_fencing(schedule).await?;
    check_poke(schedule).await?;
    let left = schedule.entries().await?;
    ensure("cleanup", left.is_empty(), || format!("{} calendars left after unregistering", left.len()))
}
