//! The schedule's vocabulary: the [`Schedule`] trait, what it hands out ([`Claim`]) and keeps
//! ([`ScheduleEntry`]), and the pure rules for when a calendar is due again ([`next_due`]).

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::CalendarReport;
use crate::error::{Error, ErrorKind, Result};
use crate::id::CalendarId;

/// The shortest wait after a failed sync.
pub const MIN_BACKOFF: Duration = Duration::from_secs(60);

/// The default interval between two syncs of a calendar (15 minutes).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// The longest text of a failure a schedule keeps (longer messages are cut at a character
/// boundary).
pub const MAX_ERROR_LEN: usize = 2048;

/// Which calendars are due, and which worker syncs them.
///
/// Each calendar is registered with a *spec* (a host-opaque string: a URL, a JSON object; the
/// worker's factory turns it into a source) and an interval. A worker [`claim`](Self::claim)s
/// due calendars under a lease, syncs them and [`finish`](Self::finish)es each with its
/// outcome. Every call takes the time `now` from the caller (a worker's clock): the schedule
/// keeps no clock of its own, so tests drive it without sleeping. Workers that share a store
/// should agree on the time to well within a lease (NTP does).
///
/// # Behavior
///
/// - [`register`](Self::register) of a new calendar makes it due at `now`; registering it again
///   with the same spec and interval writes nothing; a new spec makes it due at `now`; a new
///   interval alone keeps its due time.
/// - [`claim`](Self::claim) answers at most `n` calendars whose due time is at or before `now`
///   and which no live lease holds (a lease lives until its expiry), most overdue first; each
///   claimed calendar is leased to the worker until `now + lease` with a new lease token, so no
///   two live claims of one calendar exist, whichever process claims.
/// - [`finish`](Self::finish) of a success counts one sync, resets the failures, clears the
///   error and makes the calendar due after its interval, jittered by ±10 %; of a failure it
///   counts one more consecutive failure, keeps the error's kind and message, and backs off:
///   [`MIN_BACKOFF`] doubling with each consecutive failure, capped at the interval (never under
///   [`MIN_BACKOFF`]), jittered by ±10 % and never under [`MIN_BACKOFF`]. Either way the lease
///   ends. A calendar poked while its claim was out is due at once instead.
/// - `finish` of a claim whose lease token is no longer the calendar's (the lease expired and
///   another worker claimed it) fails with [`ErrorKind::LeaseLost`] and writes nothing: the
///   outcome is never counted twice and never overwrites the newer claim's. A claim whose lease
///   expired but which nobody took over still finishes.
/// - [`poke`](Self::poke) makes a registered calendar due at `now` and answers whether it was
///   registered.
/// - [`pending`](Self::pending) counts the calendars due and unleased, and the live leases.
#[async_trait]
pub trait Schedule: Send + Sync + Debug {
    /// Registers `calendar` (or updates its spec and interval).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a zero interval; [`ErrorKind::Storage`] when the store
    /// fails.
    async fn register(
        &self,
        calendar: &CalendarId,
        spec: &str,
        every: Duration,
        now: DateTime<Utc>,
    ) -> Result<Registered>;

    /// Removes `calendar` from the schedule (its events stay); answers whether it was there.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the store fails.
    async fn unregister(&self, calendar: &CalendarId) -> Result<bool>;

    /// Leases up to `n` due calendars to `worker` for `lease`.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the store fails (nothing was leased), or when a stored row
    /// cannot be read.
    async fn claim(&self, worker: &str, n: usize, lease: Duration, now: DateTime<Utc>) -> Result<Vec<Claim>>;

    /// Records the outcome of a claim and ends its lease.
    ///
    /// # Errors
    /// [`ErrorKind::LeaseLost`] when another worker claimed the calendar since (nothing was
    /// written); [`ErrorKind::Storage`] when the store fails.
    async fn finish(&self, claim: &Claim, outcome: &Outcome, now: DateTime<Utc>) -> Result<Finished>;

    /// Makes `calendar` due now (a push notification arrived); answers whether it is registered.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the store fails.
    async fn poke(&self, calendar: &CalendarId, now: DateTime<Utc>) -> Result<bool>;

    /// Every registered calendar and its state, by calendar id.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the store fails or holds a row it cannot read.
    async fn entries(&self) -> Result<Vec<ScheduleEntry>>;

    /// What is due and what is leased at `now`.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the store fails.
    async fn pending(&self, now: DateTime<Utc>) -> Result<Pending>;
}

