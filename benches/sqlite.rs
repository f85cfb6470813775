//! Syncing the generated bench feed (see `support/feed.rs`) into a SQLite file through the
//! engine, `IcsSource` and `SqliteStore`, as the `sync` example does:
//!
//! - `sqlite/first_sync/{50k,100k}`: into an empty database; asserts every event inserted.
//! - `sqlite/resync_unchanged/100k`: every DTSTAMP regenerated; asserts zero writes.
//! - `sqlite/resync_1pct/100k`: every DTSTAMP regenerated and 1 % of events edited; asserts
//!   exactly 1 % updated.
//! - `sqlite/resync_unchanged_cached/100k`: as `resync_unchanged`, with the store's state
//!   cache on (a long-running host); asserts zero writes.
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
                    let engine = Engine::new(SqliteStore::open(&db.path).expect("opens"));
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
    let engine = Engine::new(SqliteStore::open(&db.path).expect("opens"));
    let base = feed(n, 1);
    let first = block_on(engine.sync(&IcsSource::from_bytes(cal.clone(), base.clone()), &cal));
    assert_eq!(first.inserted, n as u64);
    let exports = [feed(n, 2), feed(n, 3)];
    group.throughput(Throughput::Bytes(exports[0].len() as u64));
    // Unchanged: nothing written. 1 %: exactly the edited events updated, nothing else.
    resync(&mut group, "resync_unchanged/100k", &engine, &cal, &exports, (0, 0, n as u64));
    let edits = [feed_variant(n, 4, 1), feed_variant(n, 5, 2)];
    let edited = (n / 100) as u64;
    resync(&mut group, "resync_1pct/100k", &engine, &cal, &edits, (edited, edited, n as u64 - edited));
    drop((engine, db));

    // The same with the store's state cache (`SqliteStore::with_state_cache`), as a
    // long-running host keeps it: a load reads the calendar's head, not its 100k rows.
    let db = Db::fresh("cached");
    let engine = Engine::new(SqliteStore::open(&db.path).expect("opens").with_state_cache(1 << 20));
    let first = block_on(engine.sync(&IcsSource::from_bytes(cal.clone(), base.clone()), &cal));
    assert_eq!(first.inserted, n as u64);
    resync(&mut group, "resync_unchanged_cached/100k", &engine, &cal, &exports, (0, 0, n as u64));
    group.finish();
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
