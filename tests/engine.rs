//! The engine end to end over the memory source and store, with fault-injecting wrappers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calscope::{
    Applied, ApplyRequest, CalendarId, CalendarInfo, CalendarSource, Capabilities, Change, Changes, Engine, Error,
    ErrorKind, Event, FetchRequest, Fetched, LoadScope, MemorySource, MemoryStore, PlanOptions, Result, Snapshot,
    Store, StoredState, SyncJob, SyncOptions, SyncStatus, plan,
};

use crate::common::{block_on, cal, ev, key};

// ---------------------------------------------------------------------------------------------
// The motivating bug.

#[test]
fn shared_uids_across_1000_calendars_write_only_real_changes() {
    let source = MemorySource::snapshot_only();
    let calendars: Vec<CalendarId> = (0..1000).map(|i| cal(&format!("user-{i}"))).collect();
    let policy = calscope::FingerprintPolicy::default();
    let fill = |stamp: i64, changed: Option<(usize, usize)>| {
        // The shared holidays are serialized once per fetch, as a generated feed would be.
        let holidays: Vec<String> = (0..50)
            .map(|h| ev(&format!("holiday-{h}@google.com"), &format!("Holiday {h}")).stamp(stamp).ics())
            .collect();
        for (ci, c) in calendars.iter().enumerate() {
            let mut events: Vec<Event> = (0..50)
                .map(|h| match changed {
                    Some(x) if x == (ci, h) => {
                        ev(&format!("holiday-{h}@google.com"), "Holiday (moved)").stamp(stamp).build(c.as_str())
                    }
                    _ => Event::from_ics(c, &holidays[h], &policy).unwrap(),
                })
                .collect();
            events.extend((0..3).map(|p| ev(&format!("own-{ci}-{p}"), "mine").stamp(stamp).build(c.as_str())));
            source.replace_all(c, events);
        }
    };
    fill(0, None);
    let engine = Engine::new(MemoryStore::new()).with_options(SyncOptions::default().concurrency(8));
    let jobs = || calendars.iter().map(|c| SyncJob::new(&source, c));
    let first = block_on(engine.sync_all(jobs()));
    assert!(first.is_ok());
    assert_eq!(engine.store().stats().inserted, 1000 * 53);

    // Every DTSTAMP regenerated: zero rows written, counted by the store.
    fill(12_345, None);
    let before = engine.store().stats();
    let resync = block_on(engine.sync_all(jobs()));
    assert!(resync.is_ok());
    assert_eq!(engine.store().stats().rows() - before.rows(), 0);
    assert_eq!(resync.writes(), 0);
    assert_eq!(resync.calendars.iter().map(|r| r.unchanged).sum::<u64>(), 1000 * 53);

    // One holiday changes in one calendar: exactly one row, in that calendar.
    fill(99_999, Some((417, 7)));
    let before = engine.store().stats();
    let report = block_on(engine.sync_all(jobs()));
    let after = engine.store().stats();
    assert_eq!((after.updated - before.updated, after.rows() - before.rows()), (1, 1));
    let touched: Vec<_> = report.calendars.iter().filter(|r| r.writes() > 0).map(|r| r.calendar.clone()).collect();
    assert_eq!(touched, vec![cal("user-417")]);
    let row = engine
        .store()
        .events(&cal("user-417"))
        .into_iter()
        .find(|e| e.key() == &key("user-417", "holiday-7@google.com", None))
        .unwrap();
    assert_eq!(row.details().summary.as_deref(), Some("Holiday (moved)"));
    let other = engine
        .store()
        .events(&cal("user-418"))
        .into_iter()
        .find(|e| e.key().uid.as_str() == "holiday-7@google.com")
        .unwrap();
    assert_eq!(other.details().summary.as_deref(), Some("Holiday 7"));
}

// ---------------------------------------------------------------------------------------------
// Cursors: deltas, expiry, failed applies.

