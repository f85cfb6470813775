//! Syncs calendars from .ics files and http(s) feeds into a SQLite database, writing only what
//! changed.
//!
//! ```text
//! cargo run --release --example sync -- --db FILE [--json] [--dry-run] [--allow-empty] \
//!     [--allow-mass-change] [--concurrency N] ID=SOURCE ...
//! ```
//!
//! SOURCE is a path to an .ics file, an `http(s)://` feed URL, or (built with `--features
//! caldav`) `caldav+http(s)://…`: a CalDAV collection (synced as ID), or a server or principal
//! URL, whose every calendar is synced as `ID/NAME`. Prints a table per calendar
//! (or, with `--json`, exactly one JSON object on stdout). Exit status: 0 when every calendar
//! synced, 1 when any failed (the others are still committed), 2 for usage errors.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use calscope::ics::ReadOptions;
use calscope::{
    CalendarId, CalendarReport, CalendarSource, Engine, HttpConfig, IcsSource, PlanOptions, SqliteStore, SyncOptions,
    SyncReport,
};
use futures::StreamExt;

const USAGE: &str =
    "usage: sync --db FILE [--json] [--dry-run] [--allow-empty] [--allow-mass-change] [--concurrency N] ID=SOURCE ...
  SOURCE is a path to an .ics file, an http(s):// feed URL, caldav+http(s)://… (a CalDAV
  collection, or an account's server URL: every calendar, as ID/NAME; needs --features caldav),
  google:CALENDAR_ID (one Google calendar: primary, alice@example.com, …) or google: (every
  calendar of the account, as ID/CALENDAR_ID); the access token comes from CALSCOPE_GOOGLE_TOKEN,
  the API root from CALSCOPE_GOOGLE_API (default https://www.googleapis.com/calendar/v3);
  graph:CALENDAR_ID (one Outlook calendar) or graph: (every calendar of the mailbox, as
  ID/NAME), with the token from CALSCOPE_GRAPH_TOKEN and the API root from CALSCOPE_GRAPH_API
  (default https://graph.microsoft.com/v1.0)";

#[allow(clippy::struct_excessive_bools)] // command-line flags
struct Args {
    db: String,
    json: bool,
    dry_run: bool,
    allow_empty: bool,
    allow_mass_change: bool,
    concurrency: usize,
    calendars: Vec<(CalendarId, Spec)>,
}

/// A SOURCE argument, checked; CalDAV accounts are discovered once the runtime runs.
enum Spec {
    Ready(Arc<dyn CalendarSource>),
    #[cfg_attr(not(feature = "caldav"), allow(dead_code))]
    CalDav(String),
    /// `google:CALENDAR_ID` (one calendar) or `google:` (every calendar of the account), with
    /// the token from `CALSCOPE_GOOGLE_TOKEN`.
    #[cfg_attr(not(feature = "google"), allow(dead_code))]
    Google {
        calendar: Option<String>,
        token: String,
    },
    /// `graph:CALENDAR_ID` (one calendar) or `graph:` (every calendar of the mailbox), with the
    /// token from `CALSCOPE_GRAPH_TOKEN`.
    #[cfg_attr(not(feature = "graph"), allow(dead_code))]
    Graph {
        calendar: Option<String>,
        token: String,
    },
}

fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            eprintln!("sync: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let store = match SqliteStore::open(&args.db) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("sync: cannot open {}: {e}", args.db);
            return ExitCode::from(2);
        }
    };
    // reqwest (http feeds) needs a Tokio runtime; file sources would run on any executor.
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sync: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let started = Instant::now();
    let report = runtime.block_on(run(&args, store));
    if args.json {
        print_json(&report, started.elapsed().as_secs_f64());
    } else {
        print_table(&report, started.elapsed().as_secs_f64());
    }
    if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut db = None;
    let (mut json, mut dry_run, mut allow_empty, mut allow_mass_change) = (false, false, false, false);
    let mut concurrency = 4;
    let mut pairs = Vec::new();
    while let Some(arg) = argv.next() {
        match arg.as_str() {
            "--db" => db = Some(argv.next().ok_or("--db needs a FILE")?),
            "--json" => json = true,
            "--dry-run" => dry_run = true,
            "--allow-empty" => allow_empty = true,
            "--allow-mass-change" => allow_mass_change = true,
            "--concurrency" => {
                let n = argv.next().ok_or("--concurrency needs a number")?;
                concurrency =
                    n.parse().ok().filter(|&n| n > 0).ok_or(format!("--concurrency: {n:?} is not a count"))?;
            }
            "-h" | "--help" => return Err("help".to_owned()),
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            pair => pairs.push(pair.to_owned()),
        }
    }
    let db = db.ok_or("--db FILE is required")?;
    if pairs.is_empty() {
        return Err("no calendars: give at least one ID=SOURCE".to_owned());
    }
    let mut calendars: Vec<(CalendarId, Spec)> = Vec::new();
    for pair in pairs {
        let (id, source) = pair.split_once('=').ok_or(format!("{pair:?} is not ID=SOURCE"))?;
        let id = CalendarId::new(id).map_err(|e| format!("{pair:?}: bad calendar id: {e}"))?;
        if calendars.iter().any(|(c, _)| *c == id) {
            return Err(format!("calendar {id} is given twice"));
        }
        calendars.push((id.clone(), source_for(id, source)?));
    }
    Ok(Args { db, json, dry_run, allow_empty, allow_mass_change, concurrency, calendars })
}

