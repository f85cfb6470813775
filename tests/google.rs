//! `GoogleSource` against the in-repo emulator of the Calendar API (`emulators/google.rs`):
//! the testkit's source checks, paging, sync tokens and their expiry, cancelled items, rate
//! limits, tokens, and the motivating bug counted by SQLite triggers.

#![cfg(feature = "google")]
#![allow(clippy::single_match_else, clippy::cast_possible_wrap, clippy::format_collect, clippy::too_many_lines)] // test code

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use calscope::testkit::{FixtureCalendar, SourceFixture, run_source_checks};
use calscope::{
    CalendarAccess, CalendarId, CalendarSource, Engine, ErrorKind, Event, EventStatus, EventTime, FingerprintPolicy,
    GoogleConfig, GoogleSource, HttpAuth, HttpConfig, MemoryStore, Result, RetryPolicy, Secret, SqliteStore,
    TokenProvider,
};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::common::{counted_db, remove_db, take_writes};
use crate::emulators::google::{Fault, GoogleEmulator, holiday, timed};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn config(emu: &GoogleEmulator, token: &str) -> GoogleConfig {
    let retry = RetryPolicy::default().min_delay(Duration::from_millis(5)).max_delay(Duration::from_secs(2));
    GoogleConfig::default()
        .api(emu.api())
        .http(HttpConfig::default().auth(HttpAuth::Bearer(token.to_owned())).retry(retry))
}

fn one(emu: &GoogleEmulator, token: &str, id: &str, google: &str) -> GoogleSource {
    GoogleSource::calendar(CalendarId::new(id).unwrap(), google, config(emu, token)).unwrap()
}

const ALICE: &str = "alice@example.com";

/// An emulator with one user (alice, token `tok-alice`) and her primary calendar.
async fn start() -> GoogleEmulator {
    let emu = GoogleEmulator::start().await;
    emu.user("alice", "tok-alice");
    emu.calendar("alice", ALICE, "Alice", "owner", true);
    emu
}

// ---------------------------------------------------------------------------------------------
// The testkit's source checks

/// Serves the testkit's VEVENTs as Google event resources.
struct Fixture {
    emu: GoogleEmulator,
}

/// A VEVENT of the testkit as the Google resource holding it.
fn resource(text: &str) -> Value {
    let e = Event::from_ics(&CalendarId::new("x").unwrap(), text, &FingerprintPolicy::default()).unwrap();
    let d = e.details();
    let uid = e.key().uid.as_str();
    let hex: String = uid.bytes().map(|b| format!("{b:02x}")).collect();
    let when = |t: &EventTime| match t {
        EventTime::Date { date } => json!({"date": date.format("%Y-%m-%d").to_string()}),
        other => json!({"dateTime": other.to_utc().unwrap().to_rfc3339()}),
    };
    let start = d.start.clone().unwrap();
    let end = d.end_utc().map(|at| json!({"dateTime": at.to_rfc3339()}));
    let mut r = json!({"kind": "calendar#event", "iCalUID": uid, "status": "confirmed",
                       "summary": d.summary, "start": when(&start), "end": end});
    match &e.key().recurrence_id {
        Some(rid) => {
            r["id"] = json!(format!("{hex}_{rid}"));
            r["recurringEventId"] = json!(hex);
            let original = match rid.value() {
                calscope::RecurrenceValue::Date(d) => json!({"date": d.format("%Y-%m-%d").to_string()}),
                calscope::RecurrenceValue::Instant(t) => json!({"dateTime": t.to_rfc3339()}),
                calscope::RecurrenceValue::Floating(t) => json!({"dateTime": t.and_utc().to_rfc3339()}),
            };
            r["originalStartTime"] = original;
        }
        None => {
            r["id"] = json!(hex);
            if !d.rrule.is_empty() {
                r["recurrence"] = json!(d.rrule.iter().map(|rule| format!("RRULE:{rule}")).collect::<Vec<_>>());
            }
        }
    }
    r
}

#[async_trait::async_trait]
impl SourceFixture for Fixture {
    async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar> {
        let google = format!("{name}@group.calendar.google.com");
        self.emu.calendar("alice", &google, name, "owner", false);
        let id = CalendarId::new(name)?;
        let source = GoogleSource::calendar(id.clone(), &google, config(&self.emu, "tok-alice"))?;
        Ok(FixtureCalendar::new(id, Arc::new(source)))
    }

    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()> {
        let google = format!("{calendar}@group.calendar.google.com");
        let wanted: Vec<Value> = events.iter().map(|t| resource(t)).collect();
        for id in self.emu.ids("alice", &google) {
            if !wanted.iter().any(|r| r["id"] == json!(id)) {
                self.emu.delete("alice", &google, &id);
            }
        }
        for r in wanted {
            self.emu.put("alice", &google, r);
        }
        Ok(())
    }

