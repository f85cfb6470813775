//! `CalDavSource` against real CalDAV servers on loopback, Radicale 3.9 and Xandikos 0.4
//! (`bash .ci/test` starts them and sets `CALSCOPE_RADICALE_URL`, `CALSCOPE_RADICALE_DIR`,
//! `CALSCOPE_RADICALE_AUTH_URL` and `CALSCOPE_XANDIKOS_URL`), plus in-process fakes for what a
//! real server will not do on request (an href outside the collection, a truncated answer, a
//! 429 with Retry-After).

#![cfg(feature = "caldav")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use calscope::testkit::{FixtureCalendar, SourceFixture, run_source_checks};
use calscope::{
    CalDavConfig, CalDavSource, CalendarId, CalendarNaming, CalendarSource, Changes, Cursor, Engine, ErrorKind,
    FetchRequest, Fetched, HttpAuth, HttpConfig, LoadScope, MemoryStore, Store, SyncJob,
};

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Radicale,
    Xandikos,
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("the caldav tests need {var}: run `bash .ci/test`, which starts Radicale and Xandikos on loopback")
    })
}

/// A server and a client for the test's own writes to it.
#[derive(Clone)]
struct Server {
    kind: Kind,
    base: url::Url,
    /// Where new calendars go.
    home: String,
    user: Option<(String, String)>,
    http: reqwest::Client,
}

static NAMES: AtomicUsize = AtomicUsize::new(0);

impl Server {
    fn radicale() -> Self {
        Self::new(Kind::Radicale, &env("CALSCOPE_RADICALE_URL"), "/alice/", Some(("alice", "x")))
    }

    fn xandikos() -> Self {
        Self::new(Kind::Xandikos, &env("CALSCOPE_XANDIKOS_URL"), "/user/calendars/", None)
    }

    fn both() -> [Self; 2] {
        [Self::radicale(), Self::xandikos()]
    }

    fn new(kind: Kind, base: &str, home: &str, user: Option<(&str, &str)>) -> Self {
        // The tests' own client needs the crypto provider calscope's clients install.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            kind,
            base: url::Url::parse(base).unwrap(),
            home: home.to_owned(),
            user: user.map(|(u, p)| (u.to_owned(), p.to_owned())),
            http: reqwest::Client::new(),
        }
    }

    fn config(&self) -> CalDavConfig {
        let mut http = HttpConfig::default();
        if let Some((user, password)) = &self.user {
            http = http.auth(HttpAuth::Basic { user: user.clone(), password: password.clone() });
        }
        CalDavConfig::default().http(http)
    }

    fn request(&self, method: &str, url: &url::Url) -> reqwest::RequestBuilder {
        let r = self.http.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url.clone());
        match &self.user {
            Some((u, p)) => r.basic_auth(u, Some(p)),
            None => r,
        }
    }

    /// A new, empty calendar collection.
    async fn mkcalendar(&self, tag: &str) -> url::Url {
        let name = format!("{tag}-{}-{}", std::process::id(), NAMES.fetch_add(1, Ordering::Relaxed));
        let url = self.base.join(&format!("{}{name}/", self.home)).unwrap();
        let status = self.request("MKCALENDAR", &url).send().await.unwrap().status();
        assert!(status.is_success(), "{:?} MKCALENDAR {url}: {status}", self.kind);
        url
    }

    /// Writes one resource (a VCALENDAR holding `events`).
    async fn put(&self, collection: &url::Url, name: &str, events: &[String]) {
        let url = collection.join(&format!("{name}.ics")).unwrap();
        let body = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calscope//tests//EN\r\n{}END:VCALENDAR\r\n",
            events.concat()
        );
        let r = self.request("PUT", &url).header("Content-Type", "text/calendar; charset=utf-8").body(body);
        let status = r.send().await.unwrap().status();
        assert!(status.is_success(), "{:?} PUT {url}: {status}", self.kind);
    }

    async fn delete(&self, collection: &url::Url, name: &str) {
        let url = collection.join(&format!("{name}.ics")).unwrap();
        let status = self.request("DELETE", &url).send().await.unwrap().status();
        // Radicale answers 200, Xandikos 204.
        assert!(status.is_success(), "{:?} DELETE {url}: {status}", self.kind);
    }

    async fn source(&self, collection: &url::Url) -> CalDavSource {
        CalDavSource::discover(collection.as_str(), self.config()).await.unwrap()
    }
}

