//! Calendar sync with scoped event identity and the fewest possible writes.
//!
//! calscope pulls calendars from any provider (ICS feeds, CalDAV, custom APIs) into the
//! host's own database. It diffs what a source reports against what the host stored and
//! writes only real changes: re-syncing unchanged data writes nothing, whatever the feed
//! regenerated (DTSTAMP and friends), and no write ever leaves its calendar.
//!
//! ```
//! use calscope::{CalendarId, Engine, Event, FingerprintPolicy, MemorySource, MemoryStore};
//! # futures::executor::block_on(async {
//! let policy = FingerprintPolicy::default();
//! let source = MemorySource::new();
//! // Two users' calendars holding the *same* holiday UID.
//! let (alice, bob) = (CalendarId::new("alice")?, CalendarId::new("bob")?);
//! for cal in [&alice, &bob] {
//!     let ics = "BEGIN:VEVENT\r\nUID:xmas@holidays\r\nDTSTART;VALUE=DATE:20261225\r\nSUMMARY:Christmas\r\nEND:VEVENT\r\n";
//!     source.put(Event::from_ics(cal, ics, &policy)?);
//! }
//! let engine = Engine::new(MemoryStore::new());
//! for cal in [&alice, &bob] {
//!     assert_eq!(engine.sync(&source, cal).await.inserted, 1);
//! }
//! // A re-sync writes nothing, and each calendar keeps its own row.
//! assert_eq!(engine.sync(&source, &alice).await.writes(), 0);
//! assert_eq!(engine.store().events(&bob).len(), 1);
//! # Ok::<(), calscope::Error>(()) }).unwrap();
//! ```
//!
//! # Concepts
//!
//! - **Source** ([`CalendarSource`]): where calendars come from. It answers a fetch with a
//!   [`Snapshot`] (everything; deletions are computed) or a [`Delta`] (explicit changes), plus
//!   a cursor.
//! - **Calendar** ([`CalendarId`]): the host's name for one calendar; the scope of every key.
//! - **Event key** ([`EventKey`]): calendar + UID + normalized RECURRENCE-ID. UIDs repeat across
//!   calendars (shared invites, generated holiday calendars), so an unscoped key cannot be
//!   expressed. A recurring event's overrides are separate keys under the master's UID.
//! - **Fingerprint** ([`Fingerprint`]): 128 bits over a canonical form of the component that
//!   ignores volatile properties ([`FingerprintPolicy`]), property order, case of names, folding
//!   and line endings. A row is rewritten only when its fingerprint differs.
//! - **Plan** ([`Plan`]): the inserts, updates and deletes for one calendar, each with its
//!   reason, computed by the pure [`plan()`] function.
//! - **Cursor** ([`Cursor`]): a source's position (sync token, HTTP validators). The store
//!   keeps it in the same transaction as the changes, so it advances only with a committed
//!   apply, and a calendar [`Revision`] makes concurrent applies of one calendar fail instead of
//!   interleaving.
//!
//! # Design
//!
//! **Why is the planner pure?** Every decision about what to write lives in one synchronous
//! function without I/O: it is tested with literals, property-tested for convergence,
//! idempotence, minimality and isolation, and benchmarked without a runtime. The [`Engine`] only
//! moves data between source, planner and store.
//!
//! **Why doesn't calscope own the database?** Hosts already have one, with their own schema,
//! migrations and transactions. A [`Store`] needs two operations (load a calendar's state, apply
//! a plan atomically with its cursor); the provided stores are adapters, not a requirement.
//!
//! **Why can an empty or broken feed not wipe a calendar?** A complete but empty snapshot over
//! stored events, and a plan that deletes or updates more than a set share, are *blocked*
//! ([`PlanOptions`]); a snapshot marked incomplete deletes nothing.
//!
//! **Why does the store, not the engine, check row counts?** The write-amplification guard
//! must run *before* commit to roll back. Stores call [`Plan::check_rows`] inside their
//! transaction; the engine checks the reported counts again.
//!
//! # Providers and stores
//!
//! Always compiled: [`MemorySource`] (events in memory with a change log, deltas and cursor
//! expiry), [`IcsSource`] over files and bytes (the feed reader is [`ics::read_feed`]) and
//! [`MemoryStore`]. Feeds over http(s) need the `http` feature; the SQLite store the `sqlite`
//! feature (on by default), the Postgres store the `postgres` feature, CalDAV accounts
//! (`CalDavSource`) the `caldav` feature, Google Calendar accounts (`GoogleSource`) the
//! `google` feature, Outlook and Microsoft 365 calendars (`GraphSource`) the `graph` feature.
//! Every HTTP provider shares one client (retries with backoff and
//! `Retry-After`, size caps, timeouts, same-origin confinement, redaction, the host's
//! `TokenProvider`).
//!
//! Availability: the recurrence [`Expander`] (pure: a [`Series`], a window and a [`Zone`] →
//! [`Instance`]s), the busy rule and busy-interval merging ([`busy`]).
//!
//! # Crate features
//!
//! | feature | what it adds |
//! |---|---|
//! | *(none)* | the core: ids, events, fingerprints, planner, engine, the iCalendar reader, memory source and store, `IcsSource` for files and bytes |
//! | `sqlite` *(default)* | [`SqliteStore`]: the embedded default store (rusqlite with the bundled SQLite) |
//! | `caldav` | `CalDavSource`: CalDAV accounts with discovery, sync tokens, multiget and ETags (reqwest, quick-xml; needs a Tokio runtime) |
//! | `google` | `GoogleSource`: Google Calendar accounts through the Calendar API v3 with sync tokens, and `OAuthRefresh` (serde_json; needs a Tokio runtime) |
//! | `graph` | `GraphSource`: Outlook and Microsoft 365 calendars through Microsoft Graph delta rounds, and `OAuthRefresh` (serde_json; needs a Tokio runtime) |
//! | `postgres` | `PostgresStore`: the scale-out store, shared by any number of workers (tokio-postgres with a deadpool pool; needs a Tokio runtime) |
//! | `testkit` | [`testkit`]: conformance checks a host runs against its own `Store` and `CalendarSource` (not semver-stable) |
//! | `http` | `IcsSource::from_url`: feeds over http(s) with conditional GETs (reqwest, rustls with the ring provider; needs a Tokio runtime) |