#[test]
fn delta_then_expired_cursor_falls_back_to_a_snapshot_that_deletes_the_gap() {
    let source = MemorySource::new();
    let a = cal("a");
    for i in 0..5 {
        source.put(ev(&format!("e{i}"), "x").build("a"));
    }
    let engine = Engine::new(MemoryStore::new());
    assert_eq!(block_on(engine.sync(&source, &a)).inserted, 5);

    // An incremental change travels as a delta.
    source.put(ev("e5", "new").build("a"));
    let r = block_on(engine.sync(&source, &a));
    assert_eq!((r.inserted, r.unchanged), (1, 0), "a delta mentions only what changed");

    // Two events vanish while the source forgets its history.
    assert!(source.remove(&key("a", "e1", None)));
    assert!(source.remove(&key("a", "e3", None)));
    source.put(ev("e0", "edited").build("a"));
    source.expire_cursors(&a);
    let r = block_on(engine.sync(&source, &a));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.inserted, r.updated, r.deleted), (0, 1, 2));
    assert!(r.warnings.iter().any(|w| w.contains("cursor expired")));
    let uids: Vec<String> = engine.store().events(&a).iter().map(|e| e.key().uid.to_string()).collect();
    assert_eq!(uids, ["e0", "e2", "e4", "e5"]);
    assert_eq!(engine.store().cursor(&a), Some(calscope::Cursor::new("v9")));
}

/// A store that fails the next `n` applies, writing nothing.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    failures: Mutex<usize>,
}

#[async_trait]
impl Store for FlakyStore {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
        self.inner.load(calendar, scope).await
    }
    async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        {
            let mut left = self.failures.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                return Err(Error::new(ErrorKind::Storage, "disk full"));
            }
        }
        self.inner.apply(request).await
    }
}

#[test]
fn failed_apply_keeps_the_cursor_and_the_next_sync_delivers_the_change_again() {
    let source = MemorySource::new();
    let a = cal("a");
    source.put(ev("e1", "x").build("a"));
    let engine = Engine::new(FlakyStore::default());
    assert!(block_on(engine.sync(&source, &a)).is_ok());
    let cursor = engine.store().inner.cursor(&a);

    source.put(ev("e2", "y").build("a"));
    *engine.store().failures.lock().unwrap() = 1;
    let failed = block_on(engine.sync(&source, &a));
    assert_eq!(failed.status, SyncStatus::Error);
    assert_eq!(failed.error_kind, Some(ErrorKind::Storage));
    assert_eq!(engine.store().inner.cursor(&a), cursor, "cursor must not advance");
    assert_eq!(engine.store().inner.events(&a).len(), 1);

    let retried = block_on(engine.sync(&source, &a));
    assert_eq!(retried.inserted, 1, "the delta since the old cursor is delivered again");
    assert_eq!(engine.store().inner.events(&a).len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Compare-and-set.

#[test]
fn store_rejects_an_apply_over_a_stale_revision() {
    let store = MemoryStore::new();
    let a = cal("a");
    let state = block_on(store.load(&a, LoadScope::All)).unwrap();
    let p1 = plan(
        &a,
        &Changes::Snapshot(Snapshot::complete(vec![ev("1", "x").build("a")])),
        &state,
        &PlanOptions::default(),
    );
    let p2 = plan(
        &a,
        &Changes::Snapshot(Snapshot::complete(vec![ev("2", "y").build("a")])),
        &state,
        &PlanOptions::default(),
    );
    let rev = state.head().revision;
    let _ = block_on(store.apply(ApplyRequest::new(&p1, rev, None))).unwrap();
    let err = block_on(store.apply(ApplyRequest::new(&p2, rev, None))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.is_retryable());
    let uids: Vec<_> = store.events(&a).iter().map(|e| e.key().uid.to_string()).collect();
    assert_eq!(uids, ["1"]);
}

/// A source that, while being fetched, lets another worker sync the same calendar.
#[derive(Debug)]
struct RacingSource {
    inner: MemorySource,
    rival: Arc<MemoryStore>,
}

#[async_trait]
impl CalendarSource for RacingSource {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        self.inner.calendars().await
    }
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let rival = Engine::new(Arc::clone(&self.rival));
        assert!(rival.sync(&self.inner, request.calendar).await.is_ok());
        self.inner.fetch(request).await
    }
}

