//! The fleet: schedule conformance (memory, SQLite; Postgres in `postgres.rs`), the worker
//! loop, and the shared rate limiter measured against a loopback server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use calscope::schedule::{RateLimit, RateLimits, Schedule, Worker, WorkerOptions};
use calscope::{CalendarId, CalendarSource, Engine, Error, ErrorKind, HttpConfig, IcsSource, MemoryStore, SqliteStore};
use futures::future::BoxFuture;

fn sleep(d: Duration) -> BoxFuture<'static, ()> {
    Box::pin(tokio::time::sleep(d))
}

fn feed(uid: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Sources from the spec: the spec is the feed's text (`fail` fails).
fn factory(
    calls: Arc<Mutex<HashMap<String, u32>>>,
) -> impl Fn(&CalendarId, &str) -> calscope::Result<Arc<dyn CalendarSource>> {
    move |id, spec| {
        *calls.lock().unwrap().entry(id.as_str().to_owned()).or_default() += 1;
        if spec == "fail" {
            return Err(Error::new(ErrorKind::Transport, "the test server is down"));
        }
        Ok(Arc::new(IcsSource::from_bytes(id.clone(), spec.as_bytes().to_vec())))
    }
}

#[tokio::test]
async fn memory_schedule_passes_the_testkit() {
    calscope::testkit::run_schedule_checks(&MemoryStore::new()).await.unwrap();
}

#[tokio::test]
async fn sqlite_schedule_passes_the_testkit() {
    calscope::testkit::run_schedule_checks(&SqliteStore::open_in_memory().unwrap()).await.unwrap();
}

/// Two stores on one file stand for two processes: claiming at once, no calendar is handed
/// out twice.
#[tokio::test]
async fn sqlite_claims_do_not_overlap_across_connections() {
    let dir = std::env::temp_dir().join(format!("calscope-schedule-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fleet.db");
    let _ = std::fs::remove_file(&path);
    let a = Arc::new(SqliteStore::open(&path).unwrap());
    let b = Arc::new(SqliteStore::open(&path).unwrap());
    let now = chrono::Utc::now();
    for i in 0..200 {
        a.register(&CalendarId::new(format!("c{i}")).unwrap(), "s", Duration::from_secs(3600), now).await.unwrap();
    }
    let grab = |store: Arc<SqliteStore>, name: &'static str| async move {
        let mut got = Vec::new();
        loop {
            let claims = store.claim(name, 7, Duration::from_secs(60), now).await.unwrap();
            if claims.is_empty() {
                return got;
            }
            got.extend(claims.into_iter().map(|c| c.calendar));
        }
    };
    let (x, y) = tokio::join!(tokio::spawn(grab(Arc::clone(&a), "a")), tokio::spawn(grab(Arc::clone(&b), "b")));
    let (x, y) = (x.unwrap(), y.unwrap());
    let mut all: Vec<_> = x.iter().chain(&y).collect();
    all.sort();
    all.dedup();
    assert_eq!(x.len() + y.len(), 200, "claimed {} + {}", x.len(), y.len());
    assert_eq!(all.len(), 200, "a calendar was claimed twice");
    drop((a, b));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Three workers over 300 calendars: each calendar synced exactly once per round, the
/// events exact.
#[tokio::test]
async fn three_workers_sync_each_calendar_once_per_round() {
    let store = Arc::new(MemoryStore::new());
    let now = chrono::Utc::now();
    for i in 0..300 {
        let id = CalendarId::new(format!("cal{i:03}")).unwrap();
        store.register(&id, &feed(&format!("e{i}")), Duration::from_secs(3600), now).await.unwrap();
    }
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let round = || async {
        let workers: Vec<_> = (0..3)
            .map(|w| {
                let worker =
                    Worker::new(format!("w{w}"), Engine::new(Arc::clone(&store)), factory(Arc::clone(&calls)), sleep)
                        .options(WorkerOptions::default().concurrency(4).until_idle(true));
                tokio::spawn(async move { worker.run(futures::future::pending()).await.unwrap() })
            })
            .collect();
        let mut synced = 0;
        for w in workers {
            synced += w.await.unwrap().synced;
        }
        synced
    };
    assert_eq!(round().await, 300);
    assert!(calls.lock().unwrap().values().all(|&n| n == 1));
    assert_eq!(calls.lock().unwrap().len(), 300);
    // Round two: everything poked.
    for e in store.entries().await.unwrap() {
        store.poke(&e.calendar, chrono::Utc::now()).await.unwrap();
    }
    assert_eq!(round().await, 300);
    assert!(calls.lock().unwrap().values().all(|&n| n == 2));
    let entries = store.entries().await.unwrap();
    assert!(entries.iter().all(|e| e.syncs == 2 && e.lease_owner.is_none()), "{:?}", entries.first());
    assert_eq!(store.stats().inserted, 300, "the second round wrote nothing");
    assert_eq!(store.stats().updated + store.stats().deleted, 0);
    for i in [0, 150, 299] {
        let events = store.events(&CalendarId::new(format!("cal{i:03}")).unwrap());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].key().uid.as_str(), format!("e{i}"));
    }
}

