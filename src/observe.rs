//! What calscope tells observers: `tracing` spans and events (always), and counters and
//! histograms through the `metrics` facade (feature `metrics`). The library never prints; a
//! host that installs no subscriber or recorder pays a relaxed atomic load per call site.
//!
//! Spans and events never carry a secret: calendars by id, servers by origin, errors by the
//! messages calscope builds (which show origins, never URLs with their paths or credentials).
//!
//! | name | type | labels |
//! |---|---|---|
//! | `calscope_syncs_total` | counter | `outcome` (`ok`, `error`), `error_kind`, `source` |
//! | `calscope_rows_written_total` | counter | `kind` (`inserted`, `updated`, `deleted`) |
//! | `calscope_sync_duration_seconds` | histogram | `source`, `outcome` |
//! | `calscope_requests_total` | counter | `provider` |
//! | `calscope_retries_total` | counter | `provider` |
//! | `calscope_rate_limit_wait_seconds` | histogram | |
//! | `calscope_leases_lost_total` | counter | |
//! | `calscope_claims_total` | counter | |

use std::time::Duration;

use crate::error::ErrorKind;
use crate::id::CalendarId;

/// The span of one calendar's sync; its outcome fields are recorded by [`sync_done`].
pub(crate) fn sync_span(calendar: &CalendarId, source: &'static str) -> tracing::Span {
    tracing::info_span!(
        target: "calscope::sync",
        "sync",
        calendar = calendar.as_str(),
        source,
        outcome = tracing::field::Empty,
        error_kind = tracing::field::Empty,
        inserted = tracing::field::Empty,
        updated = tracing::field::Empty,
        deleted = tracing::field::Empty,
        unchanged = tracing::field::Empty,
        requests = tracing::field::Empty,
        retries = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
    )
}

/// What one sync did, as its span's fields, an event, and metrics.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SyncDone {
    pub(crate) source: &'static str,
    pub(crate) error_kind: Option<ErrorKind>,
    pub(crate) inserted: u64,
    pub(crate) updated: u64,
    pub(crate) deleted: u64,
    pub(crate) unchanged: u64,
    pub(crate) requests: u64,
    pub(crate) retries: u32,
    pub(crate) duration: Duration,
}

/// Records a sync's outcome on its span and in the metrics.
pub(crate) fn sync_done(span: &tracing::Span, done: &SyncDone) {
    let outcome = if done.error_kind.is_some() { "error" } else { "ok" };
    let kind = done.error_kind.map_or("", ErrorKind::as_str);
    span.record("outcome", outcome);
    if done.error_kind.is_some() {
        span.record("error_kind", kind);
    }
    span.record("inserted", done.inserted);
    span.record("updated", done.updated);
    span.record("deleted", done.deleted);
    span.record("unchanged", done.unchanged);
    span.record("requests", done.requests);
    span.record("retries", done.retries);
    span.record("duration_ms", done.duration.as_secs_f64() * 1000.0);
    span.in_scope(|| {
        if done.error_kind.is_some() {
            tracing::warn!(target: "calscope::sync", outcome, error_kind = kind, source = done.source, "sync failed");
        } else {
            tracing::debug!(target: "calscope::sync", outcome, source = done.source, "sync done");
        }
    });
    #[cfg(feature = "metrics")]
    {
        let error_kind = done.error_kind.map_or("none", ErrorKind::code);
        metrics::counter!("calscope_syncs_total", "outcome" => outcome, "error_kind" => error_kind, "source" => done.source)
            .increment(1);
        metrics::counter!("calscope_rows_written_total", "kind" => "inserted").increment(done.inserted);
        metrics::counter!("calscope_rows_written_total", "kind" => "updated").increment(done.updated);
        metrics::counter!("calscope_rows_written_total", "kind" => "deleted").increment(done.deleted);
        metrics::histogram!("calscope_sync_duration_seconds", "source" => done.source, "outcome" => outcome)
            .record(done.duration.as_secs_f64());
    }
}

/// A source refused its cursor: the sync falls back to a full listing.
pub(crate) fn cursor_expired(calendar: &CalendarId) {
    tracing::info!(target: "calscope::sync", calendar = calendar.as_str(), "cursor expired; fetching a full listing");
}

/// One HTTP request is about to be sent.
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn request(provider: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("calscope_requests_total", "provider" => provider).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = provider;
}

/// A request is retried after `wait` (`status` 0: the connection failed).
#[cfg_attr(not(feature = "http"), allow(dead_code))]
pub(crate) fn retry(provider: &'static str, origin: &str, status: u16, wait: Duration) {
    tracing::info!(
        target: "calscope::http",
        provider,
        origin,
        status,
        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "retrying a request"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("calscope_retries_total", "provider" => provider).increment(1);
}

/// A request waited for its rate limit.
pub(crate) fn rate_limit_wait(key: &str, waited: Duration) {
    tracing::debug!(
        target: "calscope::limit",
        key,
        waited_ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
        "waited for a rate limit"
    );
    #[cfg(feature = "metrics")]
    metrics::histogram!("calscope_rate_limit_wait_seconds").record(waited.as_secs_f64());
}

/// A worker claimed calendars.
pub(crate) fn claimed(worker: &str, n: usize) {
    tracing::debug!(target: "calscope::schedule", worker, claimed = n, "claimed calendars");
    #[cfg(feature = "metrics")]
    metrics::counter!("calscope_claims_total").increment(n as u64);
}

/// A worker's finish was refused: its lease had been taken over.
pub(crate) fn lease_lost(calendar: &CalendarId, worker: &str) {
    tracing::warn!(
        target: "calscope::schedule",
        calendar = calendar.as_str(),
        worker,
        "lease lost: another worker claimed the calendar; this outcome was dropped"
    );
    #[cfg(feature = "metrics")]
    metrics::counter!("calscope_leases_lost_total").increment(1);
}

/// A failed calendar backs off.
pub(crate) fn backoff(calendar: &CalendarId, failures: u32, wait: Duration) {
    tracing::info!(
        target: "calscope::schedule",
        calendar = calendar.as_str(),
        failures,
        wait_s = wait.as_secs(),
        "sync failed; backing off"
    );
}
