//! Syncing the generated bench feed (see `support/feed.rs`) into a SQLite file through the
//! engine, `IcsSource` and `SqliteStore`, as the `sync` example does:
//!
//! - `sqlite/first_sync/{50k,100k}`: into an empty database; asserts every event inserted.
//! - `sqlite/resync_unchanged/100k`: every DTSTAMP regenerated; asserts zero writes.
//! - `sqlite/resync_1pct/100k`: every DTSTAMP regenerated and 1 % of events edited; asserts
//!   exactly 1 % updated. `sqlite/resync_1pct/50k`: the same at 50k (the README's
//!   per-process table, without process start and close).
//! - `sqlite/resync_unchanged_cached/100k`: as `resync_unchanged`, with the store's state
//!   cache on (a long-running host); asserts zero writes.
//! - `sqlite/sqlite_alone/100k`: the floor under `first_sync`, no calscope in the loop: SQLite
//!   copying the very rows a first sync wrote, held in memory, into a fresh database the store
//!   created (same schema, pages and pragmas) in one `INSERT … SELECT` and one commit.
//! - `sqlite/sqlite_alone_bound/100k`: the same rows, already in Rust, bound one by one to an
//!   `INSERT … ON CONFLICT … DO UPDATE … WHERE` as a store must (one transaction).
//!
//! Every event of this feed is an unending weekly series, so these benches measure the
//! `events` path with instances off (`without_instances`); `benches/instances.rs` measures the
//! instances on a realistic mix.
//!
//! Run: `cargo bench --bench sqlite`

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use calscope::ics::ReadOptions;
use calscope::{CalendarId, Engine, IcsSource, SqliteStore};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;

#[path = "support/feed.rs"]
mod support;
use support::{feed, feed_variant};

struct Db {
    path: PathBuf,
}

impl Db {
    fn fresh(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("calscope-bench-{tag}-{}.db", std::process::id()));
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Self { path }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.path.display()));
        }
    }
}

fn bench_sqlite(c: &mut Criterion) {
    let cal = CalendarId::new("bench").expect("valid id");
    // As the `sync` example reads: large feeds in two pieces on this 2-core machine.
    let two = ReadOptions::default().threads(2);
    let mut group = c.benchmark_group("sqlite");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(10));

    for n in [50_000usize, 100_000] {
        let bytes = feed(n, 1);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(format!("first_sync/{}k", n / 1000), |b| {
            b.iter_batched(
                || {
                    let db = Db::fresh("first");
                    let engine = Engine::new(SqliteStore::open(&db.path).expect("opens").without_instances());
                    (db, engine, IcsSource::from_bytes(cal.clone(), bytes.clone()).with_options(two.clone()))
                },
                |(db, engine, source)| {
                    let r = block_on(engine.sync(black_box(&source), &cal));
                    assert!(r.is_ok(), "{:?}", r.error);
                    assert_eq!(r.inserted, n as u64);
                    (db, engine)
                },
                BatchSize::PerIteration,
            );
        });
    }

    // One database holding the 100k feed; iterations alternate between two exports that differ
    // in every DTSTAMP (and, for `resync_1pct`, in 1 % of events), so each one is a real re-read.
    let n = 100_000usize;
    let db = Db::fresh("resync");
    let engine = Engine::new(SqliteStore::open(&db.path).expect("opens").without_instances());
    let base = feed(n, 1);
    let first = block_on(engine.sync(&IcsSource::from_bytes(cal.clone(), base.clone()), &cal));
    assert_eq!(first.inserted, n as u64);
    sqlite_alone(&mut group, &db, n);
    let exports = [feed(n, 2), feed(n, 3)];
    group.throughput(Throughput::Bytes(exports[0].len() as u64));
    // Unchanged: nothing written. 1 %: exactly the edited events updated, nothing else.
    resync(&mut group, "resync_unchanged/100k", &engine, &cal, &exports, (0, 0, n as u64));
    let edits = [feed_variant(n, 4, 1), feed_variant(n, 5, 2)];
    let edited = (n / 100) as u64;
    resync(&mut group, "resync_1pct/100k", &engine, &cal, &edits, (edited, edited, n as u64 - edited));
    drop((engine, db));

    // The common path at 50k: 1 % edited, every DTSTAMP regenerated.
    let n50 = 50_000usize;
    let db50 = Db::fresh("resync50");
    let engine50 = Engine::new(SqliteStore::open(&db50.path).expect("opens").without_instances());
    let first = block_on(engine50.sync(&IcsSource::from_bytes(cal.clone(), feed(n50, 1)), &cal));
    assert_eq!(first.inserted, n50 as u64);
    let edits50 = [feed_variant(n50, 4, 1), feed_variant(n50, 5, 2)];
    group.throughput(Throughput::Bytes(edits50[0].len() as u64));
    let edited50 = (n50 / 100) as u64;
    resync(&mut group, "resync_1pct/50k", &engine50, &cal, &edits50, (edited50, edited50, n50 as u64 - edited50));
    drop((engine50, db50));

    // The same with the store's state cache (`SqliteStore::with_state_cache`), as a
    // long-running host keeps it: a load reads the calendar's head, not its 100k rows.
    let db = Db::fresh("cached");
    let engine = Engine::new(SqliteStore::open(&db.path).expect("opens").without_instances().with_state_cache(1 << 20));
    let first = block_on(engine.sync(&IcsSource::from_bytes(cal.clone(), base.clone()), &cal));
    assert_eq!(first.inserted, n as u64);
    resync(&mut group, "resync_unchanged_cached/100k", &engine, &cal, &exports, (0, 0, n as u64));
    group.finish();
}