/// A failing source backs off: a worker running for a while builds it once, not in a loop;
/// the failure is kept.
#[tokio::test]
async fn a_failing_source_backs_off() {
    let store = Arc::new(MemoryStore::new());
    let bad = CalendarId::new("bad").unwrap();
    store.register(&bad, "fail", Duration::from_secs(3600), chrono::Utc::now()).await.unwrap();
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let worker = Worker::new("w", Engine::new(Arc::clone(&store)), factory(Arc::clone(&calls)), sleep)
        .options(WorkerOptions::default().poll(Duration::from_millis(20)));
    let report = worker.run(tokio::time::sleep(Duration::from_millis(400))).await.unwrap();
    assert_eq!(report.failed, 1);
    assert_eq!(calls.lock().unwrap()["bad"], 1, "the failing calendar was retried in a hot loop");
    let e = &store.entries().await.unwrap()[0];
    assert_eq!((e.failures, e.syncs, e.last_error_kind), (1, 0, Some(ErrorKind::Transport)));
    assert!(e.last_error.as_deref().unwrap().contains("the test server is down"));
    let wait = (e.next_due_at - chrono::Utc::now()).num_seconds();
    assert!((50..=66).contains(&wait), "backed off {wait} s");
    assert!(e.lease_owner.is_none());
}

/// A stop signal lets in-flight syncs finish and record; nothing stays leased.
#[tokio::test]
async fn stopping_finishes_in_flight_syncs_and_leaves_no_lease() {
    #[derive(Debug)]
    struct Slow;
    #[async_trait::async_trait]
    impl CalendarSource for Slow {
        fn capabilities(&self) -> calscope::Capabilities {
            calscope::Capabilities::snapshot_only()
        }
        async fn calendars(&self) -> calscope::Result<Vec<calscope::CalendarInfo>> {
            Ok(Vec::new())
        }
        async fn fetch(&self, r: calscope::FetchRequest<'_>) -> calscope::Result<calscope::Fetched> {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let source = IcsSource::from_bytes(r.calendar.clone(), feed("slow").into_bytes());
            source.fetch(calscope::FetchRequest::new(r.calendar, None)).await
        }
    }
    let store = Arc::new(MemoryStore::new());
    for i in 0..10 {
        store
            .register(&CalendarId::new(format!("s{i}")).unwrap(), "x", Duration::from_secs(3600), chrono::Utc::now())
            .await
            .unwrap();
    }
    let worker = Worker::new(
        "w",
        Engine::new(Arc::clone(&store)),
        |_: &CalendarId, _: &str| -> calscope::Result<Arc<dyn CalendarSource>> { Ok(Arc::new(Slow)) },
        sleep,
    )
    .options(WorkerOptions::default().concurrency(3));
    let report = worker.run(tokio::time::sleep(Duration::from_millis(100))).await.unwrap();
    assert_eq!((report.claimed, report.synced), (3, 3), "{report:?}");
    let entries = store.entries().await.unwrap();
    assert!(entries.iter().all(|e| e.lease_owner.is_none()), "a lease outlived the worker");
    assert_eq!(entries.iter().filter(|e| e.syncs == 1).count(), 3);
}

#[derive(Clone, Default)]
struct Recorder {
    /// When each request arrived, by path.
    hits: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Paths answered 429 once, with Retry-After: 1.
    throttle_once: Arc<Mutex<Vec<String>>>,
}

async fn serve(State(rec): State<Recorder>, Path(name): Path<String>) -> Response {
    rec.hits.lock().unwrap().push((Instant::now(), name.clone()));
    let throttled = {
        let mut once = rec.throttle_once.lock().unwrap();
        let hit = once.contains(&name);
        once.retain(|n| *n != name);
        hit
    };
    if throttled {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "slow down").into_response();
    }
    (StatusCode::OK, [("content-type", "text/calendar")], feed(&name)).into_response()
}

async fn recorder() -> (Recorder, String) {
    let rec = Recorder::default();
    let app = Router::new().route("/{name}", axum::routing::get(serve)).with_state(rec.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rec, base)
}