    async fn expire_cursors(&self, calendar: &CalendarId) -> Result<bool> {
        self.emu.expire("alice", &format!("{calendar}@group.calendar.google.com"));
        Ok(true)
    }

    fn expected_event(&self, calendar: &CalendarId, text: &str) -> Result<Event> {
        let json = resource(text).to_string();
        Ok(GoogleSource::event_from_json(calendar, &json, &FingerprintPolicy::default())?.unwrap())
    }
}

#[test]
fn google_source_passes_the_source_checks() {
    runtime().block_on(async {
        let emu = start().await;
        // Short and empty pages everywhere: the checks must not notice.
        emu.short_pages(Some(2), Some(2));
        run_source_checks(&Fixture { emu }).await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// Listing, paging, tokens

#[test]
fn calendars_are_listed_with_their_access_and_free_busy_ones_refuse_to_sync() {
    runtime().block_on(async {
        let emu = start().await;
        emu.calendar("alice", "en.usa#holiday@group.v.calendar.google.com", "Holidays", "reader", false);
        emu.calendar("alice", "bob@example.com", "Bob", "freeBusyReader", false);
        let source = GoogleSource::account("alice", config(&emu, "tok-alice")).unwrap();
        let listed = source.calendars().await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            ["alice/alice@example.com", "alice/bob@example.com", "alice/en.usa#holiday@group.v.calendar.google.com"]
        );
        assert!(listed[0].primary && listed[0].access == Some(CalendarAccess::Owner));
        assert_eq!(listed[1].access, Some(CalendarAccess::FreeBusyOnly));
        assert_eq!(listed[0].time_zone.as_deref(), Some("Europe/Berlin"));
        let engine = Engine::new(MemoryStore::new());
        let r = engine.sync(&source, &listed[1].id).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Unauthorized), "{r:?}");
        assert!(r.error.as_deref().unwrap_or_default().contains("free/busy only"), "{r:?}");
        // The same through a source that never listed: the 404 is explained.
        let direct = one(&emu, "tok-alice", "bob", "bob@example.com");
        let r = engine.sync(&direct, &CalendarId::new("bob").unwrap()).await;
        assert!(r.error.as_deref().unwrap_or_default().contains("free/busy only"), "{r:?}");
        // The holiday id is percent-encoded in the path.
        emu.put(
            "alice",
            "en.usa#holiday@group.v.calendar.google.com",
            holiday("20261225_x", "Christmas", "2026-12-25"),
        );
        emu.take_log();
        let r = engine.sync(&source, &listed[2].id).await;
        assert_eq!(r.inserted, 1, "{r:?}");
        assert!(emu.take_log()[0].starts_with("events/en.usa#holiday@group.v.calendar.google.com?"));
    });
}

#[test]
fn short_and_empty_pages_end_nothing_and_only_the_last_page_has_a_token() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..40 {
            emu.put(
                "alice",
                ALICE,
                timed(&format!("ev{i:03}"), &format!("ev{i}@google.com"), "Meeting", "2026-12-01T09:00:00+01:00"),
            );
        }
        emu.short_pages(Some(7), Some(2));
        let source = one(&emu, "tok-alice", "alice", ALICE);
        let engine = Engine::new(MemoryStore::new());
        let cal = CalendarId::new("alice").unwrap();
        let r = engine.sync(&source, &cal).await;
        assert_eq!(r.inserted, 40, "{r:?}");
        let log = emu.take_log();
        assert!(log.len() > 40 / 7 + 1, "empty pages were followed: {log:?}");
        assert!(log.iter().skip(1).all(|l| l.contains("pageToken=")));
        // Every call carries the same pinned query.
        for l in &log {
            assert!(l.contains("maxResults=2500") && l.contains("singleEvents=false"), "{l}");
            for kind in ["birthday", "default", "focusTime", "fromGmail", "outOfOffice", "workingLocation"] {
                assert!(l.contains(&format!("eventTypes={kind}")), "{l}");
            }
            assert!(!l.contains("showDeleted"), "{l}");
        }
        // A delta through short pages too.
        for i in 0..10 {
            emu.put(
                "alice",
                ALICE,
                timed(&format!("ev{i:03}"), &format!("ev{i}@google.com"), "Moved", "2026-12-02T09:00:00+01:00"),
            );
        }
        let r = engine.sync(&source, &cal).await;
        assert_eq!((r.updated, r.inserted, r.deleted), (10, 0, 0), "{r:?}");
        assert!(emu.take_log().iter().all(|l| l.contains("syncToken=")));
    });
}