#[test]
fn concurrent_sync_of_one_calendar_fails_with_a_conflict_instead_of_interleaving() {
    let store = Arc::new(MemoryStore::new());
    let source = RacingSource { inner: MemorySource::new(), rival: Arc::clone(&store) };
    source.inner.put(ev("1", "x").build("a"));
    let engine = Engine::new(Arc::clone(&store)).with_options(SyncOptions::default().conflict_retries(0));
    let r = block_on(engine.sync(&source, &cal("a")));
    assert_eq!(r.error_kind, Some(ErrorKind::Conflict), "{r:?}");
    assert_eq!(store.stats().inserted, 1, "only the rival wrote");
}

#[test]
fn a_conflicted_sync_starts_over_and_finds_the_rivals_work_done() {
    let store = Arc::new(MemoryStore::new());
    let source = RacingSource { inner: MemorySource::new(), rival: Arc::clone(&store) };
    source.inner.put(ev("1", "x").build("a"));
    let r = block_on(Engine::new(Arc::clone(&store)).sync(&source, &cal("a")));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.retries, r.writes()), (1, 0), "the second attempt has nothing left to write");
    assert_eq!(store.stats().inserted, 1, "the event was written once, by the rival");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["retries"], 1);
}

// ---------------------------------------------------------------------------------------------
// The write-amplification guard.

/// The historic bug as a store: updates and deletes match on UID alone, across calendars. It
/// counts the rows its unscoped statements would touch and asks the plan to check them before
/// committing, as every store must.
#[derive(Debug, Default)]
struct UnscopedStore {
    inner: MemoryStore,
    calendars: Vec<CalendarId>,
}

#[async_trait]
impl Store for UnscopedStore {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
        self.inner.load(calendar, scope).await
    }
    async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        let everything: Vec<Event> = self.calendars.iter().flat_map(|c| self.inner.events(c)).collect();
        let rows: Vec<u64> = request
            .plan
            .changes()
            .iter()
            .map(|c| match c {
                Change::Insert { .. } => 1,
                // UPDATE events SET ... WHERE uid = ? AND recurrence_id = ?   -- no calendar!
                Change::Update { .. } | Change::Delete { .. } => everything
                    .iter()
                    .filter(|e| e.key().uid == c.key().uid && e.key().recurrence_id == c.key().recurrence_id)
                    .count() as u64,
            })
            .collect();
        request.plan.check_rows(&rows)?; // rolls back (nothing committed) on a violation
        self.inner.apply(request).await
    }
}

#[test]
fn a_change_touching_more_than_one_row_is_rolled_back_as_a_scope_violation() {
    let source = MemorySource::snapshot_only();
    let (a, b) = (cal("a"), cal("b"));
    for c in ["a", "b"] {
        source.put(ev("invite@corp", "Sync").build(c));
        source.put(ev(&format!("own-{c}"), "mine").build(c));
    }
    let engine = Engine::new(UnscopedStore { inner: MemoryStore::new(), calendars: vec![a.clone(), b.clone()] });
    for c in [&a, &b] {
        assert!(block_on(engine.sync(&source, c)).is_ok());
    }
    source.put(ev("invite@corp", "Sync (moved)").build("a"));
    source.put(ev("own-a", "mine, edited").build("a"));
    let r = block_on(engine.sync(&source, &a));
    assert_eq!(r.error_kind, Some(ErrorKind::ScopeViolation));
    let msg = r.error.unwrap();
    assert!(msg.contains("a/invite@corp") && msg.contains("2 rows"), "{msg}");
    // Nothing of the plan was committed: not the violating update, not the innocent one.
    let summaries: Vec<_> =
        engine.store().inner.events(&a).iter().map(|e| e.details().summary.clone().unwrap()).collect();
    assert_eq!(summaries, ["Sync", "mine"]);
    assert_eq!(engine.store().inner.events(&b).len(), 2);
    assert_eq!(engine.store().inner.stats().updated, 0);
}