mod analyze;
mod details;
mod engine;
mod error;
mod event;
mod fingerprint;
pub mod ics;
mod id;
mod observe;
mod plan;
mod providers;
mod recur;
pub mod schedule;
mod source;
mod state;
mod store;
mod stores;
#[cfg(feature = "testkit")]
pub mod testkit;
mod value;

pub use details::{EventDetails, EventStatus, EventTime, PeriodEnd, Person, RdatePeriod, Transparency};
pub use engine::{CalendarReport, Engine, SyncJob, SyncOptions, SyncReport, SyncStatus};
pub use error::{Error, ErrorKind, Result};
pub use event::{Event, MAX_COMPONENT_DEPTH};
pub use fingerprint::{DEFAULT_VOLATILE, Fingerprint, FingerprintPolicy, PropertyDigest, SourceHash};
pub use id::{
    CalendarId, Cursor, Etag, EventKey, Href, MAX_CALENDAR_ID_LEN, MAX_UID_LEN, RecurrenceId, RecurrenceValue, Uid,
};
pub use plan::{Blocked, Change, DeleteReason, Diagnostic, Plan, PlanBasis, PlanOptions, plan, plan_owned};
#[cfg(feature = "caldav")]
pub use providers::caldav::{CalDavConfig, CalDavSource, CalendarNaming};
#[cfg(feature = "google")]
pub use providers::google::{GOOGLE_API, GoogleConfig, GoogleSource};
#[cfg(feature = "graph")]
pub use providers::graph::{GRAPH_API, GraphConfig, GraphSource};
#[cfg(feature = "http")]
pub use providers::http::config::{HttpAuth, HttpConfig};
#[cfg(any(feature = "google", feature = "graph"))]
pub use providers::http::oauth::{GOOGLE_TOKEN_ENDPOINT, OAuthRefresh};
#[cfg(feature = "http")]
pub use providers::http::retry::RetryPolicy;
#[cfg(feature = "http")]
pub use providers::http::token::{Secret, StaticToken, TokenProvider};
pub use providers::ics::IcsSource;
pub use providers::memory::MemorySource;
pub use recur::{Busy, BusyInterval, DEFAULT_MAX_INSTANCES, Expander, Expansion, Instance, Series};
pub use source::{
    CalendarAccess, CalendarInfo, CalendarSource, Capabilities, Changes, Delta, FetchRequest, Fetched, Snapshot,
};
pub use state::{CalendarHead, Revision, StoredEntry, StoredState};
pub use store::{Applied, ApplyRequest, LoadScope, Store};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use stores::instances::{BusyAnswer, InstanceConfig, SlideReport};
pub use stores::memory::{MemoryStore, WriteStats};
#[cfg(feature = "sqlite")]
pub use stores::sqlite::SqliteStore;
pub use value::tz::Zone;
/// The SQLite store's module: [`SqliteStore`], its schema version, and the `rusqlite` it is
/// built on (for host queries through [`SqliteStore::with_connection`]).
#[cfg(feature = "sqlite")]
pub mod sqlite {
    pub use crate::stores::sqlite::{SCHEMA_VERSION, SqliteStore};
    pub use rusqlite;
}
#[cfg(feature = "postgres")]
pub use stores::postgres::{PostgresConfig, PostgresStore};
/// The Postgres store's module: [`PostgresStore`], its schema version, and the
/// `deadpool_postgres` and `tokio_postgres` it is built on (for host queries through
/// [`PostgresStore::pool`], and for [`PostgresStore::from_pool`]).
#[cfg(feature = "postgres")]
pub mod postgres {
    pub use crate::stores::postgres::{PostgresConfig, PostgresStore, SCHEMA_VERSION};
    pub use deadpool_postgres;
    pub use deadpool_postgres::tokio_postgres;
}

/// Availability: the busy rule ([`Busy::of`]) and the merging of busy intervals ([`merge`](busy::merge),
/// [`spans`](busy::spans)), pure and without I/O.
pub mod busy {
    pub use crate::recur::{Busy, BusyInterval, merge, spans};
}

/// Entry points for the fuzz targets (`fuzz/`) and their seed replay; not part of the API.
#[doc(hidden)]
pub mod __fuzz {
    #[cfg(feature = "caldav")]
    pub use crate::providers::caldav::fuzz_multistatus;

    /// The merge of calendars' merged busy lists a busy query runs (`merge` of each list's
    /// intervals must equal it).
    #[must_use]
    pub fn merge_lists(
        lists: &[&[crate::BusyInterval]],
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Vec<crate::BusyInterval> {
        crate::recur::merge_lists(lists, from, to)
    }
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
