//! [`PostgresStore`]: the scale-out store, one PostgreSQL database shared by any number of
//! workers (feature `postgres`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::{StreamExt as _, pin_mut};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls};

use crate::error::{Error, ErrorKind, Result};
use crate::id::{CalendarId, Cursor};
use crate::schedule::{Claim, Finished, Outcome, Pending, Registered, Schedule, ScheduleEntry};
use crate::state::{CalendarHead, Revision, StoredEntry, StoredState};
use crate::store::{Applied, ApplyRequest, LoadScope, Store};
use crate::stores::columns::{self, EntryColumns, Row, UpsertRow, entry, rid_text, row};
use crate::stores::instances::{BusyAnswer, InstanceConfig, SlideReport, Touched};
use crate::value::tz::Zone;

mod instances;
mod schedule;
mod sql;
use sql::storage;

/// The schema version this build writes (the `calscope_schema` table).
pub const SCHEMA_VERSION: u32 = 3;

/// Schema migrations, in order: entry `i` takes a database from version `i` to `i + 1`. Later
/// versions append entries that add columns or indexes; rows are never rewritten.
const MIGRATIONS: [&str; 3] = [
    r"
CREATE TABLE calendars (
    calendar_id text PRIMARY KEY,
    cursor      text,
    revision    bigint NOT NULL,
    events      bigint NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE TABLE events (
    calendar_id   text NOT NULL,
    uid           text NOT NULL,
    recurrence_id text NOT NULL,
    summary       text,
    location      text,
    description   text,
    starts_at     timestamptz,
    ends_at       timestamptz,
    all_day       boolean NOT NULL,
    tzid          text,
    rrule         text,
    status        text,
    transparency  text,
    sequence      bigint,
    fingerprint   bytea NOT NULL,
    source_hash   bytea,
    digest        bytea,
    href          text,
    etag          text,
    raw           text NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (calendar_id, uid, recurrence_id)
);
CREATE INDEX events_time ON events (calendar_id, starts_at, ends_at);
CREATE INDEX events_href ON events (calendar_id, href) WHERE href IS NOT NULL;
",
    instances::MIGRATION,
    schedule::MIGRATION,
];

/// Every upsert of a batch in one statement; answers the keys of the rows it wrote (an
/// unchanged fingerprint writes nothing and answers nothing).
const UPSERT: &str = "
INSERT INTO events AS e (calendar_id, uid, recurrence_id, summary, location, description, starts_at, ends_at,
                         all_day, tzid, rrule, status, transparency, sequence, fingerprint, source_hash, digest,
                         href, etag, raw, updated_at)
SELECT $1::text, u.*, $2::timestamptz FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::timestamptz[],
                         $9::timestamptz[], $10::bool[], $11::text[], $12::text[], $13::text[], $14::text[],
                         $15::int8[], $16::bytea[], $17::bytea[], $18::bytea[], $19::text[], $20::text[],
                         $21::text[]) AS u
ON CONFLICT (calendar_id, uid, recurrence_id) DO UPDATE SET
    summary = EXCLUDED.summary, location = EXCLUDED.location, description = EXCLUDED.description,
    starts_at = EXCLUDED.starts_at, ends_at = EXCLUDED.ends_at, all_day = EXCLUDED.all_day,
    tzid = EXCLUDED.tzid, rrule = EXCLUDED.rrule, status = EXCLUDED.status,
    transparency = EXCLUDED.transparency, sequence = EXCLUDED.sequence,
    fingerprint = EXCLUDED.fingerprint, source_hash = EXCLUDED.source_hash, digest = EXCLUDED.digest,
    href = EXCLUDED.href, etag = EXCLUDED.etag, raw = EXCLUDED.raw, updated_at = EXCLUDED.updated_at
WHERE e.fingerprint IS DISTINCT FROM EXCLUDED.fingerprint
RETURNING e.uid, e.recurrence_id";

/// Every delete of a batch in one statement; answers the keys it deleted.
const DELETE: &str = "
DELETE FROM events e USING unnest($2::text[], $3::text[]) AS d (uid, recurrence_id)
WHERE e.calendar_id = $1 AND e.uid = d.uid AND e.recurrence_id = d.recurrence_id
RETURNING e.uid, e.recurrence_id";