#[test]
fn the_engine_rechecks_row_counts_a_store_reports() {
    /// A store that commits but reports a wrong count (it forgot to check).
    #[derive(Debug, Default)]
    struct Misreporting(MemoryStore);
    #[async_trait]
    impl Store for Misreporting {
        async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
            self.0.load(calendar, scope).await
        }
        async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
            let applied = self.0.apply(request).await?;
            Ok(Applied::new(applied.revision, applied.rows.iter().map(|n| n * 3).collect()))
        }
    }
    let source = MemorySource::new();
    source.put(ev("1", "x").build("a"));
    let r = block_on(Engine::new(Misreporting::default()).sync(&source, &cal("a")));
    assert_eq!(r.error_kind, Some(ErrorKind::ScopeViolation));
}

// ---------------------------------------------------------------------------------------------
// Many calendars, guards, dry runs, reports.

/// A source answering a fixed script per calendar, or an error.
#[derive(Debug, Default)]
struct ScriptedSource {
    answers: Mutex<HashMap<CalendarId, VecDeque<Result<Fetched>>>>,
}

impl ScriptedSource {
    fn push(&self, calendar: &CalendarId, answer: Result<Fetched>) {
        self.answers.lock().unwrap().entry(calendar.clone()).or_default().push_back(answer);
    }
}

#[async_trait]
impl CalendarSource for ScriptedSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only()
    }
    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        Ok(self.answers.lock().unwrap().keys().map(|c| CalendarInfo::new(c.clone(), None)).collect())
    }
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        self.answers
            .lock()
            .unwrap()
            .get_mut(request.calendar)
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| Err(Error::new(ErrorKind::NotFound, "no scripted answer")))
    }
}

#[allow(clippy::unnecessary_wraps)] // scripts hold results
fn snap(events: Vec<Event>) -> Result<Fetched> {
    Ok(Fetched::new(Changes::Snapshot(Snapshot::complete(events)), None))
}

#[test]
fn one_failing_calendar_never_stops_the_others_and_reports_keep_job_order() {
    let source = ScriptedSource::default();
    let cals: Vec<CalendarId> = ["a", "b", "c", "d"].into_iter().map(cal).collect();
    for c in &cals {
        if c.as_str() == "b" {
            source.push(c, Err(Error::new(ErrorKind::Timeout, "feed did not answer")));
        } else {
            source.push(c, snap(vec![ev("1", "x").build(c.as_str())]));
        }
    }
    let engine = Engine::new(MemoryStore::new()).with_options(SyncOptions::default().concurrency(2));
    let report = block_on(engine.sync_all(cals.iter().map(|c| SyncJob::new(&source, c))));
    let order: Vec<_> = report.calendars.iter().map(|r| r.calendar.as_str().to_owned()).collect();
    assert_eq!(order, ["a", "b", "c", "d"]);
    assert!(!report.is_ok());
    let failed: Vec<_> = report.failed().map(|r| (r.calendar.as_str().to_owned(), r.error_kind)).collect();
    assert_eq!(failed, [("b".to_owned(), Some(ErrorKind::Timeout))]);
    assert_eq!(engine.store().calendars(), [cal("a"), cal("c"), cal("d")]);
}

#[test]
fn an_empty_feed_deletes_nothing_unless_allowed() {
    let source = ScriptedSource::default();
    let a = cal("a");
    source.push(&a, snap(vec![ev("1", "x").build("a"), ev("2", "y").build("a")]));
    source.push(&a, snap(vec![]));
    let engine = Engine::new(MemoryStore::new());
    assert!(block_on(engine.sync(&source, &a)).is_ok());
    let r = block_on(engine.sync(&source, &a));
    assert_eq!(r.error_kind, Some(ErrorKind::EmptySnapshot));
    assert_eq!(engine.store().events(&a).len(), 2);

    let allowing = Engine::new(MemoryStore::new())
        .with_options(SyncOptions::default().plan(PlanOptions::default().allow_empty(true)));
    source.push(&a, snap(vec![ev("1", "x").build("a")]));
    source.push(&a, snap(vec![]));
    assert!(block_on(allowing.sync(&source, &a)).is_ok());
    assert_eq!(block_on(allowing.sync(&source, &a)).deleted, 1);
    assert!(allowing.store().events(&a).is_empty());
}

