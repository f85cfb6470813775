//! `GraphSource` against the in-repo emulator of Microsoft Graph (`emulators/graph.rs`): the
//! testkit's source checks, rounds and windows, rows that are not what they seem, throttling,
//! and write economy counted by SQLite triggers.

#![cfg(feature = "graph")]
#![allow(clippy::format_collect, clippy::too_many_lines)] // test code

use std::sync::Arc;
use std::time::{Duration, Instant};

use calscope::testkit::{FixtureCalendar, SourceFixture, run_source_checks};
use calscope::{
    CalendarId, CalendarSource, Engine, ErrorKind, Event, EventStatus, FingerprintPolicy, GraphConfig, GraphSource,
    HttpAuth, HttpConfig, MemoryStore, Result, RetryPolicy, SqliteStore, Transparency,
};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::common::{counted_db, remove_db, take_writes};
use crate::emulators::graph::{GraphEmulator, instance};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// The window reaches far back, so the fixed dates of the tests stay inside it.
fn config(emu: &GraphEmulator, token: &str) -> GraphConfig {
    let retry = RetryPolicy::default().min_delay(Duration::from_millis(5)).max_delay(Duration::from_secs(2));
    GraphConfig::default()
        .api(emu.api())
        .http(HttpConfig::default().auth(HttpAuth::Bearer(token.to_owned())).retry(retry))
        .window(chrono::Duration::days(3650), chrono::Duration::days(3650))
}

fn one(emu: &GraphEmulator, id: &str, graph: &str) -> GraphSource {
    GraphSource::calendar(CalendarId::new(id).unwrap(), graph, config(emu, "tok-ann")).unwrap()
}

async fn start() -> GraphEmulator {
    let emu = GraphEmulator::start().await;
    emu.mailbox("ann", "tok-ann");
    emu.calendar("ann", "AAMkCal1", "Calendar");
    emu
}

// ---------------------------------------------------------------------------------------------
// The testkit's source checks

struct Fixture {
    emu: GraphEmulator,
}

/// A testkit VEVENT as the instance row Graph would send: a master as a single instance (the
/// checks test rounds and cursors, not expansion), an override as an exception.
fn row(text: &str) -> Value {
    let e = Event::from_ics(&CalendarId::new("x").unwrap(), text, &FingerprintPolicy::default()).unwrap();
    let d = e.details();
    let uid = e.key().uid.as_str();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    let start = d.start.as_ref().and_then(calscope::EventTime::to_utc).unwrap();
    let end = d.end_utc().unwrap();
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%dT%H:%M:%S.0000000").to_string();
    let mut r = json!({"id": hex, "type": "singleInstance", "iCalUId": uid, "subject": d.summary,
        "start": {"dateTime": fmt(start), "timeZone": "UTC"}, "end": {"dateTime": fmt(end), "timeZone": "UTC"},
        "showAs": "busy", "isAllDay": false});
    if let Some(rid) = &e.key().recurrence_id {
        let original = match rid.value() {
            calscope::RecurrenceValue::Instant(t) => t,
            calscope::RecurrenceValue::Date(d) => d.and_hms_opt(0, 0, 0).unwrap().and_utc(),
            calscope::RecurrenceValue::Floating(t) => t.and_utc(),
        };
        r["id"] = json!(format!("{hex}_{rid}"));
        r["type"] = json!("exception");
        r["seriesMasterId"] = json!(hex);
        r["originalStart"] = json!(original.to_rfc3339());
    }
    r
}

#[async_trait::async_trait]
impl SourceFixture for Fixture {
    async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar> {
        self.emu.calendar("ann", name, name);
        let id = CalendarId::new(name)?;
        Ok(FixtureCalendar::new(id.clone(), Arc::new(GraphSource::calendar(id, name, config(&self.emu, "tok-ann"))?)))
    }

    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()> {
        let wanted: Vec<Value> = events.iter().map(|t| row(t)).collect();
        for id in self.emu.ids("ann", calendar.as_str()) {
            if !wanted.iter().any(|r| r["id"] == json!(id)) {
                self.emu.delete("ann", calendar.as_str(), &id);
            }
        }
        for r in wanted {
            self.emu.put("ann", calendar.as_str(), r);
        }
        Ok(())
    }

