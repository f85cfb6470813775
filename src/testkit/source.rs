//! Conformance checks for [`CalendarSource`] implementations.
//!
//! A source is read-only through its trait, so the checks change what it serves through a
//! [`SourceFixture`] the host implements: create a calendar, set its content, expire its
//! cursors. Each check then holds what the source answers against the trait's `# Behavior`
//! bullets, syncing through the [`Engine`] into [`MemoryStore`]s where it compares outcomes.

use std::sync::Arc;

use async_trait::async_trait;

use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::fingerprint::{Fingerprint, FingerprintPolicy};
use crate::id::{CalendarId, Cursor, EventKey};
use crate::source::{CalendarSource, Changes, FetchRequest, Fetched};
use crate::store::{LoadScope, Store};
use crate::stores::memory::MemoryStore;
use crate::{PlanOptions, SyncOptions};

/// A calendar a [`SourceFixture`] created, and the source that serves it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct FixtureCalendar {
    /// The id the source fetches it by.
    pub id: CalendarId,
    /// The source under test (a CalDAV account, or a feed source serving just this calendar).
    pub source: Arc<dyn CalendarSource>,
}

impl FixtureCalendar {
    /// A calendar `id` served by `source`.
    #[must_use]
    pub fn new(id: CalendarId, source: Arc<dyn CalendarSource>) -> Self {
        Self { id, source }
    }
}

/// What the source checks need to change what a source serves: the host's side of the
/// conformance suite for a [`CalendarSource`].
///
/// Event texts handed to [`set_events`](Self::set_events) are single `VEVENT` components
/// (CRLF line endings); events sharing a UID are one recurring event (a master and its
/// overrides), which a CalDAV fixture stores as one resource.
#[async_trait]
pub trait SourceFixture: Send + Sync {
    /// Creates an empty calendar named after `name` (unique per check and run) and answers its
    /// id and the source serving it.
    ///
    /// # Errors
    /// When the calendar cannot be created.
    async fn create_calendar(&self, name: &str) -> Result<FixtureCalendar>;

    /// Makes `calendar`'s content exactly `events`: adds, changes and removes as needed.
    ///
    /// # Errors
    /// When the content cannot be written.
    async fn set_events(&self, calendar: &CalendarId, events: &[String]) -> Result<()>;

    /// Makes every cursor issued for `calendar` so far invalid, as a server forgets old sync
    /// tokens. Answers `false` when the source has no way to do that; the expiry check then
    /// uses a cursor the source never issued instead.
    ///
    /// # Errors
    /// When the source could not be told.
    async fn expire_cursors(&self, calendar: &CalendarId) -> Result<bool>;

    /// The event the source answers for `text` once the fixture stored it. By default `text`
    /// as it is, which is what servers that keep iCalendar text (CalDAV, feeds) answer; a
    /// fixture whose server re-renders what it stores (an API such as Google's) answers the
    /// rendered event, so the checks compare like with like.
    ///
    /// # Errors
    /// When `text` cannot be turned into an event.
    fn expected_event(&self, calendar: &CalendarId, text: &str) -> Result<Event> {
        Event::from_ics(calendar, text, &FingerprintPolicy::default())
    }
}

fn fail(check: &str, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Other, format!("source check {check}: {what}"))
}

fn ensure(check: &str, ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(fail(check, what())) }
}

/// A VEVENT text; `stamp` is its DTSTAMP's seconds, which every call of a check moves, as real
/// servers regenerate it.
fn vevent(uid: &str, rid: Option<&str>, summary: &str, stamp: u32) -> String {
    let rid_line = rid.map(|r| format!("RECURRENCE-ID:{r}\r\n")).unwrap_or_default();
    let rrule = if rid.is_none() && uid.starts_with("weekly") { "RRULE:FREQ=WEEKLY;COUNT=10\r\n" } else { "" };
    let start = rid.unwrap_or("20260105T090000Z");
    format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\n{rid_line}DTSTAMP:20260101T0000{:02}Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\n{rrule}SUMMARY:{summary}\r\nEND:VEVENT\r\n",
        stamp % 60
    )
}