#[test]
fn dry_run_returns_the_plan_and_writes_nothing() {
    let source = MemorySource::new();
    source.put(ev("1", "x").build("a"));
    let engine = Engine::new(MemoryStore::new()).with_options(SyncOptions::default().dry_run(true));
    let r = block_on(engine.sync(&source, &cal("a")));
    assert!(r.is_ok());
    assert_eq!(r.inserted, 1);
    assert_eq!(r.plan.as_ref().map(calscope::Plan::inserts), Some(1));
    assert_eq!(engine.store().stats().rows(), 0);
    assert!(engine.store().calendars().is_empty());
}

#[test]
fn reports_serialize_to_the_documented_shape() {
    let source = ScriptedSource::default();
    let (a, b) = (cal("a"), cal("b"));
    source.push(&a, snap(vec![ev("1", "x").build("a")]));
    source.push(&b, Err(Error::new(ErrorKind::Parse, "not an iCalendar stream")));
    let engine = Engine::new(MemoryStore::new());
    let report = block_on(engine.sync_all([SyncJob::new(&source, &a), SyncJob::new(&source, &b)]));
    let json = serde_json::to_value(&report).unwrap();
    let ok = &json["calendars"][0];
    assert_eq!(ok["calendar"], "a");
    assert_eq!(ok["status"], "ok");
    assert_eq!(ok["inserted"], 1);
    assert!(ok.get("error").is_none());
    let bad = &json["calendars"][1];
    assert_eq!(bad["status"], "error");
    assert_eq!(bad["error"], "not an iCalendar stream");
    assert_eq!(bad["error_kind"], "parse");
    let back: calscope::SyncReport = serde_json::from_value(json).unwrap();
    assert_eq!(back, report);
}

#[test]
fn an_unchanged_sync_with_an_unchanged_cursor_does_not_touch_the_store() {
    let source = MemorySource::new();
    source.put(ev("1", "x").build("a"));
    let engine = Engine::new(MemoryStore::new());
    assert!(block_on(engine.sync(&source, &cal("a"))).is_ok());
    assert!(block_on(engine.sync(&source, &cal("a"))).is_ok());
    assert_eq!(engine.store().stats().applies, 1);
}

// ---------------------------------------------------------------------------------------------
// Trait objects.

#[test]
fn traits_are_object_safe_send_sync_and_forwarded() {
    fn assert_send_sync<T: Send + Sync + ?Sized>() {}
    fn assert_send<T: Send>(_: &T) {}
    assert_send_sync::<dyn CalendarSource>();
    assert_send_sync::<dyn Store>();
    assert_send_sync::<Engine<Arc<dyn Store>>>();

    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let source: Box<dyn CalendarSource> = Box::new(MemorySource::new());
    let memory = MemorySource::new();
    memory.put(ev("1", "x").build("a"));
    let forwarded: Arc<dyn CalendarSource> = Arc::new(memory);
    let engine = Engine::new(Arc::clone(&store));
    let r = block_on(engine.sync(&forwarded, &cal("a")));
    assert_eq!(r.inserted, 1);
    assert!(source.capabilities().delta);

    // The engine's futures are Send, so hosts can spawn them on a multi-threaded runtime.
    let a = cal("a");
    let fut = engine.sync(&*source, &a);
    assert_send(&fut);
    drop(fut);
}

// ---------------------------------------------------------------------------------------------
// Loading the stored state while a source reads a snapshot (`FetchRequest::snapshot_coming`).

