//! `PostgresStore` against a real PostgreSQL server: the store checks, two engines syncing the
//! same calendars at once, and the write economy proven by the server's own counters
//! (`pg_stat_user_tables`). Each test works in a database of its own, created on the server
//! named by `CALSCOPE_POSTGRES_URL` (`bash .ci/test` starts a throwaway cluster and sets it).

#![cfg(feature = "postgres")]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use calscope::postgres::{PostgresConfig, PostgresStore, tokio_postgres};
use calscope::{
    Applied, ApplyRequest, CalendarId, Engine, ErrorKind, Event, FingerprintPolicy, IcsSource, LoadScope, MemorySource,
    Store, StoredState, SyncJob, testkit,
};
use tokio::sync::{mpsc, oneshot};

#[path = "../benches/support/feed.rs"]
#[allow(dead_code, unreachable_pub)]
mod feed;

/// The server the tests create their databases on. Without one, every test here fails, naming
/// what to do: they never pass silently.
fn server_url() -> String {
    std::env::var("CALSCOPE_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "the postgres tests need a PostgreSQL server: set CALSCOPE_POSTGRES_URL to one the tests may create \
             databases on, or run `bash .ci/test`, which starts a throwaway cluster"
        )
    })
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot reach the PostgreSQL server at {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// A database of this test's own, dropped by [`Db::drop`] when the test passes.
struct Db {
    name: String,
    url: String,
}

static DATABASES: AtomicUsize = AtomicUsize::new(0);

impl Db {
    async fn create(tag: &str) -> Self {
        let server = server_url();
        let name = format!("calscope_{tag}_{}_{}", std::process::id(), DATABASES.fetch_add(1, Ordering::Relaxed));
        let admin = client(&server).await;
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.unwrap();
        let mut url = url::Url::parse(&server).unwrap();
        url.set_path(&name);
        Self { name, url: url.to_string() }
    }

    async fn store(&self, connections: usize) -> PostgresStore {
        PostgresStore::connect_with(PostgresConfig::new(&self.url).max_connections(connections)).await.unwrap()
    }

    async fn drop(self) {
        let admin = client(&server_url()).await;
        admin.batch_execute(&format!("DROP DATABASE {} WITH (FORCE)", self.name)).await.unwrap();
    }
}

/// Tuples written to `events`, as the server counts them: (inserted, updated, deleted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tuples {
    ins: i64,
    upd: i64,
    del: i64,
}

impl std::ops::Sub for Tuples {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self { ins: self.ins - o.ins, upd: self.upd - o.upd, del: self.del - o.del }
    }
}

/// Reads the server's counters of `events`, after every connection of `stores` flushed its
/// pending statistics (`pg_stat_force_next_flush`; a backend otherwise reports them up to a
/// second late).
async fn tuples(db: &Db, stores: &[&PostgresStore]) -> Tuples {
    tuples_of(db, stores, "events").await
}

/// The same counters of another table.
async fn tuples_of(db: &Db, stores: &[&PostgresStore], table: &str) -> Tuples {
    for store in stores {
        let pool = store.pool();
        let mut held = Vec::new();
        for _ in 0..pool.status().size {
            held.push(pool.get().await.unwrap());
        }
        for c in &held {
            c.batch_execute("SELECT pg_stat_force_next_flush()").await.unwrap();
            // Answered after the backend went idle, which is when it flushed.
            c.batch_execute("SELECT 1").await.unwrap();
        }
    }
    let reader = client(&db.url).await;
    let row = reader
        .query_one("SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = $1", &[&table])
        .await
        .unwrap();
    Tuples { ins: row.get(0), upd: row.get(1), del: row.get(2) }
}