/// The keys and fingerprints `events` must produce in `calendar`.
fn expected(
    fixture: &dyn SourceFixture,
    calendar: &CalendarId,
    events: &[String],
) -> Result<Vec<(EventKey, Fingerprint)>> {
    let mut out = events
        .iter()
        .map(|t| fixture.expected_event(calendar, t).map(|e| (e.key().clone(), e.fingerprint())))
        .collect::<Result<Vec<_>>>()?;
    out.sort();
    Ok(out)
}

/// What a store holds for `calendar`: keys and fingerprints, sorted.
async fn content(store: &dyn Store, calendar: &CalendarId) -> Result<Vec<(EventKey, Fingerprint)>> {
    let state = store.load(calendar, LoadScope::All).await?;
    let mut out: Vec<_> = state.entries().iter().map(|e| (e.key.clone(), e.fingerprint)).collect();
    out.sort();
    Ok(out)
}

/// An engine over a fresh memory store whose guards let a check delete everything.
fn engine() -> Engine<MemoryStore> {
    let plan = PlanOptions::default().allow_empty(true).allow_mass_change(true);
    Engine::new(MemoryStore::new()).with_options(SyncOptions::default().plan(plan))
}

/// Syncs `calendar` and fails the check with the report's error.
async fn sync(check: &str, engine: &Engine<MemoryStore>, cal: &FixtureCalendar) -> Result<()> {
    let report = engine.sync(cal.source.as_ref(), &cal.id).await;
    ensure(check, report.is_ok(), || format!("sync of {} failed: {:?}", cal.id, report.error))
}

/// The keys and fingerprints of a fetch's changes, for messages and comparisons.
fn fetched_events(fetched: &Fetched) -> Vec<(EventKey, Fingerprint)> {
    let events = match &fetched.changes {
        Changes::Snapshot(s) => s.events(),
        Changes::Delta(d) => &d.upserts,
    };
    let mut out: Vec<_> = events.iter().map(|e| (e.key().clone(), e.fingerprint())).collect();
    out.sort();
    out
}

/// A fetch without a cursor answers a complete snapshot of exactly the calendar's events, each
/// keyed to the requested calendar (a master and its override as two keys); the calendar is
/// among those the source lists.
///
/// # Errors
/// What the source did wrong.
pub async fn check_snapshot_complete(fixture: &dyn SourceFixture) -> Result<()> {
    let check = "snapshot_complete";
    let cal = fixture.create_calendar("testkit-snapshot").await?;
    let events = vec![
        vevent("single@testkit", None, "Single", 1),
        vevent("weekly@testkit", None, "Weekly", 1),
        vevent("weekly@testkit", Some("20260112T090000Z"), "Weekly (moved)", 1),
        vevent("other@testkit", None, "Other", 1),
    ];
    fixture.set_events(&cal.id, &events).await?;
    let listed = cal.source.calendars().await?;
    ensure(check, listed.iter().any(|c| c.id == cal.id), || format!("{} is not among the listed {listed:?}", cal.id))?;
    let fetched = cal.source.fetch(FetchRequest::new(&cal.id, None)).await?;
    let Changes::Snapshot(snapshot) = &fetched.changes else {
        return Err(fail(check, "a fetch without a cursor answered a delta"));
    };
    ensure(check, snapshot.is_complete(), || "a snapshot of well-formed events is marked incomplete".to_owned())?;
    ensure(check, snapshot.events().iter().all(|e| e.key().calendar == cal.id), || {
        "the snapshot holds events keyed to another calendar".to_owned()
    })?;
    let want = expected(fixture, &cal.id, &events)?;
    let got = fetched_events(&fetched);
    ensure(check, got == want, || format!("the snapshot holds {got:?}, the calendar {want:?}"))
}

