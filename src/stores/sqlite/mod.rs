//! [`SqliteStore`]: the embedded default store, one SQLite file (feature `sqlite`).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::channel::oneshot;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Error, ErrorKind, Result};
use crate::id::{CalendarId, Cursor, Etag, EventKey, Href};
use crate::schedule::{Claim, Finished, Outcome, Pending, Registered, Schedule, ScheduleEntry};
use crate::state::{CalendarHead, Revision, StoredEntry, StoredState};
use crate::store::{Applied, ApplyRequest, LoadScope, Store};
use crate::stores::columns::{self, EntryColumns, Row, entry, rid_text, row};
use crate::stores::instances::{BusyAnswer, FirstExpansion, InstanceConfig, SlideReport, Touched};
use crate::value::tz::Zone;

mod instances;
mod schedule;
mod spans;
mod sql;
use sql::{TimeText, storage, time_text};

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 5;

/// Schema migrations, in order: entry `i` takes a database from version `i` to `i + 1`. A later
/// version appends entries (`ALTER TABLE … ADD COLUMN`, new indexes); existing rows are never
/// rewritten, so an upgrade costs no write amplification.
const MIGRATIONS: [&str; 5] = [
    r"
CREATE TABLE IF NOT EXISTS calendars (
    calendar_id TEXT PRIMARY KEY NOT NULL,
    cursor      TEXT,
    revision    INTEGER NOT NULL,
    events      INTEGER NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    calendar_id   TEXT NOT NULL,
    uid           TEXT NOT NULL,
    recurrence_id TEXT NOT NULL,
    summary       TEXT,
    location      TEXT,
    description   TEXT,
    starts_at     TEXT,
    ends_at       TEXT,
    all_day       INTEGER NOT NULL,
    tzid          TEXT,
    rrule         TEXT,
    status        TEXT,
    transparency  TEXT,
    sequence      INTEGER,
    fingerprint   BLOB NOT NULL,
    source_hash   BLOB,
    digest        BLOB,
    href          TEXT,
    etag          TEXT,
    raw           TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS events_key ON events (calendar_id, uid, recurrence_id);
CREATE INDEX IF NOT EXISTS events_time ON events (calendar_id, starts_at, ends_at);
CREATE INDEX IF NOT EXISTS events_href ON events (calendar_id, href) WHERE href IS NOT NULL;
CREATE INDEX IF NOT EXISTS events_sync ON events (calendar_id, uid, recurrence_id, fingerprint, source_hash, digest, href, etag);
",
    instances::MIGRATION,
    schedule::MIGRATION,
    spans::MIGRATION,
    spans::PIECES,
];

const UPSERT: &str = "
INSERT INTO events (calendar_id, uid, recurrence_id, summary, location, description, starts_at, ends_at,
                    all_day, tzid, rrule, status, transparency, sequence, fingerprint, source_hash, digest,
                    href, etag, raw, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
ON CONFLICT (calendar_id, uid, recurrence_id) DO UPDATE SET
    summary = excluded.summary, location = excluded.location, description = excluded.description,
    starts_at = excluded.starts_at, ends_at = excluded.ends_at, all_day = excluded.all_day,
    tzid = excluded.tzid, rrule = excluded.rrule, status = excluded.status,
    transparency = excluded.transparency, sequence = excluded.sequence,
    fingerprint = excluded.fingerprint, source_hash = excluded.source_hash, digest = excluded.digest,
    href = excluded.href, etag = excluded.etag, raw = excluded.raw, updated_at = excluded.updated_at
WHERE events.fingerprint IS NOT excluded.fingerprint";

const DELETE: &str = "DELETE FROM events WHERE calendar_id = ?1 AND uid = ?2 AND recurrence_id = ?3";

const ENTRY_COLUMNS: &str = "uid, recurrence_id, fingerprint, source_hash, digest, href, etag";

/// The embedded default [`Store`]: one SQLite file, in WAL mode.
///
/// # Schema (version [`SCHEMA_VERSION`], created idempotently on open)
///
/// - **`events`**: one row per stored event. The key is (`calendar_id`, `uid`,
///   `recurrence_id`) under a unique index; `recurrence_id` is the normalized RECURRENCE-ID of
///   an override ([`RecurrenceId`](crate::RecurrenceId)'s text form) and the empty string for a master or single
///   event, so that uniqueness holds for masters too (a NULL in a unique index would not).
///   For scheduling queries: `summary`, `location`, `description`, `starts_at` and `ends_at`
///   (UTC, `YYYY-MM-DDTHH:MM:SSZ`, so text order is time order; NULL when a zone is unknown),
///   `all_day`, `tzid` (the start's zone as written; for a zone only the feed defines, the tz
///   database zone its VTIMEZONE matches), `rrule` (the rule text; a recurring event's row is
///   its first occurrence; its occurrences are in `instances`), `status`
///   (`tentative`, `confirmed`, `cancelled` or as written), `transparency` (`opaque`,
///   `transparent`), `sequence`. For sync: `fingerprint` (16 bytes), `source_hash` (16 bytes),
///   `digest` (the property digest), `href`, `etag`, `raw` (the component as received) and
///   `updated_at` (when calscope last wrote the row). Indexes: the key, (`calendar_id`,
///   `starts_at`, `ends_at`), (`calendar_id`, `href`), and `events_sync`, which covers what a
///   sync loads (key, fingerprint, source hash, digest, href, etag): planning a calendar reads
///   that index, never the rows with their text (3–4× faster on a 100k-event calendar).
/// - **`calendars`**: one row per applied calendar: `cursor`, `revision`, `events` (the row
///   count), `updated_at`, the instance horizon (`instances_from`, `instances_to`,
///   `instances_zone`), and `busy_months` (1 once the calendar's months are built).
/// - **`instances`** (version 2): one row per occurrence of every stored series within the
///   horizon ([`with_instances`](Self::with_instances)): (`calendar_id`, `uid`,
///   `recurrence_id`) is the key (`WITHOUT ROWID`), `recurrence_id` the occurrence's original
///   start in [`RecurrenceId`](crate::RecurrenceId)'s text form (for a single event its
///   DTSTART), `starts_at`/`ends_at` as in `events`, `busy` and `tentative` its busy state.
///   No time index since version 5 (busy queries read `busy_months`; the index cost more than
///   the rows on a first sync): a host querying `instances` by time over large calendars adds
///   `CREATE INDEX … ON instances (calendar_id, ends_at, starts_at) WHERE busy = 1` itself.
/// - **`schedule`** (version 3): the [`Schedule`](crate::schedule::Schedule), one row per
///   registered calendar: `calendar_id`, `spec`, `interval_ms`, `next_due_at`, `syncs`,
///   `failures`, `last_error_kind` (an [`ErrorKind::code`](crate::ErrorKind::code)),
///   `last_error`, `last_synced_at`, `lease_owner`, `lease_until`, `lease_token` (claims so
///   far: the fencing token), `claimed_at`, `poked_at`, `registered_at`; times as UTC text with
///   microseconds (`YYYY-MM-DDTHH:MM:SS.ffffffZ`). Index `schedule_due` (`next_due_at`,
///   `calendar_id`): a claim reads the most overdue rows in order, never sorts. Every schedule
///   call is one `BEGIN IMMEDIATE` transaction or one statement, so several processes on one
///   file claim without overlap.
/// - **`busy_months`** (version 4): each calendar's busy time merged per UTC month, kept from
///   `instances` in the same transaction: (`calendar_id`, `month`: year × 12 + month − 1) is
///   the key (`WITHOUT ROWID`), `spans` a blob of 9 bytes per merged span (start and end as
///   seconds from the month's start, little-endian u32, and a tentative flag), `pieces`
///   (version 5) every busy instance's share of the month in the same layout, sorted, so that
///   an apply updates a month from the rows it changed without reading `instances`. A month's
///   row is written only when its pieces change; busy queries read `spans`.
///
/// The version lives in `PRAGMA user_version`. A later version migrates with `ALTER TABLE`
/// and new indexes; it never rewrites rows. A database written by a newer version is refused.
///
/// # Writes
///
/// One transaction per apply (`BEGIN IMMEDIATE`): the revision check, every change, and the
/// calendar's cursor. Upserts run `INSERT … ON CONFLICT (calendar_id, uid, recurrence_id) DO
/// UPDATE … WHERE events.fingerprint IS NOT excluded.fingerprint`, deletes name the full key,
/// and every statement's affected-row count goes through [`Plan::check_rows`](crate::Plan::check_rows) before commit.
/// Statements are prepared once and cached. A file database copies its WAL into the database
/// file (checkpoints) on a second connection of its own after each call, so an apply does not
/// wait for that copy; closing the store checkpoints what is left and truncates the WAL.
///
/// # Async hosts
///
/// The connection lives on a thread of its own; every call is sent to it and awaited through a
/// channel, so `load` and `apply` never block the caller's executor, whatever the runtime (or
/// none: `futures::executor::block_on` works). Calls run one at a time, in order, which is how
/// SQLite takes writes anyway. An apply is a pipeline: the caller's task parses the scheduling
/// fields and computes fingerprints of 512 changes at a time while the store's thread writes
/// the previous batch, so a large first sync never holds every event's fields at once.
///
/// # Pages
///
/// A database this store creates gets 16 KiB pages (SQLite's default is 4 KiB): rows here are
/// about 1 KB, and the larger pages made a 100k-event first sync 8–25 % faster and an
/// unchanged re-sync 24–40 % faster (`cargo bench --bench sqlite`). An existing file keeps its page size; a host
/// that wants another one creates the file first (`PRAGMA page_size`, then any write).
///
/// # Example
/// ```
/// use calscope::{CalendarId, Engine, Event, FingerprintPolicy, MemorySource, SqliteStore};
/// # futures::executor::block_on(async {
/// let store = SqliteStore::open_in_memory()?;
/// let cal = CalendarId::new("work")?;
/// let source = MemorySource::new();
/// source.put(Event::from_ics(&cal, "BEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260105T090000Z\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n", &FingerprintPolicy::default())?);
/// let engine = Engine::new(store);
/// assert_eq!(engine.sync(&source, &cal).await.inserted, 1);
/// let summary: String = engine
///     .store()
///     .with_connection(|conn| conn.query_row("SELECT summary FROM events WHERE uid = '1'", [], |r| r.get(0)))
///     .await?;
/// assert_eq!(summary, "Standup");
/// # Ok::<(), calscope::Error>(()) }).unwrap();
/// ```
pub struct SqliteStore {
    instances: Option<InstanceConfig>,
    jobs: Option<mpsc::Sender<Job>>,
    worker: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
    location: PathBuf,
    cache: Option<std::sync::Mutex<StateCache>>,
}

/// Loaded calendar states kept between syncs ([`SqliteStore::with_state_cache`]).
struct StateCache {
    max_entries: usize,
    total: usize,
    clock: u64,
    states: std::collections::HashMap<CalendarId, (StoredState, u64)>,
}

impl StateCache {
    fn get(&mut self, calendar: &CalendarId) -> Option<StoredState> {
        self.clock += 1;
        let clock = self.clock;
        self.states.get_mut(calendar).map(|(state, used)| {
            *used = clock;
            state.clone()
        })
    }

    /// Keeps `state`, forgetting the least recently used others while over budget; a state
    /// larger than the whole budget is not kept.
    fn put(&mut self, state: StoredState) {
        self.remove(state.calendar());
        if state.len() > self.max_entries {
            return;
        }
        while self.total + state.len() > self.max_entries {
            let Some(oldest) = self.states.iter().min_by_key(|(_, (_, used))| *used).map(|(c, _)| c.clone()) else {
                break;
            };
            self.remove(&oldest);
        }
        self.clock += 1;
        self.total += state.len();
        self.states.insert(state.calendar().clone(), (state, self.clock));
    }

    fn remove(&mut self, calendar: &CalendarId) -> Option<StoredState> {
        let (state, _) = self.states.remove(calendar)?;
        self.total -= state.len();
        Some(state)
    }
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore").field("location", &self.location).finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (or creates) the database file at `path`, creating or migrating the schema. This
    /// call blocks until the file is open; later calls do not.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the file cannot be opened, is not a database, or was written
    /// by a newer schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let target = path.clone();
        Self::start(path.clone(), Some(path), move || Connection::open(target))
    }

    /// A private database in memory (for tests and tools).
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when SQLite cannot start.
    pub fn open_in_memory() -> Result<Self> {
        Self::start(PathBuf::from(":memory:"), None, Connection::open_in_memory)
    }

    fn start(
        location: PathBuf,
        file: Option<PathBuf>,
        open: impl FnOnce() -> rusqlite::Result<Connection> + Send + 'static,
    ) -> Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        // A file database checkpoints its WAL on a connection of its own, after commits, so an
        // apply does not wait for its pages to be copied into the database file.
        let (checkpoints, checkpointer) = match file {
            Some(path) => {
                let (tx, rx) = mpsc::channel::<()>();
                let handle = std::thread::Builder::new()
                    .name("calscope-sqlite-checkpoint".to_owned())
                    .spawn(move || checkpoint_loop(&path, &rx))
                    .map_err(|e| Error::new(ErrorKind::Storage, "cannot start the SQLite thread").with_source(e))?;
                (Some(tx), Some(handle))
            }
            None => (None, None),
        };
        let worker = std::thread::Builder::new()
            .name("calscope-sqlite".to_owned())
            .spawn(move || {
                let background = checkpoints.is_some();
                let opened = open().map_err(storage("open")).and_then(|mut c| prepare(&mut c, background).map(|()| c));
                let mut conn = match opened {
                    Ok(conn) => {
                        let _ = ready_tx.send(Ok(()));
                        conn
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    // A panicking job loses its answer (the caller sees a storage error), not the
                    // store; its transaction was rolled back when it unwound.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut conn)));
                    if let Some(tx) = &checkpoints {
                        let _ = tx.send(());
                    }
                }
            })
            .map_err(|e| Error::new(ErrorKind::Storage, "cannot start the SQLite thread").with_source(e))?;
        let store = Self {
            instances: Some(InstanceConfig::default()),
            jobs: Some(jobs),
            worker: Some(worker),
            checkpointer,
            location,
            cache: None,
        };
        let opened = ready_rx.recv().map_err(|_| {
            Error::new(ErrorKind::Storage, format!("SQLite thread for {} stopped", store.location.display()))
        })?;
        opened.map(|()| store)
    }

    /// The same store keeping materialized instances with `config` (zone, horizon, cap). The
    /// default keeps them in UTC over 30 days back and 400 ahead.
    ///
    /// The `instances` table holds one row per occurrence of every stored series within the
    /// horizon, written in the apply's transaction and only where an occurrence's interval or
    /// busy state changed (see [`busy`](Self::busy) for the queries, and the README for the SQL
    /// a host runs itself). Changing the zone rebuilds a calendar's rows on its next apply.
    #[must_use]
    pub fn with_instances(mut self, config: InstanceConfig) -> Self {
        self.instances = Some(config);
        self
    }

    /// The same store without materialized instances: applies write `events` only, and busy
    /// queries expand from `events`.
    #[must_use]
    pub fn without_instances(mut self) -> Self {
        self.instances = None;
        self
    }

    /// Busy time of `calendars` in `[from, to)`, floating times and dates read in `zone`: per
    /// calendar and merged across them, clipped to the window.
    ///
    /// Read from `instances` (one indexed range query per calendar) when the calendar's stored
    /// horizon covers the window in that zone; otherwise expanded from `events` (correct, slower;
    /// [`BusyAnswer::expanded`] says so). A calendar the store does not know gets an empty
    /// list and is named in [`BusyAnswer::unknown`].
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the database cannot be read or holds unreadable rows.
    ///
    /// # Example
    /// ```
    /// use calscope::{CalendarId, Engine, Event, FingerprintPolicy, MemorySource, SqliteStore, Zone};
    /// # futures::executor::block_on(async {
    /// let cal = CalendarId::new("work")?;
    /// let source = MemorySource::new();
    /// let ics = "BEGIN:VEVENT\r\nUID:1\r\nDTSTART:20261201T090000Z\r\nDURATION:PT30M\r\nRRULE:FREQ=DAILY;COUNT=2\r\nEND:VEVENT\r\n";
    /// source.put(Event::from_ics(&cal, ics, &FingerprintPolicy::default())?);
    /// let engine = Engine::new(SqliteStore::open_in_memory()?);
    /// engine.sync(&source, &cal).await;
    /// let from = "2026-12-01T00:00:00Z".parse().unwrap();
    /// let to = "2026-12-03T00:00:00Z".parse().unwrap();
    /// let busy = engine.store().busy(&[cal.clone()], from, to, Zone::UTC).await?;
    /// assert_eq!(busy.merged_spans().len(), 2);
    /// # Ok::<(), calscope::Error>(()) }).unwrap();
    /// ```
    pub async fn busy(
        &self,
        calendars: &[CalendarId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        zone: Zone,
    ) -> Result<BusyAnswer> {
        let config = self.instances;
        let calendars = calendars.to_vec();
        self.call(move |conn| instances::busy(conn, config.as_ref(), &calendars, from, to, zone)).await
    }

    /// Moves every calendar's instance horizon to the one of `now`, writing only the
    /// occurrences of the newly covered days (a host runs this daily; applies also slide the
    /// calendar they write). Rows behind the horizon stay until their series changes.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the database cannot be written; [`ErrorKind::InvalidInput`]
    /// when the store keeps no instances.
    pub async fn slide_instances(&self, now: DateTime<Utc>) -> Result<SlideReport> {
        let config = self.instances.ok_or_else(|| Error::invalid("this store keeps no instances"))?;
        self.call(move |conn| instances::slide_all(conn, &config, now)).await
    }

    /// The same store keeping the states it loads and writes, up to `max_entries` stored
    /// events over all calendars (about 150 bytes each), least recently used first out.
    ///
    /// A long-running host that re-syncs the same large calendars then skips reading their
    /// rows: a load reads only the calendar's head, and when its revision is the one the cached
    /// state has, answers the cached state (shared, not copied). An apply brings the cached
    /// state to what it wrote. Another process applying to the same file moves the revision,
    /// so its writes are never missed. Rows changed *outside* calscope's applies (a host's own
    /// `UPDATE … events`) without moving the calendar's revision are not seen by a cached
    /// state: hosts that do that should not turn the cache on, or call
    /// [`forget_cached`](Self::forget_cached) afterwards.
    #[must_use]
    pub fn with_state_cache(mut self, max_entries: usize) -> Self {
        self.cache = Some(std::sync::Mutex::new(StateCache {
            max_entries,
            total: 0,
            clock: 0,
            states: std::collections::HashMap::new(),
        }));
        self
    }

    /// Drops `calendar`'s cached state, if any: its next load reads its rows.
    pub fn forget_cached(&self, calendar: &CalendarId) {
        if let Some(mut cache) = self.cache_lock() {
            cache.remove(calendar);
        }
    }

    fn cache_lock(&self) -> Option<std::sync::MutexGuard<'_, StateCache>> {
        self.cache.as_ref().map(|c| c.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Runs `f` on the store's connection (its thread) and returns its answer: for the host's
    /// own queries on the same database (scheduling queries, reports).
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when `f` fails or the store's thread stopped.
    pub async fn with_connection<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        self.call(move |conn| f(conn).map_err(storage("query"))).await
    }

    async fn call<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        self.spawn(f)?.await.map_err(|_| stopped())?
    }

    /// Queues `f` on the store's thread; the receiver answers its result.
    fn spawn<R, F>(&self, f: F) -> Result<oneshot::Receiver<Result<R>>>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = tx.send(f(conn));
        });
        self.jobs.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        Ok(rx)
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the calls already sent; joining closes the
        // connection before the store is gone (a reopen sees every commit).
        drop(self.jobs.take());
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
        // The worker's end closed the checkpointer's queue: it checkpoints what is left.
        if let Some(checkpointer) = self.checkpointer.take() {
            let _ = checkpointer.join();
        }
    }
}

