//! Rate limits shared by every source of a process: [`RateLimits`], keyed by what a source
//! talks to (a host, an account), with a [`RateLimit`] per key prefix.
//!
//! Runtime-agnostic: [`RateLimits::acquire`] takes the caller's sleep (the HTTP providers pass
//! Tokio's).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How fast, and how many at once, requests on one key may go.
///
/// The rate is a token bucket: `requests` per `per`, refilled continuously, holding at most
/// `burst` (default 1: requests are spaced evenly, and no window of `per` sees more than
/// `requests + burst`). `concurrent` caps the requests in flight on the key.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct RateLimit {
    /// Requests per window; `None` for no rate.
    pub requests: Option<u32>,
    /// The window.
    pub per: Duration,
    /// Requests that may go at once after a quiet spell.
    pub burst: u32,
    /// Requests in flight at most; `None` for no cap.
    pub concurrent: Option<u32>,
}

impl RateLimit {
    /// `requests` per `per`.
    #[must_use]
    pub fn per(requests: u32, per: Duration) -> Self {
        Self { requests: Some(requests.max(1)), per: per.max(Duration::from_millis(1)), burst: 1, concurrent: None }
    }

    /// `requests` per second.
    #[must_use]
    pub fn per_second(requests: u32) -> Self {
        Self::per(requests, Duration::from_secs(1))
    }

    /// `requests` per minute.
    #[must_use]
    pub fn per_minute(requests: u32) -> Self {
        Self::per(requests, Duration::from_secs(60))
    }

    /// At most `n` requests in flight, at any rate.
    #[must_use]
    pub fn concurrent(n: u32) -> Self {
        Self { requests: None, per: Duration::from_secs(1), burst: 1, concurrent: Some(n.max(1)) }
    }

    /// The same limit, also capping requests in flight at `n`.
    #[must_use]
    pub fn with_concurrent(mut self, n: u32) -> Self {
        self.concurrent = Some(n.max(1));
        self
    }

    /// The same limit with a burst of `n` (at least 1).
    #[must_use]
    pub fn with_burst(mut self, n: u32) -> Self {
        self.burst = n.max(1);
        self
    }

    /// Google Calendar API's per-user quota: 600 requests per minute per user per project
    /// (developers.google.com/workspace/calendar/api/guides/quota). Key it by account.
    #[must_use]
    pub fn google_user() -> Self {
        Self::per_minute(600)
    }

    /// Microsoft Graph's Outlook limits per app and mailbox: 10,000 requests per 10 minutes
    /// and 4 concurrent requests (learn.microsoft.com/graph/throttling-limits). Key it by
    /// mailbox.
    #[must_use]
    pub fn graph_mailbox() -> Self {
        Self::per(10_000, Duration::from_secs(600)).with_concurrent(4)
    }

    fn rate(&self) -> Option<f64> {
        self.requests.map(|n| f64::from(n) / self.per.as_secs_f64())
    }
}

/// Rate limits shared by every source of a process (clone it into each source's
/// `HttpConfig`): one lane per key, each under the [`RateLimit`] of the longest rule prefix
/// that matches the key (or none).
///
/// A key names what the requests spend: an API account (`google:alice@example.com`), a mailbox
/// (`graph:bob@contoso.com`), a feed or CalDAV host (the default key of a source is its
/// server's host). When one request on a key is told to slow down (a 429, a `Retry-After`),
/// [`pause`](Self::pause) holds every request on that key, from any calendar, until then.
///
/// # Example
/// ```
/// use std::time::Duration;
/// use calscope::schedule::{RateLimit, RateLimits};
/// let limits = RateLimits::new()
///     .rule("google:", RateLimit::google_user())
///     .rule("graph:", RateLimit::graph_mailbox())
///     .rule("caldav.example.com", RateLimit::per_second(5));
/// assert_eq!(limits.limit_of("google:alice@example.com"), Some(RateLimit::per_minute(600)));
/// assert_eq!(limits.limit_of("feeds.example.org"), None);
/// ```
#[derive(Clone, Default)]
pub struct RateLimits {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    rules: Vec<(String, RateLimit)>,
    lanes: Mutex<HashMap<String, Lane>>,
    waited_us: AtomicU64,
    waits: AtomicU64,
}