fn cal(id: &str) -> CalendarId {
    CalendarId::new(id).unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn postgres_store_passes_the_store_checks() {
    runtime().block_on(async {
        let db = Db::create("checks").await;
        let store = db.store(4).await;
        testkit::run_store_checks(&store).await.unwrap();
        // The schema is created once: a second store (another worker) finds it in place.
        let again = db.store(1).await;
        let state = again.load(&cal("testkit-large_plan-0"), LoadScope::Head).await.unwrap();
        assert_eq!(state.head().events, 100_000);
        drop((store, again));
        db.drop().await;
    });
}

#[test]
fn a_database_of_a_newer_schema_is_refused_and_secrets_never_show() {
    runtime().block_on(async {
        let db = Db::create("schema").await;
        drop(db.store(1).await);
        client(&db.url).await.batch_execute("UPDATE calscope_schema SET version = 99").await.unwrap();
        let err = PostgresStore::connect(&db.url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Storage);
        assert!(err.to_string().contains("newer"), "{err}");

        let err = PostgresStore::connect("postgres://u:hunter2@127.0.0.1:1/x").await.unwrap_err();
        let shown = format!("{err:?} {err}");
        assert!(!shown.contains("hunter2"), "{shown}");
        db.drop().await;
    });
}

/// The write economy, counted by the server: a first sync inserts every event; the same
/// events with regenerated DTSTAMPs write no tuple; 1 % changed writes exactly 1 % of rows.
#[test]
fn server_counters_prove_zero_writes_for_regenerated_stamps_and_exactly_the_changed_rows() {
    runtime().block_on(async {
        let db = Db::create("economy").await;
        let store = Arc::new(db.store(2).await);
        let engine = Engine::new(Arc::clone(&store));
        let c = cal("team");
        let n: usize = 10_000;
        let rows = |k: usize| i64::try_from(k).unwrap();
        let sync = |bytes: Vec<u8>| {
            let engine = &engine;
            let c = c.clone();
            async move { engine.sync(&IcsSource::from_bytes(c.clone(), bytes), &c).await }
        };

        let t0 = tuples(&db, &[&store]).await;
        let first = sync(feed::feed(n, 1)).await;
        assert!(first.is_ok(), "{first:?}");
        let t1 = tuples(&db, &[&store]).await;
        assert_eq!(t1 - t0, Tuples { ins: rows(n), upd: 0, del: 0 });

        let restamped = sync(feed::feed(n, 2)).await;
        assert_eq!((restamped.writes(), restamped.unchanged), (0, n as u64), "{restamped:?}");
        let t2 = tuples(&db, &[&store]).await;
        assert_eq!(t2 - t1, Tuples { ins: 0, upd: 0, del: 0 }, "regenerated DTSTAMPs wrote tuples");

        let changed = sync(feed::feed_variant(n, 3, 1)).await;
        assert_eq!(changed.updated, (n / 100) as u64, "{changed:?}");
        let t3 = tuples(&db, &[&store]).await;
        assert_eq!(t3 - t2, Tuples { ins: 0, upd: rows(n / 100), del: 0 });

        // A shorter feed deletes exactly what went away.
        let shorter = sync(feed::feed_variant(n - 50, 4, 1)).await;
        assert_eq!(shorter.writes(), 50, "{shorter:?}");
        let t4 = tuples(&db, &[&store]).await;
        assert_eq!(t4 - t3, Tuples { ins: 0, upd: 0, del: 50 });
        drop(engine);
        drop(store);
        db.drop().await;
    });
}

/// The birthday-calendar scenario that motivated calscope: 1,000 calendars carry the same 20
/// UIDs. Writes equal real changes: one edit in one calendar is one tuple; an edit of a shared
/// event everywhere is one tuple per calendar; regenerated DTSTAMPs everywhere are none.
#[test]
fn shared_uids_over_1000_calendars_write_only_real_changes() {
    runtime().block_on(async {
        let db = Db::create("shared").await;
        // The bench feed: 100 unending weekly series per calendar; this test is about `events`.
        let store = Arc::new(db.store(4).await.without_instances());
        let engine = Engine::new(Arc::clone(&store)).with_options(calscope::SyncOptions::default().concurrency(8));
        let ids: Vec<CalendarId> = (0..1000).map(|i| cal(&format!("user-{i}"))).collect();
        let run = |feeds: Vec<Vec<u8>>| {
            let engine = &engine;
            let ids = &ids;
            async move {
                let sources: Vec<IcsSource> =
                    ids.iter().zip(feeds).map(|(id, bytes)| IcsSource::from_bytes(id.clone(), bytes)).collect();
                let report = engine.sync_all(sources.iter().zip(ids).map(|(s, id)| SyncJob::new(s, id))).await;
                assert!(report.is_ok(), "{:?}", report.failed().next());
                report
            }
        };
        let same = |stamp: u32| (0..1000).map(|_| feed::feed(20, stamp)).collect::<Vec<_>>();

        let t0 = tuples(&db, &[&store]).await;
        assert_eq!(run(same(1)).await.writes(), 20_000);
        let t1 = tuples(&db, &[&store]).await;
        assert_eq!(t1 - t0, Tuples { ins: 20_000, upd: 0, del: 0 });

        assert_eq!(run(same(2)).await.writes(), 0);
        let t2 = tuples(&db, &[&store]).await;
        assert_eq!(t2 - t1, Tuples { ins: 0, upd: 0, del: 0 });

        // One user's copy of the shared event 0 changes.
        let mut one = same(3);
        one[7] = feed::feed_variant(20, 3, 1);
        assert_eq!(run(one).await.writes(), 1);
        let t3 = tuples(&db, &[&store]).await;
        assert_eq!(t3 - t2, Tuples { ins: 0, upd: 1, del: 0 });

        // The shared event changes for everyone: one real change per calendar.
        let everyone = (0..1000).map(|_| feed::feed_variant(20, 4, 2)).collect();
        assert_eq!(run(everyone).await.writes(), 1000);
        let t4 = tuples(&db, &[&store]).await;
        assert_eq!(t4 - t3, Tuples { ins: 0, upd: 1000, del: 0 });
        drop(engine);
        drop(store);
        db.drop().await;
    });
}

fn event(calendar: &CalendarId, uid: &str, summary: &str, stamp: u32) -> Event {
    let text = format!(
        "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T0000{:02}Z\r\nDTSTART:20260105T090000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n",
        stamp % 60
    );
    Event::from_ics(calendar, &text, &FingerprintPolicy::default()).unwrap()
}

/// A store whose first apply of each calendar waits until the test releases it: the window in
/// which another worker applies a newer plan of the same calendar.
#[derive(Debug)]
struct Gated {
    inner: Arc<PostgresStore>,
    entered: mpsc::UnboundedSender<CalendarId>,
    gates: Mutex<HashMap<CalendarId, oneshot::Receiver<()>>>,
}

#[async_trait]
impl Store for Gated {
    async fn load(&self, calendar: &CalendarId, scope: LoadScope<'_>) -> calscope::Result<StoredState> {
        self.inner.load(calendar, scope).await
    }
    async fn apply(&self, request: ApplyRequest<'_>) -> calscope::Result<Applied> {
        let gate = self.gates.lock().unwrap().remove(request.plan.calendar());
        if let Some(gate) = gate {
            self.entered.send(request.plan.calendar().clone()).unwrap();
            let _ = gate.await;
        }
        self.inner.apply(request).await
    }
}

/// What the database holds: (calendar, uid, summary) rows, sorted, and whether any key is
/// there twice.
async fn rows(db: &Db) -> (Vec<(String, String, String)>, i64) {
    let c = client(&db.url).await;
    let rows = c
        .query("SELECT calendar_id, uid, summary FROM events ORDER BY calendar_id, uid, recurrence_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let dups: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT 1 FROM events GROUP BY calendar_id, uid, recurrence_id HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (rows, dups)
}

/// Two workers (two stores, each with its own connections, as two processes would have) sync
/// the same 100 calendars at once: every calendar ends right, no row is there twice, each
/// event is inserted once; and a worker whose plan went stale while another applied a newer
/// one is refused by the revision check and syncs again, so the newer content is not lost.
#[test]
fn two_engines_syncing_the_same_100_calendars_concurrently_lose_nothing() {
    runtime().block_on(async {
        let db = Db::create("concurrent").await;
        let (a, b) = (Arc::new(db.store(4).await), Arc::new(db.store(4).await));
        let ids: Vec<CalendarId> = (0..100).map(|i| cal(&format!("shared-{i}"))).collect();
        let source = Arc::new(MemorySource::new());
        for id in &ids {
            for e in 0..10 {
                source.put(event(id, &format!("e{e}@shared"), "v1", 1));
            }
        }
        let want = |summary0: &str| {
            let mut w: Vec<(String, String, String)> = ids
                .iter()
                .flat_map(|id| {
                    (0..10).map(move |e| {
                        let s = if e == 0 { summary0 } else { "v1" };
                        (id.as_str().to_owned(), format!("e{e}@shared"), s.to_owned())
                    })
                })
                .collect();
            w.sort();
            w
        };
        let options = calscope::SyncOptions::default().concurrency(16);

        // A race: both sync everything at once.
        let (ea, eb) = (
            Engine::new(Arc::clone(&a)).with_options(options.clone()),
            Engine::new(Arc::clone(&b)).with_options(options.clone()),
        );
        let jobs = || ids.iter().map(|id| SyncJob::new(source.as_ref(), id)).collect::<Vec<_>>();
        let t0 = tuples(&db, &[&a, &b]).await;
        let (ra, rb) = futures::join!(ea.sync_all(jobs()), eb.sync_all(jobs()));
        assert!(ra.is_ok() && rb.is_ok(), "{:?} {:?}", ra.failed().next(), rb.failed().next());
        assert_eq!(ra.writes() + rb.writes(), 1000, "each event written once in all");
        let t1 = tuples(&db, &[&a, &b]).await;
        assert_eq!(t1 - t0, Tuples { ins: 1000, upd: 0, del: 0 });
        assert_eq!(rows(&db).await, (want("v1"), 0));

        // A stale plan: worker A plans v1 → v2 for every calendar and waits at its apply while
        // the source moves to v3 and worker B applies v3. A's apply must be refused, and A's
        // retry must leave v3 in place.
        let (entered_tx, mut entered) = mpsc::unbounded_channel();
        let mut releases = Vec::new();
        let mut gates = HashMap::new();
        for id in &ids {
            let (tx, rx) = oneshot::channel();
            releases.push(tx);
            gates.insert(id.clone(), rx);
        }
        let gate_store = Gated { inner: Arc::clone(&a), entered: entered_tx, gates: Mutex::new(gates) };
        let ea = Engine::new(gate_store).with_options(options.clone().concurrency(100));
        for id in &ids {
            source.put(event(id, "e0@shared", "v2", 2));
        }
        let worker_a = ea.sync_all(jobs());
        let worker_b = async {
            for _ in &ids {
                entered.recv().await.unwrap();
            }
            for id in &ids {
                source.put(event(id, "e0@shared", "v3", 3));
            }
            let rb = eb.sync_all(jobs()).await;
            for release in releases {
                release.send(()).unwrap();
            }
            rb
        };
        // One task polls both workers: A's applies wait at their gates while B runs.
        let (ra, rb) = futures::join!(worker_a, worker_b);
        assert!(rb.is_ok() && rb.writes() == 100, "{rb:?}");
        assert!(ra.is_ok(), "{:?}", ra.failed().next());
        assert!(ra.calendars.iter().all(|r| r.retries >= 1 && r.writes() == 0), "{:?}", ra.calendars.first());
        assert_eq!(rows(&db).await, (want("v3"), 0), "the newer content survived the stale plan");
        let t2 = tuples(&db, &[&a, &b]).await;
        assert_eq!(t2 - t1, Tuples { ins: 0, upd: 100, del: 0 }, "only B's updates were written");
        drop((ea, eb, a, b));
        db.drop().await;
    });
}

/// Materialized instances in Postgres: their writes as the server counts them
/// (`pg_stat_user_tables` of `instances`), busy queries against expansion from `events`, and
/// the slot query over many calendars.
#[test]
fn instances_write_only_real_changes_and_answer_busy_queries() {
    use chrono::{Duration, DurationRound as _, Utc};
    runtime().block_on(async {
        let db = Db::create("instances").await;
        let store = db.store(2).await;
        let day = Utc::now().duration_trunc(Duration::days(1)).unwrap();
        let at = |days: i64, hour: i64| {
            (day + Duration::days(days) + Duration::hours(hour)).format("%Y%m%dT%H%M%SZ").to_string()
        };
        let component = |cal: &CalendarId, body: String, stamp: u32| {
            let text = format!(
                "BEGIN:VEVENT\r\n{}\r\nDTSTAMP:20260101T0000{stamp:02}Z\r\nEND:VEVENT\r\n",
                body.replace('\n', "\r\n")
            );
            Event::from_ics(cal, &text, &FingerprintPolicy::default()).unwrap()
        };
        let source = MemorySource::new();
        let ids: Vec<CalendarId> = (0..20).map(|i| cal(&format!("person-{i}"))).collect();
        let put = |stamp: u32, moved: Option<i64>| {
            for (i, id) in ids.iter().enumerate() {
                let i = i64::try_from(i).unwrap();
                source.put(component(
                    id,
                    format!("UID:standup\nDTSTART:{}\nDURATION:PT30M\nRRULE:FREQ=DAILY", at(-40, 9)),
                    stamp,
                ));
                source.put(component(id, format!("UID:one-off\nDTSTART:{}\nDURATION:PT1H", at(i % 5, 14)), stamp));
                if let Some(h) = moved {
                    source.put(component(
                        id,
                        format!("UID:standup\nRECURRENCE-ID:{}\nDTSTART:{}\nDURATION:PT30M", at(3, 9), at(3, h)),
                        stamp,
                    ));
                }
            }
        };
        let engine = Engine::new(store);
        put(0, None);
        for id in &ids {
            assert!(engine.sync(&source, id).await.is_ok());
        }
        let first = tuples_of(&db, &[engine.store()], "instances").await;
        // 430 daily occurrences and one single per calendar.
        assert_eq!(first, Tuples { ins: 20 * 431, upd: 0, del: 0 });

        // DTSTAMP churn everywhere: no instance written.
        put(1, None);
        for id in &ids {
            assert!(engine.sync(&source, id).await.is_ok());
        }
        let churn = tuples_of(&db, &[engine.store()], "instances").await;
        assert_eq!((churn - first), Tuples { ins: 0, upd: 0, del: 0 });

        // One occurrence moved in each calendar: one row each.
        put(2, Some(16));
        for id in &ids {
            assert!(engine.sync(&source, id).await.is_ok());
        }
        let moved = tuples_of(&db, &[engine.store()], "instances").await;
        assert_eq!((moved - churn), Tuples { ins: 0, upd: 20, del: 0 });

        // Busy: from instances, the same as expanded from events.
        let (from, to) = (day, day + Duration::days(30));
        let a = engine.store().busy(&ids, from, to, calscope::Zone::UTC).await.unwrap();
        assert!(!a.expanded);
        let plain = PostgresStore::connect(&db.url).await.unwrap().without_instances();
        let b = plain.busy(&ids, from, to, calscope::Zone::UTC).await.unwrap();
        assert!(b.expanded);
        assert_eq!(a.calendars, b.calendars);
        assert_eq!(a.merged, b.merged);
        assert_eq!(a.calendars[&ids[0]].len(), 31, "30 stand-ups and the one-off");

        // Which calendars are busy from 14:00 to 14:30 on day 2: those whose one-off is then.
        let busy = engine
            .store()
            .busy_at(
                &ids,
                day + Duration::days(2) + Duration::hours(14),
                day + Duration::days(2) + Duration::hours(14) + Duration::minutes(30),
            )
            .await
            .unwrap();
        let want: Vec<CalendarId> = {
            let mut w: Vec<CalendarId> =
                ids.iter().enumerate().filter(|(i, _)| i % 5 == 2).map(|(_, c)| c.clone()).collect();
            w.sort();
            w
        };
        assert_eq!(busy, want);
        // Sliding a week ahead: seven new stand-ups per calendar, nothing else.
        let report = engine.store().slide_instances(day + Duration::days(7)).await.unwrap();
        assert_eq!(report.written, 20 * 7, "{report:?}");
        let slid = tuples_of(&db, &[engine.store()], "instances").await;
        assert_eq!((slid - moved), Tuples { ins: 20 * 7, upd: 0, del: 0 });
        drop(engine);
        drop(plain);
        db.drop().await;
    });
}

// ---- The fleet on Postgres: the schedule checks, three workers, a killed worker process.

mod fleet {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use axum::extract::{Path, State};
    use calscope::schedule::{Schedule, Worker, WorkerOptions};
    use calscope::{CalendarId, CalendarSource, Engine, IcsSource, testkit};
    use futures::future::BoxFuture;

    use super::{Db, Tuples, client, runtime, tuples};

    fn sleep(d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }

    fn feed(uid: &str) -> String {
        format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
    }

    #[test]
    fn postgres_schedule_passes_the_schedule_checks() {
        runtime().block_on(async {
            let db = Db::create("schedule").await;
            let store = db.store(4).await;
            testkit::run_schedule_checks(&store).await.unwrap();
            drop(store);
            db.drop().await;
        });
    }

    /// Three workers, each with a pool of its own, over 300 calendars: every calendar synced
    /// exactly once per round (the factory is called once per calendar per round, and the
    /// schedule counts one sync each), the events table exact, the second round writing
    /// nothing (the server's counters).
    #[test]
    fn three_workers_sync_each_of_300_calendars_once_per_round() {
        runtime().block_on(async {
            let db = Db::create("fleet3").await;
            let setup = db.store(2).await.without_instances();
            let now = chrono::Utc::now();
            for i in 0..300 {
                let id = CalendarId::new(format!("cal{i:03}")).unwrap();
                setup.register(&id, &feed(&format!("e{i}")), Duration::from_secs(3600), now).await.unwrap();
            }
            let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
            let mut stores = Vec::new();
            for _ in 0..3 {
                stores.push(Arc::new(db.store(4).await.without_instances()));
            }
            let round = |stores: &[Arc<calscope::PostgresStore>]| {
                let handles: Vec<_> = stores
                    .iter()
                    .enumerate()
                    .map(|(w, store)| {
                        let calls = Arc::clone(&calls);
                        let factory = move |id: &CalendarId, spec: &str| -> calscope::Result<Arc<dyn CalendarSource>> {
                            *calls.lock().unwrap().entry(id.as_str().to_owned()).or_default() += 1;
                            Ok(Arc::new(IcsSource::from_bytes(id.clone(), spec.as_bytes().to_vec())))
                        };
                        let worker = Worker::new(format!("w{w}"), Engine::new(Arc::clone(store)), factory, sleep)
                            .options(WorkerOptions::default().concurrency(4).until_idle(true));
                        tokio::spawn(async move { worker.run(futures::future::pending()).await.unwrap() })
                    })
                    .collect();
                async move {
                    let mut reports = Vec::new();
                    for h in handles {
                        reports.push(h.await.unwrap());
                    }
                    reports
                }
            };
            let first = round(&stores).await;
            assert_eq!(first.iter().map(|r| r.synced).sum::<u64>(), 300, "{first:?}");
            assert!(first.iter().all(|r| r.synced > 0), "a worker got no calendar: {first:?}");
            assert_eq!(first.iter().map(|r| r.lost + r.failed).sum::<u64>(), 0);
            assert!(calls.lock().unwrap().values().all(|&n| n == 1));
            let mut refs: Vec<&calscope::PostgresStore> = stores.iter().map(AsRef::as_ref).collect();
            refs.push(&setup);
            let after_first = tuples(&db, &refs).await;
            assert_eq!(after_first, Tuples { ins: 300, upd: 0, del: 0 });
            for e in setup.entries().await.unwrap() {
                setup.poke(&e.calendar, chrono::Utc::now()).await.unwrap();
            }
            let second = round(&stores).await;
            assert_eq!(second.iter().map(|r| r.synced).sum::<u64>(), 300, "{second:?}");
            assert!(calls.lock().unwrap().values().all(|&n| n == 2), "a calendar was synced twice in a round");
            let entries = setup.entries().await.unwrap();
            assert_eq!(entries.len(), 300);
            assert!(entries.iter().all(|e| e.syncs == 2 && e.lease_owner.is_none() && e.failures == 0));
            assert_eq!(tuples(&db, &refs).await - after_first, Tuples { ins: 0, upd: 0, del: 0 });
            let reader = client(&db.url).await;
            let rows = reader.query("SELECT calendar_id, uid FROM events ORDER BY calendar_id", &[]).await.unwrap();
            assert_eq!(rows.len(), 300);
            for (i, row) in rows.iter().enumerate() {
                assert_eq!(row.get::<_, String>(0), format!("cal{i:03}"));
                assert_eq!(row.get::<_, String>(1), format!("e{i}"));
            }
            drop(refs);
            drop((stores, setup));
            db.drop().await;
        });
    }

    /// The `fleet` example binary `cargo test` builds (with every feature, Postgres included).
    fn fleet_bin() -> std::path::PathBuf {
        let exe = std::env::current_exe().unwrap();
        let dir = exe.parent().and_then(std::path::Path::parent).unwrap();
        let bin = dir.join("examples").join(format!("fleet{}", std::env::consts::EXE_SUFFIX));
        assert!(bin.exists(), "{} is missing: `cargo test` builds the examples", bin.display());
        bin
    }

    type Hits = Arc<Mutex<HashMap<String, u32>>>;

    async fn slow_feed(State(hits): State<Hits>, Path(name): Path<String>) -> String {
        *hits.lock().unwrap().entry(name.clone()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
        feed(&name)
    }

    /// A worker process killed (SIGKILL) mid-round: a second one waits out its leases and
    /// takes its calendars. Every calendar synced once, no duplicate rows, nothing lost; only
    /// the killed worker's in-flight calendars were fetched twice, and those second syncs
    /// wrote nothing (the server's counters).
    #[test]
    fn a_killed_worker_process_loses_nothing_and_duplicates_nothing() {
        runtime().block_on(async {
            let db = Db::create("killed").await;
            let setup = db.store(2).await.without_instances();
            let hits: Hits = Arc::default();
            let app = axum::Router::new().route("/{name}", axum::routing::get(slow_feed)).with_state(Arc::clone(&hits));
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let n: usize = 300;
            let n64: i64 = 300;
            let mut add = std::process::Command::new(fleet_bin());
            add.args(["--db", &db.url, "add", "--every", "3600"]);
            for i in 0..n {
                add.arg(format!("k{i:03}={base}/k{i:03}"));
            }
            let out = tokio::task::spawn_blocking(move || add.output().unwrap()).await.unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            // Committed writes to `events`, logged by a trigger: a write rolled back (the kill
            // may land inside an apply) leaves no log row.
            let admin = client(&db.url).await;
            admin
                .batch_execute(
                    "CREATE TABLE writes (op text NOT NULL, calendar_id text NOT NULL);
                     CREATE FUNCTION log_write() RETURNS trigger LANGUAGE plpgsql AS $$
                     BEGIN
                       INSERT INTO writes VALUES (TG_OP, COALESCE(NEW.calendar_id, OLD.calendar_id));
                       RETURN NULL;
                     END $$;
                     CREATE TRIGGER log_write AFTER INSERT OR UPDATE OR DELETE ON events
                       FOR EACH ROW EXECUTE FUNCTION log_write();",
                )
                .await
                .unwrap();

            let mut doomed = std::process::Command::new(fleet_bin())
                .args(["--db", &db.url, "run", "--worker", "doomed", "--concurrency", "4", "--lease", "3"])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Kill it once a fair share is done, mid-round.
            let started = Instant::now();
            loop {
                let synced = setup.entries().await.unwrap().iter().filter(|e| e.syncs > 0).count();
                if synced >= 60 {
                    break;
                }
                assert!(started.elapsed() < Duration::from_secs(60), "the first worker synced only {synced}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            doomed.kill().unwrap();
            doomed.wait().unwrap();
            let entries = setup.entries().await.unwrap();
            let done_by_doomed = entries.iter().filter(|e| e.syncs > 0).count();
            let leased = entries.iter().filter(|e| e.lease_owner.as_deref() == Some("doomed")).count();
            assert!(done_by_doomed < n, "the round was over before the kill");
            assert!(leased <= 4, "{leased} calendars leased by a worker with 4 syncs at once");

            let out = tokio::task::spawn_blocking({
                let url = db.url.clone();
                move || {
                    std::process::Command::new(fleet_bin())
                        .args(["--db", &url, "run", "--worker", "heir", "--concurrency", "8", "--until-idle"])
                        .output()
                        .unwrap()
                }
            })
            .await
            .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

            let entries = setup.entries().await.unwrap();
            assert_eq!(entries.len(), n);
            assert!(entries.iter().all(|e| e.syncs == 1 && e.failures == 0 && e.lease_owner.is_none()), "{entries:?}");
            let hits = hits.lock().unwrap().clone();
            assert_eq!(hits.len(), n, "every feed was fetched");
            let twice: Vec<_> = hits.iter().filter(|(_, c)| **c > 1).collect();
            assert!(twice.len() <= 4 && hits.values().all(|&c| c <= 2), "fetched again: {twice:?}");
            // One row per calendar, written once: the re-synced calendars wrote nothing.
            let reader = client(&db.url).await;
            let logged = reader
                .query("SELECT op, count(*), count(DISTINCT calendar_id) FROM writes GROUP BY op", &[])
                .await
                .unwrap();
            let logged: Vec<(String, i64, i64)> = logged.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
            assert_eq!(logged, [("INSERT".to_owned(), n64, n64)]);
            // The server's counters agree (an insert rolled back by the kill counts there too).
            let counted = tuples(&db, &[&setup]).await;
            assert!(
                counted.ins >= n64 && counted.ins <= n64 + 4 && counted.upd == 0 && counted.del == 0,
                "{counted:?}"
            );
            let rows: i64 = reader.query_one("SELECT count(*) FROM events", &[]).await.unwrap().get(0);
            let distinct: i64 =
                reader.query_one("SELECT count(DISTINCT calendar_id) FROM events", &[]).await.unwrap().get(0);
            assert_eq!((rows, distinct), (n64, n64));
            drop(setup);
            db.drop().await;
        });
    }
}