const ENTRY_COLUMNS: &str = "uid, recurrence_id, fingerprint, source_hash, digest, href, etag";

/// Changes per statement.
const BATCH: usize = 1000;

/// How errors name this store.
const STORE: &str = "postgres";

/// How a [`PostgresStore`] connects.
#[derive(Clone)]
#[non_exhaustive]
pub struct PostgresConfig {
    /// A libpq-style connection string: `postgres://user:password@host:port/db` or
    /// `host=… user=… dbname=…`.
    pub url: String,
    /// Most connections the store's pool opens. Default 8.
    pub max_connections: usize,
    /// How long a call waits for a free connection or for a new one. Default 30 s.
    pub connect_timeout: Duration,
}

impl PostgresConfig {
    /// A configuration for `url` with the defaults.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), max_connections: 8, connect_timeout: Duration::from_secs(30) }
    }

    /// Sets the pool size (at least 1).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Sets the connection timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact(&self.url))
            .field("max_connections", &self.max_connections)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

/// The connection string without its password: URL userinfo and `password=` words.
fn redact(url: &str) -> String {
    if let Ok(mut parsed) = url::Url::parse(url) {
        if parsed.password().is_some() {
            let _ = parsed.set_password(Some("<redacted>"));
        }
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "password" { "<redacted>".to_owned() } else { v.into_owned() };
                (k.into_owned(), v)
            })
            .collect();
        if !pairs.is_empty() {
            parsed.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return parsed.to_string();
    }
    url.split_whitespace()
        .map(|word| if word.starts_with("password=") { "password=<redacted>" } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The scale-out [`Store`]: PostgreSQL through a small connection pool (tokio-postgres with
/// deadpool). Any number of processes may sync overlapping sets of calendars into one database.
///
/// # Schema (version [`SCHEMA_VERSION`], created on connect)
///
/// The shape of [`SqliteStore`](crate::SqliteStore)'s, with Postgres types:
///
/// - **`events`**: one row per stored event, primary key (`calendar_id`, `uid`,
///   `recurrence_id`). `recurrence_id` is the normalized RECURRENCE-ID of an override and the
///   empty string for a master or single event, so that uniqueness holds for masters on every
///   Postgres version (a NULL would be distinct from every other NULL without Postgres 15's
///   `NULLS NOT DISTINCT`). For scheduling queries: `summary`, `location`, `description`,
///   `starts_at` and `ends_at` (`timestamptz`; NULL when a zone is unknown), `all_day`, `tzid`,
///   `rrule` (a recurring event's row is its first occurrence), `status`, `transparency`,
///   `sequence`. For sync: `fingerprint`, `source_hash`, `digest` (`bytea`), `href`, `etag`,
///   `raw` (the component as received) and `updated_at`. Indexes: the key,
///   (`calendar_id`, `starts_at`, `ends_at`) and (`calendar_id`, `href`).
/// - **`calendars`**: `calendar_id`, `cursor`, `revision`, `events` (the row count),
///   `updated_at`.
/// - **`schedule`** (version 3): the [`Schedule`](crate::schedule::Schedule), as in
///   [`SqliteStore`](crate::SqliteStore)'s with `timestamptz` times. A claim is one statement,
///   `UPDATE schedule … FROM (SELECT … ORDER BY next_due_at LIMIT n FOR UPDATE SKIP LOCKED)`:
///   concurrent workers skip each other's rows instead of waiting, and the lease token
///   (`lease_token`, bumped by every claim) fences a finish from a worker whose lease was
///   taken over.
/// - **`calscope_schema`**: the schema version. Migrations run under an advisory lock, so
///   workers starting together migrate once; a database of a newer version is refused.
///
/// # Writes
///
/// One transaction per apply. It first takes a transaction-scoped advisory lock on the calendar
/// (`pg_advisory_xact_lock` of a 64-bit hash of its id), so concurrent syncs of one calendar,
/// from any process, run one after the other; then it compares the calendar's revision with the
/// one the plan was made against, and fails with a retryable [`ErrorKind::Conflict`] when
/// another worker applied in between: a stale plan never overwrites a newer one. Changes go in
/// batches of 1,000 per statement: upserts as `INSERT … SELECT FROM unnest(…) ON CONFLICT
/// (calendar_id, uid, recurrence_id) DO UPDATE … WHERE events.fingerprint IS DISTINCT FROM
/// EXCLUDED.fingerprint RETURNING` the keys written, deletes as one `DELETE … USING unnest(…)
/// RETURNING` the keys deleted. The returned keys give each change's affected-row count, which
/// goes through [`Plan::check_rows`](crate::Plan::check_rows) before the calendar row (cursor,
/// revision, count) is written and the transaction commits.
///
/// Loads of a whole calendar read in one repeatable-read, read-only transaction, so the head
/// and the rows agree.
///
/// # Runtime
///
/// tokio-postgres needs a Tokio runtime: create and use the store inside one.
///
/// # Example
/// ```no_run
/// use calscope::{CalendarId, Engine, IcsSource, PostgresStore};
/// # async fn run() -> calscope::Result<()> {
/// let store = PostgresStore::connect("postgres://calscope@localhost/calendars").await?;
/// let cal = CalendarId::new("team")?;
/// let engine = Engine::new(store);
/// let report = engine.sync(&IcsSource::from_file(cal.clone(), "team.ics"), &cal).await;
/// assert!(report.is_ok());
/// # Ok(()) }
/// ```
pub struct PostgresStore {
    pool: Pool,
    shown: String,
    instances: Option<InstanceConfig>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").field("database", &self.shown).finish_non_exhaustive()
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => storage("connect")(e),
        deadpool_postgres::PoolError::Timeout(_) => {
            Error::new(ErrorKind::Timeout, "postgres: timed out waiting for a connection")
        }
        other => Error::new(ErrorKind::Storage, "postgres: no connection").with_source(other),
    }
}

impl PostgresStore {
    /// Connects to `url` with the default pool settings and creates or migrates the schema.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a malformed connection string; [`ErrorKind::Storage`]
    /// when the database cannot be reached or was migrated by a newer calscope.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(PostgresConfig::new(url)).await
    }

    /// Connects with `config` and creates or migrates the schema.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(config: PostgresConfig) -> Result<Self> {
        let shown = redact(&config.url);
        let pg: tokio_postgres::Config = config.url.parse().map_err(|e| {
            Error::new(ErrorKind::InvalidInput, format!("not a postgres connection string: {shown}")).with_source(e)
        })?;
        let manager = Manager::from_config(pg, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(config.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .build()
            .map_err(|e| Error::new(ErrorKind::InvalidInput, "postgres pool").with_source(e))?;
        Self::from_pool_named(pool, shown).await
    }

    /// A store over a pool the host built (for TLS, or to share the pool with its own queries),
    /// creating or migrating the schema.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the database cannot be reached or was migrated by a newer
    /// calscope.
    pub async fn from_pool(pool: Pool) -> Result<Self> {
        Self::from_pool_named(pool, "a host pool".to_owned()).await
    }

    async fn from_pool_named(pool: Pool, shown: String) -> Result<Self> {
        let store = Self { pool, shown, instances: Some(InstanceConfig::default()) };
        let mut client = store.pool.get().await.map_err(pool_error)?;
        migrate(&mut client, &MIGRATIONS).await?;
        Ok(store)
    }

    /// The same store keeping materialized instances with `config` (the default: UTC, 30 days
    /// back, 400 ahead); see [`SqliteStore::with_instances`](crate::SqliteStore) for the
    /// table, which is the same here with `timestamptz` times, a btree index for busy queries
    /// per calendar and a `GiST` index over the interval for [`busy_at`](Self::busy_at).
    #[must_use]
    pub fn with_instances(mut self, config: InstanceConfig) -> Self {
        self.instances = Some(config);
        self
    }

    /// The same store without materialized instances (busy queries expand from `events`).
    #[must_use]
    pub fn without_instances(mut self) -> Self {
        self.instances = None;
        self
    }

    /// Busy time of `calendars` in `[from, to)` (floating times and dates in `zone`), per
    /// calendar and merged: one indexed query over `instances` for the calendars whose horizon
    /// covers the window in that zone, expansion from `events` for the others.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the database cannot be read or holds unreadable rows.
    pub async fn busy(
        &self,
        calendars: &[CalendarId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        zone: Zone,
    ) -> Result<BusyAnswer> {
        let client = self.pool.get().await.map_err(pool_error)?;
        instances::busy(&**client, self.instances.as_ref(), calendars, from, to, zone).await
    }

    /// Which of `calendars` have busy time overlapping `[from, to)`, from `instances` in one
    /// query on its `GiST` index (the README shows the SQL). Calendars not listed are free there,
    /// as far as the stored horizon reaches.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the database cannot be read.
    pub async fn busy_at(
        &self,
        calendars: &[CalendarId],
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<CalendarId>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        let names: Vec<&str> = calendars.iter().map(CalendarId::as_str).collect();
        let rows = client.query(instances::BUSY_AT, &[&names, &from, &to]).await.map_err(storage("busy query"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get(0).map_err(storage("busy query"))?;
            out.push(CalendarId::new(id).map_err(|_| columns::corrupt(STORE, "calendar_id of an instance"))?);
        }
        out.sort();
        Ok(out)
    }

    /// Moves every calendar's instance horizon to the one of `now`, writing only the
    /// occurrences of the newly covered days (run daily; applies slide the calendars they write).
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when the database cannot be written; [`ErrorKind::InvalidInput`]
    /// when the store keeps no instances.
    pub async fn slide_instances(&self, now: DateTime<Utc>) -> Result<SlideReport> {
        let config = self.instances.ok_or_else(|| Error::invalid("this store keeps no instances"))?;
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(storage("begin"))?;
        let mut report = SlideReport::default();
        let (moved, written) = instances::slide_all(&*tx, &config, now, &mut report.warnings).await?;
        tx.commit().await.map_err(storage("commit"))?;
        report.calendars = moved;
        report.written = written;
        Ok(report)
    }

    /// The store's connection pool, for the host's own queries on the same database.
    #[must_use]
    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Serializes migrations across processes.
const MIGRATION_LOCK: i64 = 0x6361_6c73_636f_7065; // "calscope"

/// Brings the schema to `migrations.len()`, in one transaction under an advisory lock.
async fn migrate(client: &mut deadpool_postgres::Object, migrations: &[&str]) -> Result<()> {
    let tx = client.transaction().await.map_err(storage("migrate"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(storage("migrate"))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS calscope_schema (version integer NOT NULL)")
        .await
        .map_err(storage("migrate"))?;
    let row = tx.query_opt("SELECT version FROM calscope_schema", &[]).await.map_err(storage("migrate"))?;
    let current: i32 = if let Some(row) = row {
        row.try_get(0).map_err(storage("migrate"))?
    } else {
        tx.execute("INSERT INTO calscope_schema (version) VALUES (0)", &[]).await.map_err(storage("migrate"))?;
        0
    };
    let target = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
    if current > target {
        return Err(Error::new(
            ErrorKind::Storage,
            format!("database schema version {current} is newer than this calscope's ({target})"),
        ));
    }
    for sql in migrations.iter().skip(usize::try_from(current).unwrap_or(0)) {
        tx.batch_execute(sql).await.map_err(storage("migrate"))?;
    }
    if current != target {
        tx.execute("UPDATE calscope_schema SET version = $1", &[&target]).await.map_err(storage("migrate"))?;
    }
    tx.commit().await.map_err(storage("migrate"))
}

fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::new(ErrorKind::Storage, format!("{what} {n} does not fit Postgres")))
}

/// The advisory-lock key of a calendar.
fn lock_key(calendar: &CalendarId) -> i64 {
    let h = xxhash_rust::xxh3::xxh3_64_with_seed(calendar.as_str().as_bytes(), 0x6361_6c73);
    i64::from_ne_bytes(h.to_ne_bytes())
}

/// Reads a calendar's head row.
async fn head(client: &impl tokio_postgres::GenericClient, calendar: &CalendarId) -> Result<CalendarHead> {
    let row = client
        .query_opt("SELECT cursor, revision, events FROM calendars WHERE calendar_id = $1", &[&calendar.as_str()])
        .await
        .map_err(storage("load head"))?;
    let Some(row) = row else { return Ok(CalendarHead::default()) };
    let bad = |what: &str| columns::corrupt(STORE, format!("{what} of {calendar}"));
    let cursor: Option<String> = row.try_get(0).map_err(|_| bad("cursor"))?;
    let revision: i64 = row.try_get(1).map_err(|_| bad("revision"))?;
    let events: i64 = row.try_get(2).map_err(|_| bad("event count"))?;
    let revision = u64::try_from(revision).map_err(|_| bad("revision"))?;
    let events = u64::try_from(events).map_err(|_| bad("event count"))?;
    Ok(CalendarHead::new(cursor.map(Cursor::new), Revision(revision), events))
}

/// Decodes one row of a `SELECT {ENTRY_COLUMNS}`, borrowing from the row's buffer.
fn entry_of(calendar: &CalendarId, r: &tokio_postgres::Row) -> Result<StoredEntry> {
    let bad = |what: &str| columns::corrupt(STORE, format!("{what} of a row of {calendar}"));
    let columns = EntryColumns {
        uid: r.try_get(0).map_err(|_| bad("uid"))?,
        rid: r.try_get(1).map_err(|_| bad("recurrence_id"))?,
        fingerprint: r.try_get(2).map_err(|_| bad("fingerprint"))?,
        source_hash: r.try_get(3).map_err(|_| bad("source_hash"))?,
        digest: r.try_get(4).map_err(|_| bad("digest"))?,
        href: r.try_get(5).map_err(|_| bad("href"))?,
        etag: r.try_get(6).map_err(|_| bad("etag"))?,
    };
    entry(STORE, calendar, &columns)
}

/// Streams the rows of `sql` into entries.
async fn collect_entries(
    client: &impl tokio_postgres::GenericClient,
    calendar: &CalendarId,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    entries: &mut Vec<StoredEntry>,
) -> Result<()> {
    let rows = client.query_raw(sql, params.iter().copied()).await.map_err(storage("load"))?;
    pin_mut!(rows);
    while let Some(r) = rows.next().await {
        entries.push(entry_of(calendar, &r.map_err(storage("load"))?)?);
    }
    Ok(())
}

impl PostgresStore {
    async fn load_state(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        if let LoadScope::Head = scope {
            let head = head(&**client, calendar).await?;
            return StoredState::new(calendar.clone(), head, Vec::new());
        }
        let tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(storage("load"))?;
        let head = head(&*tx, calendar).await?;
        let cal = calendar.as_str();
        let mut entries = Vec::new();
        match scope {
            LoadScope::Head => {}
            LoadScope::All => {
                entries.reserve(usize::try_from(head.events).unwrap_or(0));
                let sql = format!("SELECT {ENTRY_COLUMNS} FROM events WHERE calendar_id = $1");
                collect_entries(&*tx, calendar, &sql, &[&cal], &mut entries).await?;
            }
            LoadScope::Touched { keys, hrefs } => {
                let uids: Vec<&str> = keys.iter().map(|k| k.uid.as_str()).collect();
                let rids: Vec<String> = keys.iter().map(|k| rid_text(k.recurrence_id.as_ref())).collect();
                let hrefs: Vec<&str> = hrefs.iter().map(crate::id::Href::as_str).collect();
                // UNION drops a row found both by key and by href.
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM events e JOIN unnest($2::text[], $3::text[]) AS k (u, r)
                         ON e.calendar_id = $1 AND e.uid = k.u AND e.recurrence_id = k.r
                     UNION
                     SELECT {ENTRY_COLUMNS} FROM events WHERE calendar_id = $1 AND href = ANY($4::text[])"
                );
                collect_entries(&*tx, calendar, &sql, &[&cal, &uids, &rids, &hrefs], &mut entries).await?;
            }
        }
        tx.commit().await.map_err(storage("load"))?;
        StoredState::new(calendar.clone(), head, entries)
    }

    async fn apply_plan(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        let plan = request.plan;
        plan.validate()?;
        let calendar = plan.calendar();
        let cal = calendar.as_str();
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(storage("begin"))?;
        // Concurrent syncs of this calendar, from any process, wait here for one another.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(calendar)]).await.map_err(storage("lock"))?;
        let current = head(&*tx, calendar).await?;
        if current.revision != request.expected {
            return Err(Error::new(
                ErrorKind::Conflict,
                format!("{calendar} is at revision {} but the plan expects {}", current.revision.0, request.expected.0),
            ));
        }
        let now = Utc::now();
        let upsert = tx.prepare_cached(UPSERT).await.map_err(storage("prepare"))?;
        let delete = tx.prepare_cached(DELETE).await.map_err(storage("prepare"))?;
        let mut rows = vec![0_u64; plan.changes().len()];
        let mut warnings = Vec::new();
        let mut touched = Touched::default();
        for (b, chunk) in plan.changes().chunks(BATCH).enumerate() {
            let base = b * BATCH;
            let built: Vec<Row> = chunk.iter().map(|c| row(c, &mut warnings, self.instances.is_some())).collect();
            let mut ups = Columns::default();
            let (mut gone_uids, mut gone_recurrences) = (Vec::new(), Vec::new());
            // Where each key's change sits in the plan, to credit the rows the database answers.
            let mut at: HashMap<(&str, &str), usize> = HashMap::with_capacity(built.len());
            for (i, r) in built.iter().enumerate() {
                match r {
                    Row::Upsert(u) => {
                        at.insert((u.uid.as_str(), u.rid.as_str()), base + i);
                        ups.push(u);
                    }
                    Row::Delete { uid, rid } => {
                        at.insert((uid.as_str(), rid.as_str()), base + i);
                        gone_uids.push(uid.as_str());
                        gone_recurrences.push(rid.as_str());
                    }
                }
            }
            let mut answered = Vec::new();
            if !ups.uid.is_empty() {
                let params = ups.params(&cal, &now);
                answered.extend(tx.query(&upsert, &params).await.map_err(storage("upsert"))?);
            }
            if !gone_uids.is_empty() {
                answered.extend(
                    tx.query(&delete, &[&cal, &gone_uids, &gone_recurrences]).await.map_err(storage("delete"))?,
                );
            }
            for r in &answered {
                let key: (&str, &str) =
                    (r.try_get(0).map_err(storage("upsert"))?, r.try_get(1).map_err(storage("upsert"))?);
                // A key the batch did not send is a row outside the plan: count it against the
                // first change so the guard refuses the apply.
                let i = at.get(&key).copied().unwrap_or(base);
                if let Some(n) = rows.get_mut(i) {
                    *n += 1;
                }
            }
            drop(at);
            if self.instances.is_some() {
                for r in built {
                    touched.note(r);
                }
            }
        }
        touched.seal();
        // The write-amplification guard: any count other than one rolls everything back.
        plan.check_rows(&rows)?;
        let count = (current.events + plan.inserts() as u64).saturating_sub(plan.deletes() as u64);
        let revision = request.expected.next();
        tx.execute(
            "INSERT INTO calendars (calendar_id, cursor, revision, events, updated_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (calendar_id) DO UPDATE SET cursor = EXCLUDED.cursor, revision = EXCLUDED.revision,
                 events = EXCLUDED.events, updated_at = EXCLUDED.updated_at",
            &[
                &cal,
                &request.cursor.map(Cursor::as_str),
                &to_i64(revision.0, "revision")?,
                &to_i64(count, "event count")?,
                &now,
            ],
        )
        .await
        .map_err(storage("write cursor"))?;
        if let Some(config) = &self.instances {
            instances::maintain(&*tx, cal, config, now, current.events == 0, touched, &mut warnings).await?;
        }
        tx.commit().await.map_err(storage("commit"))?;
        Ok(Applied::new(revision, rows).with_warnings(warnings))
    }
}

/// A batch of upserts as column arrays, for `unnest`.
#[derive(Default)]
struct Columns<'a> {
    uid: Vec<&'a str>,
    rid: Vec<&'a str>,
    summary: Vec<Option<&'a str>>,
    location: Vec<Option<&'a str>>,
    description: Vec<Option<&'a str>>,
    starts_at: Vec<Option<DateTime<Utc>>>,
    ends_at: Vec<Option<DateTime<Utc>>>,
    all_day: Vec<bool>,
    tzid: Vec<Option<&'a str>>,
    rrule: Vec<Option<&'a str>>,
    status: Vec<Option<&'a str>>,
    transparency: Vec<Option<&'a str>>,
    sequence: Vec<Option<i64>>,
    fingerprint: Vec<&'a [u8]>,
    source_hash: Vec<&'a [u8]>,
    digest: Vec<&'a [u8]>,
    href: Vec<Option<&'a str>>,
    etag: Vec<Option<&'a str>>,
    raw: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, u: &'a UpsertRow) {
        self.uid.push(u.uid.as_str());
        self.rid.push(&u.rid);
        self.summary.push(u.summary.as_deref());
        self.location.push(u.location.as_deref());
        self.description.push(u.description.as_deref());
        self.starts_at.push(u.starts_at);
        self.ends_at.push(u.ends_at);
        self.all_day.push(u.all_day);
        self.tzid.push(u.tzid.as_deref());
        self.rrule.push(u.rrule.as_deref());
        self.status.push(u.status.as_deref());
        self.transparency.push(u.transparency);
        self.sequence.push(u.sequence);
        self.fingerprint.push(&u.fingerprint);
        self.source_hash.push(&u.source_hash);
        self.digest.push(&u.digest);
        self.href.push(u.href.as_ref().map(crate::id::Href::as_str));
        self.etag.push(u.etag.as_ref().map(crate::id::Etag::as_str));
        self.raw.push(u.raw.as_str());
    }

    /// The parameters of [`UPSERT`] in order.
    fn params<'p>(&'p self, calendar: &'p &str, now: &'p DateTime<Utc>) -> [&'p (dyn ToSql + Sync); 21] {
        [
            calendar,
            now,
            &self.uid,
            &self.rid,
            &self.summary,
            &self.location,
            &self.description,
            &self.starts_at,
            &self.ends_at,
            &self.all_day,
            &self.tzid,
            &self.rrule,
            &self.status,
            &self.transparency,
            &self.sequence,
            &self.fingerprint,
            &self.source_hash,
            &self.digest,
            &self.href,
            &self.etag,
            &self.raw,
        ]
    }
}