macro_rules! forward_schedule {
    ($ty:ty) => {
        #[async_trait]
        impl<T: Schedule + ?Sized> Schedule for $ty {
            async fn register(
                &self,
                calendar: &CalendarId,
                spec: &str,
                every: Duration,
                now: DateTime<Utc>,
            ) -> Result<Registered> {
                (**self).register(calendar, spec, every, now).await
            }
            async fn unregister(&self, calendar: &CalendarId) -> Result<bool> {
                (**self).unregister(calendar).await
            }
            async fn claim(&self, worker: &str, n: usize, lease: Duration, now: DateTime<Utc>) -> Result<Vec<Claim>> {
                (**self).claim(worker, n, lease, now).await
            }
            async fn finish(&self, claim: &Claim, outcome: &Outcome, now: DateTime<Utc>) -> Result<Finished> {
                (**self).finish(claim, outcome, now).await
            }
            async fn poke(&self, calendar: &CalendarId, now: DateTime<Utc>) -> Result<bool> {
                (**self).poke(calendar, now).await
            }
            async fn entries(&self) -> Result<Vec<ScheduleEntry>> {
                (**self).entries().await
            }
            async fn pending(&self, now: DateTime<Utc>) -> Result<Pending> {
                (**self).pending(now).await
            }
        }
    };
}
forward_schedule!(Arc<T>);
forward_schedule!(Box<T>);

/// What [`Schedule::register`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Registered {
    /// A new calendar, due now.
    Added,
    /// A known calendar whose spec or interval changed.
    Changed,
    /// Already registered like this: nothing was written.
    Unchanged,
}

/// A calendar leased to one worker by [`Schedule::claim`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Claim {
    /// The calendar.
    pub calendar: CalendarId,
    /// Its spec, as registered.
    pub spec: String,
    /// The worker holding the lease.
    pub worker: String,
    /// The lease token: the calendar's claim count. A [`Schedule::finish`] with an older token
    /// is refused.
    pub token: u64,
    /// When the claim was made.
    pub claimed_at: DateTime<Utc>,
    /// When the lease expires.
    pub lease_until: DateTime<Utc>,
    /// The calendar's interval.
    pub every: Duration,
    /// Consecutive failures before this claim.
    pub failures: u32,
}

/// How a claimed sync ended, for [`Schedule::finish`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The calendar synced.
    Synced,
    /// It failed.
    Failed {
        /// The kind of the failure.
        kind: ErrorKind,
        /// What went wrong (kept up to [`MAX_ERROR_LEN`] bytes).
        message: String,
    },
}

impl Outcome {
    /// The outcome a sync's report tells.
    #[must_use]
    pub fn of(report: &CalendarReport) -> Self {
        if report.is_ok() {
            return Self::Synced;
        }
        Self::Failed {
            kind: report.error_kind.unwrap_or(ErrorKind::Other),
            message: report.error.clone().unwrap_or_else(|| "sync failed".to_owned()),
        }
    }

    /// The outcome of a sync that could not start (its source could not be built).
    #[must_use]
    pub fn failed(err: &Error) -> Self {
        Self::Failed { kind: err.kind(), message: err.to_string() }
    }

    /// Whether the sync succeeded.
    #[must_use]
    pub fn is_ok(&self) -> bool {
        matches!(self, Self::Synced)
    }

    /// The error's kind and message, cut to [`MAX_ERROR_LEN`], for a failure.
    #[must_use]
    pub fn error(&self) -> Option<(ErrorKind, &str)> {
        match self {
            Self::Synced => None,
            Self::Failed { kind, message } => Some((*kind, cut(message, MAX_ERROR_LEN))),
        }
    }
}

/// `text`'s first `max` bytes, cut back to a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

/// What [`Schedule::finish`] recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finished {
    /// When the calendar is due again.
    pub next_due_at: DateTime<Utc>,
    /// Its consecutive failures now.
    pub failures: u32,
}

/// What is due and leased at one time ([`Schedule::pending`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pending {
    /// Calendars due and not held by a live lease: a claim would take them now.
    pub due: u64,
    /// Live leases.
    pub leased: u64,
    /// The earliest time something changes: the next due time of an unleased calendar, or the
    /// expiry of a live lease.
    pub next_at: Option<DateTime<Utc>>,
}

impl Pending {
    /// Whether nothing is due and no lease is out.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.due == 0 && self.leased == 0
    }
}

/// One registered calendar and its state ([`Schedule::entries`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScheduleEntry {
    /// The calendar.
    pub calendar: CalendarId,
    /// Its spec.
    pub spec: String,
    /// Its interval.
    pub every: Duration,
    /// When it is due next.
    pub next_due_at: DateTime<Utc>,
    /// Successful syncs so far.
    pub syncs: u64,
    /// Consecutive failures (0 after a success).
    pub failures: u32,
    /// The kind of the last failure of the current streak.
    pub last_error_kind: Option<ErrorKind>,
    /// Its message.
    pub last_error: Option<String>,
    /// When it last synced.
    pub last_synced_at: Option<DateTime<Utc>>,
    /// The worker holding a lease on it (a lease that expired is still shown until the
    /// calendar is claimed again or finished).
    pub lease_owner: Option<String>,
    /// When that lease expires.
    pub lease_until: Option<DateTime<Utc>>,
    /// Claims so far (the last lease token).
    pub claims: u64,
}