#[test]
fn the_emulator_refuses_parameters_forbidden_beside_a_sync_token() {
    // The check behind every other test: the emulator does answer 400, so a client that sent
    // one of these would fail there.
    runtime().block_on(async {
        let emu = start().await;
        let source = one(&emu, "tok-alice", "alice", ALICE);
        let engine = Engine::new(MemoryStore::new());
        assert!(engine.sync(&source, &CalendarId::new("alice").unwrap()).await.is_ok());
        let log = emu.take_log();
        let first = log[0].split_once('?').unwrap().1.to_owned();
        let token = {
            // The token the emulator issued: sync once more and read it from the request.
            assert!(engine.sync(&source, &CalendarId::new("alice").unwrap()).await.is_ok());
            let l = emu.take_log();
            l[0].split("syncToken=").nth(1).unwrap().split('&').next().unwrap().to_owned()
        };
        let client = reqwest::Client::new();
        let base = format!("{}/calendars/{}/events", emu.api(), ALICE);
        for extra in [
            "timeMin=2026-01-01T00:00:00Z",
            "q=x",
            "orderBy=updated",
            "iCalUID=x",
            "updatedMin=2026-01-01T00:00:00Z",
            "showDeleted=false",
        ] {
            let url = format!("{base}?{first}&syncToken={token}&{extra}");
            let status = client.get(&url).bearer_auth("tok-alice").send().await.unwrap().status();
            assert_eq!(status.as_u16(), 400, "{extra}");
        }
        // And a token used with another query.
        let url = format!("{base}?maxResults=10&syncToken={token}");
        assert_eq!(client.get(&url).bearer_auth("tok-alice").send().await.unwrap().status().as_u16(), 400);
    });
}

#[test]
fn ten_thousand_events_take_four_pages_and_an_unchanged_re_sync_one_request() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..10_000 {
            let day = 1 + i % 28;
            emu.put(
                "alice",
                ALICE,
                timed(
                    &format!("e{i:05}"),
                    &format!("e{i}@google.com"),
                    "Sync",
                    &format!("2026-12-{day:02}T09:00:00+01:00"),
                ),
            );
        }
        let source = one(&emu, "tok-alice", "alice", ALICE);
        let engine = Engine::new(MemoryStore::new());
        let cal = CalendarId::new("alice").unwrap();
        let started = Instant::now();
        let r = engine.sync(&source, &cal).await;
        let first = started.elapsed();
        assert_eq!(r.inserted, 10_000, "{r:?}");
        assert_eq!(source.requests(), 4, "⌈10,000 / 2,500⌉ pages");
        let started = Instant::now();
        let again = engine.sync(&source, &cal).await;
        let unchanged = started.elapsed();
        assert_eq!((again.writes(), source.requests()), (0, 5), "one request for an unchanged calendar");
        eprintln!(
            "google: first sync of 10,000 events: 4 requests, {first:?}; unchanged re-sync: 1 request, {unchanged:?}"
        );
    });
}

#[test]
fn an_expired_token_lists_the_calendar_whole_and_applies_the_deletions_of_the_gap() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..5 {
            emu.put(
                "alice",
                ALICE,
                timed(&format!("e{i}"), &format!("e{i}@google.com"), "Keep", "2026-12-01T09:00:00+01:00"),
            );
        }
        let source = one(&emu, "tok-alice", "alice", ALICE);
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let cal = CalendarId::new("alice").unwrap();
        assert_eq!(engine.sync(&source, &cal).await.inserted, 5);
        emu.delete("alice", ALICE, "e3");
        emu.put("alice", ALICE, timed("e9", "e9@google.com", "New", "2026-12-03T09:00:00+01:00"));
        emu.expire("alice", ALICE);
        let r = engine.sync(&source, &cal).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!((r.inserted, r.deleted, r.updated), (1, 1, 0), "{r:?}");
        assert!(r.warnings.iter().any(|w| w.contains("410")), "{r:?}");
        assert_eq!(store.events(&cal).len(), 5);
        // The new token works: the next sync is one request, and writes nothing.
        let before = source.requests();
        assert_eq!(engine.sync(&source, &cal).await.writes(), 0);
        assert_eq!(source.requests() - before, 1);
    });
}

