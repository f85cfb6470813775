//! When and how long to wait before sending a failed request again.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder as _, ExponentialBuilder};

/// How an HTTP provider retries idempotent requests after a 429, a 5xx (but 501, 505 and 507,
/// which are answers, not hiccups) or a failed connection.
///
/// Waits grow exponentially from `min_delay` (with jitter: each wait is drawn between the
/// step's delay and twice it), are capped at `max_delay`, and a `Retry-After` answer (seconds
/// or an HTTP date) replaces the step's wait, capped the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt. Default 3.
    pub max_retries: u32,
    /// The first wait. Default 250 ms.
    pub min_delay: Duration,
    /// The longest wait, also when a `Retry-After` asks for more. Default 30 s.
    pub max_delay: Duration,
    /// Whether waits are jittered (so that many clients throttled at once do not come back
    /// at once). Default true.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { max_retries: 3, min_delay: Duration::from_millis(250), max_delay: Duration::from_secs(30), jitter: true }
    }
}

impl RetryPolicy {
    /// No retries at all.
    #[must_use]
    pub fn none() -> Self {
        Self { max_retries: 0, ..Self::default() }
    }

    /// Sets the retries after the first attempt.
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Sets the first wait.
    #[must_use]
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Sets the longest wait.
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Turns jitter on or off.
    #[must_use]
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// The waits of one request's retries, in order; it ends when the retries are spent.
    pub(crate) fn backoff(&self) -> Backoff {
        let mut builder = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(usize::try_from(self.max_retries).unwrap_or(usize::MAX));
        if self.jitter {
            builder = builder.with_jitter();
        }
        Backoff { steps: builder.build(), cap: self.max_delay }
    }
}

/// The waits of one request's retries.
pub(crate) struct Backoff {
    steps: backon::ExponentialBackoff,
    cap: Duration,
}

impl Backoff {
    /// The next wait, or `None` when the retries are spent; `asked` (a `Retry-After`) replaces
    /// the step's wait. Both are capped.
    pub(crate) fn next_wait(&mut self, asked: Option<Duration>) -> Option<Duration> {
        let step = self.steps.next()?;
        Some(asked.unwrap_or(step).min(self.cap))
    }
}

/// A `Retry-After` value (RFC 9110, 10.2.3): delay seconds, or an HTTP date (any of the three
/// formats) read against `now`; a date in the past means no wait.
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_end_with_the_retries() {
        let policy = RetryPolicy::default()
            .jitter(false)
            .max_retries(5)
            .min_delay(Duration::from_secs(1))
            .max_delay(Duration::from_secs(5));
        let mut b = policy.backoff();
        let waits: Vec<_> = std::iter::from_fn(|| b.next_wait(None)).collect();
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, [1, 2, 4, 5, 5]);
        let mut b = policy.backoff();
        assert_eq!(b.next_wait(Some(Duration::from_secs(3))), Some(Duration::from_secs(3)), "Retry-After replaces");
        assert_eq!(b.next_wait(Some(Duration::from_secs(3600))), Some(Duration::from_secs(5)), "capped");
        assert_eq!(RetryPolicy::none().backoff().next_wait(None), None);
    }

    #[test]
    fn jitter_stays_between_the_step_and_twice_it() {
        let policy = RetryPolicy::default()
            .max_retries(200)
            .min_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(60));
        let mut b = policy.backoff();
        let first: Vec<_> = (0..1).filter_map(|_| b.next_wait(None)).collect();
        assert!(
            first.iter().all(|w| *w >= Duration::from_millis(100) && *w <= Duration::from_millis(200)),
            "{first:?}"
        );
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..50 {
            seen.insert(policy.backoff().next_wait(None));
        }
        assert!(seen.len() > 1, "jitter draws different waits");
    }

    #[test]
    fn retry_after_reads_seconds_and_all_three_date_formats() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:30 GMT").unwrap();
        assert_eq!(retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after("Sunday, 06-Nov-94 08:49:40 GMT", now), Some(Duration::from_secs(10)));
        assert_eq!(retry_after("Sun Nov  6 08:49:45 1994", now), Some(Duration::from_secs(15)));
        assert_eq!(retry_after("Sat, 01 Jan 1994 00:00:00 GMT", now), Some(Duration::ZERO), "a past date");
        assert_eq!(retry_after("soon", now), None);
    }
}
