//! Availability: the expander, busy queries from SQLite, and what materialized instances add
//! to a first sync. Every bench asserts its result inside the loop.
//!
//! - `instances/expand/mix_1yr`: 1,000 series of a realistic mix (weekly meetings with
//!   EXDATEs and a moved occurrence, weekday stand-ups with UNTIL, monthly BYSETPOS, biweekly
//!   in New York time, yearly all-day birthdays, single events) expanded over one year in
//!   Europe/Berlin; throughput in instances.
//! - `instances/sqlite_busy/10cal_1yr`: a busy query over 10 calendars of that mix (30 series
//!   each, about 2,600 instances a year) for one year, from a SQLite file's materialized busy
//!   time (`busy_months`, kept from `instances`), per calendar and merged.
//! - `instances/first_sync/{with,without}_instances/100k`: a first sync of 100k events (98 %
//!   single events over the 16 months from a year ago, 2 % recurring series of the mix) into
//!   SQLite, with the default horizon and with instances off: the difference is their cost.
//!   The `sync` call is timed; closing the store (its last WAL checkpoint) is not, in either.
//!
//! Run: `cargo bench --bench instances`

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use calscope::{CalendarId, Engine, EventDetails, Expander, IcsSource, Series, SqliteStore, Zone};
use chrono::{DateTime, Duration as Days, DurationRound as _, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;

/// Series per calendar in the busy query bench: about 2,600 instances a year each (10 a
/// working day), a busy person's calendar.
const PER_CALENDAR: usize = 30;

fn today() -> DateTime<Utc> {
    Utc::now().duration_trunc(Days::days(1)).expect("a day")
}

fn basic(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%S").to_string()
}

/// One series of the mix (VEVENT bodies, without BEGIN/END), `i` choosing its shape.
fn series(i: usize, start: DateTime<Utc>) -> Vec<String> {
    let n = |x: usize| i64::try_from(x).unwrap_or(0);
    let s = start + Days::days(n(i % 30)) + Days::hours(8 + n(i % 9));
    let uid = format!("UID:s{i}@bench");
    match i % 10 {
        0..=2 => vec![
            format!(
                "{uid}\r\nDTSTART;TZID=Europe/Berlin:{}\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;BYDAY=TU,TH\r\nEXDATE;TZID=Europe/Berlin:{}",
                basic(s),
                basic(s + Days::days(14))
            ),
            format!(
                "{uid}\r\nRECURRENCE-ID;TZID=Europe/Berlin:{}\r\nDTSTART;TZID=Europe/Berlin:{}\r\nDURATION:PT1H",
                basic(s + Days::days(28)),
                basic(s + Days::days(28) + Days::hours(3))
            ),
        ],
        3 | 4 => vec![format!(
            "{uid}\r\nDTSTART;TZID=Europe/Berlin:{}\r\nDURATION:PT15M\r\nRRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;UNTIL={}Z",
            basic(s),
            basic(s + Days::days(300))
        )],
        5 => vec![format!(
            "{uid}\r\nDTSTART;TZID=Europe/Berlin:{}\r\nDURATION:PT2H\r\nRRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            basic(s)
        )],
        6 => vec![format!(
            "{uid}\r\nDTSTART;TZID=America/New_York:{}\r\nDTEND;TZID=America/New_York:{}\r\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE,FR",
            basic(s),
            basic(s + Days::minutes(45))
        )],
        7 => vec![format!(
            "{uid}\r\nDTSTART;VALUE=DATE:{}\r\nRRULE:FREQ=YEARLY\r\nTRANSP:TRANSPARENT",
            s.format("%Y%m%d")
        )],
        _ => vec![format!("{uid}\r\nDTSTART:{}Z\r\nDURATION:PT30M", basic(s + Days::days(n(i % 300))))],
    }
}

fn feed(bodies: impl IntoIterator<Item = String>) -> Vec<u8> {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calscope//bench//EN\r\n");
    for b in bodies {
        let _ = write!(out, "BEGIN:VEVENT\r\n{b}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:bench\r\nEND:VEVENT\r\n");
    }
    out.push_str("END:VCALENDAR\r\n");
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("instances");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(5));
    let start = today() - Days::days(60);
    let (from, to) = (today(), today() + Days::days(365));

    // The expander alone.
    let cal = CalendarId::new("bench").expect("id");
    let read = calscope::ics::read_feed(
        &cal,
        &feed((0..1000).flat_map(|i| series(i, start))),
        &calscope::ics::ReadOptions::default(),
    )
    .expect("reads");
    let details: Vec<(Option<calscope::RecurrenceId>, &EventDetails, &calscope::Uid)> =
        read.events.iter().map(|e| (e.key().recurrence_id, e.details(), &e.key().uid)).collect();
    let mut groups: Vec<Series<'_>> = Vec::new();
    let mut last: Option<&calscope::Uid> = None;
    for (rid, d, uid) in &details {
        if last != Some(*uid) {
            groups.push(Series::new());
            last = Some(*uid);
        }
        if let Some(s) = groups.last_mut() {
            s.push(*rid, d);
        }
    }
    let expander = Expander::new(Zone::named("Europe/Berlin").expect("zone"));
    let count =
        |groups: &[Series<'_>]| groups.iter().map(|s| expander.expand(s, from, to).instances.len()).sum::<usize>();
    let total = count(&groups);
    assert!(total > 50_000, "{total}");
    group.throughput(Throughput::Elements(total as u64));
    group.bench_function("expand/mix_1yr", |b| b.iter(|| assert_eq!(count(black_box(&groups)), total)));

    // A busy query over 10 calendars × 1 year, from SQLite's instances table.
    let path = std::env::temp_dir().join(format!("calscope-bench-busy-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let engine = Engine::new(SqliteStore::open(&path).expect("opens"));
    let cals: Vec<CalendarId> = (0..10).map(|i| CalendarId::new(format!("person-{i}")).expect("id")).collect();
    for (k, c) in cals.iter().enumerate() {
        let bytes = feed((0..PER_CALENDAR).flat_map(|i| series(i * 7 + k, start)));
        let r = block_on(engine.sync(&IcsSource::from_bytes(c.clone(), bytes), c));
        assert!(r.is_ok(), "{:?}", r.error);
    }
    let berlin = Zone::UTC;
    let answer = block_on(engine.store().busy(&cals, from, to, berlin)).expect("busy");
    assert!(!answer.expanded);
    let merged = answer.merged.len();
    assert!(merged > 500, "{merged}");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sqlite_busy/10cal_1yr", |b| {
        b.iter(|| {
            let a = block_on(engine.store().busy(black_box(&cals), from, to, berlin)).expect("busy");
            assert_eq!(a.merged.len(), merged);
        });
    });
    drop(engine);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }

    // A first sync of 100k events, with and without instances.
    let n = 100_000usize;
    let spread = today() - Days::days(365);
    let bytes = feed((0..n).flat_map(|i| {
        if i % 50 == 0 {
            // One event in 50 a recurring series of the mix (its first component).
            series(i / 50, start).into_iter().take(1).collect::<Vec<_>>()
        } else {
            vec![format!(
                "UID:single{i}@bench\r\nDTSTART:{}Z\r\nDURATION:PT1H",
                basic(spread + Days::minutes(i64::try_from(i * 7 % (730 * 1440)).unwrap_or(0)))
            )]
        }
    }));
    group.throughput(Throughput::Elements(n as u64));
    for (name, on) in [("first_sync/with_instances/100k", true), ("first_sync/without_instances/100k", false)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let path =
                        std::env::temp_dir().join(format!("calscope-bench-first-{}-{on}.db", std::process::id()));
                    remove_db(&path);
                    let store = SqliteStore::open(&path).expect("opens");
                    let store = if on { store } else { store.without_instances() };
                    (Closed(path, Some(Engine::new(store))), IcsSource::from_bytes(cal.clone(), bytes.clone()))
                },
                |(closed, source)| {
                    let engine = closed.1.as_ref().expect("an engine");
                    let r = block_on(engine.sync(&source, &cal));
                    assert!(r.is_ok(), "{:?}", r.error);
                    assert_eq!(r.inserted, n as u64);
                    // Closing the store (its last WAL checkpoint) happens after the timing.
                    closed
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

/// A bench database, closed and removed when dropped (outside the timing).
struct Closed(std::path::PathBuf, Option<Engine<SqliteStore>>);

impl Drop for Closed {
    fn drop(&mut self) {
        drop(self.1.take());
        remove_db(&self.0);
    }
}

fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