/// A store that counts its loads by scope and can fail whole-state loads.
#[derive(Debug, Default)]
struct LoadCountingStore {
    inner: MemoryStore,
    whole: std::sync::atomic::AtomicUsize,
    touched: std::sync::atomic::AtomicUsize,
    fail_whole: std::sync::atomic::AtomicBool,
}

impl LoadCountingStore {
    fn loads(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (self.whole.load(SeqCst), self.touched.load(SeqCst))
    }
}

#[async_trait]
impl Store for LoadCountingStore {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> Result<StoredState> {
        use std::sync::atomic::Ordering::SeqCst;
        match scope {
            LoadScope::All => {
                self.whole.fetch_add(1, SeqCst);
                if self.fail_whole.load(SeqCst) {
                    return Err(Error::new(ErrorKind::Storage, "disk error reading the whole calendar"));
                }
            }
            LoadScope::Touched { .. } => {
                self.touched.fetch_add(1, SeqCst);
            }
            LoadScope::Head => {}
        }
        self.inner.load(calendar, scope).await
    }
    async fn apply(&self, request: ApplyRequest<'_>) -> Result<Applied> {
        self.inner.apply(request).await
    }
}

/// A source that answers a script; before each answer it may announce a snapshot, and then
/// records how many whole loads the store had begun by the time the announcement returned.
#[derive(Debug)]
struct AnnouncingSource {
    store: Arc<LoadCountingStore>,
    script: Mutex<VecDeque<(bool, Fetched)>>,
    whole_loads_seen: Mutex<Vec<usize>>,
}

impl AnnouncingSource {
    fn new(store: &Arc<LoadCountingStore>) -> Self {
        Self { store: Arc::clone(store), script: Mutex::default(), whole_loads_seen: Mutex::default() }
    }
    fn then(&self, announce: bool, changes: Changes, cursor: &str) -> &Self {
        self.script.lock().unwrap().push_back((announce, Fetched::new(changes, Some(calscope::Cursor::new(cursor)))));
        self
    }
}

#[async_trait]
impl CalendarSource for AnnouncingSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only()
    }
    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        Ok(vec![])
    }
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let (announce, answer) = self.script.lock().unwrap().pop_front().expect("a scripted answer");
        if announce {
            request.snapshot_coming().await;
            self.whole_loads_seen.lock().unwrap().push(self.store.loads().0);
        }
        Ok(answer)
    }
}

fn complete(events: Vec<Event>) -> Changes {
    Changes::Snapshot(Snapshot::complete(events))
}

fn upserts(events: Vec<Event>) -> Changes {
    Changes::Delta(calscope::Delta { upserts: events, ..Default::default() })
}

/// Calendar "a" in an engine over a load-counting store, after one unannounced snapshot of
/// events with these UIDs (one whole load).
fn synced_once(
    uids: &[&str],
) -> (CalendarId, Arc<LoadCountingStore>, Engine<Arc<LoadCountingStore>>, AnnouncingSource) {
    let c = cal("a");
    let store = Arc::new(LoadCountingStore::default());
    let engine = Engine::new(Arc::clone(&store));
    let source = AnnouncingSource::new(&store);
    source.then(false, complete(uids.iter().map(|u| ev(u, "first").build("a")).collect()), "v1");
    assert_eq!(block_on(engine.sync(&source, &c)).inserted, uids.len() as u64);
    assert_eq!(store.loads(), (1, 0), "an unannounced snapshot loads the whole state after the fetch");
    (c, store, engine, source)
}

#[test]
fn an_announced_snapshot_is_planned_against_a_state_loaded_while_the_source_reads() {
    let (c, store, engine, source) = synced_once(&["1", "2"]);

    source.then(true, complete(vec![ev("1", "one, moved").build("a"), ev("3", "three").build("a")]), "v2");
    let report = block_on(engine.sync(&source, &c));
    assert!(report.is_ok(), "{:?}", report.error);
    assert_eq!((report.inserted, report.updated, report.deleted), (1, 1, 1));
    // The whole load had begun before the source went on reading, and it was the only one.
    assert_eq!(*source.whole_loads_seen.lock().unwrap(), vec![2]);
    assert_eq!(store.loads(), (2, 0));
    assert_eq!(store.inner.cursor(&c), Some(calscope::Cursor::new("v2")));
}