fn vevent(uid: &str, rid: Option<&str>, summary: &str) -> String {
    let rid_line = rid.map(|r| format!("RECURRENCE-ID:{r}\r\n")).unwrap_or_default();
    let start = rid.unwrap_or("20260105T090000Z");
    let rrule = if rid.is_none() && uid.starts_with("weekly") { "RRULE:FREQ=WEEKLY;COUNT=10\r\n" } else { "" };
    format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\n{rid_line}DTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\n{rrule}SUMMARY:{summary}\r\nEND:VEVENT\r\n"
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

async fn stored(engine: &Engine<MemoryStore>, id: &CalendarId) -> Vec<(String, String)> {
    let state = engine.store().load(id, LoadScope::All).await.unwrap();
    let mut keys: Vec<(String, String)> = state
        .entries()
        .iter()
        .map(|e| {
            (e.key.uid.as_str().to_owned(), e.key.recurrence_id.as_ref().map(ToString::to_string).unwrap_or_default())
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn first_sync_then_incremental_changes_on_both_servers() {
    runtime().block_on(async {
        for server in Server::both() {
            let col = server.mkcalendar("incr").await;
            // One resource holds a recurring master and its override: two events.
            server
                .put(
                    &col,
                    "weekly",
                    &[vevent("weekly@t", None, "Weekly"), vevent("weekly@t", Some("20260112T090000Z"), "Moved")],
                )
                .await;
            server.put(&col, "a", &[vevent("a@t", None, "A")]).await;
            server.put(&col, "b", &[vevent("b@t", None, "B")]).await;
            let source = server.source(&col).await;
            let id = source.calendars().await.unwrap()[0].id.clone();
            assert_eq!(id.as_str(), col.as_str(), "ids are the collection's URL");
            let engine = Engine::new(MemoryStore::new());
            let first = engine.sync(&source, &id).await;
            assert!(first.is_ok(), "{:?}: {first:?}", server.kind);
            assert_eq!(first.inserted, 4, "{:?}", server.kind);

            let before = source.requests();
            let again = engine.sync(&source, &id).await;
            assert_eq!(
                (again.writes(), source.requests() - before),
                (0, 1),
                "{:?}: one request, no write",
                server.kind
            );

            // Modify, delete, add.
            server.put(&col, "a", &[vevent("a@t", None, "A (edited)")]).await;
            server.delete(&col, "b").await;
            server.put(&col, "c", &[vevent("c@t", None, "C")]).await;
            let r = engine.sync(&source, &id).await;
            assert!(r.is_ok(), "{:?}: {r:?}", server.kind);
            assert_eq!((r.inserted, r.updated, r.deleted), (1, 1, 1), "{:?}: {r:?}", server.kind);

            // The override goes away while the master stays: the resource is replaced whole.
            server.put(&col, "weekly", &[vevent("weekly@t", None, "Weekly")]).await;
            let r = engine.sync(&source, &id).await;
            assert_eq!((r.inserted, r.updated, r.deleted), (0, 0, 1), "{:?}: {r:?}", server.kind);
            // The whole recurring resource goes away.
            server
                .put(
                    &col,
                    "weekly",
                    &[vevent("weekly@t", None, "Weekly"), vevent("weekly@t", Some("20260119T090000Z"), "Moved")],
                )
                .await;
            assert_eq!(engine.sync(&source, &id).await.inserted, 1);
            server.delete(&col, "weekly").await;
            let r = engine.sync(&source, &id).await;
            assert_eq!(r.deleted, 2, "{:?}: {r:?}", server.kind);
            assert_eq!(
                stored(&engine, &id).await,
                [("a@t".to_owned(), String::new()), ("c@t".to_owned(), String::new())],
                "{:?}",
                server.kind
            );
        }
    });
}

/// Rewrites the stored sync token into one the server never issued, as a server that forgot
/// its old tokens would see it.
#[derive(Debug)]
struct ForgottenToken<'a>(&'a CalDavSource);

#[async_trait]
impl CalendarSource for ForgottenToken<'_> {
    fn capabilities(&self) -> calscope::Capabilities {
        self.0.capabilities()
    }
    async fn calendars(&self) -> calscope::Result<Vec<calscope::CalendarInfo>> {
        self.0.calendars().await
    }
    async fn fetch(&self, request: FetchRequest<'_>) -> calscope::Result<Fetched> {
        let stale = request.cursor.map(|_| {
            // Radicale's tokens are URLs, Xandikos's hashes: both refuse an unknown one.
            Cursor::new("sync-token http://radicale.org/ns/sync/0000000000000000000000000000000000000000000000000000000000000000\n")
        });
        self.0.fetch(request.with_cursor(stale.as_ref())).await
    }
}

#[test]
fn an_expired_token_falls_back_to_a_listing_that_deletes_the_gap() {
    runtime().block_on(async {
        for server in Server::both() {
            let col = server.mkcalendar("expiry").await;
            for name in ["keep", "gone"] {
                server.put(&col, name, &[vevent(&format!("{name}@t"), None, name)]).await;
            }
            let source = server.source(&col).await;
            let id = source.calendars().await.unwrap()[0].id.clone();
            let engine = Engine::new(MemoryStore::new());
            assert_eq!(engine.sync(&source, &id).await.inserted, 2);
            server.delete(&col, "gone").await;
            server.put(&col, "new", &[vevent("new@t", None, "new")]).await;
            let r = engine.sync(&ForgottenToken(&source), &id).await;
            assert!(r.is_ok(), "{:?}: {r:?}", server.kind);
            assert!(r.warnings.iter().any(|w| w.contains("sync token expired")), "{:?}: {r:?}", server.kind);
            assert_eq!((r.inserted, r.deleted), (1, 1), "{:?}: {r:?}", server.kind);
            assert_eq!(
                stored(&engine, &id).await,
                [("keep@t".to_owned(), String::new()), ("new@t".to_owned(), String::new())]
            );
            // The cursor now holds a fresh token: the next sync is incremental again.
            let before = source.requests();
            assert_eq!(engine.sync(&source, &id).await.writes(), 0);
            assert_eq!(source.requests() - before, 1, "{:?}", server.kind);
        }
    });
}

/// A memory store noting how many requests the source had sent when each whole load began.
#[derive(Debug)]
struct WatchingStore {
    inner: MemoryStore,
    source: Arc<CalDavSource>,
    whole_loads_at: Mutex<Vec<u64>>,
}

#[async_trait]
impl Store for WatchingStore {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> calscope::Result<calscope::StoredState> {
        if matches!(scope, LoadScope::All) {
            self.whole_loads_at.lock().unwrap().push(self.source.requests());
        }
        self.inner.load(calendar, scope).await
    }
    async fn apply(&self, request: calscope::ApplyRequest<'_>) -> calscope::Result<calscope::Applied> {
        self.inner.apply(request).await
    }
}

#[test]
fn a_listing_is_announced_so_the_stored_state_loads_during_its_requests() {
    runtime().block_on(async {
        for server in Server::both() {
            let col = server.mkcalendar("announce").await;
            for name in ["a", "b", "c"] {
                server.put(&col, name, &[vevent(&format!("{name}@t"), None, name)]).await;
            }
            let source = Arc::new(server.source(&col).await);
            let id = source.calendars().await.unwrap()[0].id.clone();
            let store = WatchingStore {
                inner: MemoryStore::new(),
                source: Arc::clone(&source),
                whole_loads_at: Mutex::default(),
            };
            let engine = Engine::new(store);
            let before = source.requests();
            assert_eq!(engine.sync(&*source, &id).await.inserted, 3, "{:?}", server.kind);
            // The whole load began before the listing's first request, not after its last.
            assert_eq!(*engine.store().whole_loads_at.lock().unwrap(), [before], "{:?}", server.kind);
            assert!(source.requests() >= before + 2, "{:?}", server.kind);
            // A wrapper that changes the cursor keeps the announcement (`with_cursor`): the
            // forgotten token's listing is announced too, and the gap's deletion applied.
            server.delete(&col, "b").await;
            let before = source.requests();
            let r = engine.sync(&ForgottenToken(&source), &id).await;
            assert_eq!((r.inserted, r.deleted), (0, 1), "{:?}: {r:?}", server.kind);
            let loads = engine.store().whole_loads_at.lock().unwrap().clone();
            assert_eq!(loads.len(), 2, "{:?}", server.kind);
            // The refused token costs one request before the listing is announced.
            assert_eq!(loads[1], before + 1, "{:?}", server.kind);
            // An incremental sync touches what changed only: no whole load.
            server.put(&col, "d", &[vevent("d@t", None, "d")]).await;
            assert_eq!(engine.sync(&*source, &id).await.inserted, 1, "{:?}", server.kind);
            assert_eq!(engine.store().whole_loads_at.lock().unwrap().len(), 2, "{:?}", server.kind);
        }
    });
}

#[test]
fn five_hundred_events_sync_in_few_requests_and_an_unchanged_calendar_costs_one() {
    runtime().block_on(async {
        for server in Server::both() {
            let col = server.mkcalendar("big").await;
            for i in 0..500 {
                server.put(&col, &format!("e{i}"), &[vevent(&format!("e{i}@t"), None, &format!("Event {i}"))]).await;
            }
            let source = server.source(&col).await;
            let id = source.calendars().await.unwrap()[0].id.clone();
            let engine = Engine::new(MemoryStore::new());
            let (before, started) = (source.requests(), Instant::now());
            let first = engine.sync(&source, &id).await;
            let (first_requests, first_time) = (source.requests() - before, started.elapsed());
            assert_eq!(first.inserted, 500, "{:?}: {first:?}", server.kind);
            // One sync-collection report and five multigets of 100.
            assert_eq!(first_requests, 6, "{:?}", server.kind);
            let (before, started) = (source.requests(), Instant::now());
            let again = engine.sync(&source, &id).await;
            let (again_requests, again_time) = (source.requests() - before, started.elapsed());
            assert_eq!((again.writes(), again_requests), (0, 1), "{:?}", server.kind);
            eprintln!(
                "{:?}: first sync of 500 events: {first_requests} requests, {first_time:?}; unchanged re-sync: {again_requests} request, {again_time:?}",
                server.kind
            );
        }
    });
}

/// A fetch bringing more events than the per-calendar cap fails as `LimitExceeded`, and nothing
/// is written (the store counts its own writes).
#[test]
fn more_events_than_the_cap_fail_the_fetch_and_write_nothing() {
    runtime().block_on(async {
        for server in Server::both() {
            let col = server.mkcalendar("capped").await;
            for i in 0..6 {
                server.put(&col, &format!("c{i}"), &[vevent(&format!("c{i}@t"), None, "capped")]).await;
            }
            let source = CalDavSource::discover(col.as_str(), server.config().max_events(5)).await.unwrap();
            let id = source.calendars().await.unwrap()[0].id.clone();
            let engine = Engine::new(MemoryStore::new());
            let report = engine.sync(&source, &id).await;
            assert_eq!(report.error_kind, Some(ErrorKind::LimitExceeded), "{:?}: {report:?}", server.kind);
            assert_eq!(engine.store().stats().rows(), 0);
            // At the cap it syncs.
            let roomy = CalDavSource::discover(col.as_str(), server.config().max_events(6)).await.unwrap();
            assert_eq!(engine.sync(&roomy, &id).await.inserted, 6, "{:?}", server.kind);
        }
    });
}

#[test]
fn two_calendars_sharing_uids_stay_apart() {
    runtime().block_on(async {
        for server in Server::both() {
            let (a, b) = (server.mkcalendar("shared-a").await, server.mkcalendar("shared-b").await);
            for col in [&a, &b] {
                server.put(col, "invite", &[vevent("invite@t", None, "Team meeting")]).await;
            }
            let engine = Engine::new(MemoryStore::new());
            let (sa, sb) = (server.source(&a).await, server.source(&b).await);
            let (ia, ib) = (sa.calendars().await.unwrap()[0].id.clone(), sb.calendars().await.unwrap()[0].id.clone());
            assert_ne!(ia, ib);
            let report = engine.sync_all([SyncJob::new(&sa, &ia), SyncJob::new(&sb, &ib)]).await;
            assert_eq!(report.writes(), 2);
            server.put(&a, "invite", &[vevent("invite@t", None, "Team meeting (moved)")]).await;
            let report = engine.sync_all([SyncJob::new(&sa, &ia), SyncJob::new(&sb, &ib)]).await;
            assert_eq!((report.writes(), report.calendars[0].updated), (1, 1), "{:?}: {report:?}", server.kind);
        }
    });
}

#[test]
fn discovery_from_the_server_url_finds_every_calendar_of_the_account() {
    runtime().block_on(async {
        for server in Server::both() {
            let cols = [server.mkcalendar("acct-one").await, server.mkcalendar("acct-two").await];
            for (i, col) in cols.iter().enumerate() {
                server.put(col, "x", &[vevent(&format!("x{i}@t"), None, "x")]).await;
            }
            let config = server.config().naming(CalendarNaming::Prefix("me".into()));
            let source = CalDavSource::discover(server.base.as_str(), config).await.unwrap();
            let listed = source.calendars().await.unwrap();
            for col in &cols {
                let name = last_segment(col);
                let id = CalendarId::new(format!("me/{name}")).unwrap();
                assert!(listed.iter().any(|c| c.id == id), "{:?}: {id} not in {listed:?}", server.kind);
            }
            let engine = Engine::new(MemoryStore::new());
            let report = engine.sync_all(listed.iter().map(|c| SyncJob::new(&source, &c.id))).await;
            assert!(report.is_ok(), "{:?}: {:?}", server.kind, report.failed().next());
            assert!(report.writes() >= 2);
            // Debug output shows the origin only.
            assert!(!format!("{source:?}").contains("alice"));
        }
    });
}

#[test]
fn basic_auth_is_checked_and_the_password_never_shows() {
    runtime().block_on(async {
        let base = env("CALSCOPE_RADICALE_AUTH_URL");
        let server = Server::new(Kind::Radicale, &base, "/alice/", Some(("alice", "s3cret-pass")));
        let col = server.mkcalendar("auth").await;
        server.put(&col, "a", &[vevent("a@t", None, "A")]).await;
        let wrong = Server::new(Kind::Radicale, &base, "/alice/", Some(("alice", "wrong")));
        let err = CalDavSource::discover(col.as_str(), wrong.config()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        assert!(!format!("{err:?}").contains("wrong"));
        // Credentials in the URL work too, and stay out of ids and output.
        let mut with_user = col.clone();
        with_user.set_username("alice").unwrap();
        with_user.set_password(Some("s3cret-pass")).unwrap();
        let source = CalDavSource::discover(with_user.as_str(), CalDavConfig::default()).await.unwrap();
        let id = source.calendars().await.unwrap()[0].id.clone();
        assert!(!id.as_str().contains("s3cret"), "{id}");
        assert!(!format!("{source:?}").contains("s3cret"));
        let r = Engine::new(MemoryStore::new()).sync(&source, &id).await;
        assert_eq!(r.inserted, 1, "{r:?}");
    });
}

/// The testkit's fixture for a CalDAV server: one collection per check, content set with PUT
/// and DELETE, each UID one resource.
struct DavFixture {
    server: Server,
}

#[async_trait]
impl SourceFixture for DavFixture {
    async fn create_calendar(&self, name: &str) -> calscope::Result<FixtureCalendar> {
        let col = self.server.mkcalendar(name).await;
        let source = self.server.source(&col).await;
        let id = source.calendars().await?[0].id.clone();
        Ok(FixtureCalendar::new(id, Arc::new(source)))
    }

    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> calscope::Result<()> {
        let col = url::Url::parse(calendar.as_str()).unwrap();
        let mut by_uid: std::collections::BTreeMap<String, Vec<String>> = std::collections::BTreeMap::new();
        for e in events {
            let uid = e.lines().find_map(|l| l.strip_prefix("UID:")).unwrap().trim().to_owned();
            by_uid.entry(uid).or_default().push(e.clone());
        }
        // What is there now: a Depth 1 listing.
        let listing = self
            .server
            .request("PROPFIND", &col)
            .header("Depth", "1")
            .header("Content-Type", "application/xml")
            .body(r#"<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>"#)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for uid in by_uid.keys() {
            self.server.put(&col, &resource_name(uid), &by_uid[uid]).await;
        }
        for existing in listing.split(".ics<").filter_map(|s| s.rsplit('/').next()) {
            if !by_uid.keys().any(|u| resource_name(u) == existing) && !existing.contains('>') {
                self.server.delete(&col, existing).await;
            }
        }
        Ok(())
    }

    async fn expire_cursors(&self, calendar: &CalendarId) -> calscope::Result<bool> {
        if self.server.kind != Kind::Radicale {
            return Ok(false); // Xandikos's tokens are git commits: it never forgets them
        }
        // Radicale keeps a collection's token history in its cache: removing it expires them.
        let col = url::Url::parse(calendar.as_str()).unwrap();
        let dir = std::path::Path::new(&env("CALSCOPE_RADICALE_DIR"))
            .join("collection-root")
            .join(col.path().trim_matches('/'))
            .join(".Radicale.cache")
            .join("sync-token");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(true)
    }
}

fn last_segment(url: &url::Url) -> &str {
    url.path_segments().unwrap().rfind(|s| !s.is_empty()).unwrap()
}

fn resource_name(uid: &str) -> String {
    uid.replace(['@', '.'], "-")
}

#[test]
fn both_servers_pass_the_testkit_source_checks() {
    runtime().block_on(async {
        for server in Server::both() {
            let kind = server.kind;
            run_source_checks(&DavFixture { server }).await.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Fault injection: an in-process fake server.

mod fake {
    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};

    /// One scripted answer: status, extra headers, body.
    pub(super) type Answer = (u16, Vec<(&'static str, String)>, String);

    /// What the fake answers: a script of answers for REPORTs.
    #[derive(Default)]
    pub(super) struct Script {
        pub(super) reports: Vec<Answer>,
        pub(super) requests: Vec<String>,
    }

    pub(super) type Shared = Arc<Mutex<Script>>;

    const COLLECTION: &str = r#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:response><d:href>/cal/work/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/><c:calendar/></d:resourcetype><d:supported-report-set><d:supported-report><d:report><d:sync-collection/></d:report></d:supported-report></d:supported-report-set></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response></d:multistatus>"#;

    async fn handle(State(s): State<Shared>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
        let mut script = s.lock().unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        script.requests.push(format!("{method} {}", body.chars().take(60).collect::<String>()));
        let _ = headers;
        if method.as_str() == "PROPFIND" {
            return (StatusCode::MULTI_STATUS, COLLECTION).into_response();
        }
        if script.reports.is_empty() {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
        let (status, extra, text) = script.reports.remove(0);
        let mut response = (StatusCode::from_u16(status).unwrap(), text).into_response();
        for (k, v) in extra {
            response.headers_mut().insert(k, v.parse().unwrap());
        }
        response
    }

    pub(super) async fn start(script: Script) -> (String, Shared) {
        let shared: Shared = Arc::new(Mutex::new(script));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cal/work/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, shared)
    }
}

fn multistatus(inner: &str, token: &str) -> String {
    format!(
        r#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">{inner}<d:sync-token>{token}</d:sync-token></d:multistatus>"#
    )
}

fn changed(href: &str) -> String {
    format!(
        r#"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#
    )
}

fn data(href: &str, uid: &str) -> String {
    let ics = format!("BEGIN:VCALENDAR\r\n{}END:VCALENDAR\r\n", vevent(uid, None, uid));
    format!(
        r#"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>"1"</d:getetag><c:calendar-data>{ics}</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#
    )
}

#[test]
fn an_href_outside_the_collection_is_refused_and_nothing_is_written() {
    runtime().block_on(async {
        for evil in ["/cal/other/x.ics", "/cal/work/../other/x.ics", "http://evil.example/cal/work/x.ics"] {
            let script =
                fake::Script { reports: vec![(207, vec![], multistatus(&changed(evil), "t1"))], ..Default::default() };
            let (url, _) = fake::start(script).await;
            let source = CalDavSource::discover(&url, CalDavConfig::default()).await.unwrap();
            let id = source.calendars().await.unwrap()[0].id.clone();
            let engine = Engine::new(MemoryStore::new());
            let r = engine.sync(&source, &id).await;
            assert_eq!(r.error_kind, Some(ErrorKind::ScopeViolation), "{evil}: {r:?}");
            assert!(r.error.as_deref().unwrap_or_default().contains("outside the collection"), "{r:?}");
            assert_eq!(engine.store().stats().rows(), 0);
        }
    });
}

#[test]
fn a_truncated_report_is_followed_and_429_waits_as_asked() {
    runtime().block_on(async {
        let truncated = format!(
            "{}<d:response><d:href>/cal/work/</d:href><d:status>HTTP/1.1 507 Insufficient Storage</d:status></d:response>",
            changed("/cal/work/a.ics")
        );
        let script = fake::Script {
            reports: vec![
                (429, vec![("retry-after", "1".to_owned())], String::new()),
                (207, vec![], multistatus(&truncated, "t1")),
                (503, vec![], String::new()),
                (207, vec![], multistatus(&changed("/cal/work/b.ics"), "t2")),
                (207, vec![], multistatus(&format!("{}{}", data("/cal/work/b.ics", "b"), data("/cal/work/a.ics", "a")), "")),
            ],
            ..Default::default()
        };
        let (url, shared) = fake::start(script).await;
        let source = CalDavSource::discover(&url, CalDavConfig::default()).await.unwrap();
        let id = source.calendars().await.unwrap()[0].id.clone();
        let started = Instant::now();
        let fetched = source.fetch(FetchRequest::new(&id, None)).await.unwrap();
        assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honored");
        let Changes::Snapshot(s) = &fetched.changes else { panic!("{fetched:?}") };
        let mut uids: Vec<&str> = s.events().iter().map(|e| e.key().uid.as_str()).collect();
        uids.sort_unstable();
        assert_eq!(uids, ["a", "b"], "both pages of the truncated report were fetched");
        assert!(fetched.cursor.unwrap().as_str().contains("sync-token t2"));
        let requests = shared.lock().unwrap().requests.len();
        assert_eq!(requests, 1 + 5, "one PROPFIND, then 429, 207 (507 inside), 503, 207, multiget");
    });
}

#[test]
fn the_sync_example_syncs_a_caldav_collection_and_every_calendar_of_an_account() {
    let rt = runtime();
    let server = Server::xandikos();
    let (col, other) = rt.block_on(async {
        let col = server.mkcalendar("example").await;
        let other = server.mkcalendar("example-other").await;
        server.put(&col, "a", &[vevent("a@t", None, "A")]).await;
        server
            .put(&col, "w", &[vevent("weekly@t", None, "W"), vevent("weekly@t", Some("20260112T090000Z"), "Moved")])
            .await;
        server.put(&other, "b", &[vevent("b@t", None, "B")]).await;
        (col, other)
    });
    let dir = std::env::temp_dir().join(format!("calscope-caldav-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("dav.db");
    let run = |args: &[String]| {
        let out = std::process::Command::new(crate::sync_example::sync_bin())
            .arg("--db")
            .arg(&db)
            .arg("--json")
            .args(args)
            .output()
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code(), json)
    };
    // One collection, synced as the given ID.
    let (code, json) = run(&[format!("team=caldav+{col}")]);
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(json["calendars"][0]["calendar"], "team");
    assert_eq!(json["calendars"][0]["inserted"], 3);
    let (code, json) = run(&[format!("team=caldav+{col}")]);
    assert_eq!((code, json["writes"].as_u64()), (Some(0), Some(0)), "{json}");
    // The whole account: every calendar, as ID/NAME.
    let (code, json) = run(&[format!("me=caldav+{}", server.base)]);
    assert_eq!(code, Some(0), "{json}");
    let names: Vec<String> =
        json["calendars"].as_array().unwrap().iter().map(|c| c["calendar"].as_str().unwrap().to_owned()).collect();
    for c in [&col, &other] {
        let name = last_segment(c);
        assert!(names.contains(&format!("me/{name}")), "{names:?}");
    }
    // A server that is not there: that ID fails with one line, exit status 1.
    let (code, json) = run(&["gone=caldav+http://127.0.0.1:9/".to_owned()]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(json["calendars"][0]["status"], "error");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A server without sync-collection (as some older ones are), in process: resources with
/// ETags, a ctag, PROPFIND listings and calendar-multiget.
mod nosync {
    use std::collections::BTreeMap;
    use std::fmt::Write as _;

    use super::*;
    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::{HeaderMap, Method, StatusCode};
    use axum::response::{IntoResponse, Response};

    #[derive(Default)]
    pub(super) struct Server {
        /// name → (etag, ics)
        pub(super) resources: BTreeMap<String, (u32, String)>,
        pub(super) ctag: u32,
        pub(super) requests: Vec<String>,
    }

    impl Server {
        pub(super) fn put(&mut self, name: &str, uid: &str, summary: &str) {
            self.ctag += 1;
            let ics = format!("BEGIN:VCALENDAR\r\n{}END:VCALENDAR\r\n", vevent(uid, None, summary));
            self.resources.insert(name.to_owned(), (self.ctag, ics));
        }
        pub(super) fn delete(&mut self, name: &str) {
            self.ctag += 1;
            self.resources.remove(name);
        }
    }

    pub(super) type Shared = Arc<Mutex<Server>>;

    async fn handle(State(s): State<Shared>, method: Method, headers: HeaderMap, body: Bytes) -> Response {
        let mut server = s.lock().unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        let depth = headers.get("depth").and_then(|v| v.to_str().ok()).unwrap_or("0").to_owned();
        server.requests.push(format!("{method} {depth} {body}"));
        let collection = format!(
            "<d:response><d:href>/cal/work/</d:href><d:propstat><d:prop><d:resourcetype><d:collection/><c:calendar/></d:resourcetype><cs:getctag>ctag-{}</cs:getctag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>",
            server.ctag
        );
        let wrap = |inner: String| {
            let xml = format!(
                r#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/">{inner}</d:multistatus>"#
            );
            (StatusCode::MULTI_STATUS, xml).into_response()
        };
        match method.as_str() {
            "PROPFIND" if depth == "0" => wrap(collection),
            "PROPFIND" => {
                let mut inner = collection;
                for (name, (etag, _)) in &server.resources {
                    let _ = write!(
                        inner,
                        r#"<d:response><d:href>/cal/work/{name}.ics</d:href><d:propstat><d:prop><d:getetag>"{etag}"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#
                    );
                }
                wrap(inner)
            }
            "REPORT" if body.contains("sync-collection") => StatusCode::NOT_IMPLEMENTED.into_response(),
            "REPORT" => {
                let mut inner = String::new();
                for href in body.split("<d:href>").skip(1).filter_map(|s| s.split("</d:href>").next()) {
                    let name = href.trim_start_matches("/cal/work/").trim_end_matches(".ics");
                    if let Some((etag, ics)) = server.resources.get(name) {
                        let _ = write!(
                            inner,
                            r#"<d:response><d:href>{href}</d:href><d:propstat><d:prop><d:getetag>"{etag}"</d:getetag><c:calendar-data>{ics}</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>"#
                        );
                    }
                }
                wrap(inner)
            }
            _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
        }
    }

    pub(super) async fn start(server: Server) -> (String, Shared) {
        let shared: Shared = Arc::new(Mutex::new(server));
        let app = Router::new().fallback(handle).with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cal/work/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, shared)
    }
}

#[test]
fn without_sync_collection_the_ctag_short_circuits_and_only_changed_etags_are_fetched() {
    runtime().block_on(async {
        let mut server = nosync::Server::default();
        for name in ["a", "b", "c"] {
            server.put(name, &format!("{name}@t"), name);
        }
        let (url, shared) = nosync::start(server).await;
        let source = CalDavSource::discover(&url, CalDavConfig::default()).await.unwrap();
        let id = source.calendars().await.unwrap()[0].id.clone();
        let engine = Engine::new(MemoryStore::new());
        let first = engine.sync(&source, &id).await;
        assert_eq!(first.inserted, 3, "{first:?}");
        let requests = |shared: &nosync::Shared| std::mem::take(&mut shared.lock().unwrap().requests);
        let sent = requests(&shared);
        assert!(sent.iter().any(|r| r.contains("sync-collection")), "sync-collection was tried: {sent:?}");
        assert!(sent.last().unwrap().contains("calendar-multiget"), "{sent:?}");

        // Unchanged: one PROPFIND of the ctag, nothing written.
        let again = engine.sync(&source, &id).await;
        assert_eq!(again.writes(), 0, "{again:?}");
        let sent = requests(&shared);
        assert_eq!(sent.len(), 1, "{sent:?}");
        assert!(sent[0].starts_with("PROPFIND 0"), "{sent:?}");

        // One edited, one deleted, one added: only the two new ETags are fetched.
        {
            let mut s = shared.lock().unwrap();
            s.put("a", "a@t", "A (edited)");
            s.delete("b");
            s.put("d", "d@t", "d");
        }
        let r = engine.sync(&source, &id).await;
        assert_eq!((r.inserted, r.updated, r.deleted), (1, 1, 1), "{r:?}");
        let sent = requests(&shared);
        assert_eq!(sent.len(), 3, "ctag, listing, one multiget: {sent:?}");
        let multiget = &sent[2];
        assert!(multiget.contains("/cal/work/a.ics") && multiget.contains("/cal/work/d.ics"), "{multiget}");
        assert!(!multiget.contains("/cal/work/c.ics"), "an unchanged ETag is not fetched: {multiget}");
    });
}