    async fn expire_cursors(&self, calendar: &CalendarId) -> Result<bool> {
        self.emu.expire("ann", calendar.as_str());
        Ok(true)
    }

    fn expected_event(&self, calendar: &CalendarId, text: &str) -> Result<Event> {
        Ok(GraphSource::event_from_json(calendar, &row(text).to_string(), &FingerprintPolicy::default())?.unwrap())
    }
}

#[test]
fn graph_source_passes_the_source_checks() {
    runtime().block_on(async {
        let emu = start().await;
        emu.empty_pages(true);
        run_source_checks(&Fixture { emu }).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Write economy, counted by the database

/// A weekly series of `n` occurrences from 2026-12-07, plus its master for `GET /me/events`.
fn series(emu: &GraphEmulator, n: usize) {
    emu.master("ann", json!({"id": "M1", "type": "seriesMaster", "iCalUId": "040000008200E00074C5B7101A82E0080000000000000000000000000000000000000000",
        "subject": "Standup", "body": {"contentType": "html", "content": "<html><body><p>Agenda</p></body></html>"},
        "location": {"displayName": "Room 1"}, "showAs": "busy", "isAllDay": false, "isCancelled": false, "sensitivity": "normal",
        "organizer": {"emailAddress": {"name": "Ann", "address": "ann@contoso.com"}},
        "attendees": [{"type": "required", "status": {"response": "accepted"}, "emailAddress": {"name": "Bo", "address": "bo@contoso.com"}}],
        "start": {"dateTime": "2026-12-07T09:00:00.0000000", "timeZone": "UTC"}, "end": {"dateTime": "2026-12-07T09:30:00.0000000", "timeZone": "UTC"}}));
    for w in 0..n {
        let day =
            chrono::NaiveDate::from_ymd_opt(2026, 12, 7).unwrap() + chrono::Duration::weeks(i64::try_from(w).unwrap());
        let start = format!("{}T09:00:00", day.format("%Y-%m-%d"));
        emu.put(
            "ann",
            "AAMkCal1",
            instance(
                &format!("M1_{w}"),
                "occurrence",
                "040000008200E00074C5B7101A82E0080000000000000000000000000000000000000000",
                "Standup",
                &start,
                Some(("M1", &start)),
            ),
        );
    }
}

#[test]
fn churn_replays_and_partial_rows_write_nothing_and_each_real_change_writes_one_row() {
    runtime().block_on(async {
        let emu = start().await;
        series(&emu, 10);
        for i in 0..5 {
            emu.put(
                "ann",
                "AAMkCal1",
                instance(
                    &format!("S{i}"),
                    "singleInstance",
                    &format!("single-{i}"),
                    "Review",
                    &format!("2026-12-0{}T14:00:00", i + 1),
                    None,
                ),
            );
        }
        let path = counted_db("economy");
        let engine = Engine::new(SqliteStore::open(&path).unwrap());
        let source = one(&emu, "ann", "AAMkCal1");
        let cal = CalendarId::new("ann").unwrap();
        let r = engine.sync(&source, &cal).await;
        assert_eq!(r.inserted, 15, "{r:?}");
        assert_eq!(take_writes(engine.store()).len(), 15);

        // changeKey / etag / lastModified churn on every row, replayed rows, partial
        // occurrence rows (filled from the series master): nothing written.
        emu.churn(1);
        emu.replays(true);
        emu.partial_occurrences(true);
        emu.empty_pages(true);
        emu.take_log();
        let r = engine.sync(&source, &cal).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(take_writes(engine.store()), Vec::<(String, String, String)>::new(), "{r:?}");
        let log = emu.take_log();
        assert_eq!(
            log.iter().filter(|l| l.starts_with("event/M1")).count(),
            1,
            "one master lookup for the series: {log:?}"
        );

        // An edit: one row.
        emu.put(
            "ann",
            "AAMkCal1",
            instance("S0", "singleInstance", "single-0", "Review (moved room)", "2026-12-01T14:00:00", None),
        );
        let _ = engine.sync(&source, &cal).await;
        assert_eq!(take_writes(engine.store()), vec![("update".to_owned(), "single-0".to_owned(), String::new())]);
        // A deletion: one row.
        emu.delete("ann", "AAMkCal1", "S1");
        let _ = engine.sync(&source, &cal).await;
        assert_eq!(take_writes(engine.store()), vec![("delete".to_owned(), "single-1".to_owned(), String::new())]);
        // A moved occurrence becomes an exception with the same original start: one row.
        emu.partial_occurrences(false);
        let uid = "040000008200E00074C5B7101A82E0080000000000000000000000000000000000000000";
        emu.put(
            "ann",
            "AAMkCal1",
            instance("M1_2", "exception", uid, "Standup", "2026-12-21T11:00:00", Some(("M1", "2026-12-21T09:00:00"))),
        );
        let _ = engine.sync(&source, &cal).await;
        assert_eq!(
            take_writes(engine.store()),
            vec![("update".to_owned(), uid.to_owned(), "20261221T090000Z".to_owned())]
        );
        // An event moved out of the window: one row (the emulator answers @removed).
        emu.put("ann", "AAMkCal1", instance("S2", "singleInstance", "single-2", "Review", "2040-01-01T14:00:00", None));
        let _ = engine.sync(&source, &cal).await;
        assert_eq!(take_writes(engine.store()), vec![("delete".to_owned(), "single-2".to_owned(), String::new())]);

        // A forgotten delta token: the deletion made in the gap, and nothing else.
        emu.delete("ann", "AAMkCal1", "S3");
        emu.expire("ann", "AAMkCal1");
        emu.replays(false);
        let r = engine.sync(&source, &cal).await;
        assert!(r.warnings.iter().any(|w| w.contains("expired")), "{r:?}");
        assert_eq!(take_writes(engine.store()), vec![("delete".to_owned(), "single-3".to_owned(), String::new())]);
        // The same through a 400 syncStateNotFound.
        emu.delete("ann", "AAMkCal1", "S4");
        emu.expire("ann", "AAMkCal1");
        emu.sync_state_not_found(true);
        let r = engine.sync(&source, &cal).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(take_writes(engine.store()), vec![("delete".to_owned(), "single-4".to_owned(), String::new())]);
        drop(engine);
        remove_db(&path);
    });
}

#[test]
fn instances_carry_the_series_uid_and_their_original_start() {
    runtime().block_on(async {
        let emu = start().await;
        series(&emu, 3);
        let mut free = instance("F", "singleInstance", "free-1", "Gym", "2026-12-02T07:00:00", None);
        free["showAs"] = json!("free");
        emu.put("ann", "AAMkCal1", free);
        let mut tentative = instance("T", "singleInstance", "tent-1", "Maybe", "2026-12-02T08:00:00", None);
        tentative["showAs"] = json!("tentative");
        emu.put("ann", "AAMkCal1", tentative);
        let mut cancelled = instance("C", "singleInstance", "canc-1", "Off", "2026-12-02T09:00:00", None);
        cancelled["isCancelled"] = json!(true);
        emu.put("ann", "AAMkCal1", cancelled);
        let mut all_day = instance("D", "singleInstance", "day-1", "Offsite", "2026-12-03T00:00:00", None);
        all_day["isAllDay"] = json!(true);
        all_day["end"] = json!({"dateTime": "2026-12-04T00:00:00.0000000", "timeZone": "UTC"});
        emu.put("ann", "AAMkCal1", all_day);
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let cal = CalendarId::new("ann").unwrap();
        assert!(engine.sync(&one(&emu, "ann", "AAMkCal1"), &cal).await.is_ok());
        let events = store.events(&cal);
        let by_uid = |u: &str| events.iter().filter(|e| e.key().uid.as_str() == u).collect::<Vec<_>>();
        let occurrences = by_uid("040000008200E00074C5B7101A82E0080000000000000000000000000000000000000000");
        let mut rids: Vec<String> =
            occurrences.iter().map(|e| e.key().recurrence_id.as_ref().unwrap().to_string()).collect();
        rids.sort();
        assert_eq!(rids, ["20261207T090000Z", "20261214T090000Z", "20261221T090000Z"]);
        assert_eq!(by_uid("free-1")[0].details().transparency, Some(Transparency::Transparent));
        assert_eq!(by_uid("tent-1")[0].details().status, Some(EventStatus::Tentative));
        assert_eq!(by_uid("canc-1")[0].details().status, Some(EventStatus::Cancelled));
        assert!(by_uid("day-1")[0].details().is_all_day());
        assert!(by_uid("free-1")[0].raw().contains("X-MICROSOFT-SHOWAS:free"));
        assert_eq!(occurrences[0].details().description.as_deref(), Some("Agenda"));
    });
}

#[test]
fn a_foreign_uid_wrapped_by_exchange_is_the_same_uid_as_in_google() {
    // Recorded shape: Exchange's GlobalObjectId around a Google iCalUID (the `vCal-Uid` payload).
    let google_uid = "5qk8r2d9v4n1m3c6b7x0z@google.com";
    let mut data = b"vCal-Uid\x01\x00\x00\x00".to_vec();
    data.extend_from_slice(google_uid.as_bytes());
    data.push(0);
    let header = "040000008200E00074C5B7101A82E00800000000C0E4E1B3A45FDB010000000000000000";
    let hex = format!(
        "{header}{:08X}{}",
        u32::try_from(data.len()).unwrap().swap_bytes(),
        data.iter().map(|b| format!("{b:02X}")).collect::<String>()
    );
    let cal = CalendarId::new("outlook").unwrap();
    let row = instance("X", "singleInstance", &hex, "Sync", "2026-12-02T10:00:00", None);
    let event = GraphSource::event_from_json(&cal, &row.to_string(), &FingerprintPolicy::default()).unwrap().unwrap();
    assert_eq!(event.key().uid.as_str(), google_uid);
}

// ---------------------------------------------------------------------------------------------
// Rounds, windows, requests

#[test]
fn a_first_round_of_five_thousand_instances_and_an_unchanged_round() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..5_000 {
            let day = 1 + i % 28;
            emu.put(
                "ann",
                "AAMkCal1",
                instance(
                    &format!("I{i:05}"),
                    "singleInstance",
                    &format!("uid-{i}"),
                    "Busy",
                    &format!("2026-12-{day:02}T{:02}:00:00", 8 + i % 10),
                    None,
                ),
            );
        }
        let source = one(&emu, "ann", "AAMkCal1");
        let engine = Engine::new(MemoryStore::new());
        let cal = CalendarId::new("ann").unwrap();
        let started = Instant::now();
        let r = engine.sync(&source, &cal).await;
        let first = started.elapsed();
        assert_eq!(r.inserted, 5_000, "{r:?}");
        assert_eq!(source.requests(), 5, "pages of 1,000");
        let started = Instant::now();
        let again = engine.sync(&source, &cal).await;
        let unchanged = started.elapsed();
        assert_eq!((again.writes(), source.requests()), (0, 6), "one request for an unchanged round");
        eprintln!(
            "graph: first round of 5,000 instances: 5 requests, {first:?}; unchanged round: 1 request, {unchanged:?}"
        );
    });
}