/// Checkpoints the WAL after each call the store ran (signals that queued up meanwhile are
/// served by one checkpoint), and once more, truncating the WAL, when the store closes.
/// A checkpoint that fails is retried at the next signal: the WAL only grows meanwhile.
fn checkpoint_loop(path: &Path, signals: &mpsc::Receiver<()>) {
    let Ok(conn) = Connection::open(path) else { return };
    let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
    while signals.recv().is_ok() {
        while signals.try_recv().is_ok() {}
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn corrupt(what: impl fmt::Display) -> Error {
    columns::corrupt(STORE, what)
}

/// How errors name this store.
const STORE: &str = "sqlite";

/// The page size of a database this store creates (see "Pages" on [`SqliteStore`]).
const PAGE_SIZE: u32 = 16_384;

/// Pragmas and schema. With a background checkpointer, commits do not checkpoint.
/// The page cache of the store's connection, in KiB. SQLite's default (2 MiB) spills a large
/// apply's pages to the WAL mid-transaction and reads them back: a first sync that also writes
/// its instances (two more b-trees) spent most of its time there.
const CACHE_KIB: u32 = 65_536;

fn prepare(conn: &mut Connection, background_checkpoints: bool) -> Result<()> {
    // The page size takes effect only on a database not yet written (see the type's docs).
    conn.execute_batch(&format!(
        "PRAGMA page_size = {PAGE_SIZE}; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; PRAGMA cache_size = -{CACHE_KIB};"
    ))
        .map_err(storage("configure"))?;
    if background_checkpoints {
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;").map_err(storage("configure"))?;
    }
    migrate(conn, &MIGRATIONS)
}

/// Brings the schema to `migrations.len()`, one transaction per step.
fn migrate(conn: &mut Connection, migrations: &[&str]) -> Result<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(storage("read version"))?;
    let target = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    if current > target {
        return Err(Error::new(
            ErrorKind::Storage,
            format!("database schema version {current} is newer than this calscope's ({target})"),
        ));
    }
    for (version, sql) in (current..target).zip(migrations.iter().skip(current as usize)) {
        let tx = conn.transaction().map_err(storage("migrate"))?;
        tx.execute_batch(sql).map_err(storage("migrate"))?;
        tx.pragma_update(None, "user_version", version + 1).map_err(storage("migrate"))?;
        tx.commit().map_err(storage("migrate"))?;
    }
    Ok(())
}

fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::new(ErrorKind::Storage, format!("{what} {n} does not fit SQLite")))
}

