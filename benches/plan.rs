//! Planner throughput: a snapshot of N events against N stored events with 0 %, 1 % or 100 %
//! of them changed. Every iteration asserts the plan's size, so a fast wrong answer fails.
//!
//! Run: `cargo bench --bench plan`

use std::hint::black_box;
use std::time::Duration;

use calscope::{
    CalendarHead, CalendarId, Changes, Event, FingerprintPolicy, PlanOptions, Revision, Snapshot, StoredEntry,
    StoredState, plan,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

fn component(i: usize, summary: &str, stamp: u32) -> String {
    format!(
        "BEGIN:VEVENT\r\nUID:{i:08}-4f1c-9a7e-{i:012}@calendar.example.com\r\nDTSTAMP:20260101T{:06}Z\r\nDTSTART;TZID=Europe/Berlin:20260105T090000\r\nDTEND;TZID=Europe/Berlin:20260105T100000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:{summary} {i}\r\nLOCATION:Room {}\r\nORGANIZER;CN=Planner:mailto:planner@example.com\r\nSEQUENCE:0\r\nEND:VEVENT\r\n",
        stamp % 240_000,
        i % 17
    )
}

fn events(cal: &CalendarId, n: usize, changed_every: Option<usize>, stamp: u32) -> Vec<Event> {
    let policy = FingerprintPolicy::default();
    (0..n)
        .map(|i| {
            let summary = match changed_every {
                Some(k) if i % k == 0 => "Rescheduled",
                _ => "Planning",
            };
            Event::from_ics(cal, &component(i, summary, stamp), &policy).expect("generated component is valid")
        })
        .collect()
}

/// A deterministic Fisher-Yates shuffle (xorshift), so runs are comparable.
fn shuffle<T>(items: &mut [T]) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        #[allow(clippy::cast_possible_truncation)]
        let j = (state % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

fn bench_plan(c: &mut Criterion) {
    let cal = CalendarId::new("bench").expect("valid id");
    let mut group = c.benchmark_group("plan");
    group.sample_size(10).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4));
    for (n, label) in [(10_000usize, "10k"), (100_000, "100k"), (1_000_000, "1M")] {
        let base = events(&cal, n, None, 1);
        let entries: Vec<StoredEntry> = base.iter().map(StoredEntry::of_event).collect();
        drop(base);
        let stored = StoredState::new(cal.clone(), CalendarHead::new(None, Revision(1), n as u64), entries)
            .expect("unique keys");
        for (pct, every) in [("0pct", None), ("1pct", Some(100usize)), ("100pct", Some(1))] {
            // Every DTSTAMP regenerated, as a real feed does; only `every`-th summaries change.
            let list = events(&cal, n, every, 7);
            if every == Some(100) {
                // The same answer in an order unrelated to the store's: no sequential probe hits.
                let mut shuffled = list.clone();
                shuffle(&mut shuffled);
                let shuffled = Changes::Snapshot(Snapshot::complete(shuffled));
                let expected = n.div_ceil(100);
                let options = PlanOptions::default().allow_mass_change(true);
                group.bench_with_input(
                    BenchmarkId::new(format!("{label}_events"), "1pct_changed_shuffled"),
                    &shuffled,
                    |b, remote| {
                        b.iter(|| {
                            let p = plan(&cal, black_box(remote), &stored, &options);
                            assert_eq!(p.updates(), expected);
                            assert_eq!(p.unchanged(), n - expected);
                            p
                        });
                    },
                );
            }
            let remote = Changes::Snapshot(Snapshot::complete(list));
            let expected = every.map_or(0, |k| n.div_ceil(k));
            let options = PlanOptions::default().allow_mass_change(true);
            group.bench_with_input(
                BenchmarkId::new(format!("{label}_events"), format!("{pct}_changed")),
                &remote,
                |b, remote| {
                    b.iter(|| {
                        let p = plan(&cal, black_box(remote), &stored, &options);
                        assert_eq!(p.updates(), expected);
                        assert_eq!(p.changes().len(), expected);
                        assert_eq!(p.unchanged(), n - expected);
                        p
                    });
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
