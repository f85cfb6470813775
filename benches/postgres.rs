//! 10,000 calendars × 100 events through the engine into Postgres, 16 calendars at a time, as a
//! worker syncing a user base would (every calendar reads the generated bench feed, so all of
//! them share their UIDs: the birthday-calendar shape):
//!
//! - `postgres/first_sync/10000x100`: into an empty database; asserts 1,000,000 inserts, and
//!   the server's tuple counters agree.
//! - `postgres/resync_unchanged/10000x100`: every DTSTAMP regenerated; asserts zero writes and
//!   zero tuples written to `events`.
//! - `postgres/resync_1pct/10000x100`: every DTSTAMP regenerated and 1 % of events edited;
//!   asserts exactly 10,000 updates, and as many tuples.
//!
//! - `postgres/busy_at_{gist,btree}/1000cal`: which of 1,000 calendars are busy in a slot
//!   (see [`bench_slot`]).
//!
//! Needs a server: `CALSCOPE_POSTGRES_URL=postgres://… cargo bench --bench postgres --features
//! postgres` (the bench creates and drops a database of its own). Each iteration is seconds
//! long, so the group takes its 10 samples over several minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use calscope::ics::{ReadOptions, read_feed};
use calscope::postgres::{PostgresConfig, PostgresStore, tokio_postgres};
use calscope::{
    CalendarId, CalendarInfo, CalendarSource, Capabilities, Changes, Engine, FetchRequest, Fetched, Result, SyncJob,
    SyncOptions, SyncReport,
};
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};

#[path = "support/feed.rs"]
mod support;
use support::{feed, feed_variant};

const CALENDARS: usize = 10_000;
const EVENTS: usize = 100;
/// `CALENDARS × EVENTS`, for the events/s lines.
const TOTAL_F64: f64 = 1e6;

/// Every calendar serves the same feed bytes (read and keyed per calendar on each fetch).
#[derive(Debug)]
struct SharedFeed(Arc<Vec<u8>>);

#[async_trait]
impl CalendarSource for SharedFeed {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only()
    }
    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        Ok(Vec::new())
    }
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let (snapshot, _) = read_feed(request.calendar, &self.0, &ReadOptions::default())?.into_snapshot();
        Ok(Fetched::new(Changes::Snapshot(snapshot), None))
    }
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("reaches the server");
    tokio::spawn(conn);
    client
}

/// Tuples inserted, updated, deleted in `events` (after flushing the store's pending stats).
async fn tuples(store: &PostgresStore, url: &str) -> [i64; 3] {
    let pool = store.pool();
    let mut held = Vec::new();
    for _ in 0..pool.status().size {
        held.push(pool.get().await.expect("connection"));
    }
    for c in &held {
        c.batch_execute("SELECT pg_stat_force_next_flush()").await.expect("flush");
        c.batch_execute("SELECT 1").await.expect("idle");
    }
    drop(held);
    let row = admin(url)
        .await
        .query_one("SELECT n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables WHERE relname = 'events'", &[])
        .await
        .expect("counters");
    [row.get(0), row.get(1), row.get(2)]
}

