//! The fleet on Postgres: 10,000 calendars (5 events each) registered in the schedule, all
//! due, synced by 1, 2 and 4 workers (each a [`Worker`] with a pool of its own, 8 syncs at
//! once and a 50 ms idle poll, in one process on this machine's cores), until idle:
//!
//! - `fleet/round/{1,2,4}_workers`: a round over unchanged calendars (claim, load, fetch,
//!   plan, finish; nothing to write): the steady state of a fleet. Throughput is calendars/s.
//!   Each iteration asserts that every calendar was synced exactly once (the schedule's own
//!   `syncs` total moves by exactly the calendar count, and no claim was lost or failed).
//!
//! The first round (10,000 calendars into an empty database, 4 workers) is timed once and
//! printed. Needs a server: `CALSCOPE_POSTGRES_URL=postgres://… cargo bench --bench fleet
//! --features postgres`; `CALSCOPE_FLEET_CALENDARS` sets the count (default 10,000).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calscope::postgres::{PostgresConfig, PostgresStore, tokio_postgres};
use calscope::schedule::{Schedule, Worker, WorkerOptions, WorkerReport};
use calscope::{CalendarId, CalendarSource, Engine, IcsSource};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::future::BoxFuture;

fn feed(calendar: usize) -> String {
    let mut text = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bench//fleet//EN\r\n");
    for e in 0..5 {
        let _ = write!(
            text,
            "BEGIN:VEVENT\r\nUID:c{calendar}-e{e}@fleet\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:2026120{}T09{e}000Z\r\nDURATION:PT30M\r\nSUMMARY:meeting {e}\r\nEND:VEVENT\r\n",
            1 + e
        );
    }
    text.push_str("END:VCALENDAR\r\n");
    text
}

fn sleep(d: Duration) -> BoxFuture<'static, ()> {
    Box::pin(tokio::time::sleep(d))
}

#[allow(clippy::unnecessary_wraps)] // the worker's factory signature
fn factory(id: &CalendarId, spec: &str) -> calscope::Result<Arc<dyn CalendarSource>> {
    Ok(Arc::new(IcsSource::from_bytes(id.clone(), spec.as_bytes().to_vec())))
}

async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Runs `stores.len()` workers until idle; answers their reports.
async fn round(stores: &[Arc<PostgresStore>]) -> Vec<WorkerReport> {
    let handles: Vec<_> = stores
        .iter()
        .enumerate()
        .map(|(i, store)| {
            let worker = Worker::new(format!("bench-{i}"), Engine::new(Arc::clone(store)), factory, sleep)
                .options(WorkerOptions::default().concurrency(8).poll(Duration::from_millis(50)).until_idle(true));
            tokio::spawn(async move { worker.run(futures::future::pending()).await.expect("worker") })
        })
        .collect();
    let mut reports = Vec::new();
    for h in handles {
        reports.push(h.await.expect("join"));
    }
    reports
}

fn bench_fleet(c: &mut Criterion) {
    let Ok(server) = std::env::var("CALSCOPE_POSTGRES_URL") else {
        panic!("the fleet bench needs CALSCOPE_POSTGRES_URL (a server it may create a database on)");
    };
    let calendars: usize =
        std::env::var("CALSCOPE_FLEET_CALENDARS").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let name = format!("calscope_bench_fleet_{}", std::process::id());
    let mut url = url::Url::parse(&server).expect("a URL");
    url.set_path(&name);
    let url = url.to_string();
    let (stores, client) = rt.block_on(async {
        let a = admin(&server).await;
        a.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
        a.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create");
        let mut stores = Vec::new();
        for _ in 0..4 {
            let config = PostgresConfig::new(&url).max_connections(4);
            stores.push(Arc::new(PostgresStore::connect_with(config).await.expect("store").without_instances()));
        }
        let now = chrono::Utc::now();
        for i in 0..calendars {
            let id = CalendarId::new(format!("user-{i:05}")).expect("id");
            stores[0].register(&id, &feed(i), Duration::from_secs(3600), now).await.expect("register");
        }
        let started = Instant::now();
        let reports = round(&stores).await;
        let synced: u64 = reports.iter().map(|r| r.synced).sum();
        assert_eq!(synced, calendars as u64, "{reports:?}");
        eprintln!(
            "fleet first round: {calendars} calendars, 4 workers, {:.1} s ({:.0} calendars/s)",
            started.elapsed().as_secs_f64(),
            f64::from(u32::try_from(calendars).unwrap_or(u32::MAX)) / started.elapsed().as_secs_f64()
        );
        (stores, admin(&url).await)
    });
    let total_syncs = |client: &tokio_postgres::Client| {
        rt.block_on(async {
            let row = client.query_one("SELECT sum(syncs)::bigint FROM schedule", &[]).await.expect("sum");
            row.get::<_, i64>(0)
        })
    };
    let mut group = c.benchmark_group("fleet");
    group.sample_size(10).warm_up_time(Duration::from_millis(1)).measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(calendars as u64));
    for workers in [1usize, 2, 4] {
        group.bench_function(format!("round/{workers}_workers"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    rt.block_on(client.batch_execute("UPDATE schedule SET next_due_at = now()")).expect("due");
                    let before = total_syncs(&client);
                    let started = Instant::now();
                    let reports = rt.block_on(round(&stores[..workers]));
                    spent += started.elapsed();
                    let synced: u64 = reports.iter().map(|r| r.synced).sum();
                    let wrong: u64 = reports.iter().map(|r| r.failed + r.lost + r.unrecorded).sum();
                    assert_eq!((synced, wrong), (calendars as u64, 0), "{reports:?}");
                    assert_eq!(
                        total_syncs(&client) - before,
                        i64::try_from(calendars).expect("a count"),
                        "a calendar was synced twice or not at all"
                    );
                }
                spent
            });
        });
    }
    group.finish();
    drop(stores);
    rt.block_on(async {
        drop(client);
        let a = admin(&server).await;
        a.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop");
    });
}

criterion_group!(benches, bench_fleet);
criterion_main!(benches);