struct Lane {
    limit: Option<RateLimit>,
    tokens: f64,
    refilled: Instant,
    paused_until: Option<Instant>,
    in_flight: u32,
    waiters: Vec<Waker>,
}

impl fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimits")
            .field("rules", &self.inner.rules)
            .field("waited", &self.waited())
            .finish_non_exhaustive()
    }
}

impl RateLimits {
    /// No rules: requests go at any rate, but pauses still hold their key.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule: keys starting with `prefix` get `limit` (the longest matching prefix wins;
    /// an empty prefix matches every key). Rules are set before the limits are shared.
    #[must_use]
    pub fn rule(self, prefix: impl Into<String>, limit: RateLimit) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            rules: shared.rules.clone(),
            lanes: Mutex::default(),
            waited_us: AtomicU64::new(0),
            waits: AtomicU64::new(0),
        });
        let prefix = prefix.into();
        inner.rules.retain(|(p, _)| *p != prefix);
        inner.rules.push((prefix, limit));
        Self { inner: Arc::new(inner) }
    }

    /// The limit a key gets.
    #[must_use]
    pub fn limit_of(&self, key: &str) -> Option<RateLimit> {
        self.inner
            .rules
            .iter()
            .filter(|(p, _)| key.starts_with(p.as_str()))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, l)| *l)
    }

    /// Time spent waiting for the limits so far, over every key.
    #[must_use]
    pub fn waited(&self) -> Duration {
        Duration::from_micros(self.inner.waited_us.load(Ordering::Relaxed))
    }

    /// Requests that had to wait so far.
    #[must_use]
    pub fn waits(&self) -> u64 {
        self.inner.waits.load(Ordering::Relaxed)
    }

    /// Holds every request on `key` for `wait` from now (a `Retry-After`, a 429's backoff); a
    /// longer pause already in place stands.
    pub fn pause(&self, key: &str, wait: Duration) {
        let until = Instant::now() + wait;
        let mut lanes = self.lanes();
        let lane = self.lane(&mut lanes, key);
        lane.paused_until = Some(lane.paused_until.map_or(until, |p| p.max(until)));
    }

    /// Waits until a request on `key` may go (sleeping with `sleep`), and answers the permit
    /// that holds its place among the key's requests in flight until dropped.
    pub async fn acquire<F, S>(&self, key: &str, sleep: S) -> Permit
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let started = Instant::now();
        let permit = Admit { limits: self, key }.await;
        let mut wait = self.reserve(key, Instant::now());
        while !wait.is_zero() {
            sleep(wait).await;
            wait = self.paused_left(key, Instant::now());
        }
        let waited = started.elapsed();
        if waited >= Duration::from_millis(1) {
            self.inner.waits.fetch_add(1, Ordering::Relaxed);
            self.inner.waited_us.fetch_add(u64::try_from(waited.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
            crate::observe::rate_limit_wait(key, waited);
        }
        permit
    }

    fn lanes(&self) -> MutexGuard<'_, HashMap<String, Lane>> {
        self.inner.lanes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lane<'a>(&self, lanes: &'a mut HashMap<String, Lane>, key: &str) -> &'a mut Lane {
        lanes.entry(key.to_owned()).or_insert_with(|| {
            let limit = self.limit_of(key);
            let tokens = limit.map_or(1.0, |l| f64::from(l.burst));
            Lane { limit, tokens, refilled: Instant::now(), paused_until: None, in_flight: 0, waiters: Vec::new() }
        })
    }

    /// Takes the next slot of `key`'s rate (queueing behind earlier takers) and answers how
    /// long until it and any pause are over.
    fn reserve(&self, key: &str, now: Instant) -> Duration {
        let mut lanes = self.lanes();
        let lane = self.lane(&mut lanes, key);
        let mut wait = Duration::ZERO;
        if let Some((rate, burst)) = lane.limit.and_then(|l| l.rate().map(|r| (r, f64::from(l.burst)))) {
            let elapsed = now.saturating_duration_since(lane.refilled).as_secs_f64();
            lane.tokens = (lane.tokens + elapsed * rate).min(burst);
            lane.refilled = now;
            lane.tokens -= 1.0;
            if lane.tokens < 0.0 {
                wait = Duration::from_secs_f64(-lane.tokens / rate);
            }
        }
        let paused = lane.paused_until.map_or(Duration::ZERO, |p| p.saturating_duration_since(now));
        wait.max(paused)
    }

    fn paused_left(&self, key: &str, now: Instant) -> Duration {
        let mut lanes = self.lanes();
        let lane = self.lane(&mut lanes, key);
        lane.paused_until.map_or(Duration::ZERO, |p| p.saturating_duration_since(now))
    }
}