fn bench_postgres(c: &mut Criterion) {
    let Ok(server) = std::env::var("CALSCOPE_POSTGRES_URL") else {
        panic!("the postgres bench needs CALSCOPE_POSTGRES_URL (a server it may create a database on)");
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let name = format!("calscope_bench_{}", std::process::id());
    let mut url = url::Url::parse(&server).expect("a URL");
    url.set_path(&name);
    let url = url.to_string();
    let ids: Vec<CalendarId> = (0..CALENDARS).map(|i| CalendarId::new(format!("user-{i}")).expect("id")).collect();
    let options = SyncOptions::default().concurrency(16);
    let (reset, store) = rt.block_on(async {
        let reset = move || {
            let (admin_url, name) = (server.clone(), name.clone());
            async move {
                let a = admin(&admin_url).await;
                a.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
                a.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create");
            }
        };
        reset().await;
        let store = PostgresStore::connect_with(PostgresConfig::new(&url).max_connections(16))
            .await
            .expect("store")
            .without_instances();
        (reset, Arc::new(store))
    });
    let sync = |store: &Arc<PostgresStore>, bytes: Vec<u8>| -> (SyncReport, Duration) {
        rt.block_on(async {
            let engine = Engine::new(Arc::clone(store)).with_options(options.clone());
            let source = SharedFeed(Arc::new(bytes));
            let started = Instant::now();
            let report = engine.sync_all(ids.iter().map(|id| SyncJob::new(&source, id))).await;
            let took = started.elapsed();
            assert!(report.is_ok(), "{:?}", report.failed().next());
            (report, took)
        })
    };
    let total = (CALENDARS * EVENTS) as u64;

    let mut group = c.benchmark_group("postgres");
    // Flat sampling: iterations are seconds long, so each sample is one iteration.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(60));
    group.throughput(Throughput::Elements(total));
    let mut store = store;
    let first_bytes = feed(EVENTS, 1);
    group.bench_function(format!("first_sync/{CALENDARS}x{EVENTS}"), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                // A fresh database each time (outside the timing).
                drop(std::mem::replace(
                    &mut store,
                    rt.block_on(async {
                        reset().await;
                        let s = PostgresStore::connect_with(PostgresConfig::new(&url).max_connections(16))
                            .await
                            .map(PostgresStore::without_instances);
                        Arc::new(s.expect("store"))
                    }),
                ));
                let before = rt.block_on(tuples(&store, &url));
                let (report, took) = sync(&store, first_bytes.clone());
                assert_eq!(report.calendars.iter().map(|r| r.inserted).sum::<u64>(), total);
                let after = rt.block_on(tuples(&store, &url));
                let written = [after[0] - before[0], after[1] - before[1], after[2] - before[2]];
                assert_eq!(written, [i64::try_from(total).expect("fits"), 0, 0], "tuples ins/upd/del");
                eprintln!("first sync: {:.0} events/s, tuples ins/upd/del {written:?}", TOTAL_F64 / took.as_secs_f64());
                spent += took;
            }
            spent
        });
    });

    // Every re-sync regenerates every DTSTAMP, so each one re-reads every feed; a 1 % iteration
    // edits event 0 of every calendar (a new variant each time, so it differs from the last).
    let mut turn = 0u32;
    let mut resync = |group: &mut criterion::BenchmarkGroup<'_, _>, name: &str, variant: bool| {
        group.bench_function(format!("{name}/{CALENDARS}x{EVENTS}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    turn += 1;
                    let stamp = 10 + turn;
                    let bytes = if variant { feed_variant(EVENTS, stamp, turn) } else { feed(EVENTS, stamp) };
                    let before = rt.block_on(tuples(&store, &url));
                    let (report, took) = sync(&store, bytes);
                    let after = rt.block_on(tuples(&store, &url));
                    let written = [after[0] - before[0], after[1] - before[1], after[2] - before[2]];
                    let want = if variant { total / 100 } else { 0 };
                    assert_eq!(report.writes(), want);
                    assert_eq!(written, [0, i64::try_from(want).expect("fits"), 0], "tuples ins/upd/del");
                    eprintln!("{name}: {:.0} events/s, tuples ins/upd/del {written:?}", TOTAL_F64 / took.as_secs_f64());
                    spent += took;
                }
                spent
            });
        });
    };
    resync(&mut group, "resync_unchanged", false);
    resync(&mut group, "resync_1pct", true);
    group.finish();
    drop(store);
}

