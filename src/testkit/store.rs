//! Conformance checks for [`Store`] implementations.

use futures::future::join;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::fingerprint::FingerprintPolicy;
use crate::id::{CalendarId, Cursor, EventKey};
use crate::plan::{Change, Plan, PlanOptions, plan};
use crate::source::{Changes, Snapshot};
use crate::state::{Revision, StoredState};
use crate::store::{ApplyRequest, LoadScope, Store};

pub(super) fn fail(check: &str, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Other, format!("store check {check}: {what}"))
}

pub(super) fn ensure(check: &str, ok: bool, what: impl FnOnce() -> String) -> Result<()> {
    if ok { Ok(()) } else { Err(fail(check, what())) }
}

pub(super) fn calendar(check: &str, n: usize) -> Result<CalendarId> {
    CalendarId::new(format!("testkit-{check}-{n}"))
}

/// A VEVENT of `calendar` with this UID, optional RECURRENCE-ID (a UTC time like
/// `20260112T090000Z`) and summary.
fn event(calendar: &CalendarId, uid: &str, rid: Option<&str>, summary: &str) -> Result<Event> {
    let rid_line = rid.map(|r| format!("RECURRENCE-ID:{r}\r\n")).unwrap_or_default();
    let text = format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\n{rid_line}DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z\r\nDTEND:20260105T100000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"
    );
    Event::from_ics(calendar, &text, &FingerprintPolicy::default())
}

fn snapshot_plan(calendar: &CalendarId, events: Vec<Event>, state: &StoredState) -> Plan {
    let options = PlanOptions::default().allow_empty(true).allow_mass_change(true);
    plan(calendar, &Changes::Snapshot(Snapshot::complete(events)), state, &options)
}

/// Plans `events` as the calendar's complete content against what the store holds, and applies
/// the plan with `cursor`.
async fn sync_to(store: &dyn Store, calendar: &CalendarId, events: Vec<Event>, cursor: &str) -> Result<()> {
    sync_plan(store, calendar, events, cursor).await.map(drop)
}

/// [`sync_to`], answering the applied plan.
async fn sync_plan(store: &dyn Store, calendar: &CalendarId, events: Vec<Event>, cursor: &str) -> Result<Plan> {
    let state = store.load(calendar, LoadScope::All).await?;
    let p = snapshot_plan(calendar, events, &state);
    let applied = store.apply(ApplyRequest::new(&p, state.head().revision, Some(&Cursor::new(cursor)))).await?;
    ensure("apply", applied.rows.len() == p.changes().len() && applied.rows.iter().all(|&n| n == 1), || {
        format!("rows affected {:?} for {} changes (each must be 1)", applied.rows, p.changes().len())
    })?;
    ensure("apply", applied.revision > state.head().revision, || {
        format!("revision did not move forward: {:?} -> {:?}", state.head().revision, applied.revision)
    })?;
    Ok(p)
}

async fn keys(store: &dyn Store, calendar: &CalendarId) -> Result<Vec<EventKey>> {
    let state = store.load(calendar, LoadScope::All).await?;
    let mut keys: Vec<EventKey> = state.entries().iter().map(|e| e.key.clone()).collect();
    keys.sort();
    Ok(keys)
}

/// A calendar the store never saw loads as empty, at revision zero, with no cursor.
///
/// # Errors
/// What the store did wrong.
pub async fn check_unknown_calendar_is_empty(store: &dyn Store) -> Result<()> {
    let check = "unknown_calendar_is_empty";
    let cal = calendar(check, 0)?;
    for scope in [LoadScope::Head, LoadScope::All] {
        let state = store.load(&cal, scope).await?;
        ensure(
            check,
            state.is_empty() && state.head().revision == Revision::ZERO && state.head().cursor.is_none(),
            || format!("{scope:?} answered {:?} with {} entries", state.head(), state.len()),
        )?;
    }
    Ok(())
}

/// Calendars holding the same UIDs are isolated: writing one never touches the other, and
/// each loads only its own rows.
///
/// # Errors
/// What the store did wrong.
pub async fn check_isolation(store: &dyn Store) -> Result<()> {
    let check = "isolation";
    let (a, b) = (calendar(check, 0)?, calendar(check, 1)?);
    for cal in [&a, &b] {
        let events =
            vec![event(cal, "shared@x", None, "Holiday")?, event(cal, "shared@x", Some("20260112T090000Z"), "Moved")?];
        sync_to(store, cal, events, "c1").await?;
    }
    // Change and delete in `a` only.
    sync_to(store, &a, vec![event(&a, "shared@x", None, "Holiday (edited)")?], "c2").await?;
    let (ka, kb) = (keys(store, &a).await?, keys(store, &b).await?);
    ensure(check, ka.len() == 1 && kb.len() == 2, || format!("a holds {ka:?}, b holds {kb:?}"))?;
    ensure(check, kb.iter().all(|k| k.calendar == b) && ka.iter().all(|k| k.calendar == a), || {
        "a calendar answered another calendar's rows".to_owned()
    })?;
    let state = store.load(&b, LoadScope::All).await?;
    let master = event(&b, "shared@x", None, "Holiday")?;
    ensure(check, state.get(master.key()).is_some_and(|e| e.fingerprint == master.fingerprint()), || {
        "b's copy changed when a's did".to_owned()
    })
}