// ---------------------------------------------------------------------------------------------
// Cancelled items

#[test]
fn cancelled_items_remove_events_and_cancelled_exceptions_cancel_one_instance() {
    runtime().block_on(async {
        let emu = start().await;
        let mut series = timed("weekly", "weekly@google.com", "Standup", "2026-12-07T09:00:00+01:00");
        series["recurrence"] = json!(["RRULE:FREQ=WEEKLY;BYDAY=MO"]);
        emu.put("alice", ALICE, series);
        let mut moved = timed("weekly_20261214T080000Z", "weekly@google.com", "Standup (moved)", "2026-12-14T11:00:00+01:00");
        moved["recurringEventId"] = json!("weekly");
        moved["originalStartTime"] = json!({"dateTime": "2026-12-14T09:00:00+01:00", "timeZone": "Europe/Berlin"});
        emu.put("alice", ALICE, moved);
        emu.put("alice", ALICE, timed("single", "single@google.com", "Lunch", "2026-12-02T12:00:00+01:00"));
        let source = one(&emu, "tok-alice", "alice", ALICE);
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let cal = CalendarId::new("alice").unwrap();
        assert_eq!(engine.sync(&source, &cal).await.inserted, 3);

        // One instance cancelled, as Google sends it: id, recurringEventId, originalStartTime.
        emu.put("alice", ALICE, json!({"kind": "calendar#event", "id": "weekly_20261221T080000Z", "status": "cancelled",
            "recurringEventId": "weekly", "originalStartTime": {"dateTime": "2026-12-21T09:00:00+01:00", "timeZone": "Europe/Berlin"}}));
        // A deleted single event: only its id. And a cancelled id never seen.
        emu.delete("alice", ALICE, "single");
        emu.put("alice", ALICE, json!({"id": "never-seen", "status": "cancelled"}));
        emu.take_log();
        let r = engine.sync(&source, &cal).await;
        assert_eq!((r.inserted, r.deleted, r.updated), (1, 1, 0), "{r:?}");
        assert!(emu.take_log().iter().any(|l| l.starts_with("event/alice@example.com/weekly")), "the series' UID was looked up");
        let events = store.events(&cal);
        let cancelled = events.iter().find(|e| e.key().recurrence_id.is_some() && e.details().status == Some(EventStatus::Cancelled));
        let cancelled = cancelled.expect("a cancelled instance is stored");
        assert_eq!(cancelled.key().uid.as_str(), "weekly@google.com");
        assert_eq!(cancelled.key().recurrence_id.as_ref().unwrap().to_string(), "20261221T080000Z");
        assert_eq!(events.len(), 3, "the series, its moved instance and the cancelled one");

        // The series deleted: master and every exception go, whatever their ids.
        emu.delete("alice", ALICE, "weekly");
        let r = engine.sync(&source, &cal).await;
        assert_eq!((r.deleted, r.inserted), (3, 0), "{r:?}");
        assert!(store.events(&cal).is_empty());
    });
}

// ---------------------------------------------------------------------------------------------
// Errors and limits

