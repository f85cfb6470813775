//! Every loop has a bound: servers that page forever (the same page token or link again, or
//! more pages than the cap), send more events than the per-calendar cap, answer more bytes than
//! the size cap, or keep failing until the retry budget is spent. Each fetch stops with a typed
//! error, and the database itself (SQLite triggers on `events` and `instances`, and the stored
//! cursor) counts zero writes: nothing is written, nothing deleted, the cursor does not move.

#![cfg(all(feature = "sqlite", feature = "google", feature = "graph"))]

use std::fmt::Write as _;
use std::time::Duration;

use calscope::{
    CalendarId, CalendarSource, Engine, ErrorKind, GoogleConfig, GoogleSource, GraphConfig, GraphSource, HttpAuth,
    HttpConfig, IcsSource, InstanceConfig, RetryPolicy, SqliteStore,
};

use crate::common::{counted_db, remove_db, take_instance_writes, take_writes};
use crate::emulators::google::{Fault, GoogleEmulator, timed};
use crate::emulators::graph::{GraphEmulator, instance};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn retries() -> RetryPolicy {
    RetryPolicy::default().min_delay(Duration::from_millis(2)).max_delay(Duration::from_millis(20)).max_retries(3)
}

fn http(token: &str) -> HttpConfig {
    HttpConfig::default().auth(HttpAuth::Bearer(token.to_owned())).retry(retries())
}

/// The stored cursor of `cal`, read by SQL.
fn cursor(store: &SqliteStore, cal: &CalendarId) -> Option<String> {
    let name = cal.as_str().to_owned();
    futures::executor::block_on(store.with_connection(move |conn| {
        conn.query_row("SELECT cursor FROM calendars WHERE calendar_id = ?1", [name], |r| r.get(0))
    }))
    .unwrap()
}

/// Syncs `source` and asserts the typed error, and that the database saw no write at all.
async fn refused(
    engine: &Engine<SqliteStore>,
    source: &dyn CalendarSource,
    cal: &CalendarId,
    kind: ErrorKind,
    what: &str,
) {
    let before = cursor(engine.store(), cal);
    let r = engine.sync(source, cal).await;
    assert_eq!(r.error_kind, Some(kind), "{what}: {r:?}");
    assert_eq!(take_writes(engine.store()), Vec::<(String, String, String)>::new(), "{what}: events written");
    assert_eq!(
        take_instance_writes(engine.store()),
        Vec::<(String, String, String)>::new(),
        "{what}: instances written"
    );
    assert_eq!(cursor(engine.store(), cal), before, "{what}: the cursor moved");
}

/// Once the server behaves, the calendar syncs again and nothing in it changed: no write.
async fn recovers(engine: Engine<SqliteStore>, source: &dyn CalendarSource, cal: &CalendarId, path: &std::path::Path) {
    let r = engine.sync(source, cal).await;
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(take_writes(engine.store()), Vec::<(String, String, String)>::new());
    drop(engine);
    remove_db(path);
}

/// A counted SQLite store keeping instances.
fn store(name: &str) -> (std::path::PathBuf, Engine<SqliteStore>) {
    let path = counted_db(name);
    let store = SqliteStore::open(&path).unwrap().with_instances(InstanceConfig::new());
    (path, Engine::new(store))
}

#[test]
fn google_servers_that_page_forever_or_send_too_much_write_nothing() {
    runtime().block_on(async {
        let emu = GoogleEmulator::start().await;
        emu.user("alice", "tok-alice");
        emu.calendar("alice", "alice@example.com", "Alice", "owner", true);
        for i in 0..12 {
            let start = format!("2026-12-{:02}T09:00:00+01:00", i + 1);
            emu.put(
                "alice",
                "alice@example.com",
                timed(&format!("e{i:02}"), &format!("e{i}@x"), &"text ".repeat(100), &start),
            );
        }
        let cal = CalendarId::new("alice").unwrap();
        let make = |c: GoogleConfig| GoogleSource::calendar(cal.clone(), "alice@example.com", c).unwrap();
        let base = || GoogleConfig::default().api(emu.api()).http(http("tok-alice"));
        let (path, engine) = store("bounds-google");

        // A first sync with a stored state and cursor, so that a failure could delete or move.
        let r = engine.sync(&make(base()), &cal).await;
        assert_eq!(r.inserted, 12, "{r:?}");
        take_writes(engine.store());
        take_instance_writes(engine.store());
        emu.expire("alice", "alice@example.com"); // the next fetch lists everything again

        emu.stuck_pages(true);
        refused(&engine, &make(base()), &cal, ErrorKind::LimitExceeded, "the same page token again").await;
        let log = emu.take_log();
        assert!(log.len() <= 4, "stopped at the repeat, not at the page cap: {log:?}");
        emu.stuck_pages(false);

        emu.short_pages(Some(1), None);
        refused(&engine, &make(base().max_pages(5)), &cal, ErrorKind::LimitExceeded, "more pages than the cap").await;
        emu.short_pages(None, None);

        refused(&engine, &make(base().max_events(11)), &cal, ErrorKind::LimitExceeded, "more events than the cap")
            .await;

        let small = base().http(http("tok-alice").max_bytes(4 * 1024));
        refused(&engine, &make(small), &cal, ErrorKind::LimitExceeded, "an answer over the size cap").await;

        // 503 on every attempt: the first try and three retries, then the budget is spent.
        emu.faults((0..4).map(|_| Fault::new(503, None, None)));
        emu.take_log();
        let source = make(base());
        refused(&engine, &source, &cal, ErrorKind::Transport, "a spent retry budget").await;
        assert_eq!(emu.take_log().len(), 4, "one try and three retries");

        // The same calendar syncs once the server behaves: the full listing, nothing changed.
        recovers(engine, &make(base()), &cal, &path).await;
    });
}