/// The cursor resumes after everything the answer held: fetching with it while nothing changed
/// reports nothing new; after a change, the previous cursor reports the change (or has
/// expired) and the newest one reports nothing new. A source without cursors answers none and
/// only snapshots.
///
/// # Errors
/// What the source did wrong.
pub async fn check_cursor_monotonic(fixture: &dyn SourceFixture) -> Result<()> {
    let check = "cursor_monotonic";
    let cal = fixture.create_calendar("testkit-cursor").await?;
    let v1 = vec![vevent("a@testkit", None, "A", 1), vevent("b@testkit", None, "B", 1)];
    fixture.set_events(&cal.id, &v1).await?;
    let first = cal.source.fetch(FetchRequest::new(&cal.id, None)).await?;
    let Some(c1) = first.cursor.clone() else {
        ensure(check, !cal.source.capabilities().cursor, || "a source with cursors issued none".to_owned())?;
        return Ok(());
    };
    // Nothing changed: nothing new.
    let again = cal.source.fetch(FetchRequest::new(&cal.id, Some(&c1))).await?;
    reports_nothing_new(check, &again, &expected(fixture, &cal.id, &v1)?)?;
    let c2 = again.cursor.clone().unwrap_or(c1.clone());
    // A change, with every DTSTAMP regenerated.
    let v2 = vec![vevent("a@testkit", None, "A (edited)", 2), vevent("b@testkit", None, "B", 2)];
    fixture.set_events(&cal.id, &v2).await?;
    let want = expected(fixture, &cal.id, &v2)?;
    let edited = want.iter().find(|(k, _)| k.uid.as_str() == "a@testkit").cloned();
    let after = match cal.source.fetch(FetchRequest::new(&cal.id, Some(&c2))).await {
        Err(e) if e.kind() == ErrorKind::CursorExpired => cal.source.fetch(FetchRequest::new(&cal.id, None)).await?,
        other => other?,
    };
    let got = fetched_events(&after);
    ensure(check, edited.as_ref().is_some_and(|e| got.contains(e)), || {
        format!("the change is missing from what the previous cursor answered: {got:?}")
    })?;
    let c3 = after.cursor.clone().ok_or_else(|| fail(check, "a source that issued cursors stopped"))?;
    let last = cal.source.fetch(FetchRequest::new(&cal.id, Some(&c3))).await?;
    reports_nothing_new(check, &last, &want)
}

/// A fetch that should report nothing new answers an empty delta, or a snapshot of exactly the
/// current content.
fn reports_nothing_new(check: &str, fetched: &Fetched, current: &[(EventKey, Fingerprint)]) -> Result<()> {
    match &fetched.changes {
        Changes::Delta(d) => {
            // Upserts of unchanged content are allowed (a server may re-send); they must match.
            let got = fetched_events(fetched);
            ensure(
                check,
                d.removals.is_empty() && d.removed_hrefs.is_empty() && got.iter().all(|e| current.contains(e)),
                || format!("nothing changed, yet the delta reports {d:?}"),
            )
        }
        Changes::Snapshot(_) => {
            let got = fetched_events(fetched);
            ensure(check, got == current, || format!("nothing changed, yet the snapshot holds {got:?}"))
        }
    }
}