#[test]
fn rate_limits_are_retried_as_asked_and_quota_or_forbidden_answers_fail_without_writing() {
    runtime().block_on(async {
        let emu = start().await;
        emu.put("alice", ALICE, timed("a", "a@google.com", "A", "2026-12-01T09:00:00+01:00"));
        let source = one(&emu, "tok-alice", "alice", ALICE);
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let cal = CalendarId::new("alice").unwrap();
        emu.faults([
            Fault::new(403, Some("rateLimitExceeded"), Some("1")),
            Fault::new(429, Some("rateLimitExceeded"), None),
            Fault::new(503, None, None),
        ]);
        let started = Instant::now();
        let r = engine.sync(&source, &cal).await;
        assert_eq!(r.inserted, 1, "{r:?}");
        assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honored");
        assert_eq!(source.requests(), 4, "three throttled answers, then the page");
        emu.faults([Fault::new(403, Some("userRateLimitExceeded"), None)]);
        let r = engine.sync(&source, &cal).await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(source.requests(), 6, "one throttled answer, then the page");

        emu.put("alice", ALICE, timed("b", "b@google.com", "B", "2026-12-01T10:00:00+01:00"));
        for (fault, kind, requests) in [
            (Fault::new(403, Some("quotaExceeded"), None), ErrorKind::RateLimited, 1),
            // The first 403 also lists the calendars once, to say whether it is free/busy only.
            (Fault::new(403, Some("forbidden"), None), ErrorKind::Unauthorized, 2),
            (Fault::new(404, Some("notFound"), None), ErrorKind::NotFound, 1),
            (Fault { garbage: true, ..Fault::new(200, None, None) }, ErrorKind::Parse, 1),
        ] {
            emu.faults([fault.clone()]);
            let before = source.requests();
            let r = engine.sync(&source, &cal).await;
            assert_eq!(r.error_kind, Some(kind), "{fault:?}: {r:?}");
            assert_eq!(source.requests() - before, requests, "{fault:?}: no hot loop");
            assert_eq!(store.events(&cal).len(), 1, "{fault:?}: nothing written, nothing deleted");
        }
        let quota = ErrorKind::RateLimited;
        assert!(calscope::Error::new(quota, "x").is_retryable());
        // Retries spent: RateLimited, after the configured retries and no more.
        emu.faults(vec![Fault::new(429, None, None); 4]);
        let before = source.requests();
        let r = engine.sync(&source, &cal).await;
        assert_eq!((r.error_kind, source.requests() - before), (Some(ErrorKind::RateLimited), 4), "{r:?}");
        // And then it syncs.
        assert_eq!(engine.sync(&source, &cal).await.inserted, 1);
    });
}

#[test]
fn a_page_over_the_size_cap_or_an_endless_paging_fails_and_writes_nothing() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..30 {
            emu.put(
                "alice",
                ALICE,
                timed(
                    &format!("e{i:02}"),
                    &format!("e{i}@google.com"),
                    &"long ".repeat(200),
                    "2026-12-01T09:00:00+01:00",
                ),
            );
        }
        let small = {
            let mut c = config(&emu, "tok-alice");
            c.http = c.http.max_bytes(16 * 1024);
            GoogleSource::calendar(CalendarId::new("alice").unwrap(), ALICE, c).unwrap()
        };
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let cal = CalendarId::new("alice").unwrap();
        let r = engine.sync(&small, &cal).await;
        assert_eq!(r.error_kind, Some(ErrorKind::LimitExceeded), "{r:?}");
        emu.short_pages(Some(1), None);
        let capped =
            GoogleSource::calendar(CalendarId::new("alice").unwrap(), ALICE, config(&emu, "tok-alice").max_pages(10))
                .unwrap();
        let r = engine.sync(&capped, &cal).await;
        assert_eq!(r.error_kind, Some(ErrorKind::LimitExceeded), "{r:?}");
        emu.short_pages(None, None);
        let few =
            GoogleSource::calendar(CalendarId::new("alice").unwrap(), ALICE, config(&emu, "tok-alice").max_events(29))
                .unwrap();
        let r = engine.sync(&few, &cal).await;
        assert_eq!(r.error_kind, Some(ErrorKind::LimitExceeded), "more events than the cap: {r:?}");
        assert!(store.events(&cal).is_empty());
        let enough =
            GoogleSource::calendar(CalendarId::new("alice").unwrap(), ALICE, config(&emu, "tok-alice").max_events(30))
                .unwrap();
        assert_eq!(engine.sync(&enough, &cal).await.inserted, 30);
    });
}

/// Hands out `stale` until asked to refresh, then `fresh`.
#[derive(Debug)]
struct Rotating {
    refreshes: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenProvider for Rotating {
    async fn token(&self) -> Result<Secret> {
        Ok(Secret::new(if self.refreshes.load(Ordering::SeqCst) == 0 { "tok-stale" } else { "tok-alice" }))
    }
    async fn refresh(&self) -> Result<Secret> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new("tok-alice"))
    }
}

#[test]
fn a_401_refreshes_the_token_once_then_syncs() {
    runtime().block_on(async {
        let emu = start().await;
        emu.put("alice", ALICE, timed("a", "a@google.com", "A", "2026-12-01T09:00:00+01:00"));
        let tokens = Arc::new(Rotating { refreshes: AtomicUsize::new(0) });
        let mut c = config(&emu, "unused");
        c.http = c.http.auth(HttpAuth::Token(tokens.clone()));
        let source = GoogleSource::calendar(CalendarId::new("alice").unwrap(), ALICE, c).unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&source, &CalendarId::new("alice").unwrap()).await;
        assert_eq!(r.inserted, 1, "{r:?}");
        assert_eq!((tokens.refreshes.load(Ordering::SeqCst), source.requests()), (1, 2));
        // A token that stays refused: Unauthorized after one refresh, and never shown.
        let refused = one(&emu, "tok-secret-never-valid", "alice", ALICE);
        let r = Engine::new(MemoryStore::new()).sync(&refused, &CalendarId::new("alice").unwrap()).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Unauthorized), "{r:?}");
        assert!(!format!("{r:?} {refused:?}").contains("tok-secret"), "{r:?}");
    });
}