/// Reads a calendar's head row.
fn head(conn: &Connection, calendar: &CalendarId) -> Result<CalendarHead> {
    let row: Option<(Option<String>, i64, i64)> = conn
        .prepare_cached("SELECT cursor, revision, events FROM calendars WHERE calendar_id = ?1")
        .and_then(|mut s| s.query_row(params![calendar.as_str()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional())
        .map_err(storage("load head"))?;
    let Some((cursor, revision, events)) = row else { return Ok(CalendarHead::default()) };
    let revision = u64::try_from(revision).map_err(|_| corrupt(format!("revision {revision} of {calendar}")))?;
    let events = u64::try_from(events).map_err(|_| corrupt(format!("event count {events} of {calendar}")))?;
    Ok(CalendarHead::new(cursor.map(Cursor::new), Revision(revision), events))
}

/// Decodes the current row of a `SELECT {ENTRY_COLUMNS}` straight from SQLite's buffers.
fn entry_of(calendar: &CalendarId, r: &rusqlite::Row<'_>) -> Result<StoredEntry> {
    use rusqlite::types::ValueRef;
    let bad = |what: &str| corrupt(format!("{what} of a row of {calendar}"));
    let text = |i: usize, what: &str| -> Result<Option<&str>> {
        match r.get_ref(i).map_err(storage("load"))? {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => std::str::from_utf8(t).map(Some).map_err(|_| bad(what)),
            _ => Err(bad(what)),
        }
    };
    let blob = |i: usize, what: &str| -> Result<Option<&[u8]>> {
        match r.get_ref(i).map_err(storage("load"))? {
            ValueRef::Null => Ok(None),
            ValueRef::Blob(b) => Ok(Some(b)),
            _ => Err(bad(what)),
        }
    };
    let columns = EntryColumns {
        uid: text(0, "uid")?.ok_or_else(|| bad("uid"))?,
        rid: text(1, "recurrence_id")?.ok_or_else(|| bad("recurrence_id"))?,
        fingerprint: blob(2, "fingerprint")?.ok_or_else(|| bad("fingerprint"))?,
        source_hash: blob(3, "source_hash")?,
        digest: blob(4, "digest")?,
        href: text(5, "href")?,
        etag: text(6, "etag")?,
    };
    entry(STORE, calendar, &columns)
}

fn load(conn: &Connection, calendar: &CalendarId, scope: &OwnedScope) -> Result<StoredState> {
    let head = head(conn, calendar)?;
    let cal = calendar.as_str();
    // Rows are decoded as they stream out of SQLite, from its buffers: never all of them twice.
    let mut entries: Vec<StoredEntry> = Vec::new();
    match scope {
        OwnedScope::Head => {}
        OwnedScope::All => {
            let sql = format!("SELECT {ENTRY_COLUMNS} FROM events WHERE calendar_id = ?1");
            let mut stmt = conn.prepare_cached(&sql).map_err(storage("load"))?;
            entries.reserve(usize::try_from(head.events).unwrap_or(0));
            let mut rows = stmt.query(params![cal]).map_err(storage("load"))?;
            while let Some(r) = rows.next().map_err(storage("load"))? {
                entries.push(entry_of(calendar, r)?);
            }
        }
        OwnedScope::Touched { keys, hrefs } => {
            let by_key = format!(
                "SELECT {ENTRY_COLUMNS} FROM events WHERE calendar_id = ?1 AND uid = ?2 AND recurrence_id = ?3"
            );
            let by_href = format!("SELECT {ENTRY_COLUMNS} FROM events WHERE calendar_id = ?1 AND href = ?2");
            let mut seen: HashSet<EventKey> = HashSet::new();
            let mut keep = |e: StoredEntry, entries: &mut Vec<StoredEntry>| {
                if seen.insert(e.key.clone()) {
                    entries.push(e);
                }
            };
            let mut stmt = conn.prepare_cached(&by_key).map_err(storage("load"))?;
            for (uid, rid) in keys {
                let mut rows = stmt.query(params![cal, uid, rid]).map_err(storage("load"))?;
                if let Some(r) = rows.next().map_err(storage("load"))? {
                    keep(entry_of(calendar, r)?, &mut entries);
                }
            }
            let mut stmt = conn.prepare_cached(&by_href).map_err(storage("load"))?;
            for href in hrefs {
                let mut rows = stmt.query(params![cal, href]).map_err(storage("load"))?;
                while let Some(r) = rows.next().map_err(storage("load"))? {
                    keep(entry_of(calendar, r)?, &mut entries);
                }
            }
        }
    }
    StoredState::new(calendar.clone(), head, entries)
}

/// [`LoadScope`] with owned data, to send to the store's thread.
enum OwnedScope {
    Head,
    All,
    Touched { keys: Vec<(String, String)>, hrefs: Vec<String> },
}

impl OwnedScope {
    fn of(scope: LoadScope<'_>) -> Self {
        match scope {
            LoadScope::Head => Self::Head,
            LoadScope::All => Self::All,
            LoadScope::Touched { keys, hrefs } => Self::Touched {
                keys: keys.iter().map(|k| (k.uid.as_str().to_owned(), rid_text(k.recurrence_id.as_ref()))).collect(),
                hrefs: hrefs.iter().map(|h| h.as_str().to_owned()).collect(),
            },
        }
    }
}

/// Executes one row; answers the affected rows.
fn execute(
    upsert: &mut rusqlite::CachedStatement<'_>,
    delete: &mut rusqlite::CachedStatement<'_>,
    calendar: &str,
    row: &Row,
    now: &str,
) -> Result<u64> {
    let n = match row {
        Row::Delete { uid, rid } => delete.execute(params![calendar, uid.as_str(), rid]).map_err(storage("delete"))?,
        Row::Upsert(r) => upsert
            .execute(params![
                calendar,
                r.uid.as_str(),
                r.rid,
                r.summary,
                r.location,
                r.description,
                time_text(r.starts_at).as_ref().map(TimeText::as_str),
                time_text(r.ends_at).as_ref().map(TimeText::as_str),
                r.all_day,
                r.tzid,
                r.rrule,
                r.status,
                r.transparency,
                r.sequence,
                &r.fingerprint[..],
                &r.source_hash[..],
                r.digest,
                r.href.as_ref().map(Href::as_str),
                r.etag.as_ref().map(Etag::as_str),
                r.raw.as_str(),
                now,
            ])
            .map_err(storage("upsert"))?,
    };
    Ok(n as u64)
}

/// Rows per batch handed to the store's thread.
const BATCH: usize = 512;

/// One batch of an apply: event rows, and the instance rows of the series completed so far on
/// a calendar's first apply.
struct Batch {
    rows: Vec<Row>,
    instances: Option<instances::Encoded>,
    /// With the last instance rows, the calendar's months as they make them.
    months: Option<Vec<spans::MonthRow>>,
}

/// What the caller decides once it has checked the row counts.
enum Decision {
    Commit,
    Rollback,
}

/// The store's side of an apply: one transaction over the batches as they arrive; reports the
/// row counts, then commits or rolls back as the caller decides.
struct ApplyJob {
    calendar: CalendarId,
    expected: Revision,
    cursor: Option<Cursor>,
    inserts: u64,
    deletes: u64,
    batches: futures::channel::mpsc::Receiver<Batch>,
    counts: oneshot::Sender<Vec<u64>>,
    decision: oneshot::Receiver<Decision>,
    instances: Option<InstanceConfig>,
    /// The horizon the caller expanded the series over (a first apply with instances on).
    first: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl ApplyJob {
    /// Answers the new revision and the warnings of the instance maintenance.
    fn run(mut self, conn: &mut Connection) -> Result<(Revision, Vec<String>)> {
        use futures::StreamExt as _;
        use futures::executor::block_on;
        let calendar = self.calendar.as_str().to_owned();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(storage("begin"))?;
        let current = head(&tx, &self.calendar)?;
        if current.revision != self.expected {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{} is at revision {} but the plan expects {}",
                    self.calendar, current.revision.0, self.expected.0
                ),
            ));
        }
        let now = TimeText::of(Utc::now());
        let now = now.as_str();
        let mut rows = Vec::new();
        let mut touched = Touched::default();
        let mut months: Option<Vec<spans::MonthRow>> = None;
        // A first apply's instance rows come expanded; they are written as they arrive when
        // nothing of the calendar is stored yet (else rebuilt from the events after all).
        let bulk = match self.first {
            Some(window) if current.events == 0 && instances::none_stored(&tx, &calendar)? => {
                Some(instances::Bulk::new(window))
            }
            _ => None,
        };
        {
            let mut upsert = tx.prepare_cached(UPSERT).map_err(storage("prepare"))?;
            let mut delete = tx.prepare_cached(DELETE).map_err(storage("prepare"))?;
            // Blocking here is this thread's job: the caller awaits.
            while let Some(batch) = block_on(self.batches.next()) {
                for row in &batch.rows {
                    rows.push(execute(&mut upsert, &mut delete, &calendar, row, now)?);
                }
                if bulk.is_some() {
                    if let Some(encoded) = &batch.instances {
                        instances::Bulk::insert(&tx, &calendar, encoded)?;
                    }
                    months = batch.months.or(months);
                } else if self.instances.is_some() && self.first.is_none() {
                    for row in batch.rows {
                        touched.note(row);
                    }
                }
            }
        }
        touched.seal();
        // The write-amplification guard runs on the caller (`Plan::check_rows`) before commit.
        self.counts.send(rows).map_err(|_| Error::new(ErrorKind::Storage, "apply abandoned; rolled back"))?;
        match block_on(self.decision) {
            Ok(Decision::Commit) => {}
            Ok(Decision::Rollback) | Err(_) => {
                return Err(Error::new(ErrorKind::Storage, "apply abandoned; rolled back"));
            }
        }
        let count = (current.events + self.inserts).saturating_sub(self.deletes);
        let revision = self.expected.next();
        tx.execute(
            "INSERT INTO calendars (calendar_id, cursor, revision, events, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (calendar_id) DO UPDATE SET cursor = excluded.cursor, revision = excluded.revision,
                 events = excluded.events, updated_at = excluded.updated_at",
            params![
                calendar,
                self.cursor.as_ref().map(Cursor::as_str),
                to_i64(revision.0, "revision")?,
                to_i64(count, "event count")?,
                now
            ],
        )
        .map_err(storage("write cursor"))?;
        let mut warnings = Vec::new();
        if let Some(config) = &self.instances {
            match (bulk, self.first) {
                (Some(bulk), _) => {
                    let months =
                        months.ok_or_else(|| Error::new(ErrorKind::Storage, "apply abandoned; rolled back"))?;
                    bulk.finish(&tx, &calendar, config, &months)?;
                }
                (None, Some(window)) => instances::rebuild_all(&tx, &calendar, config, window, &mut warnings)?,
                (None, None) => {
                    let was_empty = current.events == 0;
                    instances::maintain(&tx, &calendar, config, Utc::now(), was_empty, touched, &mut warnings)?;
                }
            }
        }
        tx.commit().map_err(storage("commit"))?;
        Ok((revision, warnings))
    }
}