fn source_for(id: CalendarId, source: &str) -> Result<Spec, String> {
    let lower = source.to_ascii_lowercase();
    if let Some(url) = lower.strip_prefix("caldav+").map(|_| &source["caldav+".len()..]) {
        if !cfg!(feature = "caldav") {
            return Err(format!("{id}: this build has no CalDAV support (cargo run --features caldav …)"));
        }
        return Ok(Spec::CalDav(url.to_owned()));
    }
    if let Some(calendar) = lower.strip_prefix("google:").map(|_| &source["google:".len()..]) {
        if !cfg!(feature = "google") {
            return Err(format!("{id}: this build has no Google support (cargo run --features google …)"));
        }
        let token = std::env::var(GOOGLE_TOKEN)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or(format!("{id}: google: needs an OAuth access token in the environment variable {GOOGLE_TOKEN}"))?;
        let calendar = (!calendar.is_empty()).then(|| calendar.to_owned());
        return Ok(Spec::Google { calendar, token: token.trim().to_owned() });
    }
    if let Some(calendar) = lower.strip_prefix("graph:").map(|_| &source["graph:".len()..]) {
        if !cfg!(feature = "graph") {
            return Err(format!("{id}: this build has no Microsoft Graph support (cargo run --features graph …)"));
        }
        let token = std::env::var(GRAPH_TOKEN)
            .ok()
            .filter(|t| !t.trim().is_empty())
            .ok_or(format!("{id}: graph: needs an OAuth access token in the environment variable {GRAPH_TOKEN}"))?;
        let calendar = (!calendar.is_empty()).then(|| calendar.to_owned());
        return Ok(Spec::Graph { calendar, token: token.trim().to_owned() });
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return IcsSource::from_url(id.clone(), source, HttpConfig::default())
            .map(|s| Spec::Ready(Arc::new(s.with_options(read_options()))))
            .map_err(|e| format!("{id}: {e}"));
    }
    if let Some((scheme, _)) = source.split_once("://") {
        return Err(format!("{id}: unsupported source scheme {scheme:?} (use a file path or an http(s) URL)"));
    }
    if source.is_empty() {
        return Err(format!("{id}: empty SOURCE"));
    }
    Ok(Spec::Ready(Arc::new(IcsSource::from_file(id, source).with_options(read_options()))))
}

/// The calendars to sync: files and feeds as given, CalDAV accounts discovered (one job per
/// calendar). A discovery that fails becomes that ID's failed sync.
async fn jobs(calendars: &[(CalendarId, Spec)]) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    let mut jobs = Vec::new();
    for (id, spec) in calendars {
        match spec {
            Spec::Ready(source) => jobs.push((id.clone(), Arc::clone(source))),
            Spec::CalDav(url) => jobs.extend(caldav_jobs(id, url).await),
            Spec::Google { calendar, token } => jobs.extend(google_jobs(id, calendar.as_deref(), token).await),
            Spec::Graph { calendar, token } => jobs.extend(graph_jobs(id, calendar.as_deref(), token).await),
        }
    }
    jobs
}