/// `postgres/busy_at_{gist,btree}/1000cal`: which of 1,000 calendars are busy in a 30-minute
/// slot, over an `instances` table of 1,000 calendars × ~1,000 rows (a daily stand-up over the
/// horizon and 600 single events each): the store's query on the `GiST` index over the
/// interval, and the same question asked with plain comparisons, which only the btree serves.
/// Both assert the answer. Prints each query's plan once.
fn bench_slot(c: &mut Criterion) {
    use chrono::{DurationRound as _, Utc};
    let Ok(server) = std::env::var("CALSCOPE_POSTGRES_URL") else {
        panic!("the postgres bench needs CALSCOPE_POSTGRES_URL (a server it may create a database on)");
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let name = format!("calscope_bench_slot_{}", std::process::id());
    let mut url = url::Url::parse(&server).expect("a URL");
    url.set_path(&name);
    let url = url.to_string();
    let ids: Vec<CalendarId> = (0..1000).map(|i| CalendarId::new(format!("person-{i:04}")).expect("id")).collect();
    let day = Utc::now().duration_trunc(chrono::Duration::days(1)).expect("day");
    let (store, client) = rt.block_on(async {
        let a = admin(&server).await;
        a.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
        a.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create");
        let store = PostgresStore::connect(&url).await.expect("store");
        let client = admin(&url).await;
        // Stand-ups: every day of the horizon 09:00–09:15; singles: 600 per calendar, one hour,
        // on the quarter hours of working days, spread by calendar.
        client
            .batch_execute(&format!(
                "INSERT INTO instances SELECT format('person-%s', lpad(c::text, 4, '0')), 'standup', to_char(d, 'YYYYMMDD\"T090000Z\"'),
                        d + interval '9 hours', d + interval '9 hours 15 minutes', true, false
                 FROM generate_series(0, 999) c, generate_series(timestamptz '{day}' - interval '30 days', timestamptz '{day}' + interval '399 days', interval '1 day') d;
                 INSERT INTO instances SELECT format('person-%s', lpad(c::text, 4, '0')), format('single-%s', k), to_char(t, 'YYYYMMDD\"T\"HH24MISS\"Z\"'),
                        t, t + interval '1 hour', true, k % 7 = 0
                 FROM generate_series(0, 999) c, generate_series(0, 599) k,
                      LATERAL (SELECT timestamptz '{day}' + ((k * 17 + c * 31) % 400) * interval '1 day' + (8 + (k + c) % 9) * interval '1 hour' + ((k * c) % 4) * interval '15 minutes' AS t) x;
                 ANALYZE instances;"
            ))
            .await
            .expect("populate");
        (store, client)
    });
    let (from, to) = (
        day + chrono::Duration::hours(24 * 3 + 10),
        day + chrono::Duration::hours(24 * 3 + 10) + chrono::Duration::minutes(30),
    );
    let names: Vec<&str> = ids.iter().map(CalendarId::as_str).collect();
    let btree = "SELECT DISTINCT calendar_id FROM instances WHERE calendar_id = ANY($1) AND busy AND ends_at > $2 AND starts_at < $3";
    let want = rt.block_on(store.busy_at(&ids, from, to)).expect("busy_at");
    assert!(!want.is_empty() && want.len() < ids.len(), "{}", want.len());
    rt.block_on(async {
        for (label, sql) in [("gist", "SELECT DISTINCT calendar_id FROM instances WHERE busy AND tstzrange(starts_at, ends_at, '[)') && tstzrange($2, $3, '[)') AND calendar_id = ANY($1)"), ("btree", btree)] {
            let plan = client.query(&format!("EXPLAIN ANALYZE {sql}"), &[&names, &from, &to]).await.expect("explain");
            let lines: Vec<String> = plan.iter().map(|r| r.get::<_, String>(0)).collect();
            eprintln!("busy_at_{label} plan:\n  {}", lines.join("\n  "));
        }
    });
    let mut group = c.benchmark_group("postgres");
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    group.bench_function("busy_at_gist/1000cal", |b| {
        b.iter(|| assert_eq!(rt.block_on(store.busy_at(&ids, from, to)).expect("busy_at"), want));
    });
    group.bench_function("busy_at_btree/1000cal", |b| {
        b.iter(|| {
            let rows = rt.block_on(client.query(btree, &[&names, &from, &to])).expect("query");
            assert_eq!(rows.len(), want.len());
        });
    });
    group.finish();
    drop(store);
    rt.block_on(async {
        drop(client);
        let a = admin(&server).await;
        a.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
    });
}

criterion_group!(benches, bench_slot, bench_postgres);
criterion_main!(benches);