// ---------------------------------------------------------------------------------------------
// The motivating bug, counted by the database

/// (inserts, updates, deletes) the triggers logged since the last call.
fn take_counts(store: &SqliteStore) -> (i64, i64, i64) {
    let rows = take_writes(store);
    let count = |op: &str| i64::try_from(rows.iter().filter(|(o, _, _)| o == op).count()).unwrap();
    (count("insert"), count("update"), count("delete"))
}

const HOLIDAYS: &str = "en.usa#holiday@group.v.calendar.google.com";

#[test]
fn a_thousand_users_sharing_a_holiday_calendar_write_only_real_changes() {
    runtime().block_on(async {
        let emu = GoogleEmulator::start().await;
        let users = 1_000;
        let holidays = [
            ("20261225_a", "Christmas Day", "2026-12-25"),
            ("20261231_b", "New Year's Eve", "2026-12-31"),
            ("20270101_c", "New Year's Day", "2027-01-01"),
            ("20270118_d", "Martin Luther King Jr. Day", "2027-01-18"),
            ("20270215_e", "Presidents' Day", "2027-02-15"),
        ];
        for u in 0..users {
            let account = format!("user{u}");
            emu.user(&account, &format!("tok-{u}"));
            let own = format!("{account}@example.com");
            emu.calendar(&account, &own, &account, "owner", true);
            emu.calendar(&account, HOLIDAYS, "Holidays in United States", "reader", false);
            for (id, name, date) in holidays {
                emu.put(&account, HOLIDAYS, holiday(id, name, date));
            }
            // Their own events, plus the same invite on everyone's calendar (same id and UID).
            emu.put(
                &account,
                &own,
                timed(&format!("own{u}"), &format!("own{u}@google.com"), "Focus", "2026-12-01T09:00:00+01:00"),
            );
            emu.put(&account, &own, timed("allhands", "allhands@google.com", "All hands", "2026-12-04T16:00:00+01:00"));
        }
        let path = counted_db("thousand");
        let engine = Engine::new(SqliteStore::open(&path).unwrap());
        let sources: Vec<(GoogleSource, Vec<CalendarId>)> = {
            let mut out = Vec::new();
            for u in 0..users {
                let source = GoogleSource::account(&format!("user{u}"), config(&emu, &format!("tok-{u}"))).unwrap();
                let ids = source.calendars().await.unwrap().into_iter().map(|c| c.id).collect();
                out.push((source, ids));
            }
            out
        };
        let sync_all = || async {
            let jobs: Vec<(&GoogleSource, &CalendarId)> =
                sources.iter().flat_map(|(s, ids)| ids.iter().map(move |id| (s, id))).collect();
            let reports: Vec<_> =
                futures::stream::iter(jobs).map(|(s, id)| engine.sync(s, id)).buffer_unordered(16).collect().await;
            assert!(reports.iter().all(calscope::CalendarReport::is_ok), "{:?}", reports.iter().find(|r| !r.is_ok()));
        };
        let started = Instant::now();
        sync_all().await;
        let first = started.elapsed();
        assert_eq!(take_counts(engine.store()), ((users * (holidays.len() + 2)) as i64, 0, 0));

        // Google-side churn on every event of every user: etag, updated, sequence, htmlLink,
        // reminders, colorId, self flags, conference data. Each reaches the deltas; none writes.
        emu.churn(7);
        let started = Instant::now();
        sync_all().await;
        let churned = started.elapsed();
        assert_eq!(take_counts(engine.store()), (0, 0, 0), "churn wrote rows");

        // One holiday renamed (on every subscriber's copy): exactly one row per calendar.
        for u in 0..users {
            emu.put(&format!("user{u}"), HOLIDAYS, holiday("20261225_a", "Christmas", "2026-12-25"));
        }
        sync_all().await;
        assert_eq!(take_counts(engine.store()), (0, users as i64, 0));

        // One user's edit of the shared invite: exactly one row.
        emu.put(
            "user17",
            "user17@example.com",
            timed("allhands", "allhands@google.com", "All hands (moved)", "2026-12-04T17:00:00+01:00"),
        );
        sync_all().await;
        assert_eq!(take_counts(engine.store()), (0, 1, 0));
        eprintln!("google: {users} users × 2 calendars: first sync {first:?}, churned re-sync {churned:?}");
        drop(engine);
        remove_db(&path);
    });
}