/// An apply writes all changes and the cursor, or nothing: a plan that fails in the middle
/// (its last change touches no row, which the row-count guard refuses) leaves neither rows nor
/// cursor changed.
///
/// # Errors
/// What the store did wrong.
pub async fn check_atomic_apply_with_cursor(store: &dyn Store) -> Result<()> {
    let check = "atomic_apply_with_cursor";
    let cal = calendar(check, 0)?;
    let first = event(&cal, "1", None, "one")?;
    sync_to(store, &cal, vec![first.clone()], "c1").await?;
    let before = store.load(&cal, LoadScope::All).await?;
    // Planned against an empty state: it inserts "2" (fine) and then "1" again, which is stored
    // with the same fingerprint: that upsert touches no row.
    let stale = snapshot_plan(&cal, vec![event(&cal, "2", None, "two")?, first], &StoredState::empty(cal.clone()));
    let result = store.apply(ApplyRequest::new(&stale, before.head().revision, Some(&Cursor::new("c2")))).await;
    ensure(check, result.as_ref().is_err_and(|e| e.kind() == ErrorKind::ScopeViolation), || {
        format!("an insert of a stored key answered {result:?}, not a scope violation")
    })?;
    let after = store.load(&cal, LoadScope::All).await?;
    ensure(check, after.head() == before.head(), || format!("head moved: {:?} -> {:?}", before.head(), after.head()))?;
    let ks = keys(store, &cal).await?;
    ensure(check, ks.len() == 1, || format!("rows of a failed apply were kept: {ks:?}"))
}

/// Applying the same plan twice writes once: the second apply expects a revision that moved,
/// and fails with a conflict.
///
/// # Errors
/// What the store did wrong.
pub async fn check_idempotent_apply(store: &dyn Store) -> Result<()> {
    let check = "idempotent_apply";
    let cal = calendar(check, 0)?;
    let state = store.load(&cal, LoadScope::All).await?;
    let p = snapshot_plan(&cal, vec![event(&cal, "1", None, "one")?], &state);
    let _ = store.apply(ApplyRequest::new(&p, state.head().revision, None)).await?;
    let again = store.apply(ApplyRequest::new(&p, state.head().revision, None)).await;
    ensure(check, again.as_ref().is_err_and(|e| e.kind() == ErrorKind::Conflict), || {
        format!("a repeated apply answered {again:?}, not a conflict")
    })?;
    let ks = keys(store, &cal).await?;
    ensure(check, ks.len() == 1, || format!("{} rows after a repeated apply", ks.len()))
}

/// The cursor compare-and-set: an apply over a stale revision fails with a retryable conflict
/// and writes nothing; the stored cursor is the one of the last successful apply.
///
/// # Errors
/// What the store did wrong.
pub async fn check_cursor_compare_and_set(store: &dyn Store) -> Result<()> {
    let check = "cursor_compare_and_set";
    let cal = calendar(check, 0)?;
    let state = store.load(&cal, LoadScope::All).await?;
    let p1 = snapshot_plan(&cal, vec![event(&cal, "1", None, "one")?], &state);
    let p2 = snapshot_plan(&cal, vec![event(&cal, "2", None, "two")?], &state);
    let rev = state.head().revision;
    let _ = store.apply(ApplyRequest::new(&p1, rev, Some(&Cursor::new("first")))).await?;
    let second = store.apply(ApplyRequest::new(&p2, rev, Some(&Cursor::new("second")))).await;
    ensure(check, second.as_ref().is_err_and(|e| e.kind() == ErrorKind::Conflict && e.is_retryable()), || {
        format!("an apply over a stale revision answered {second:?}")
    })?;
    let head = store.load(&cal, LoadScope::Head).await?;
    ensure(check, head.head().cursor == Some(Cursor::new("first")), || format!("cursor is {:?}", head.head().cursor))?;
    let ks = keys(store, &cal).await?;
    ensure(check, ks.len() == 1 && ks.first().is_some_and(|k| k.uid.as_str() == "1"), || format!("rows {ks:?}"))
}

