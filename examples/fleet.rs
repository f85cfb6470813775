//! A fleet of sync workers over one database: register calendars, run workers (as many
//! processes as you like), poke calendars, see the state of every one.
//!
//! ```text
//! fleet --db URL add [--every SECONDS] ID=SOURCE ...     register or update calendars (idempotent; a new one is due at once); SOURCE as for sync
//! fleet --db URL run --worker NAME [--concurrency N] [--lease SECONDS] [--until-idle]
//! fleet --db URL poke ID ...                             make calendars due now
//! fleet --db URL status [--json]
//! ```
//!
//! URL is a SQLite file, or `postgres://…` when built with `--features postgres`. `run` syncs
//! due calendars until Ctrl-C (or SIGTERM), which lets in-flight syncs finish; with
//! `--until-idle` it exits 0 once no calendar is due and no lease is out. Exit status: 0 when
//! done, 1 when something failed (a calendar that could not be registered or poked, a store
//! that failed), 2 for usage errors.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use calscope::schedule::{DEFAULT_INTERVAL, Registered, Schedule, ScheduleEntry, Worker, WorkerOptions};
use calscope::{CalendarId, CalendarSource, Engine, Error, ErrorKind, HttpConfig, IcsSource, SqliteStore, Store};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

const USAGE: &str = "usage:
  fleet --db URL add [--every SECONDS] ID=SOURCE ...
  fleet --db URL run --worker NAME [--concurrency N] [--lease SECONDS] [--until-idle]
  fleet --db URL poke ID ...
  fleet --db URL status [--json]
  URL is a SQLite file, or postgres://… (built with --features postgres). SOURCE is as for
  sync: an .ics path, an http(s):// feed, caldav+http(s)://… (a collection, or an account whose
  every calendar is registered as ID/NAME), google:CALENDAR_ID or google: (every calendar, as
  ID/CALENDAR_ID; token in CALSCOPE_GOOGLE_TOKEN), graph:CALENDAR_ID or graph: (token in
  CALSCOPE_GRAPH_TOKEN).";

enum Command {
    Add { every: Duration, pairs: Vec<(CalendarId, String)> },
    Run { worker: String, options: WorkerOptions },
    Poke { calendars: Vec<CalendarId> },
    Status { json: bool },
}

fn main() -> ExitCode {
    let (db, command) = match parse(std::env::args().skip(1)) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("fleet: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fleet: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            return with_postgres(&db, command).await;
        }
        match SqliteStore::open(&db) {
            Ok(store) => execute(store, command).await,
            Err(e) => {
                eprintln!("fleet: cannot open {db}: {e}");
                ExitCode::from(2)
            }
        }
    })
}

#[cfg(feature = "postgres")]
async fn with_postgres(url: &str, command: Command) -> ExitCode {
    match calscope::PostgresStore::connect(url).await {
        Ok(store) => execute(store, command).await,
        Err(e) => {
            eprintln!("fleet: cannot connect to the database: {e}");
            ExitCode::from(1)
        }
    }
}

#[cfg(not(feature = "postgres"))]
#[allow(clippy::unused_async)] // the same signature as with Postgres support
async fn with_postgres(_: &str, _: Command) -> ExitCode {
    eprintln!("fleet: this build has no Postgres support (cargo run --features postgres …)");
    ExitCode::from(2)
}

async fn execute<S: Store + Schedule + 'static>(store: S, command: Command) -> ExitCode {
    match command {
        Command::Add { every, pairs } => add(&store, every, pairs).await,
        Command::Run { worker, options } => run(store, worker, options).await,
        Command::Poke { calendars } => poke(&store, &calendars).await,
        Command::Status { json } => status(&store, json).await,
    }
}