/// Feeds on one server sharing `limits`, built before the worker starts (building an HTTP
/// client is the slow part of a debug build; the factory only hands them out, so a source's
/// turn in the limiter and its request leave together).
fn http_factory(
    base: &str,
    names: &[&str],
    limits: &RateLimits,
) -> impl Fn(&CalendarId, &str) -> calscope::Result<Arc<dyn CalendarSource>> + use<> {
    let built: HashMap<String, Arc<dyn CalendarSource>> = names
        .iter()
        .map(|name| {
            let config = HttpConfig::default().rate_limits(limits.clone());
            let id = CalendarId::new(*name).unwrap();
            let source: Arc<dyn CalendarSource> =
                Arc::new(IcsSource::from_url(id, &format!("{base}/{name}"), config).unwrap());
            ((*name).to_owned(), source)
        })
        .collect();
    move |_, spec| built.get(spec).cloned().ok_or_else(|| Error::new(ErrorKind::NotFound, "no such source"))
}

/// The shared limiter holds its rate across calendars: 30 calendars on one host at 10
/// requests/s, 8 syncs at once, never more than 11 requests in any second, measured at the
/// server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_rate_limit_holds_across_calendars() {
    let (rec, base) = recorder().await;
    let limits = RateLimits::new().rule("127.0.0.1", RateLimit::per_second(10));
    let store = Arc::new(MemoryStore::new());
    let names: Vec<String> = (0..30).map(|i| format!("r{i}")).collect();
    for name in &names {
        store
            .register(&CalendarId::new(name).unwrap(), name, Duration::from_secs(3600), chrono::Utc::now())
            .await
            .unwrap();
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let worker = Worker::new("w", Engine::new(Arc::clone(&store)), http_factory(&base, &names, &limits), sleep)
        .options(WorkerOptions::default().concurrency(8).until_idle(true));
    let started = Instant::now();
    let report = worker.run(futures::future::pending()).await.unwrap();
    let took = started.elapsed();
    assert_eq!(report.synced, 30, "{report:?}");
    let hits: Vec<Instant> = rec.hits.lock().unwrap().iter().map(|(t, _)| *t).collect();
    assert_eq!(hits.len(), 30);
    let most =
        hits.iter().map(|a| hits.iter().filter(|b| **b >= *a && **b < *a + Duration::from_secs(1)).count()).max();
    assert!(most.unwrap() <= 11, "{most:?} requests in one second under a limit of 10/s");
    assert!(took >= Duration::from_millis(2800), "30 requests at 10/s took {took:?}");
    assert!(limits.waited() > Duration::from_secs(10), "waited {:?} in all", limits.waited());
}

