//! Every provided source held to the same contract: `calscope::testkit`'s source checks
//! against `MemorySource` (with deltas, and snapshot-only), `IcsSource` over files, and
//! `IcsSource` over http from a real HTTP server on loopback.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use calscope::testkit::{FixtureCalendar, SourceFixture, run_source_checks};
use calscope::{
    CalendarId, CalendarInfo, CalendarSource, Capabilities, Event, FetchRequest, Fetched, FingerprintPolicy,
    HttpConfig, IcsSource, MemorySource, Result,
};

use crate::common::block_on;

/// The fixture of a `MemorySource`.
struct MemoryFixture(Arc<MemorySource>);

#[async_trait]
impl SourceFixture for MemoryFixture {
    async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar> {
        let id = CalendarId::new(name)?;
        self.0.add_calendar(&id);
        Ok(FixtureCalendar::new(id, self.0.clone()))
    }
    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()> {
        let policy = FingerprintPolicy::default();
        let events = events.iter().map(|t| Event::from_ics(calendar, t, &policy)).collect::<Result<_>>()?;
        self.0.replace_all(calendar, events);
        Ok(())
    }
    async fn expire_cursors(&self, calendar: &CalendarId) -> Result<bool> {
        self.0.expire_cursors(calendar);
        Ok(true)
    }
}

fn vcalendar(events: &[String]) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calscope//testkit//EN\r\n{}END:VCALENDAR\r\n", events.concat())
}

#[test]
fn memory_source_passes_the_source_checks() {
    block_on(run_source_checks(&MemoryFixture(Arc::new(MemorySource::new())))).unwrap();
}

#[test]
fn snapshot_only_memory_source_passes_the_source_checks() {
    block_on(run_source_checks(&MemoryFixture(Arc::new(MemorySource::snapshot_only())))).unwrap();
}

/// The fixture of `IcsSource` over files: one file per calendar, rewritten whole.
struct FileFixture {
    dir: PathBuf,
}

impl FileFixture {
    fn path(&self, calendar: &CalendarId) -> PathBuf {
        self.dir.join(format!("{calendar}.ics"))
    }
}

#[async_trait]
impl SourceFixture for FileFixture {
    async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar> {
        let id = CalendarId::new(name)?;
        std::fs::write(self.path(&id), vcalendar(&[])).unwrap();
        let source = IcsSource::from_file(id.clone(), self.path(&id));
        Ok(FixtureCalendar::new(id, Arc::new(source)))
    }
    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()> {
        std::fs::write(self.path(calendar), vcalendar(events)).unwrap();
        Ok(())
    }
    async fn expire_cursors(&self, _: &CalendarId) -> Result<bool> {
        Ok(false) // a feed's cursor is a hash of its text: nothing to expire
    }
}

#[test]
fn ics_file_source_passes_the_source_checks() {
    let dir = std::env::temp_dir().join(format!("calscope-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    block_on(run_source_checks(&FileFixture { dir: dir.clone() })).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Feeds served over http, with ETags.
type Feeds = Arc<Mutex<HashMap<String, String>>>;

async fn serve(State(feeds): State<Feeds>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(body) = feeds.lock().unwrap().get(name.trim_end_matches(".ics")).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    ([(header::ETAG, etag)], body).into_response()
}

/// The fixture of `IcsSource` over http: a real HTTP server on loopback.
struct HttpFixture {
    base: String,
    feeds: Feeds,
}

#[async_trait]
impl SourceFixture for HttpFixture {
    async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar> {
        let id = CalendarId::new(name)?;
        self.feeds.lock().unwrap().insert(name.to_owned(), vcalendar(&[]));
        let source = IcsSource::from_url(id.clone(), &format!("{}/{name}.ics", self.base), HttpConfig::default())?;
        Ok(FixtureCalendar::new(id, Arc::new(source)))
    }
    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()> {
        self.feeds.lock().unwrap().insert(calendar.as_str().to_owned(), vcalendar(events));
        Ok(())
    }
    async fn expire_cursors(&self, _: &CalendarId) -> Result<bool> {
        Ok(false)
    }
}

#[test]
fn ics_http_source_passes_the_source_checks() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let feeds = Feeds::default();
        let app = Router::new().route("/{name}", get(serve)).with_state(Arc::clone(&feeds));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        run_source_checks(&HttpFixture { base, feeds }).await.unwrap();
    });
}

/// A source that answers every delta as "nothing changed", losing changes: the checks must
/// catch it (they are not checks that cannot fail).
#[derive(Debug)]
struct LosesDeltas(Arc<MemorySource>);

#[async_trait]
impl CalendarSource for LosesDeltas {
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        self.0.calendars().await
    }
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let mut fetched = self.0.fetch(request).await?;
        if let calscope::Changes::Delta(d) = &mut fetched.changes {
            d.upserts.clear();
            d.removals.clear();
        }
        Ok(fetched)
    }
}

struct LossyFixture(MemoryFixture);

#[async_trait]
impl SourceFixture for LossyFixture {
    async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar> {
        let cal = self.0.create_calendar(name).await?;
        Ok(FixtureCalendar::new(cal.id, Arc::new(LosesDeltas(Arc::clone(&self.0.0)))))
    }
    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()> {
        self.0.set_events(calendar, events).await
    }
    async fn expire_cursors(&self, calendar: &CalendarId) -> Result<bool> {
        self.0.expire_cursors(calendar).await
    }
}

#[test]
fn a_source_that_loses_delta_changes_fails_the_source_checks() {
    let fixture = LossyFixture(MemoryFixture(Arc::new(MemorySource::new())));
    // The snapshot check passes (snapshots are intact); the cursor and delta checks do not.
    block_on(calscope::testkit::check_snapshot_complete(&fixture)).unwrap();
    let monotonic = block_on(calscope::testkit::check_cursor_monotonic(&fixture)).unwrap_err();
    assert!(monotonic.to_string().contains("cursor_monotonic"), "{monotonic}");
    let deltas = block_on(calscope::testkit::check_deltas_match_snapshots(&fixture)).unwrap_err();
    assert!(deltas.to_string().contains("deltas_match_snapshots"), "{deltas}");
}