#[async_trait]
impl Schedule for PostgresStore {
    async fn register(
        &self,
        calendar: &CalendarId,
        spec: &str,
        every: Duration,
        now: DateTime<Utc>,
    ) -> Result<Registered> {
        let client = self.pool.get().await.map_err(pool_error)?;
        schedule::register(&**client, calendar, spec, every, now).await
    }

    async fn unregister(&self, calendar: &CalendarId) -> Result<bool> {
        let client = self.pool.get().await.map_err(pool_error)?;
        schedule::unregister(&**client, calendar).await
    }

    async fn claim(&self, worker: &str, n: usize, lease: Duration, now: DateTime<Utc>) -> Result<Vec<Claim>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        schedule::claim(&**client, worker, n, lease, now).await
    }

    async fn finish(&self, claim: &Claim, outcome: &Outcome, now: DateTime<Utc>) -> Result<Finished> {
        let client = self.pool.get().await.map_err(pool_error)?;
        schedule::finish(&**client, claim, outcome, now).await
    }

    async fn poke(&self, calendar: &CalendarId, now: DateTime<Utc>) -> Result<bool> {
        let client = self.pool.get().await.map_err(pool_error)?;
        schedule::poke(&**client, calendar, now).await
    }

    async fn entries(&self) -> Result<Vec<ScheduleEntry>> {
        let client = self.pool.get().await.map_err(pool_error)?;
        schedule::entries(&**client).await
    }

    async fn pending(&self, now: DateTime<Utc>) -> Result<Pending> {
        let client = self.pool.get().await.map_err(pool_error)?;
        schedule::pending(&**client, now).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
        self.load_state(calendar, scope).await
    }

    async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        self.apply_plan(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_lose_their_passwords_when_shown() {
        assert_eq!(redact("postgres://u:secret@db:5432/x"), "postgres://u:%3Credacted%3E@db:5432/x");
        assert_eq!(
            redact("postgres://u@db/x?password=secret&sslmode=disable"),
            "postgres://u@db/x?password=%3Credacted%3E&sslmode=disable"
        );
        assert_eq!(redact("host=db user=u password=secret dbname=x"), "host=db user=u password=<redacted> dbname=x");
        let shown = format!("{:?}", PostgresConfig::new("postgres://u:secret@db/x"));
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn calendars_lock_apart() {
        let a = CalendarId::new("a").unwrap();
        let b = CalendarId::new("b").unwrap();
        assert_ne!(lock_key(&a), lock_key(&b));
        assert_eq!(lock_key(&a), lock_key(&CalendarId::new("a").unwrap()));
    }
}