#[cfg(feature = "caldav")]
async fn caldav_jobs(id: &CalendarId, url: &str) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    use calscope::{CalDavConfig, CalDavSource, CalendarNaming};
    let config = CalDavConfig::default().naming(CalendarNaming::Prefix(id.as_str().to_owned()));
    let found = match CalDavSource::discover(url, config).await {
        Ok(source) => source.calendars().await.map(|c| (Arc::new(source), c)),
        Err(e) => Err(e),
    };
    match found {
        Ok((source, calendars)) => {
            let source: Arc<dyn CalendarSource> = source;
            calendars.into_iter().map(|c| (c.id, Arc::clone(&source))).collect()
        }
        Err(e) => vec![(id.clone(), Arc::new(Failed(e.to_string())))],
    }
}

#[cfg(not(feature = "caldav"))]
#[allow(clippy::unused_async)] // the same signature as with CalDAV support
async fn caldav_jobs(id: &CalendarId, _: &str) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    vec![(id.clone(), Arc::new(Failed("no CalDAV support in this build".to_owned())))]
}

/// The environment variable holding the Google access token.
const GOOGLE_TOKEN: &str = "CALSCOPE_GOOGLE_TOKEN";

/// One Google calendar as `ID`, or every calendar of the account as `ID/CALENDAR_ID`. The API
/// root is `CALSCOPE_GOOGLE_API` when set.
#[cfg(feature = "google")]
async fn google_jobs(
    id: &CalendarId,
    calendar: Option<&str>,
    token: &str,
) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    use calscope::{GoogleConfig, GoogleSource, HttpAuth};
    let mut config = GoogleConfig::default().http(HttpConfig::default().auth(HttpAuth::Bearer(token.to_owned())));
    if let Ok(api) = std::env::var("CALSCOPE_GOOGLE_API") {
        config = config.api(api);
    }
    account_jobs(
        id,
        calendar,
        |calendar| GoogleSource::calendar(id.clone(), calendar, config.clone()),
        || GoogleSource::account(id.as_str(), config.clone()),
    )
    .await
}

/// One calendar of an API account as `ID` (`one` builds its source), or every calendar the
/// account lists (`account` builds the source), as the source names them.
#[cfg(any(feature = "google", feature = "graph"))]
async fn account_jobs<S: CalendarSource + 'static>(
    id: &CalendarId,
    calendar: Option<&str>,
    one: impl FnOnce(&str) -> calscope::Result<S>,
    account: impl FnOnce() -> calscope::Result<S>,
) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    let failed = |e: calscope::Error| vec![(id.clone(), Arc::new(Failed(e.to_string())) as Arc<dyn CalendarSource>)];
    if let Some(calendar) = calendar {
        return match one(calendar) {
            Ok(source) => vec![(id.clone(), Arc::new(source))],
            Err(e) => failed(e),
        };
    }
    let source = match account() {
        Ok(source) => Arc::new(source),
        Err(e) => return failed(e),
    };
    match source.calendars().await {
        Ok(calendars) => {
            let source: Arc<dyn CalendarSource> = source;
            calendars.into_iter().map(|c| (c.id, Arc::clone(&source))).collect()
        }
        Err(e) => failed(e),
    }
}

#[cfg(not(feature = "google"))]
#[allow(clippy::unused_async)] // the same signature as with Google support
async fn google_jobs(id: &CalendarId, _: Option<&str>, _: &str) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    vec![(id.clone(), Arc::new(Failed("no Google support in this build".to_owned())))]
}

/// The environment variable holding the Microsoft Graph access token.
const GRAPH_TOKEN: &str = "CALSCOPE_GRAPH_TOKEN";

/// One Outlook calendar as `ID`, or every calendar of the mailbox as `ID/NAME`. The API root
/// is `CALSCOPE_GRAPH_API` when set.
#[cfg(feature = "graph")]
async fn graph_jobs(
    id: &CalendarId,
    calendar: Option<&str>,
    token: &str,
) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    use calscope::{GraphConfig, GraphSource, HttpAuth};
    let mut config = GraphConfig::default().http(HttpConfig::default().auth(HttpAuth::Bearer(token.to_owned())));
    if let Ok(api) = std::env::var("CALSCOPE_GRAPH_API") {
        config = config.api(api);
    }
    account_jobs(
        id,
        calendar,
        |calendar| GraphSource::calendar(id.clone(), calendar, config.clone()),
        || GraphSource::account(id.as_str(), config.clone()),
    )
    .await
}

#[cfg(not(feature = "graph"))]
#[allow(clippy::unused_async)] // the same signature as with Graph support
async fn graph_jobs(id: &CalendarId, _: Option<&str>, _: &str) -> Vec<(CalendarId, Arc<dyn CalendarSource>)> {
    vec![(id.clone(), Arc::new(Failed("no Microsoft Graph support in this build".to_owned())))]
}