/// A request's place among its key's requests in flight; dropping it lets the next one go.
#[must_use]
pub struct Permit {
    limits: RateLimits,
    key: Option<String>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let waiters = {
            let mut lanes = self.limits.lanes();
            match lanes.get_mut(&key) {
                Some(lane) => {
                    lane.in_flight = lane.in_flight.saturating_sub(1);
                    std::mem::take(&mut lane.waiters)
                }
                None => Vec::new(),
            }
        };
        waiters.into_iter().for_each(Waker::wake);
    }
}

/// Waits for a place among the key's requests in flight.
struct Admit<'a> {
    limits: &'a RateLimits,
    key: &'a str,
}

impl Future for Admit<'_> {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let mut lanes = self.limits.lanes();
        let lane = self.limits.lane(&mut lanes, self.key);
        let cap = lane.limit.and_then(|l| l.concurrent);
        if cap.is_none_or(|cap| lane.in_flight < cap) {
            lane.in_flight += 1;
            drop(lanes);
            return Poll::Ready(Permit { limits: self.limits.clone(), key: Some(self.key.to_owned()) });
        }
        lane.waiters.push(cx.waker().clone());
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_wins() {
        let limits = RateLimits::new().rule("", RateLimit::per_second(100)).rule("google:", RateLimit::google_user());
        assert_eq!(limits.limit_of("google:a"), Some(RateLimit::google_user()));
        assert_eq!(limits.limit_of("example.org"), Some(RateLimit::per_second(100)));
    }

    #[test]
    fn slots_queue_at_the_rate() {
        let limits = RateLimits::new().rule("k", RateLimit::per_second(10));
        let now = Instant::now();
        // The burst of one goes at once; each next taker waits 100 ms more than the last.
        let waits: Vec<u128> = (0..4).map(|_| limits.reserve("k", now).as_millis()).collect();
        assert_eq!(waits, [0, 100, 200, 300]);
        // Another key is not held.
        assert_eq!(limits.reserve("other", now), Duration::ZERO);
    }

    #[test]
    fn a_pause_holds_the_key() {
        let limits = RateLimits::new();
        limits.pause("k", Duration::from_secs(2));
        let left = limits.reserve("k", Instant::now());
        assert!(left > Duration::from_millis(1900) && left <= Duration::from_secs(2), "{left:?}");
        assert_eq!(limits.reserve("j", Instant::now()), Duration::ZERO);
    }

    #[test]
    fn in_flight_requests_are_capped() {
        let limits = RateLimits::new().rule("m", RateLimit::concurrent(2));
        let no_sleep = |_| async {};
        let a = futures::executor::block_on(limits.acquire("m", no_sleep));
        let _b = futures::executor::block_on(limits.acquire("m", no_sleep));
        let mut third = Box::pin(limits.acquire("m", no_sleep));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(third.as_mut().poll(&mut cx).is_pending());
        drop(a);
        assert!(third.as_mut().poll(&mut cx).is_ready());
    }
}