/// A 429 with Retry-After on one calendar holds its siblings on the same key: no request on
/// that host goes out for the second it asked.
#[tokio::test]
async fn a_429_on_one_calendar_slows_its_siblings() {
    let (rec, base) = recorder().await;
    rec.throttle_once.lock().unwrap().push("a".to_owned());
    let limits = RateLimits::new();
    let store = Arc::new(MemoryStore::new());
    let factory = http_factory(&base, &["a", "b", "c", "d"], &limits);
    let now = chrono::Utc::now();
    store.register(&CalendarId::new("a").unwrap(), "a", Duration::from_secs(3600), now).await.unwrap();
    // The siblings are poked once the server has throttled the first calendar's request.
    let later = now + chrono::Duration::hours(1);
    for name in ["b", "c", "d"] {
        store.register(&CalendarId::new(name).unwrap(), name, Duration::from_secs(3600), later).await.unwrap();
    }
    let poker = {
        let (rec, store) = (rec.clone(), Arc::clone(&store));
        tokio::spawn(async move {
            while !rec.hits.lock().unwrap().iter().any(|(_, n)| n == "a") {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            for name in ["b", "c", "d"] {
                store.poke(&CalendarId::new(name).unwrap(), chrono::Utc::now()).await.unwrap();
            }
        })
    };
    let worker = Worker::new("w", Engine::new(Arc::clone(&store)), factory, sleep)
        .options(WorkerOptions::default().concurrency(4).poll(Duration::from_millis(20)).until_idle(true));
    let report = worker.run(futures::future::pending()).await.unwrap();
    poker.await.unwrap();
    assert_eq!(report.synced, 4, "{report:?}");
    let hits = rec.hits.lock().unwrap().clone();
    let throttled_at = hits.iter().find(|(_, n)| n == "a").unwrap().0;
    for (t, name) in hits.iter().filter(|(_, n)| n != "a") {
        let after = t.duration_since(throttled_at);
        assert!(after >= Duration::from_millis(900), "{name} went {after:?} after the 429 asked for 1 s");
    }
    assert!(limits.waits() >= 3, "siblings waited {} times", limits.waits());
}

/// `ErrorKind` codes are serde's names, and every code reads back.
#[test]
fn error_kind_codes_are_serde_names() {
    let kinds = [
        ErrorKind::InvalidInput,
        ErrorKind::Parse,
        ErrorKind::LimitExceeded,
        ErrorKind::CursorExpired,
        ErrorKind::Conflict,
        ErrorKind::EmptySnapshot,
        ErrorKind::MassChange,
        ErrorKind::ScopeViolation,
        ErrorKind::NotFound,
        ErrorKind::Unauthorized,
        ErrorKind::Timeout,
        ErrorKind::Transport,
        ErrorKind::RateLimited,
        ErrorKind::Storage,
        ErrorKind::LeaseLost,
        ErrorKind::Other,
    ];
    for kind in kinds {
        assert_eq!(serde_json::to_string(&kind).unwrap(), format!("\"{}\"", kind.code()));
        assert_eq!(ErrorKind::from_code(kind.code()), Some(kind));
    }
}

/// Workers on one SQLite file, several syncs at once each: a claim never waits behind an apply
/// that waits for the claiming task (the store's thread serves one call at a time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_workers_sync_concurrently_without_deadlock() {
    let dir = std::env::temp_dir().join(format!("calscope-workers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fleet.db");
    let _ = std::fs::remove_file(&path);
    let setup = SqliteStore::open(&path).unwrap();
    for i in 0..60 {
        let id = CalendarId::new(format!("c{i:02}")).unwrap();
        setup.register(&id, &feed(&format!("e{i}")), Duration::from_secs(3600), chrono::Utc::now()).await.unwrap();
    }
    let calls = Arc::new(Mutex::new(HashMap::new()));
    let workers: Vec<_> = (0..2)
        .map(|w| {
            let store = SqliteStore::open(&path).unwrap();
            let worker = Worker::new(format!("w{w}"), Engine::new(store), factory(Arc::clone(&calls)), sleep)
                .options(WorkerOptions::default().concurrency(4).poll(Duration::from_millis(5)).until_idle(true));
            tokio::spawn(async move { worker.run(futures::future::pending()).await.unwrap() })
        })
        .collect();
    let mut synced = 0;
    for w in workers {
        synced += tokio::time::timeout(Duration::from_secs(60), w).await.expect("the workers hung").unwrap().synced;
    }
    assert_eq!(synced, 60);
    let entries = setup.entries().await.unwrap();
    assert!(entries.iter().all(|e| e.syncs == 1 && e.lease_owner.is_none()));
    let rows: i64 =
        setup.with_connection(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get(0))).await.unwrap();
    assert_eq!(rows, 60);
    drop(setup);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// With the `metrics` feature, syncs, rows written by kind, durations and claims reach the
/// host's recorder.
#[cfg(feature = "metrics")]
#[test]
fn metrics_count_syncs_rows_durations_and_claims() {
    use metrics::{
        Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    #[derive(Clone, Default)]
    struct Tally(Arc<Mutex<HashMap<String, u64>>>);
    struct Series(String, Arc<Mutex<HashMap<String, u64>>>);
    impl CounterFn for Series {
        fn increment(&self, n: u64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += n;
        }
        fn absolute(&self, _: u64) {}
    }
    impl HistogramFn for Series {
        /// Counts the values recorded.
        fn record(&self, _: f64) {
            *self.1.lock().unwrap().entry(self.0.clone()).or_default() += 1;
        }
    }
    impl Tally {
        fn series(&self, key: &Key) -> Arc<Series> {
            let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            Arc::new(Series(format!("{}{{{}}}", key.name(), labels.join(",")), Arc::clone(&self.0)))
        }
        fn get(&self, name: &str) -> u64 {
            self.0.lock().unwrap().get(name).copied().unwrap_or_default()
        }
    }
    impl Recorder for Tally {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.series(key))
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(self.series(key))
        }
    }

    let tally = Tally::default();
    metrics::with_local_recorder(&tally, || {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
            let store = Arc::new(MemoryStore::new());
            let now = chrono::Utc::now();
            store.register(&CalendarId::new("ok").unwrap(), &feed("e1"), Duration::from_secs(3600), now).await.unwrap();
            store.register(&CalendarId::new("bad").unwrap(), "fail", Duration::from_secs(3600), now).await.unwrap();
            let calls = Arc::new(Mutex::new(HashMap::new()));
            let worker = Worker::new("w", Engine::new(Arc::clone(&store)), factory(calls), sleep)
                .options(WorkerOptions::default().until_idle(true));
            let report = worker.run(futures::future::pending()).await.unwrap();
            assert_eq!((report.synced, report.failed), (1, 1));
        });
    });
    assert_eq!(tally.get("calscope_syncs_total{error_kind=none,outcome=ok,source=ics}"), 1);
    assert_eq!(tally.get("calscope_rows_written_total{kind=inserted}"), 1);
    assert_eq!(tally.get("calscope_rows_written_total{kind=updated}"), 0);
    assert_eq!(tally.get("calscope_sync_duration_seconds{outcome=ok,source=ics}"), 1);
    assert_eq!(tally.get("calscope_claims_total{}"), 2);
}
