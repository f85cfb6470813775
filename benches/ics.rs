//! iCalendar ingestion on a generated ~60 MB, 100k-event feed with real-world features
//! (folded lines, CRLF, overrides listed before masters, Windows zone names, long Outlook UIDs,
//! attendees, alarms):
//!
//! - `ics/resync_unchanged`: scan + fingerprint + plan against the stored state, every DTSTAMP
//!   regenerated: asserts zero changes.
//! - `ics/first_sync`: scan + fingerprint + plan into an empty store + parse every event's
//!   fields: asserts 100k inserts.
//!
//! Run: `cargo bench --bench ics`

use std::hint::black_box;
use std::time::Duration;

use calscope::ics::{ReadOptions, read_feed, read_feed_owned};
use calscope::{CalendarHead, CalendarId, Changes, PlanOptions, Revision, StoredEntry, StoredState, plan};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// Builds a feed of `n` events; `stamp` changes every DTSTAMP.
fn feed(n: usize, stamp: u32) -> Vec<u8> {
    let mut out = String::with_capacity(n * 620);
    out.push_str("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calscope//bench//EN\r\nBEGIN:VTIMEZONE\r\nTZID:W. Europe Standard Time\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:16010101T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n");
    let mut i = 0;
    while i < n {
        let uid = format!(
            "040000008200E00074C5B7101A82E00800000000{i:016X}1D8A3B4C5D6E7F80910000000000000000100000004A8B9C0D1E2F{i:08}"
        );
        let (master_day, over) = (1 + i % 28, i % 10 == 0 && i + 1 < n);
        if over {
            // Google lists the override before its master.
            out.push_str(&event(
                &uid,
                Some(&format!("202602{master_day:02}T100000")),
                i + 1,
                stamp,
                "Moved occurrence",
            ));
            i += 1;
        }
        out.push_str(&event(&uid, None, i, stamp, "Weekly planning"));
        i += 1;
    }
    out.push_str("END:VCALENDAR\r\n");
    out.into_bytes()
}

fn event(uid: &str, rid: Option<&str>, i: usize, stamp: u32, summary: &str) -> String {
    let folded_uid = format!("UID:{uid}");
    let (head, tail) = folded_uid.split_at(74);
    let rid_line = rid.map(|r| format!("RECURRENCE-ID;TZID=W. Europe Standard Time:{r}\r\n")).unwrap_or_default();
    format!(
        "BEGIN:VEVENT\r\n{head}\r\n {tail}\r\n{rid_line}DTSTAMP:20260101T{:06}Z\r\nDTSTART;TZID=W. Europe Standard Time:202602{:02}T100000\r\nDTEND;TZID=W. Europe Standard Time:202602{:02}T110000\r\nRRULE:FREQ=WEEKLY;BYDAY=MO\r\nSUMMARY:{summary} {i}\r\nDESCRIPTION:Agenda: review the roadmap\\, the open issues and the release plan f\r\n or the next quarter. Dial-in details follow.\r\nLOCATION:Room {}\r\nORGANIZER;CN=Planner:mailto:planner@example.com\r\nATTENDEE;CN=\"Doe, Jane\";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:jane@example.com\r\nSEQUENCE:0\r\nBEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n",
        stamp % 235_959,
        1 + i % 28,
        1 + i % 28,
        i % 40
    )
}

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
    group.bench_function("resync_unchanged", |b| {
        b.iter_batched(
            || again.clone(),
            |bytes| {
                let read = read_feed_owned(&cal, black_box(bytes), &options).expect("reads");
                let (snapshot, _) = read.into_snapshot();
                let p = plan(&cal, &Changes::Snapshot(snapshot), &stored, &plan_options);
                assert!(p.is_empty());
                assert_eq!(p.unchanged(), n);
            },
            BatchSize::PerIteration,
        );
    });
    group.bench_function("first_sync", |b| {
        b.iter_batched(
            || first.clone(),
            |bytes| {
                let read = read_feed_owned(&cal, black_box(bytes), &options).expect("reads");
                let (snapshot, _) = read.into_snapshot();
                let p = plan(&cal, &Changes::Snapshot(snapshot), &empty, &plan_options);
                assert_eq!(p.inserts(), n);
                let parsed =
                    p.changes().iter().filter_map(|c| c.event()).filter(|e| e.details().start.is_some()).count();
                assert_eq!(parsed, n);
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, bench_ics);
criterion_main!(benches);