// ---------------------------------------------------------------------------------------------
// OAuth 2.0 refresh tokens (RFC 6749, section 6)

/// A token endpoint: refresh token `r1` gives `at-1` and rotates to `r2`; `r2` gives `at-2`.
async fn token_endpoint(posts: Arc<std::sync::Mutex<Vec<String>>>) -> std::net::SocketAddr {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/token",
        post(move |body: String| {
            let posts = Arc::clone(&posts);
            async move {
                posts.lock().unwrap().push(body.clone());
                let form: std::collections::HashMap<String, String> =
                    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                let ok = form.get("grant_type").map(String::as_str) == Some("refresh_token")
                    && form.get("client_id").map(String::as_str) == Some("cid")
                    && form.get("client_secret").map(String::as_str) == Some("csecret-never-shown");
                let answer = match (ok, form.get("refresh_token").map(String::as_str)) {
                    (true, Some("r1")) => json!({"access_token": "at-1", "expires_in": 3600, "token_type": "Bearer", "refresh_token": "r2"}),
                    (true, Some("r2")) => json!({"access_token": "tok-alice", "expires_in": 3600, "token_type": "Bearer"}),
                    _ => {
                        let body = json!({"error": "invalid_grant", "error_description": "Bad refresh token r-revoked"});
                        return (axum::http::StatusCode::BAD_REQUEST, body.to_string());
                    }
                };
                (axum::http::StatusCode::OK, answer.to_string())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[test]
fn oauth_refresh_tokens_are_traded_cached_rotated_and_never_shown() {
    runtime().block_on(async {
        let posts = Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = token_endpoint(Arc::clone(&posts)).await;
        let endpoint = format!("http://{addr}/token");
        let tokens = calscope::OAuthRefresh::new(&endpoint, "cid", "csecret-never-shown", "r1").unwrap();
        assert_eq!(tokens.token().await.unwrap().expose(), "at-1");
        assert_eq!(tokens.token().await.unwrap().expose(), "at-1", "cached until it expires");
        assert_eq!(posts.lock().unwrap().len(), 1);
        // After a 401 the host's provider refreshes with the rotated refresh token.
        assert_eq!(tokens.refresh().await.unwrap().expose(), "tok-alice");
        assert!(posts.lock().unwrap()[1].contains("refresh_token=r2"));
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("csecret") && !shown.contains("r2") && !shown.contains("tok-alice"), "{shown}");

        // Against the emulator: the first token (at-1) is refused, the refresh gives one it takes.
        let emu = start().await;
        emu.put("alice", ALICE, timed("a", "a@google.com", "A", "2026-12-01T09:00:00+01:00"));
        let provider = Arc::new(calscope::OAuthRefresh::new(&endpoint, "cid", "csecret-never-shown", "r1").unwrap());
        let mut c = config(&emu, "unused");
        c.http = c.http.auth(HttpAuth::Token(provider));
        let source = GoogleSource::calendar(CalendarId::new("alice").unwrap(), ALICE, c).unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&source, &CalendarId::new("alice").unwrap()).await;
        assert_eq!(r.inserted, 1, "{r:?}");

        // A revoked refresh token: Unauthorized, with the error code and nothing secret.
        let revoked = calscope::OAuthRefresh::new(&endpoint, "cid", "csecret-never-shown", "r-revoked").unwrap();
        let err = revoked.token().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized);
        let text = format!("{err} {err:?}");
        assert!(text.contains("invalid_grant") && !text.contains("r-revoked") && !text.contains("csecret"), "{text}");
    });
}

// ---------------------------------------------------------------------------------------------
// The `sync` example

fn sync_cmd(emu: &GoogleEmulator, db: &std::path::Path, token: Option<&str>, pairs: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(crate::sync_example::sync_bin());
    cmd.arg("--db").arg(db).arg("--json").args(pairs).env("CALSCOPE_GOOGLE_API", emu.api());
    match token {
        Some(t) => cmd.env("CALSCOPE_GOOGLE_TOKEN", t),
        None => cmd.env_remove("CALSCOPE_GOOGLE_TOKEN"),
    };
    cmd.output().unwrap()
}

#[test]
fn the_sync_example_syncs_one_google_calendar_or_the_whole_account() {
    runtime().block_on(async {
        let emu = start().await;
        emu.calendar("alice", HOLIDAYS, "Holidays", "reader", false);
        emu.put("alice", ALICE, timed("a", "a@google.com", "A", "2026-12-01T09:00:00+01:00"));
        emu.put("alice", HOLIDAYS, holiday("20261225_a", "Christmas Day", "2026-12-25"));
        emu.put("alice", HOLIDAYS, holiday("20261231_b", "New Year's Eve", "2026-12-31"));
        let db = std::env::temp_dir().join(format!("calscope-google-example-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&db);
        let run = |token: Option<&'static str>, pairs: Vec<&'static str>| {
            let (emu, db) = (emu.clone(), db.clone());
            tokio::task::spawn_blocking(move || sync_cmd(&emu, &db, token, &pairs))
        };
        let out = run(
            Some("tok-alice"),
            vec!["work=google:alice@example.com", "hol=google:en.usa#holiday@group.v.calendar.google.com"],
        )
        .await
        .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["writes"], json!(3), "{report}");
        emu.take_log();
        let out = run(
            Some("tok-alice"),
            vec!["work=google:alice@example.com", "hol=google:en.usa#holiday@group.v.calendar.google.com"],
        )
        .await
        .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["writes"], json!(0), "{report}");
        assert_eq!(emu.take_log().len(), 2, "one request per unchanged calendar");

        let out = run(Some("tok-alice"), vec!["me=google:"]).await.unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let ids: Vec<&str> =
            report["calendars"].as_array().unwrap().iter().map(|c| c["calendar"].as_str().unwrap()).collect();
        assert_eq!(ids, ["me/alice@example.com", "me/en.usa#holiday@group.v.calendar.google.com"], "{report}");
        assert_eq!(report["writes"], json!(3));

        let out = run(None, vec!["work=google:primary"]).await.unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("CALSCOPE_GOOGLE_TOKEN"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(&db);
    });
}

#[test]
fn an_exception_has_the_key_the_ics_reader_gives_the_same_override() {
    let cal = CalendarId::new("same").unwrap();
    let policy = FingerprintPolicy::default();
    let ics = |rid: &str| {
        let text =
            format!("BEGIN:VEVENT\r\nUID:weekly@google.com\r\n{rid}\r\nDTSTART:20261214T100000Z\r\nEND:VEVENT\r\n");
        Event::from_ics(&cal, &text, &policy).unwrap().key().clone()
    };
    let google = |original: &str| {
        let json = format!(
            r#"{{"id":"weekly_x","iCalUID":"weekly@google.com","recurringEventId":"weekly","originalStartTime":{original},"start":{{"dateTime":"2026-12-14T11:00:00+01:00"}}}}"#
        );
        GoogleSource::event_from_json(&cal, &json, &policy).unwrap().unwrap().key().clone()
    };
    assert_eq!(
        google(r#"{"dateTime":"2026-12-14T09:00:00+01:00","timeZone":"Europe/Berlin"}"#),
        ics("RECURRENCE-ID;TZID=Europe/Berlin:20261214T090000")
    );
    assert_eq!(google(r#"{"dateTime":"2026-12-14T08:00:00Z"}"#), ics("RECURRENCE-ID:20261214T080000Z"));
    assert_eq!(google(r#"{"date":"2026-12-14"}"#), ics("RECURRENCE-ID;VALUE=DATE:20261214"));
    // A master has no recurrence id.
    let master = r#"{"id":"weekly","iCalUID":"weekly@google.com","start":{"date":"2026-12-14"},"recurrence":["RRULE:FREQ=WEEKLY"]}"#;
    assert!(GoogleSource::event_from_json(&cal, master, &policy).unwrap().unwrap().key().recurrence_id.is_none());
}

#[test]
fn every_page_of_the_calendar_list_is_read() {
    runtime().block_on(async {
        let emu = start().await;
        for i in 0..300 {
            emu.calendar("alice", &format!("shared{i:03}@group.calendar.google.com"), "Shared", "reader", false);
        }
        let source = GoogleSource::account("alice", config(&emu, "tok-alice")).unwrap();
        assert_eq!(source.calendars().await.unwrap().len(), 301);
        assert_eq!(source.requests(), 2, "pages of 250");
    });
}
