//! Conformance checks for [`Store`](crate::Store) and
//! [`CalendarSource`](crate::CalendarSource) implementations (feature `testkit`).
//!
//! **Not semver-stable**: checks are added and tightened in minor versions, so an
//! implementation that passes today's kit may fail tomorrow's for a real bug.
//!
//! There is one check per `# Behavior` bullet group of the traits' docs. Each answers an error
//! naming the check and what went wrong.
//!
//! - **Store checks** take a store that holds none of the calendars they use (they are named
//!   `testkit-<check>-…`): use a fresh database. [`run_store_checks`] runs them all.
//! - **Source checks** take a [`SourceFixture`]: the host's way to create a calendar, set what
//!   it serves and expire its cursors, since a source is read-only through its trait.
//!   [`run_source_checks`] runs them all.
//! - **Schedule checks** take a [`Schedule`](crate::schedule::Schedule) holding no calendars;
//!   they drive time themselves and clean up. [`run_schedule_checks`] runs them all.
//! - [`run_all`] runs the store and source checks.
//!
//! # Example: a host holding its own store to the contract
//! ```
//! # futures::executor::block_on(async {
//! let store = calscope::MemoryStore::new(); // your `impl Store`
//! calscope::testkit::run_store_checks(&store).await?;
//! # Ok::<(), calscope::Error>(()) }).unwrap();
//! ```
//!
//! # Example: a host holding its own source to the contract
//! ```
//! use std::sync::Arc;
//! use calscope::testkit::{FixtureCalendar, SourceFixture, run_source_checks};
//! use calscope::{CalendarId, Event, FingerprintPolicy, MemorySource, Result};
//!
//! /// Changes what the source serves; here the source is calscope's `MemorySource`, in a
//! /// host it is a test account on the provider.
//! struct Fixture(Arc<MemorySource>);
//!
//! #[async_trait::async_trait]
//! impl SourceFixture for Fixture {
//!     async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar> {
//!         let id = CalendarId::new(name)?;
//!         self.0.add_calendar(&id);
//!         Ok(FixtureCalendar::new(id, self.0.clone()))
//!     }
//!     async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()> {
//!         let policy = FingerprintPolicy::default();
//!         let events = events.iter().map(|t| Event::from_ics(calendar, t, &policy)).collect::<Result<_>>()?;
//!         self.0.replace_all(calendar, events);
//!         Ok(())
//!     }
//!     async fn expire_cursors(&self, calendar: &CalendarId) -> Result<bool> {
//!         self.0.expire_cursors(calendar);
//!         Ok(true)
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! run_source_checks(&Fixture(Arc::new(MemorySource::new()))).await?;
//! # Ok::<(), calscope::Error>(()) }).unwrap();
//! ```

mod schedule;
mod source;
mod store;

pub use schedule::{
    check_claim, check_finish_and_backoff, check_lease_fencing, check_poke, check_register, run_schedule_checks,
};
pub use source::{
    FixtureCalendar, SourceFixture, check_cursor_expiry, check_cursor_monotonic, check_deltas_match_snapshots,
    check_snapshot_complete, run_source_checks,
};
pub use store::{
    check_atomic_apply_with_cursor, check_concurrent_calendars, check_cursor_compare_and_set, check_idempotent_apply,
    check_isolation, check_large_plan, check_no_duplicate_masters, check_rows_affected,
    check_unknown_calendar_is_empty, run_store_checks,
};

/// Runs every store check against `store` and every source check against `fixture`.
///
/// # Errors
/// The first check that failed, naming it.
pub async fn run_all(store: &dyn crate::Store, fixture: &dyn SourceFixture) -> crate::Result<()> {
    run_store_checks(store).await?;
    run_source_checks(fixture).await
}