#[test]
fn a_slid_window_starts_a_new_round_and_events_that_fell_out_are_deleted() {
    runtime().block_on(async {
        let emu = start().await;
        let now = chrono::Utc::now();
        let at = |days: i64| (now + chrono::Duration::days(days)).format("%Y-%m-%dT%H:00:00").to_string();
        emu.put("ann", "AAMkCal1", instance("OLD", "singleInstance", "old", "Long ago", &at(-20), None));
        emu.put("ann", "AAMkCal1", instance("NEW", "singleInstance", "new", "Soon", &at(3), None));
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let cal = CalendarId::new("ann").unwrap();
        let wide = config(&emu, "tok-ann").window(chrono::Duration::days(30), chrono::Duration::days(365));
        let r = engine.sync(&GraphSource::calendar(cal.clone(), "AAMkCal1", wide).unwrap(), &cal).await;
        assert_eq!(r.inserted, 2, "{r:?}");
        // Ten days later, as far as the window is concerned: it starts 20 days ago no more.
        let later = config(&emu, "tok-ann")
            .window(chrono::Duration::days(10), chrono::Duration::days(365))
            .window_step(chrono::Duration::days(7));
        let r = engine.sync(&GraphSource::calendar(cal.clone(), "AAMkCal1", later).unwrap(), &cal).await;
        assert!(r.warnings.iter().any(|w| w.contains("slid")), "{r:?}");
        assert_eq!((r.deleted, r.inserted, r.updated), (1, 0, 0), "{r:?}");
        assert_eq!(store.events(&cal).iter().map(|e| e.key().uid.as_str().to_owned()).collect::<Vec<_>>(), ["new"]);
    });
}