impl SqliteStore {
    /// An apply as a pipeline: this side prepares rows in batches (parsing fields, computing
    /// fingerprints) while the store's thread writes the previous batch in the transaction.
    async fn apply_pipelined(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        use futures::SinkExt as _;
        let plan = request.plan;
        plan.validate()?;
        let (mut batches, batch_rx) = futures::channel::mpsc::channel::<Batch>(2);
        // A calendar's first apply expands its series here, beside the store's writes.
        let mut first = self
            .instances
            .filter(|_| request.expected == Revision::ZERO)
            .map(|config| FirstExpansion::new(&config, plan.calendar(), Utc::now()));
        let mut months = first.as_ref().map(|f| spans::Months::all_rows(f.window().0, f.window().1));
        let (counts_tx, counts_rx) = oneshot::channel();
        let (decision_tx, decision_rx) = oneshot::channel();
        let job = ApplyJob {
            calendar: plan.calendar().clone(),
            expected: request.expected,
            cursor: request.cursor.cloned(),
            inserts: plan.inserts() as u64,
            deletes: plan.deletes() as u64,
            batches: batch_rx,
            counts: counts_tx,
            decision: decision_rx,
            instances: self.instances,
            first: first.as_ref().map(FirstExpansion::window),
        };
        let done = self.spawn(move |conn| job.run(conn))?;
        let mut warnings = Vec::new();
        // With a cached state of this calendar at the expected revision, the rows written are
        // remembered to bring it up to date after the commit.
        let track = self
            .cache_lock()
            .and_then(|mut c| c.get(plan.calendar()))
            .is_some_and(|s| s.head().revision == request.expected);
        let (mut written, mut deleted) = (Vec::new(), Vec::new());
        for chunk in plan.changes().chunks(BATCH) {
            let mut batch = Vec::with_capacity(chunk.len());
            for change in chunk {
                let mut r = row(change, &mut warnings, self.instances.is_some());
                if let Some(first) = first.as_mut() {
                    first.push(&mut r, &mut warnings);
                }
                if track {
                    match &r {
                        Row::Upsert(u) => written.push(columns::written_entry(change.key(), u)),
                        Row::Delete { .. } => deleted.push(change.key().clone()),
                    }
                }
                batch.push(r);
            }
            let instances = first.as_mut().zip(months.as_mut()).map(|(f, m)| instances::Encoded::of(&f.take(), m));
            if batches.send(Batch { rows: batch, instances, months: None }).await.is_err() {
                break; // the store's side failed: its answer says why
            }
        }
        if let (Some(mut first), Some(mut months)) = (first, months) {
            let instances = Some(instances::Encoded::of(&first.finish(&mut warnings), &mut months));
            let _ = batches.send(Batch { rows: Vec::new(), instances, months: Some(months.built()) }).await;
        }
        drop(batches);
        if let Ok(rows) = counts_rx.await {
            match plan.check_rows(&rows) {
                Ok(()) => {
                    let _ = decision_tx.send(Decision::Commit);
                    let (revision, notes) = done.await.map_err(|_| stopped())??;
                    warnings.extend(notes);
                    if track {
                        self.absorb_cached(&request, revision, written, &deleted);
                    }
                    return Ok(Applied::new(revision, rows).with_warnings(warnings));
                }
                Err(e) => {
                    let _ = decision_tx.send(Decision::Rollback);
                    let _ = done.await;
                    return Err(e);
                }
            }
        }
        Err(done.await.map_err(|_| stopped())?.err().unwrap_or_else(stopped))
    }
}