/// A source that could not be set up: its sync fails with the reason.
#[derive(Debug)]
struct Failed(String);

#[async_trait::async_trait]
impl CalendarSource for Failed {
    fn capabilities(&self) -> calscope::Capabilities {
        calscope::Capabilities::snapshot_only()
    }
    async fn calendars(&self) -> calscope::Result<Vec<calscope::CalendarInfo>> {
        Ok(Vec::new())
    }
    async fn fetch(&self, _: calscope::FetchRequest<'_>) -> calscope::Result<calscope::Fetched> {
        Err(calscope::Error::new(calscope::ErrorKind::Transport, self.0.clone()))
    }
}

/// Large feeds are read on every core.
fn read_options() -> ReadOptions {
    ReadOptions::default().threads(std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

async fn run(args: &Args, store: SqliteStore) -> SyncReport {
    let plan = PlanOptions::default().allow_empty(args.allow_empty).allow_mass_change(args.allow_mass_change);
    let options = SyncOptions::default().plan(plan).dry_run(args.dry_run).concurrency(args.concurrency);
    let engine = Engine::new(store).with_options(options);
    let jobs = jobs(&args.calendars).await;
    // A progress line on a terminal (never on a pipe), updated as calendars finish.
    let progress = std::io::stderr().is_terminal() && jobs.len() > 1;
    let total = jobs.len();
    let mut done = 0usize;
    let mut reports: Vec<(usize, CalendarReport)> = Vec::with_capacity(total);
    let mut stream = futures::stream::iter(jobs.iter().enumerate())
        .map(|(i, (id, source))| {
            let engine = &engine;
            async move { (i, engine.sync(source.as_ref(), id).await) }
        })
        .buffer_unordered(args.concurrency);
    while let Some((i, report)) = stream.next().await {
        done += 1;
        if progress {
            let width = 30;
            let filled = done * width / total;
            eprint!("\r[{}{}] {done}/{total} {}", "#".repeat(filled), " ".repeat(width - filled), report.calendar);
            let _ = std::io::stderr().flush();
        }
        reports.push((i, report));
    }
    if progress {
        eprint!("\r{}\r", " ".repeat(80));
    }
    reports.sort_by_key(|(i, _)| *i);
    SyncReport::from_calendars(reports.into_iter().map(|(_, r)| r).collect())
}

fn print_table(report: &SyncReport, secs: f64) {
    println!(
        "{:<24} {:>6} {:>9} {:>8} {:>8} {:>10} {:>9} {:>10}",
        "calendar", "status", "inserted", "updated", "deleted", "unchanged", "warnings", "time"
    );
    for c in &report.calendars {
        println!(
            "{:<24} {:>6} {:>9} {:>8} {:>8} {:>10} {:>9} {:>8.1}ms",
            c.calendar.as_str(),
            if c.is_ok() { "ok" } else { "error" },
            c.inserted,
            c.updated,
            c.deleted,
            c.unchanged,
            c.warnings.len(),
            c.duration_ms
        );
    }
    for c in &report.calendars {
        if let Some(error) = &c.error {
            println!("error   {}: {error}", c.calendar);
        }
        for w in c.warnings.iter().take(5) {
            println!("warning {}: {w}", c.calendar);
        }
        if c.warnings.len() > 5 {
            println!("warning {}: … and {} more", c.calendar, c.warnings.len() - 5);
        }
    }
    let failed = report.failed().count();
    println!("{} calendars, {failed} failed, {} rows written in {:.2}s", report.calendars.len(), report.writes(), secs);
}

fn print_json(report: &SyncReport, secs: f64) {
    let mut value = match serde_json::to_value(report) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("sync: cannot serialize the report: {e}");
            return;
        }
    };
    // A dry run's plans hold every event: the counts say what would change.
    if let Some(calendars) = value.get_mut("calendars").and_then(serde_json::Value::as_array_mut) {
        for c in calendars.iter_mut().filter_map(serde_json::Value::as_object_mut) {
            c.remove("plan");
        }
    }
    if let Some(object) = value.as_object_mut() {
        object.insert("ok".to_owned(), report.is_ok().into());
        object.insert("writes".to_owned(), report.writes().into());
        object.insert("duration_ms".to_owned(), (secs * 1000.0).into());
    }
    println!("{value}");
}