/// SQLite alone writing the rows of `source` (a first sync's database) into a fresh one: in one
/// `INSERT … SELECT`, and bound row by row to an upsert.
fn sqlite_alone(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, source: &Db, n: usize) {
    use calscope::sqlite::rusqlite::types::Value;
    use calscope::sqlite::rusqlite::{Connection, params_from_iter};
    // A fresh database the store created (schema, page size, WAL), on a connection set as the
    // store's (no checkpoint inside the transaction), with the source attached.
    let fresh = || {
        let db = Db::fresh("alone");
        drop(SqliteStore::open(&db.path).expect("opens").without_instances());
        let conn = Connection::open(&db.path).expect("opens");
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 0;").expect("pragmas");
        conn.execute("ATTACH ?1 AS src", [source.path.display().to_string()]).expect("attach");
        (db, conn)
    };
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("sqlite_alone/{}k", n / 1000), |b| {
        b.iter_batched(
            || {
                let (db, conn) = fresh();
                conn.execute_batch("ATTACH ':memory:' AS mem; CREATE TABLE mem.rows AS SELECT * FROM src.events;")
                    .expect("rows in memory");
                (db, conn)
            },
            |(db, conn)| {
                conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
                let copied = conn.execute("INSERT INTO main.events SELECT * FROM mem.rows", []).expect("insert");
                conn.execute_batch("COMMIT").expect("commit");
                assert_eq!(copied, n);
                (db, conn)
            },
            BatchSize::PerIteration,
        );
    });

    let (_db, conn) = fresh();
    let columns = conn.prepare("SELECT * FROM src.events").expect("select").column_count();
    let rows: Vec<Vec<Value>> = conn
        .prepare("SELECT * FROM src.events")
        .expect("select")
        .query_map([], |r| (0..columns).map(|i| r.get::<_, Value>(i)).collect())
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(rows.len(), n);
    let marks: Vec<String> = (1..=columns).map(|i| format!("?{i}")).collect();
    let upsert = format!(
        "INSERT INTO events VALUES ({}) ON CONFLICT (calendar_id, uid, recurrence_id) DO UPDATE SET \
         raw = excluded.raw WHERE events.fingerprint IS NOT excluded.fingerprint",
        marks.join(", ")
    );
    group.bench_function(format!("sqlite_alone_bound/{}k", n / 1000), |b| {
        b.iter_batched(
            fresh,
            |(db, mut conn)| {
                let tx = conn.transaction().expect("begin");
                let mut written = 0;
                {
                    let mut statement = tx.prepare_cached(&upsert).expect("prepare");
                    for row in &rows {
                        written += statement.execute(params_from_iter(row.iter())).expect("upsert");
                    }
                }
                tx.commit().expect("commit");
                assert_eq!(written, n);
                (db, conn)
            },
            BatchSize::PerIteration,
        );
    });
}

/// Re-syncs alternating between two exports, so each iteration is a real re-read, asserting
/// (writes, updated, unchanged).
fn resync(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    engine: &Engine<SqliteStore>,
    cal: &CalendarId,
    feeds: &[Vec<u8>; 2],
    want: (u64, u64, u64),
) {
    // As the `sync` example reads: large feeds in two pieces on this 2-core machine.
    let two = ReadOptions::default().threads(2);
    let mut turn = 0usize;
    group.bench_function(name, |b| {
        b.iter_batched(
            || {
                turn += 1;
                IcsSource::from_bytes(cal.clone(), feeds[turn % 2].clone()).with_options(two.clone())
            },
            |source| {
                let r = block_on(engine.sync(black_box(&source), cal));
                assert!(r.is_ok(), "{:?}", r.error);
                assert_eq!((r.writes(), r.updated, r.unchanged), want);
            },
            BatchSize::PerIteration,
        );
    });
}

criterion_group!(benches, bench_sqlite);
criterion_main!(benches);