#[test]
fn an_announced_fetch_that_answers_a_delta_is_planned_against_the_early_state() {
    let (c, store, engine, source) = synced_once(&["1", "2"]);

    let delta = calscope::Delta {
        upserts: vec![ev("3", "three").build("a")],
        removals: vec![key("a", "1", None)],
        ..Default::default()
    };
    source.then(true, Changes::Delta(delta), "v2");
    let report = block_on(engine.sync(&source, &c));
    assert!(report.is_ok(), "{:?}", report.error);
    // Event 2, absent from the delta, stays: a delta infers no deletions, whatever state it met.
    assert_eq!((report.inserted, report.updated, report.deleted), (1, 0, 1));
    assert_eq!(store.loads(), (2, 0), "the early whole state served; no second load");
    let mut left: Vec<String> = store.inner.events(&c).iter().map(|e| e.key().uid.as_str().to_owned()).collect();
    left.sort();
    assert_eq!(left, ["2", "3"]);
}

#[test]
fn without_an_announcement_a_delta_loads_only_what_it_touches() {
    let (c, store, engine, source) = synced_once(&["1"]);
    source.then(false, upserts(vec![ev("2", "two").build("a")]), "v2");
    let report = block_on(engine.sync(&source, &c));
    assert_eq!(report.inserted, 1);
    assert_eq!(store.loads(), (1, 1));
}

#[test]
fn a_failed_early_load_fails_a_snapshot_but_a_delta_loads_what_it_touches() {
    let (c, store, engine, source) = synced_once(&["1", "2"]);
    store.fail_whole.store(true, std::sync::atomic::Ordering::SeqCst);

    source.then(true, upserts(vec![ev("3", "three").build("a")]), "v2");
    let report = block_on(engine.sync(&source, &c));
    assert!(report.is_ok(), "{:?}", report.error);
    assert_eq!(report.inserted, 1);
    assert_eq!(store.loads(), (2, 1));

    source.then(true, complete(vec![]), "v3");
    let report = block_on(engine.sync(&source, &c));
    assert!(!report.is_ok());
    assert!(report.error.as_deref().unwrap_or_default().contains("disk error"), "{:?}", report.error);
    assert_eq!(store.inner.events(&c).len(), 3, "nothing deleted");
    assert_eq!(store.inner.cursor(&c), Some(calscope::Cursor::new("v2")), "the cursor did not move");
}

#[test]
fn an_unchanged_ics_feed_never_loads_the_whole_state() {
    let c = cal("feed");
    let dir = std::env::temp_dir().join(format!("calscope-announce-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("feed.ics");
    let write = |summary: &str| {
        let events = [ev("1", summary).stamp(1).ics(), ev("2", "two").stamp(1).ics()].concat();
        std::fs::write(&path, format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{events}END:VCALENDAR\r\n")).unwrap();
    };
    let store = Arc::new(LoadCountingStore::default());
    let engine = Engine::new(Arc::clone(&store));
    let source = calscope::IcsSource::from_file(c.clone(), &path);
    write("one");
    assert_eq!(block_on(engine.sync(&source, &c)).inserted, 2);
    assert_eq!(store.loads(), (1, 0));
    // Unchanged: the source answers from its cursor, and no whole state is read for nothing.
    let report = block_on(engine.sync(&source, &c));
    assert_eq!((report.writes(), report.unchanged), (0, 0));
    assert_eq!(store.loads().0, 1);
    write("one, edited");
    let report = block_on(engine.sync(&source, &c));
    assert_eq!(report.updated, 1);
    assert_eq!(store.loads().0, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn snapshot_coming_with_no_engine_listening_does_nothing() {
    let c = cal("a");
    block_on(FetchRequest::new(&c, None).snapshot_coming());
}