/// Registers each pair; an account is listed and each of its calendars registered.
async fn add<S: Schedule>(store: &S, every: Duration, pairs: Vec<(CalendarId, String)>) -> ExitCode {
    let mut failed = false;
    for (id, source) in pairs {
        let calendars = match expand(&id, &source).await {
            Ok(calendars) => calendars,
            Err(e) => {
                eprintln!("fleet: {id}: {e}");
                failed = true;
                continue;
            }
        };
        for (calendar, spec) in calendars {
            match store.register(&calendar, &spec, every, Utc::now()).await {
                Ok(Registered::Added) => println!("added     {calendar}"),
                Ok(Registered::Changed) => println!("updated   {calendar}"),
                Ok(Registered::Unchanged) => println!("unchanged {calendar}"),
                Err(e) => {
                    eprintln!("fleet: {calendar}: {e}");
                    failed = true;
                }
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

async fn run<S: Store + Schedule + 'static>(store: S, name: String, options: WorkerOptions) -> ExitCode {
    let sleep = |d: Duration| -> BoxFuture<'static, ()> { Box::pin(tokio::time::sleep(d)) };
    let worker = Worker::new(name, Engine::new(store), source_for, sleep).options(options);
    match worker.run(stop_signal()).await {
        Ok(r) => {
            println!(
                "worker {}: claimed {}, synced {}, failed {}, lost {}, unrecorded {}, rows written {}",
                worker.name(),
                r.claimed,
                r.synced,
                r.failed,
                r.lost,
                r.unrecorded,
                r.rows_written
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fleet: worker {}: {e}", worker.name());
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C, or SIGTERM on Unix.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

async fn poke<S: Schedule>(store: &S, calendars: &[CalendarId]) -> ExitCode {
    let mut failed = false;
    for calendar in calendars {
        match store.poke(calendar, Utc::now()).await {
            Ok(true) => println!("poked {calendar}"),
            Ok(false) => {
                eprintln!("fleet: warning: {calendar} is not registered");
                failed = true;
            }
            Err(e) => {
                eprintln!("fleet: {calendar}: {e}");
                failed = true;
            }
        }
    }
    if failed { ExitCode::from(1) } else { ExitCode::SUCCESS }
}

fn time(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

async fn status<S: Schedule>(store: &S, json: bool) -> ExitCode {
    let entries = match store.entries().await {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("fleet: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        #[derive(serde::Serialize)]
        struct Status<'a> {
            calendars: Vec<StatusRow<'a>>,
        }
        let status = Status { calendars: entries.iter().map(status_row).collect() };
        return match serde_json::to_string(&status) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("fleet: cannot serialize the status: {e}");
                ExitCode::from(1)
            }
        };
    }
    println!(
        "{:<24} {:>6} {:>8} {:<20} {:<20} {:<12} last error",
        "calendar", "syncs", "failures", "next due", "last synced", "lease"
    );
    for e in &entries {
        println!(
            "{:<24} {:>6} {:>8} {:<20} {:<20} {:<12} {}",
            e.calendar.as_str(),
            e.syncs,
            e.failures,
            time(Some(e.next_due_at)).unwrap_or_default(),
            time(e.last_synced_at).unwrap_or_else(|| "-".to_owned()),
            e.lease_owner.as_deref().unwrap_or("-"),
            e.last_error.as_deref().unwrap_or("")
        );
    }
    let failing = entries.iter().filter(|e| e.failures > 0).count();
    println!("{} calendars, {failing} failing", entries.len());
    ExitCode::SUCCESS
}

/// One calendar in `status --json`, its keys in the contract's order.
#[derive(serde::Serialize)]
struct StatusRow<'a> {
    calendar: &'a str,
    syncs: u64,
    failures: u32,
    last_error: Option<&'a str>,
    next_due_at: Option<String>,
    last_synced_at: Option<String>,
    lease_owner: Option<&'a str>,
}

fn status_row(e: &ScheduleEntry) -> StatusRow<'_> {
    StatusRow {
        calendar: e.calendar.as_str(),
        syncs: e.syncs,
        failures: e.failures,
        last_error: e.last_error.as_deref(),
        next_due_at: time(Some(e.next_due_at)),
        last_synced_at: time(e.last_synced_at),
        lease_owner: e.lease_owner.as_deref(),
    }
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<(String, Command), String> {
    let mut db = None;
    let mut verb = None;
    let mut rest = Vec::new();
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--db" if db.is_none() => db = Some(argv.next().ok_or("--db needs a URL")?),
            "-h" | "--help" => return Err("help".to_owned()),
            _ if verb.is_none() && !arg.starts_with("--") => verb = Some(arg),
            _ => rest.push(arg),
        }
    }
    let db = db.ok_or("--db URL is required")?;
    let verb = verb.ok_or("a command is required: add, run, poke or status")?;
    let mut rest = rest.into_iter();
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        let value = value.ok_or(format!("{flag} needs a number"))?;
        value.parse::<u64>().ok().filter(|&n| n > 0).ok_or(format!("{flag}: {value:?} is not a positive number"))
    };
    let command = match verb.as_str() {
        "add" => {
            let mut every = DEFAULT_INTERVAL;
            let mut pairs: Vec<(CalendarId, String)> = Vec::new();
            while let Some(arg) = rest.next() {
                if arg == "--every" {
                    every = Duration::from_secs(number("--every", rest.next())?);
                    continue;
                }
                if arg.starts_with("--") {
                    return Err(format!("unknown option {arg}"));
                }
                let (id, source) = arg.split_once('=').ok_or(format!("{arg:?} is not ID=SOURCE"))?;
                let id = CalendarId::new(id).map_err(|e| format!("{arg:?}: bad calendar id: {e}"))?;
                if source.is_empty() {
                    return Err(format!("{id}: empty SOURCE"));
                }
                if pairs.iter().any(|(c, _)| *c == id) {
                    return Err(format!("calendar {id} is given twice"));
                }
                check_source(&id, source)?;
                pairs.push((id, source.to_owned()));
            }
            if pairs.is_empty() {
                return Err("add: give at least one ID=SOURCE".to_owned());
            }
            Command::Add { every, pairs }
        }
        "run" => {
            let mut worker = None;
            let mut options = WorkerOptions::default();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--worker" => worker = Some(rest.next().ok_or("--worker needs a NAME")?),
                    "--concurrency" => {
                        let n = number("--concurrency", rest.next())?;
                        options = options.concurrency(usize::try_from(n).unwrap_or(usize::MAX));
                    }
                    "--lease" => options = options.lease(Duration::from_secs(number("--lease", rest.next())?)),
                    "--until-idle" => options = options.until_idle(true),
                    other => return Err(format!("run: unexpected {other:?}")),
                }
            }
            let worker = worker.filter(|w| !w.trim().is_empty()).ok_or("run: --worker NAME is required")?;
            Command::Run { worker, options }
        }
        "poke" => {
            let calendars = rest
                .map(|a| {
                    if a.starts_with("--") {
                        return Err(format!("poke: unknown option {a}"));
                    }
                    CalendarId::new(&a).map_err(|e| format!("{a:?}: bad calendar id: {e}"))
                })
                .collect::<Result<Vec<_>, String>>()?;
            if calendars.is_empty() {
                return Err("poke: give at least one ID".to_owned());
            }
            Command::Poke { calendars }
        }
        "status" => {
            let mut json = false;
            for arg in rest {
                match arg.as_str() {
                    "--json" => json = true,
                    other => return Err(format!("status: unexpected {other:?}")),
                }
            }
            Command::Status { json }
        }
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok((db, command))
}

// ---- Sources: the factory the worker calls, and account discovery for `add`.

const GOOGLE_TOKEN: &str = "CALSCOPE_GOOGLE_TOKEN";
const GRAPH_TOKEN: &str = "CALSCOPE_GRAPH_TOKEN";

/// What a SOURCE names. A spec registered for one calendar of an account carries the account's
/// calendar id prefix after `#prefix=` (a URL fragment is never sent to a server).
enum Kind<'a> {
    File(&'a str),
    Feed(&'a str),
    CalDav(&'a str),
    Google(&'a str),
    Graph(&'a str),
}

fn kind(source: &str) -> Result<Kind<'_>, String> {
    let lower = source.to_ascii_lowercase();
    let after = |prefix: &str| source.get(prefix.len()..).unwrap_or_default();
    Ok(if lower.starts_with("caldav+") {
        Kind::CalDav(after("caldav+"))
    } else if lower.starts_with("google:") {
        Kind::Google(after("google:"))
    } else if lower.starts_with("graph:") {
        Kind::Graph(after("graph:"))
    } else if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("webcal://") {
        Kind::Feed(source)
    } else if let Some((scheme, _)) = source.split_once("://") {
        return Err(format!("unsupported source scheme {scheme:?}"));
    } else {
        Kind::File(source)
    })
}

fn check_source(id: &CalendarId, source: &str) -> Result<(), String> {
    let need = |feature: bool, what: &str| {
        if feature { Ok(()) } else { Err(format!("{id}: this build has no {what} support (cargo run --features …)")) }
    };
    match kind(source).map_err(|e| format!("{id}: {e}"))? {
        Kind::CalDav(_) => need(cfg!(feature = "caldav"), "CalDAV"),
        Kind::Google(_) => need(cfg!(feature = "google"), "Google"),
        Kind::Graph(_) => need(cfg!(feature = "graph"), "Microsoft Graph"),
        Kind::File(_) | Kind::Feed(_) => Ok(()),
    }
}

fn split_prefix(spec: &str) -> (&str, Option<&str>) {
    match spec.rsplit_once("#prefix=") {
        Some((source, prefix)) => (source, Some(prefix)),
        None => (spec, None),
    }
}

fn token(var: &str) -> calscope::Result<String> {
    std::env::var(var)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Error::new(ErrorKind::Unauthorized, format!("no OAuth access token in {var}")))
}

/// The worker's factory: a source for one registered calendar.
fn source_for(id: &CalendarId, spec: &str) -> calscope::Result<Arc<dyn CalendarSource>> {
    let (source, prefix) = split_prefix(spec);
    let kind = kind(source).map_err(|e| Error::new(ErrorKind::InvalidInput, e))?;
    match kind {
        Kind::File(path) => Ok(Arc::new(IcsSource::from_file(id.clone(), path))),
        Kind::Feed(url) => Ok(Arc::new(IcsSource::from_url(id.clone(), url, HttpConfig::default())?)),
        Kind::CalDav(url) => caldav(id, url, prefix.unwrap_or(id.as_str())),
        Kind::Google(calendar) => google(id, calendar, prefix),
        Kind::Graph(calendar) => graph(id, calendar, prefix),
    }
}

/// Each calendar a SOURCE names, with the spec to register it by.
async fn expand(id: &CalendarId, source: &str) -> calscope::Result<Vec<(CalendarId, String)>> {
    let account = match kind(source).map_err(|e| Error::new(ErrorKind::InvalidInput, e))? {
        Kind::CalDav(_) => true,
        Kind::Google(calendar) | Kind::Graph(calendar) => calendar.is_empty(),
        Kind::File(_) | Kind::Feed(_) => false,
    };
    if !account {
        return Ok(vec![(id.clone(), source.to_owned())]);
    }
    let spec = format!("{source}#prefix={id}");
    let listed = source_for(id, &spec)?.calendars().await?;
    if listed.is_empty() {
        return Err(Error::new(ErrorKind::NotFound, "the account lists no calendars"));
    }
    Ok(listed.into_iter().map(|c| (c.id, spec.clone())).collect())
}

#[cfg(feature = "caldav")]
#[allow(clippy::unnecessary_wraps)] // the same signature as without CalDAV support
fn caldav(_: &CalendarId, url: &str, prefix: &str) -> calscope::Result<Arc<dyn CalendarSource>> {
    Ok(Arc::new(LazyCalDav { url: url.to_owned(), prefix: prefix.to_owned(), source: futures::lock::Mutex::new(None) }))
}

#[cfg(not(feature = "caldav"))]
fn caldav(_: &CalendarId, _: &str, _: &str) -> calscope::Result<Arc<dyn CalendarSource>> {
    Err(Error::new(ErrorKind::InvalidInput, "no CalDAV support in this build"))
}

/// A CalDAV source discovered on first use (discovery is a few requests; the factory is not
/// async).
#[cfg(feature = "caldav")]
#[derive(Debug)]
struct LazyCalDav {
    url: String,
    prefix: String,
    source: futures::lock::Mutex<Option<Arc<calscope::CalDavSource>>>,
}

#[cfg(feature = "caldav")]
impl LazyCalDav {
    async fn get(&self) -> calscope::Result<Arc<calscope::CalDavSource>> {
        use calscope::{CalDavConfig, CalendarNaming};
        let mut slot = self.source.lock().await;
        if let Some(source) = slot.as_ref() {
            return Ok(Arc::clone(source));
        }
        let config = CalDavConfig::default().naming(CalendarNaming::Prefix(self.prefix.clone()));
        let source = Arc::new(calscope::CalDavSource::discover(&self.url, config).await?);
        *slot = Some(Arc::clone(&source));
        Ok(source)
    }
}

#[cfg(feature = "caldav")]
#[async_trait::async_trait]
impl CalendarSource for LazyCalDav {
    fn capabilities(&self) -> calscope::Capabilities {
        calscope::Capabilities::snapshot_only().with_cursor(true).with_delta(true).with_list_calendars(true)
    }
    async fn calendars(&self) -> calscope::Result<Vec<calscope::CalendarInfo>> {
        self.get().await?.calendars().await
    }
    async fn fetch(&self, request: calscope::FetchRequest<'_>) -> calscope::Result<calscope::Fetched> {
        self.get().await?.fetch(request).await
    }
    fn kind(&self) -> &'static str {
        "caldav"
    }
}

#[cfg(feature = "google")]
fn google(id: &CalendarId, calendar: &str, prefix: Option<&str>) -> calscope::Result<Arc<dyn CalendarSource>> {
    use calscope::{GoogleConfig, GoogleSource, HttpAuth};
    let mut config = GoogleConfig::default().http(HttpConfig::default().auth(HttpAuth::Bearer(token(GOOGLE_TOKEN)?)));
    if let Ok(api) = std::env::var("CALSCOPE_GOOGLE_API") {
        config = config.api(api);
    }
    Ok(match prefix {
        Some(prefix) if calendar.is_empty() => Arc::new(GoogleSource::account(prefix, config)?),
        _ => Arc::new(GoogleSource::calendar(id.clone(), calendar, config)?),
    })
}

#[cfg(not(feature = "google"))]
fn google(_: &CalendarId, _: &str, _: Option<&str>) -> calscope::Result<Arc<dyn CalendarSource>> {
    let _ = token(GOOGLE_TOKEN);
    Err(Error::new(ErrorKind::InvalidInput, "no Google support in this build"))
}

#[cfg(feature = "graph")]
fn graph(id: &CalendarId, calendar: &str, prefix: Option<&str>) -> calscope::Result<Arc<dyn CalendarSource>> {
    use calscope::{GraphConfig, GraphSource, HttpAuth};
    let mut config = GraphConfig::default().http(HttpConfig::default().auth(HttpAuth::Bearer(token(GRAPH_TOKEN)?)));
    if let Ok(api) = std::env::var("CALSCOPE_GRAPH_API") {
        config = config.api(api);
    }
    Ok(match prefix {
        Some(prefix) if calendar.is_empty() => Arc::new(GraphSource::account(prefix, config)?),
        _ => Arc::new(GraphSource::calendar(id.clone(), calendar, config)?),
    })
}

#[cfg(not(feature = "graph"))]
fn graph(_: &CalendarId, _: &str, _: Option<&str>) -> calscope::Result<Arc<dyn CalendarSource>> {
    let _ = token(GRAPH_TOKEN);
    Err(Error::new(ErrorKind::InvalidInput, "no Microsoft Graph support in this build"))
}