/// Following the source's deltas, change after change, ends in exactly the state a fresh
/// snapshot gives: adds, edits (with regenerated DTSTAMPs), deletions, a recurring event
/// gaining and losing an override, and a recurring event removed whole.
///
/// # Errors
/// What the source did wrong.
pub async fn check_deltas_match_snapshots(fixture: &dyn SourceFixture) -> Result<()> {
    let check = "deltas_match_snapshots";
    let cal = fixture.create_calendar("testkit-deltas").await?;
    let over = |summary: &str, stamp| vevent("weekly@testkit", Some("20260112T090000Z"), summary, stamp);
    let steps: Vec<Vec<String>> = vec![
        vec![vevent("a@testkit", None, "A", 1), vevent("weekly@testkit", None, "Weekly", 1)],
        vec![
            vevent("a@testkit", None, "A", 2),
            vevent("weekly@testkit", None, "Weekly", 2),
            over("Moved", 2),
            vevent("b@testkit", None, "B", 2),
        ],
        vec![
            vevent("a@testkit", None, "A (edited)", 3),
            vevent("weekly@testkit", None, "Weekly", 3),
            over("Moved again", 3),
        ],
        vec![vevent("a@testkit", None, "A (edited)", 4), vevent("weekly@testkit", None, "Weekly", 4)],
        vec![vevent("c@testkit", None, "C", 5), vevent("weekly-two@testkit", None, "Weekly two", 5)],
        vec![],
    ];
    let follower = engine();
    for (n, events) in steps.iter().enumerate() {
        fixture.set_events(&cal.id, events).await?;
        sync(check, &follower, &cal).await?;
        let fresh = engine();
        sync(check, &fresh, &cal).await?;
        let (by_deltas, by_snapshot) =
            (content(follower.store(), &cal.id).await?, content(fresh.store(), &cal.id).await?);
        let want = expected(fixture, &cal.id, events)?;
        ensure(check, by_snapshot == want, || {
            format!("step {n}: a snapshot holds {by_snapshot:?}, the calendar {want:?}")
        })?;
        ensure(check, by_deltas == by_snapshot, || {
            format!("step {n}: following deltas holds {by_deltas:?}, a fresh snapshot {by_snapshot:?}")
        })?;
    }
    Ok(())
}

/// An expired cursor fails with [`ErrorKind::CursorExpired`] or answers a complete snapshot,
/// never a delta that could miss changes; a sync over it applies the deletions made in the
/// gap. When the fixture cannot expire cursors, a cursor the source never issued stands in.
///
/// # Errors
/// What the source did wrong.
pub async fn check_cursor_expiry(fixture: &dyn SourceFixture) -> Result<()> {
    let check = "cursor_expiry";
    let cal = fixture.create_calendar("testkit-expiry").await?;
    let before = vec![
        vevent("keep@testkit", None, "Keep", 1),
        vevent("gone@testkit", None, "Gone", 1),
        vevent("weekly@testkit", None, "Weekly", 1),
        vevent("weekly@testkit", Some("20260112T090000Z"), "Moved", 1),
    ];
    fixture.set_events(&cal.id, &before).await?;
    let store = engine();
    sync(check, &store, &cal).await?;
    let after = vec![
        vevent("keep@testkit", None, "Keep", 2),
        vevent("weekly@testkit", None, "Weekly", 2),
        vevent("new@testkit", None, "New", 2),
    ];
    fixture.set_events(&cal.id, &after).await?;
    let stored = store.store().load(&cal.id, LoadScope::Head).await?;
    let cursor = if fixture.expire_cursors(&cal.id).await? {
        stored.head().cursor.clone()
    } else {
        Some(Cursor::new("testkit: a cursor this source never issued"))
    };
    if let Some(cursor) = cursor {
        match cal.source.fetch(FetchRequest::new(&cal.id, Some(&cursor))).await {
            Err(e) if e.kind() == ErrorKind::CursorExpired => {}
            Err(e) => return Err(fail(check, format!("an expired cursor failed with {e}, not as expired"))),
            Ok(f) => match &f.changes {
                Changes::Snapshot(s) if s.is_complete() => {}
                other => return Err(fail(check, format!("an expired cursor answered {other:?}"))),
            },
        }
    }
    sync(check, &store, &cal).await?;
    let got = content(store.store(), &cal.id).await?;
    let want = expected(fixture, &cal.id, &after)?;
    ensure(check, got == want, || format!("after an expiry the store holds {got:?}, the calendar {want:?}"))
}

/// Runs every source check, in order, stopping at the first failure.
///
/// # Errors
/// The first check that failed, naming it.
pub async fn run_source_checks(fixture: &dyn SourceFixture) -> Result<()> {
    check_snapshot_complete(fixture).await?;
    check_cursor_monotonic(fixture).await?;
    check_deltas_match_snapshots(fixture).await?;
    check_cursor_expiry(fixture).await
}
