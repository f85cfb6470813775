//! The fleet: which calendar is due, which worker takes it, what happens when a worker dies or
//! a provider throttles.
//!
//! - [`Schedule`]: calendars registered with a spec and an interval; [`claim`](Schedule::claim)
//!   under a lease, [`finish`](Schedule::finish) with the outcome (fenced by a lease token),
//!   backoff on failure, [`poke`](Schedule::poke) for push notifications. Implemented by
//!   [`MemoryStore`](crate::MemoryStore), `SqliteStore` (several processes on one file) and
//!   `PostgresStore` (any number of workers: one `FOR UPDATE SKIP LOCKED` statement per claim),
//!   in their own schemas.
//! - [`Worker`]: the loop that claims, builds sources through the host's [`SourceFactory`],
//!   syncs with bounded concurrency and finishes; runtime-agnostic, stops cleanly.
//! - [`RateLimits`]: limits shared by every source of a process, keyed by what a source talks
//!   to; a 429 on one calendar slows its siblings on the same key.
//!
//! # Wiring push notifications
//!
//! A provider's push channel (Google `events.watch`, a Microsoft Graph subscription, a CalDAV
//! push) says only "something changed in this calendar". The host's webhook handler checks the
//! notification (Google's `X-Goog-Channel-Token`, Graph's `clientState`, answering Graph's
//! validation request with its `validationToken`), maps the channel to the calendar id it
//! registered, and calls [`Schedule::poke`]: the calendar is due at once and the next free
//! worker syncs it through its cursor, so the notification's content is never trusted and a
//! burst of notifications costs one sync. A poke that arrives while the calendar is being
//! synced makes it due again right after that sync, so no change is missed.
//!
//! ```
//! # use calscope::schedule::Schedule;
//! # async fn on_webhook(store: &calscope::MemoryStore, calendar: calscope::CalendarId) -> calscope::Result<()> {
//! // In the handler of `POST /hooks/google`, once the channel token checked out:
//! store.poke(&calendar, chrono::Utc::now()).await?;
//! # Ok(()) }
//! ```

mod due;
mod limit;
mod memory;
mod worker;

pub use due::{
    Claim, DEFAULT_INTERVAL, Finished, MAX_ERROR_LEN, MIN_BACKOFF, Outcome, Pending, Registered, Schedule,
    ScheduleEntry, next_due,
};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) use due::{after, check_interval, lease_lost, seed};
pub use limit::{Permit, RateLimit, RateLimits};
pub use memory::MemorySchedule;
pub use worker::{Clock, Sleep, SourceFactory, Worker, WorkerOptions, WorkerReport};