impl SqliteStore {
    /// Brings the cached state of a committed apply's calendar up to date, if it is still the
    /// one the plan was made against.
    fn absorb_cached(
        &self,
        request: &ApplyRequest<'_>,
        revision: Revision,
        written: Vec<StoredEntry>,
        deleted: &[EventKey],
    ) {
        let Some(mut cache) = self.cache_lock() else { return };
        let plan = request.plan;
        let Some(mut state) = cache.remove(plan.calendar()) else { return };
        if state.head().revision != request.expected {
            return;
        }
        let events = (state.head().events + plan.inserts() as u64).saturating_sub(plan.deletes() as u64);
        state.absorb(CalendarHead::new(request.cursor.cloned(), revision, events), written, deleted);
        cache.put(state);
    }
}

fn stopped() -> Error {
    Error::new(ErrorKind::Storage, "the SQLite thread stopped")
}

#[async_trait]
impl Schedule for SqliteStore {
    async fn register(
        &self,
        calendar: &CalendarId,
        spec: &str,
        every: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Registered> {
        let (calendar, spec) = (calendar.clone(), spec.to_owned());
        self.call(move |conn| schedule::register(conn, &calendar, &spec, every, now)).await
    }

    async fn unregister(&self, calendar: &CalendarId) -> Result<bool> {
        let calendar = calendar.clone();
        self.call(move |conn| schedule::unregister(conn, &calendar)).await
    }

    async fn claim(
        &self,
        worker: &str,
        n: usize,
        lease: std::time::Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claim>> {
        let worker = worker.to_owned();
        self.call(move |conn| schedule::claim(conn, &worker, n, lease, now)).await
    }

    async fn finish(&self, claim: &Claim, outcome: &Outcome, now: DateTime<Utc>) -> Result<Finished> {
        let (claim, outcome) = (claim.clone(), outcome.clone());
        self.call(move |conn| schedule::finish(conn, &claim, &outcome, now)).await
    }

    async fn poke(&self, calendar: &CalendarId, now: DateTime<Utc>) -> Result<bool> {
        let calendar = calendar.clone();
        self.call(move |conn| schedule::poke(conn, &calendar, now)).await
    }

    async fn entries(&self) -> Result<Vec<ScheduleEntry>> {
        self.call(schedule::entries).await
    }

    async fn pending(&self, now: DateTime<Utc>) -> Result<Pending> {
        self.call(move |conn| schedule::pending(conn, now)).await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
        let whole = matches!(scope, LoadScope::All);
        if whole && self.cache.is_some() {
            let cached = self.cache_lock().and_then(|mut c| c.get(calendar));
            if let Some(cached) = cached {
                let cal = calendar.clone();
                let current = self.call(move |conn| head(conn, &cal)).await?;
                if current.revision == cached.head().revision {
                    return Ok(cached.with_head(current));
                }
            }
        }
        let cal = calendar.clone();
        let scope = OwnedScope::of(scope);
        let state = self.call(move |conn| load(conn, &cal, &scope)).await?;
        if whole {
            if let Some(mut cache) = self.cache_lock() {
                cache.put(state.clone());
            }
        }
        Ok(state)
    }

    async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        self.apply_pipelined(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_is_chronos_format() {
        use chrono::TimeZone as _;
        let times = [
            Utc.with_ymd_and_hms(2026, 2, 1, 9, 0, 0),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0),
            Utc.with_ymd_and_hms(0, 6, 15, 12, 30, 45),
            Utc.with_ymd_and_hms(-1, 6, 15, 12, 30, 45),
            Utc.with_ymd_and_hms(123, 10, 5, 7, 8, 9),
        ];
        let times: Vec<DateTime<Utc>> = times.into_iter().map(|t| t.single().unwrap()).collect();
        for t in &times {
            assert_eq!(TimeText::of(*t).as_str(), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        assert_eq!(TimeText::of(times[0]).as_str(), "2026-02-01T09:00:00Z");
        assert_eq!(TimeText::of(times[3]).as_str(), "+10000-01-01T00:00:00Z");
    }

    #[test]
    fn new_files_get_large_pages_and_old_files_keep_theirs() {
        let dir = std::env::temp_dir().join(format!("calscope-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let page_size = |path: &Path| -> u32 {
            Connection::open(path).unwrap().query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap()
        };
        let fresh = dir.join("fresh.db");
        drop(SqliteStore::open(&fresh).unwrap());
        assert_eq!(page_size(&fresh), PAGE_SIZE);
        // A file written before with 4 KiB pages opens, migrates and keeps them.
        let old = dir.join("old.db");
        Connection::open(&old).unwrap().execute_batch("PRAGMA page_size = 4096; CREATE TABLE host (x);").unwrap();
        drop(SqliteStore::open(&old).unwrap());
        assert_eq!(page_size(&old), 4096);
        let tables: u32 = Connection::open(&old)
            .unwrap()
            .query_row("SELECT count(*) FROM sqlite_master WHERE name IN ('events', 'calendars', 'host')", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(tables, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn migrations_add_columns_without_rewriting_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute(
            "INSERT INTO events (calendar_id, uid, recurrence_id, all_day, fingerprint, raw, updated_at) VALUES ('c', 'u', '', 0, x'00', 'raw', 'now')",
            [],
        )
        .unwrap();
        let before = conn.total_changes();
        // Version 1 to this build's (the instances table, the horizon columns, the schedule),
        // then a later one.
        migrate(&mut conn, &MIGRATIONS).unwrap();
        assert_eq!(conn.total_changes(), before, "no row was rewritten");
        let mut next = MIGRATIONS.to_vec();
        next.push("ALTER TABLE events ADD COLUMN color TEXT; CREATE INDEX events_color ON events (color);");
        migrate(&mut conn, &next).unwrap();
        assert_eq!(conn.total_changes(), before, "no row was rewritten");
        let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION + 1);
        let raw: String = conn.query_row("SELECT raw FROM events", [], |r| r.get(0)).unwrap();
        assert_eq!(raw, "raw");
        // Running again is a no-op; a newer database is refused by an older build.
        migrate(&mut conn, &next).unwrap();
        assert_eq!(migrate(&mut conn, &MIGRATIONS).unwrap_err().kind(), ErrorKind::Storage);
    }
}