#[test]
fn calendars_are_listed_every_page_and_named_for_the_account() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..14 {
            emu.calendar("ann", &format!("AAMkCal{:02}", i + 10), &format!("Team {i}"));
        }
        emu.calendar("ann", "AAMkDup", "Calendar");
        let source = GraphSource::account("ann", config(&emu, "tok-ann")).unwrap();
        let listed = source.calendars().await.unwrap();
        assert_eq!(listed.len(), 16);
        assert!(
            listed.iter().any(|c| c.id.as_str() == "ann/Calendar")
                && listed.iter().any(|c| c.id.as_str() == "ann/Calendar~2")
        );
        assert_eq!(listed.iter().filter(|c| c.primary).count(), 1);
        emu.put("ann", "AAMkCal1", instance("A", "singleInstance", "a", "A", "2026-12-02T10:00:00", None));
        let target = listed.iter().find(|c| c.id.as_str() == "ann/Calendar").unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&source, &target.id).await;
        assert_eq!(r.inserted + r.unchanged, 1, "{r:?}");
    });
}

#[test]
fn throttling_is_retried_as_asked_bad_tokens_fail_and_a_mailbox_sees_four_requests_at_most() {
    runtime().block_on(async {
        let emu = start().await;
        emu.put("ann", "AAMkCal1", instance("A", "singleInstance", "a", "A", "2026-12-02T10:00:00", None));
        let source = one(&emu, "ann", "AAMkCal1");
        let cal = CalendarId::new("ann").unwrap();
        emu.faults([(429, "ApplicationThrottled", Some("1")), (503, "serviceNotAvailable", None)]);
        let started = Instant::now();
        let r = Engine::new(MemoryStore::new()).sync(&source, &cal).await;
        assert_eq!(r.inserted, 1, "{r:?}");
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert_eq!(source.requests(), 3);

        let bad = GraphSource::calendar(cal.clone(), "AAMkCal1", config(&emu, "tok-secret-bad")).unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&bad, &cal).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Unauthorized), "{r:?}");
        assert!(!format!("{r:?} {bad:?}").contains("tok-secret"));

        // Ten calendars of one mailbox synced at once through one source: four in flight at most.
        let ids: Vec<CalendarId> = (0..10).map(|i| CalendarId::new(format!("ann/Cal {i}")).unwrap()).collect();
        for i in 0..10 {
            emu.calendar("ann", &format!("AAMkC{i}"), &format!("Cal {i}"));
            for j in 0..3 {
                emu.put(
                    "ann",
                    &format!("AAMkC{i}"),
                    instance(
                        &format!("C{i}-{j}"),
                        "singleInstance",
                        &format!("c{i}-{j}"),
                        "x",
                        "2026-12-02T10:00:00",
                        None,
                    ),
                );
            }
        }
        let account = GraphSource::account("ann", config(&emu, "tok-ann").page_size(1)).unwrap();
        emu.delay(Some(Duration::from_millis(20)));
        let engine = Engine::new(MemoryStore::new());
        let reports: Vec<_> =
            futures::stream::iter(&ids).map(|id| engine.sync(&account, id)).buffer_unordered(10).collect().await;
        assert!(reports.iter().all(calscope::CalendarReport::is_ok), "{reports:?}");
        let max = emu.max_in_flight("ann");
        assert!((2..=4).contains(&max), "at most four requests at once per mailbox, and some overlap: {max}");
    });
}