/// Masters (no RECURRENCE-ID) are unique like overrides: rewriting a master twice keeps one
/// row (the NULL-in-a-unique-index trap), and a master and its override are two rows.
///
/// # Errors
/// What the store did wrong.
pub async fn check_no_duplicate_masters(store: &dyn Store) -> Result<()> {
    let check = "no_duplicate_masters";
    let cal = calendar(check, 0)?;
    let over = |s| event(&cal, "r", Some("20260112T090000Z"), s);
    sync_to(store, &cal, vec![event(&cal, "r", None, "v1")?, over("o1")?], "c1").await?;
    sync_to(store, &cal, vec![event(&cal, "r", None, "v2")?, over("o1")?], "c2").await?;
    sync_to(store, &cal, vec![event(&cal, "r", None, "v3")?, over("o2")?], "c3").await?;
    let ks = keys(store, &cal).await?;
    ensure(check, ks.len() == 2, || format!("expected a master and an override, found {ks:?}"))?;
    let head = store.load(&cal, LoadScope::Head).await?;
    ensure(check, head.head().events == 2, || format!("head counts {} events", head.head().events))
}

/// Every change reports one affected row, in plan order (inserts, updates and deletes).
///
/// # Errors
/// What the store did wrong.
pub async fn check_rows_affected(store: &dyn Store) -> Result<()> {
    let check = "rows_affected";
    let cal = calendar(check, 0)?;
    sync_to(store, &cal, vec![event(&cal, "1", None, "a")?, event(&cal, "2", None, "b")?], "c1").await?;
    let p = sync_plan(store, &cal, vec![event(&cal, "1", None, "a2")?, event(&cal, "3", None, "c")?], "c2").await?;
    let kinds: Vec<&str> = p
        .changes()
        .iter()
        .map(|c| match c {
            Change::Insert { .. } => "insert",
            Change::Update { .. } => "update",
            Change::Delete { .. } => "delete",
        })
        .collect();
    ensure(check, kinds.len() == 3 && ["insert", "update", "delete"].iter().all(|k| kinds.contains(k)), || {
        format!("the plan was {kinds:?}")
    })
}

/// Applies on different calendars may run at the same time; both land.
///
/// # Errors
/// What the store did wrong.
pub async fn check_concurrent_calendars(store: &dyn Store) -> Result<()> {
    let check = "concurrent_calendars";
    let (a, b) = (calendar(check, 0)?, calendar(check, 1)?);
    let (ea, eb) = (event(&a, "1", None, "a")?, event(&b, "1", None, "b")?);
    let (ra, rb) = join(sync_to(store, &a, vec![ea], "ca"), sync_to(store, &b, vec![eb], "cb")).await;
    ra?;
    rb?;
    for (cal, cursor) in [(&a, "ca"), (&b, "cb")] {
        let state = store.load(cal, LoadScope::All).await?;
        ensure(check, state.len() == 1 && state.head().cursor == Some(Cursor::new(cursor)), || {
            format!("{cal}: {} rows, cursor {:?}", state.len(), state.head().cursor)
        })?;
    }
    Ok(())
}

/// A 100,000-change plan applies in one piece, and a re-plan of the same content is empty.
///
/// # Errors
/// What the store did wrong.
pub async fn check_large_plan(store: &dyn Store) -> Result<()> {
    let check = "large_plan";
    let cal = calendar(check, 0)?;
    let events = (0..100_000).map(|i| event(&cal, &format!("bulk-{i}"), None, "x")).collect::<Result<Vec<_>>>()?;
    sync_to(store, &cal, events.clone(), "c1").await?;
    let state = store.load(&cal, LoadScope::All).await?;
    ensure(check, state.len() == 100_000 && state.head().events == 100_000, || {
        format!("{} rows loaded, head counts {}", state.len(), state.head().events)
    })?;
    let again = snapshot_plan(&cal, events, &state);
    ensure(check, again.is_empty(), || format!("re-planning stored content gave {} changes", again.changes().len()))
}

/// Runs every store check, in order, stopping at the first failure.
///
/// # Errors
/// The first check that failed, naming it.
pub async fn run_store_checks(store: &dyn Store) -> Result<()> {
    check_unknown_calendar_is_empty(store).await?;
    check_isolation(store).await?;
    check_atomic_apply_with_cursor(store).await?;
    check_idempotent_apply(store).await?;
    check_cursor_compare_and_set(store).await?;
    check_no_duplicate_masters(store).await?;
    check_rows_affected(store).await?;
    check_concurrent_calendars(store).await?;
    check_large_plan(store).await
}