#[test]
fn graph_servers_that_page_forever_or_send_too_much_write_nothing() {
    runtime().block_on(async {
        let emu = GraphEmulator::start().await;
        emu.mailbox("ann", "tok-ann");
        emu.calendar("ann", "AAMkCal1", "Calendar");
        for i in 0..12 {
            let start = format!("2026-12-{:02}T10:00:00", i + 1);
            emu.put(
                "ann",
                "AAMkCal1",
                instance(&format!("A{i}"), "singleInstance", &format!("a{i}"), "A", &start, None),
            );
        }
        let cal = CalendarId::new("ann").unwrap();
        let make = |c: GraphConfig| GraphSource::calendar(cal.clone(), "AAMkCal1", c).unwrap();
        let base = || {
            GraphConfig::default()
                .api(emu.api())
                .http(http("tok-ann"))
                .window(chrono::Duration::days(3650), chrono::Duration::days(3650))
        };
        let (path, engine) = store("bounds-graph");
        let r = engine.sync(&make(base()), &cal).await;
        assert_eq!(r.inserted, 12, "{r:?}");
        take_writes(engine.store());
        take_instance_writes(engine.store());
        emu.expire("ann", "AAMkCal1");

        emu.stuck_links(true);
        emu.take_log();
        refused(&engine, &make(base()), &cal, ErrorKind::LimitExceeded, "the same nextLink again").await;
        let log = emu.take_log();
        assert!(log.len() <= 4, "stopped at the repeat, not at the page cap: {log:?}");
        emu.stuck_links(false);

        refused(
            &engine,
            &make(base().page_size(1).max_pages(5)),
            &cal,
            ErrorKind::LimitExceeded,
            "more pages than the cap",
        )
        .await;
        refused(&engine, &make(base().max_events(11)), &cal, ErrorKind::LimitExceeded, "more rows than the cap").await;

        emu.faults((0..4).map(|_| (503, "ServiceNotAvailable", None)));
        refused(&engine, &make(base()), &cal, ErrorKind::Transport, "a spent retry budget").await;

        recovers(engine, &make(base()), &cal, &path).await;
    });
}

#[test]
fn an_ics_feed_over_the_size_cap_writes_nothing() {
    runtime().block_on(async {
        use axum::routing::get;
        let big: String = {
            let mut body = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n");
            for i in 0..400 {
                let _ = write!(
                    body,
                    "BEGIN:VEVENT\r\nUID:u{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T090000Z\r\nSUMMARY:{}\r\nEND:VEVENT\r\n",
                    "x".repeat(60)
                );
            }
            body + "END:VCALENDAR\r\n"
        };
        let small = big.lines().take(9).collect::<Vec<_>>().join("\r\n") + "\r\nEND:VCALENDAR\r\n";
        let serve = std::sync::Arc::new(std::sync::Mutex::new(small));
        let state = std::sync::Arc::clone(&serve);
        let app = axum::Router::new().route("/feed.ics", get(move || async move { state.lock().unwrap().clone() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let cal = CalendarId::new("feed").unwrap();
        let source = IcsSource::from_url(
            cal.clone(),
            &format!("http://{addr}/feed.ics"),
            HttpConfig::default().max_bytes(16 * 1024).retry(retries()),
        )
        .unwrap();
        let (path, engine) = store("bounds-ics");
        assert_eq!(engine.sync(&source, &cal).await.inserted, 1);
        take_writes(engine.store());
        take_instance_writes(engine.store());
        *serve.lock().unwrap() = big;
        refused(&engine, &source, &cal, ErrorKind::LimitExceeded, "a feed over the size cap").await;
        drop(engine);
        remove_db(&path);
    });
}