// ---------------------------------------------------------------------------------------------
// The `sync` example

#[test]
fn the_sync_example_syncs_one_graph_calendar_or_the_whole_mailbox() {
    runtime().block_on(async {
        let emu = start().await;
        emu.calendar("ann", "AAMkCal2", "Birthdays");
        // Inside the example's default window (30 days back, a year ahead), whenever this runs.
        let at =
            |days: i64| (chrono::Utc::now() + chrono::Duration::days(days)).format("%Y-%m-%dT10:00:00").to_string();
        emu.put("ann", "AAMkCal1", instance("A", "singleInstance", "a", "A", &at(2), None));
        emu.put("ann", "AAMkCal2", instance("B", "singleInstance", "b", "B", &at(3), None));
        let db = std::env::temp_dir().join(format!("calscope-graph-example-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&db);
        let run = |token: Option<&'static str>, pairs: Vec<&'static str>| {
            let (api, db) = (emu.api(), db.clone());
            tokio::task::spawn_blocking(move || {
                let mut cmd = std::process::Command::new(crate::sync_example::sync_bin());
                cmd.arg("--db").arg(&db).arg("--json").args(&pairs).env("CALSCOPE_GRAPH_API", api);
                match token {
                    Some(t) => cmd.env("CALSCOPE_GRAPH_TOKEN", t),
                    None => cmd.env_remove("CALSCOPE_GRAPH_TOKEN"),
                };
                cmd.output().unwrap()
            })
        };
        let out = run(Some("tok-ann"), vec!["me=graph:"]).await.unwrap();
        assert!(
            out.status.success(),
            "{} {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> =
            report["calendars"].as_array().unwrap().iter().map(|c| c["calendar"].as_str().unwrap()).collect();
        assert_eq!(ids, ["me/Calendar", "me/Birthdays"], "{report}");
        assert_eq!(report["writes"], json!(2), "{report}");
        let out = run(Some("tok-ann"), vec!["work=graph:AAMkCal1"]).await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let out = run(None, vec!["work=graph:AAMkCal1"]).await.unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("CALSCOPE_GRAPH_TOKEN"));
        let _ = std::fs::remove_file(&db);
    });
}

#[test]
fn a_next_link_to_another_origin_is_refused_before_a_token_is_sent() {
    runtime().block_on(async {
        // A second server that records every Authorization header it receives.
        let seen = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let recorder = {
            let seen = Arc::clone(&seen);
            axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
                let seen = Arc::clone(&seen);
                async move {
                    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("none").to_owned();
                    seen.lock().unwrap().push(auth);
                    "{}"
                }
            })
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, recorder).await.unwrap() });

        let emu = start().await;
        for i in 0..3 {
            emu.put(
                "ann",
                "AAMkCal1",
                instance(&format!("A{i}"), "singleInstance", &format!("a{i}"), "A", "2026-12-02T10:00:00", None),
            );
        }
        emu.foreign_links(Some(format!("http://{other}/v1.0")));
        let source =
            GraphSource::calendar(CalendarId::new("ann").unwrap(), "AAMkCal1", config(&emu, "tok-ann").page_size(1))
                .unwrap();
        let store = Arc::new(MemoryStore::new());
        let r = Engine::new(Arc::clone(&store)).sync(&source, &CalendarId::new("ann").unwrap()).await;
        assert_eq!(r.error_kind, Some(ErrorKind::ScopeViolation), "{r:?}");
        assert!(seen.lock().unwrap().is_empty(), "the other origin got a request: {:?}", seen.lock().unwrap());
        assert!(store.events(&CalendarId::new("ann").unwrap()).is_empty(), "nothing written");
    });
}

