//! iCalendar ingestion on a generated ~60 MB, 100k-event feed with real-world features
//! (folded lines, CRLF, overrides listed before masters, Windows zone names, long Outlook UIDs,
//! attendees, alarms):
//!
//! - `ics/resync_unchanged`: scan + fingerprint + plan against the stored state, every DTSTAMP
//!   regenerated: asserts zero changes.
//! - `ics/resync_unchanged_2threads`: the same with the feed read in two pieces on two threads.
//! - `ics/first_sync`: scan + fingerprint + plan into an empty store + parse every event's
//!   fields: asserts 100k inserts.
//!
//! Run: `cargo bench --bench ics`

use std::hint::black_box;
use std::time::Duration;

use calscope::ics::{ReadOptions, read_feed, read_feed_owned};
use calscope::{CalendarHead, CalendarId, Changes, PlanOptions, Revision, StoredEntry, StoredState, plan};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

#[path = "support/feed.rs"]
mod support;
use support::feed;

fn bench_ics(c: &mut Criterion) {
    let cal = CalendarId::new("bench").expect("valid id");
    let n = 100_000;
    let options = ReadOptions::default();
    let first = feed(n, 1);
    let again = feed(n, 7);
    assert_ne!(first, again, "DTSTAMPs differ");
    let read = read_feed(&cal, &first, &options).expect("generated feed reads");
    assert_eq!((read.events.len(), read.problems.len()), (n, 0));
    let entries: Vec<StoredEntry> = read.events.iter().map(StoredEntry::of_event).collect();
    let stored =
        StoredState::new(cal.clone(), CalendarHead::new(None, Revision(1), n as u64), entries).expect("unique keys");
    let empty = StoredState::empty(cal.clone());
    let plan_options = PlanOptions::default();
    eprintln!("feed: {} bytes, {n} events", again.len());

    let mut group = c.benchmark_group("ics");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Bytes(again.len() as u64));
    // The feed is handed over as fetched bytes, as `IcsSource` does (`read_feed_owned`): the copy
    // a caller keeping its buffer would make is not timed.
    // The second run reads the feed in two pieces on both cores (`ReadOptions::threads`).
    for (name, read_options) in
        [("resync_unchanged", options.clone()), ("resync_unchanged_2threads", ReadOptions::default().threads(2))]
    {
        group.bench_function(name, |b| {
            b.iter_batched(
                || again.clone(),
                |bytes| {
                    let read = read_feed_owned(&cal, black_box(bytes), &read_options).expect("reads");
                    let (snapshot, _) = read.into_snapshot();
                    let p = plan(&cal, &Changes::Snapshot(snapshot), &stored, &plan_options);
                    assert!(p.is_empty());
                    assert_eq!(p.unchanged(), n);
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.bench_function("first_sync", |b| {
        b.iter_batched(
            || first.clone(),
            |bytes| {
                let read = read_feed_owned(&cal, black_box(bytes), &options).expect("reads");
                let (snapshot, _) = read.into_snapshot();
                let p = plan(&cal, &Changes::Snapshot(snapshot), &empty, &plan_options);
                assert_eq!(p.inserts(), n);
                let parsed =
                    p.changes().iter().filter_map(|c| c.event()).filter(|e| e.parse_details().start.is_some()).count();
                assert_eq!(parsed, n);
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_ics);
criterion_main!(benches);