/// When a claimed calendar is due again after `outcome`, and its consecutive failures then:
/// the rules of [`Schedule::finish`]. `seed` picks the jitter (any well-mixed value: stores
/// hash the calendar, the lease token and the time).
#[must_use]
pub fn next_due(claim: &Claim, outcome: &Outcome, now: DateTime<Utc>, seed: u64) -> Finished {
    // A fraction in [-0.1, 0.1] from the seed's top 53 bits.
    #[allow(clippy::cast_precision_loss)] // 53 bits fit an f64's mantissa exactly
    let unit = (seed >> 11) as f64 / (1u64 << 53) as f64;
    let jitter = (unit * 2.0 - 1.0) * 0.1;
    let every = claim.every.max(Duration::from_millis(1));
    let (wait, failures) = match outcome {
        Outcome::Synced => (every.mul_f64(1.0 + jitter), 0),
        Outcome::Failed { .. } => {
            let failures = claim.failures.saturating_add(1);
            let doubled = MIN_BACKOFF.saturating_mul(1u32 << (failures - 1).min(20));
            let step = doubled.min(every.max(MIN_BACKOFF));
            (step.mul_f64(1.0 + jitter).max(MIN_BACKOFF), failures)
        }
    };
    let wait = chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
    let next_due_at = now.checked_add_signed(wait).unwrap_or(DateTime::<Utc>::MAX_UTC);
    Finished { next_due_at, failures }
}

/// The jitter seed of one finish: the calendar, the lease token and the time, hashed.
#[must_use]
pub(crate) fn seed(claim: &Claim, now: DateTime<Utc>) -> u64 {
    let mut bytes = Vec::with_capacity(claim.calendar.as_str().len() + 16);
    bytes.extend_from_slice(claim.calendar.as_str().as_bytes());
    bytes.extend_from_slice(&claim.token.to_le_bytes());
    bytes.extend_from_slice(&now.timestamp_micros().to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&bytes)
}

/// Checks an interval a caller registers.
pub(crate) fn check_interval(every: Duration) -> Result<()> {
    if every.is_zero() {
        return Err(Error::invalid("a calendar's sync interval must be more than zero"));
    }
    Ok(())
}

/// `now + d`, saturating.
pub(crate) fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The error of a refused finish.
pub(crate) fn lease_lost(claim: &Claim) -> Error {
    Error::new(
        ErrorKind::LeaseLost,
        format!("{}: the lease of {} (token {}) was taken over", claim.calendar, claim.worker, claim.token),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(every: Duration, failures: u32) -> Claim {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        Claim {
            calendar: CalendarId::new("c").unwrap(),
            spec: String::new(),
            worker: "w".to_owned(),
            token: 1,
            claimed_at: now,
            lease_until: now,
            every,
            failures,
        }
    }

    fn failed() -> Outcome {
        Outcome::Failed { kind: ErrorKind::Transport, message: "down".to_owned() }
    }

    fn wait(claim: &Claim, outcome: &Outcome, seed: u64) -> Duration {
        let now = DateTime::<Utc>::UNIX_EPOCH;
        (next_due(claim, outcome, now, seed).next_due_at - now).to_std().unwrap()
    }

    #[test]
    fn success_waits_the_interval_within_ten_percent() {
        let every = Duration::from_secs(600);
        for seed in [0, 1, u64::MAX / 3, u64::MAX / 2, u64::MAX] {
            let w = wait(&claim(every, 3), &Outcome::Synced, seed);
            assert!(w >= Duration::from_secs(540) && w <= Duration::from_secs(660), "{w:?}");
        }
        assert_eq!(next_due(&claim(every, 3), &Outcome::Synced, DateTime::<Utc>::UNIX_EPOCH, 7).failures, 0);
    }

    #[test]
    fn backoff_doubles_from_a_minute_and_is_capped_at_the_interval() {
        let every = Duration::from_secs(3600);
        let mid = u64::MAX / 2; // no jitter
        let steps: Vec<u64> = (0..8).map(|f| wait(&claim(every, f), &failed(), mid).as_secs()).collect();
        assert_eq!(steps, [60, 120, 240, 480, 960, 1920, 3600, 3600]);
        // Jittered, and never under the minimum.
        for seed in [0, u64::MAX] {
            let w = wait(&claim(every, 0), &failed(), seed);
            assert!(w >= MIN_BACKOFF && w <= Duration::from_secs(66), "{w:?}");
            let w = wait(&claim(every, 9), &failed(), seed);
            assert!(w >= Duration::from_secs(3240) && w <= Duration::from_secs(3960), "{w:?}");
        }
        // A short interval does not bring the backoff under the minimum.
        assert!(wait(&claim(Duration::from_secs(5), 4), &failed(), 0) >= MIN_BACKOFF);
        assert_eq!(next_due(&claim(every, 4), &failed(), DateTime::<Utc>::UNIX_EPOCH, 0).failures, 5);
        // A streak past any sane length neither overflows nor panics.
        assert_eq!(wait(&claim(every, u32::MAX), &failed(), mid).as_secs(), 3600);
    }

    #[test]
    fn an_outcome_keeps_at_most_the_cap_of_its_message() {
        let long = "é".repeat(MAX_ERROR_LEN);
        let outcome = Outcome::Failed { kind: ErrorKind::Parse, message: long };
        let (_, message) = outcome.error().unwrap();
        assert!(message.len() <= MAX_ERROR_LEN && message.len() >= MAX_ERROR_LEN - 1);
    }
}