#[test]
fn endless_rounds_oversized_rounds_and_foreign_locations_fail_and_write_nothing() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..6 {
            emu.put(
                "ann",
                "AAMkCal1",
                instance(&format!("A{i}"), "singleInstance", &format!("a{i}"), "A", "2026-12-02T10:00:00", None),
            );
        }
        let cal = CalendarId::new("ann").unwrap();
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let make = |c: GraphConfig| GraphSource::calendar(cal.clone(), "AAMkCal1", c).unwrap();
        let r = engine.sync(&make(config(&emu, "tok-ann").page_size(1).max_pages(3)), &cal).await;
        assert_eq!(r.error_kind, Some(ErrorKind::LimitExceeded), "more pages than the cap: {r:?}");
        let r = engine.sync(&make(config(&emu, "tok-ann").max_events(5)), &cal).await;
        assert_eq!(r.error_kind, Some(ErrorKind::LimitExceeded), "more rows than the cap: {r:?}");
        assert!(store.events(&cal).is_empty());
        // A 410 whose Location leaves the API's origin: refused before it is sent.
        let source = make(config(&emu, "tok-ann"));
        assert_eq!(engine.sync(&source, &cal).await.inserted, 6);
        emu.expire("ann", "AAMkCal1");
        emu.foreign_links(Some("http://127.0.0.1:9/v1.0".to_owned()));
        let r = engine.sync(&source, &cal).await;
        assert_eq!(r.error_kind, Some(ErrorKind::ScopeViolation), "{r:?}");
        assert_eq!(store.events(&cal).len(), 6, "nothing deleted");
    });
}
