//! `IcsSource` and the feed reader end to end, and fingerprint stability under the ways real
//! servers re-serialize the same event.

use calscope::ics::{ReadOptions, read_feed};
use calscope::{Engine, ErrorKind, Event, Fingerprint, FingerprintPolicy, IcsSource, MemoryStore};
use proptest::prelude::*;
use std::fmt::Write as _;

use crate::common::{block_on, cal, feed};

#[test]
fn a_file_feed_syncs_with_zero_writes_when_only_dtstamps_change() {
    let dir = std::env::temp_dir().join(format!("calscope-ics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("feed.ics");
    let c = cal("file");
    let source = IcsSource::from_file(c.clone(), &path);
    let engine = Engine::new(MemoryStore::new());

    std::fs::write(&path, feed(&[("a", "A"), ("b", "B")], "20260101T000000Z")).unwrap();
    assert_eq!(block_on(engine.sync(&source, &c)).inserted, 2);

    // Same bytes: answered from the cursor, nothing read, nothing written.
    let same = block_on(engine.sync(&source, &c));
    assert_eq!((same.writes(), same.unchanged), (0, 0));

    // Regenerated DTSTAMPs: read, planned, nothing written.
    std::fs::write(&path, feed(&[("a", "A"), ("b", "B")], "20260102T000000Z")).unwrap();
    let stamped = block_on(engine.sync(&source, &c));
    assert_eq!((stamped.writes(), stamped.unchanged), (0, 2));
    assert_eq!(engine.store().stats().rows(), 2);

    // A real change and a deletion.
    std::fs::write(&path, feed(&[("a", "A2")], "20260103T000000Z")).unwrap();
    let changed = block_on(engine.sync(&source, &c));
    assert_eq!((changed.updated, changed.deleted), (1, 1));

    // A truncated feed is an error and deletes nothing.
    let mut truncated = feed(&[("z", "Z")], "20260104T000000Z");
    truncated.truncate(truncated.len() - "END:VCALENDAR\r\n".len());
    std::fs::write(&path, truncated).unwrap();
    let failed = block_on(engine.sync(&source, &c));
    assert_eq!(failed.error_kind, Some(ErrorKind::Parse));
    assert_eq!(engine.store().events(&c).len(), 1);

    // An empty calendar is refused while events are stored.
    std::fs::write(&path, feed(&[], "20260104T000000Z")).unwrap();
    assert_eq!(block_on(engine.sync(&source, &c)).error_kind, Some(ErrorKind::EmptySnapshot));
    assert_eq!(engine.store().events(&c).len(), 1);

    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(block_on(engine.sync(&source, &c)).error_kind, Some(ErrorKind::NotFound));
}

#[test]
fn a_partly_broken_feed_keeps_the_rest_and_deletes_nothing() {
    let c = cal("partial");
    let engine = Engine::new(MemoryStore::new());
    let good = feed(&[("a", "A"), ("b", "B"), ("c", "C")], "20260101T000000Z");
    assert_eq!(block_on(engine.sync(&IcsSource::from_bytes(c.clone(), good), &c)).inserted, 3);
    // "b" lost its DTSTART, "c" is gone, "d" is new: d is inserted, b and c are kept.
    let broken = feed(&[("a", "A"), ("b", "B"), ("d", "D")], "20260101T000000Z").replacen(
        "UID:b\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T090000Z",
        "UID:b\r\nDTSTAMP:20260101T000000Z",
        1,
    );
    let r = block_on(engine.sync(&IcsSource::from_bytes(c.clone(), broken), &c));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!((r.inserted, r.deleted), (1, 0));
    assert!(r.warnings.iter().any(|w| w.contains("b: no DTSTART")), "{:?}", r.warnings);
    assert_eq!(engine.store().events(&c).len(), 4);
}

#[test]
fn overrides_before_masters_and_windows_zones_normalize() {
    let text = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:s\r\nRECURRENCE-ID;TZID=W. Europe Standard Time:20260112T100000\r\nDTSTART:20260112T110000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:s\r\nDTSTART;TZID=W. Europe Standard Time:20260105T100000\r\nRRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = read_feed(&cal("z"), text.as_bytes(), &ReadOptions::default()).unwrap();
    assert!(r.is_complete());
    let rid = r.events[0].key().recurrence_id.unwrap();
    assert_eq!(rid.to_string(), "20260112T090000Z");
    assert_eq!(r.events[1].key().recurrence_id, None);
}

/// Ways a server re-serializes an event without changing it.
#[derive(Debug, Clone)]
struct Variant {
    crlf: u8,
    fold_at: usize,
    rotate: usize,
    lowercase_names: bool,
    stamp: u32,
}

fn variant() -> impl Strategy<Value = Variant> {
    (0u8..3, 10usize..80, 0usize..8, any::<bool>(), 0u32..100_000).prop_map(
        |(crlf, fold_at, rotate, lowercase_names, stamp)| Variant { crlf, fold_at, rotate, lowercase_names, stamp },
    )
}

const PROPS: [&str; 7] = [
    "UID:variant@calscope",
    "DTSTART;TZID=Europe/Berlin;VALUE=DATE-TIME:20260105T100000",
    "SUMMARY:A long enough summary that will be folded at some point by a server",
    "DESCRIPTION:Line one\\nline two \u{e9}\u{e8}\u{20ac} with UTF-8 that folds mid-sequence somewhere",
    "ATTENDEE;PARTSTAT=ACCEPTED;CN=\"Doe, J\":mailto:j@example.com",
    "RRULE:FREQ=WEEKLY;BYDAY=MO",
    "LOCATION:Room 1",
];

/// The event as bytes: folds may split UTF-8 sequences, as real servers' do.
fn render(v: &Variant, props: &[&str]) -> Vec<u8> {
    let eol = ["\r\n", "\n", "\r"][usize::from(v.crlf)];
    let mut out: Vec<u8> = format!("BEGIN:VEVENT{eol}").into_bytes();
    let mut lines: Vec<String> = props.iter().map(|p| (*p).to_owned()).collect();
    lines.push(format!("DTSTAMP:20260101T{:06}Z", v.stamp % 235_959));
    let n = lines.len();
    lines.rotate_left(v.rotate % n);
    for line in lines {
        let line = if v.lowercase_names {
            let split = line.find([':', ';']).unwrap_or(0);
            format!("{}{}", line[..split].to_ascii_lowercase(), &line[split..])
        } else {
            line
        };
        for (i, chunk) in line.as_bytes().chunks(v.fold_at).enumerate() {
            if i > 0 {
                out.extend_from_slice(eol.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(eol.as_bytes());
    }
    out.extend_from_slice(format!("END:VEVENT{eol}").as_bytes());
    out
}

fn fingerprint_bytes(v: &Variant, props: &[&str]) -> Fingerprint {
    Fingerprint::of_component(&render(v, props), &FingerprintPolicy::default())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reserializations_share_a_fingerprint_and_real_changes_do_not(a in variant(), b in variant(), which in 0usize..7) {
        prop_assert_eq!(fingerprint_bytes(&a, &PROPS), fingerprint_bytes(&b, &PROPS));
        // A one-character change of any property value is a real change.
        let mut changed: Vec<String> = PROPS.iter().map(|p| (*p).to_owned()).collect();
        changed[which].push('x');
        let changed: Vec<&str> = changed.iter().map(String::as_str).collect();
        prop_assert_ne!(fingerprint_bytes(&a, &PROPS), fingerprint_bytes(&b, &changed));
        // And reading the text as an event agrees with the bytes (when it is valid UTF-8).
        if let Ok(text) = String::from_utf8(render(&a, &PROPS)) {
            let event = Event::from_ics(&cal("p"), &text, &FingerprintPolicy::default()).unwrap();
            prop_assert_eq!(event.fingerprint(), fingerprint_bytes(&a, &PROPS));
        }
    }
}

/// A feed over 4 MiB (the size from which a read may run in pieces) with what makes pieces
/// interact: a custom VTIMEZONE at the top used by overrides everywhere, broken events,
/// duplicates, skipped components, blank lines and a second VCALENDAR.
fn big_feed(with_uidless: bool) -> String {
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nBEGIN:VTIMEZONE\r\nTZID:Custom/Office\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0300\r\nTZOFFSETTO:+0300\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n",
    );
    for i in 0..9_000 {
        let uid = if with_uidless && i % 1000 == 7 { String::new() } else { format!("UID:e{}\r\n", i % 8_990) };
        let rid = if i % 10 == 3 { "RECURRENCE-ID;TZID=Custom/Office:20260105T100000\r\n" } else { "" };
        let start = if i % 997 == 5 { "DTSTART:nonsense" } else { "DTSTART:20260105T090000Z" };
        let _ = write!(
            out,
            "BEGIN:VEVENT\r\n{uid}{rid}DTSTAMP:20260101T000000Z\r\n{start}\r\nSUMMARY:event {i} {}\r\nDESCRIPTION:{}\r\nEND:VEVENT\r\n",
            i % 3,
            "x".repeat(400)
        );
        if i % 2500 == 0 {
            out.push_str("BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n\r\n");
        }
        if i == 6_000 {
            out.push_str("END:VCALENDAR\r\nBEGIN:VCALENDAR\r\n");
        }
    }
    out.push_str("END:VCALENDAR\r\n");
    assert!(out.len() > 4 << 20);
    out
}

/// Events (key, fingerprint), problems and warnings, each sorted, and the calendar count.
type Outcome = (Vec<(String, String)>, Vec<String>, Vec<String>, usize);

fn sorted_read(text: &str, threads: usize) -> Outcome {
    let options = ReadOptions::default().threads(threads);
    let read = read_feed(&cal("big"), text.as_bytes(), &options).unwrap();
    let mut events: Vec<(String, String)> =
        read.events.iter().map(|e| (e.key().to_string(), e.fingerprint().to_string())).collect();
    events.sort();
    let mut problems: Vec<String> = read.problems.iter().map(ToString::to_string).collect();
    problems.sort();
    let mut warnings = read.warnings.clone();
    warnings.sort();
    (events, problems, warnings, read.calendars)
}

#[test]
fn a_feed_read_in_pieces_reads_as_it_does_in_one() {
    for uidless in [false, true] {
        let text = big_feed(uidless);
        let one = sorted_read(&text, 1);
        assert!(one.0.len() > 8_000 && !one.1.is_empty() && one.3 == 2, "{:?}", (one.0.len(), &one.1, one.3));
        assert!(one.0.iter().any(|(k, _)| k.contains("20260105T070000Z")), "overrides resolved in the feed's zone");
        for threads in [2, 3, 8] {
            assert_eq!(sorted_read(&text, threads), one, "threads {threads}, uidless {uidless}");
        }
    }
    // A broken big feed gives the sequential error.
    let text = big_feed(false);
    let cut = &text[..text.len() - 40];
    let err = |threads| read_feed(&cal("big"), cut.as_bytes(), &ReadOptions::default().threads(threads)).unwrap_err();
    assert_eq!(err(2).to_string(), err(1).to_string());
}

#[test]
fn an_event_holding_a_nul_byte_is_malformed_and_the_rest_is_read() {
    // A NUL is no valid iCalendar content, and the one character Postgres text cannot store:
    // the event is a problem (the snapshot incomplete), never a failed write of the whole feed.
    let c = cal("nul");
    let text = feed(&[("a", "A"), ("b", "B\0ad"), ("c", "C")], "20260101T000000Z");
    let read = read_feed(&c, text.as_bytes(), &ReadOptions::default()).unwrap();
    let uids: Vec<&str> = read.events.iter().map(|e| e.key().uid.as_str()).collect();
    assert_eq!(uids, ["a", "c"]);
    assert!(!read.is_complete());
    assert!(read.problems.iter().any(|p| p.to_string().contains("malformed")), "{:?}", read.problems);
    // The same inside a folded continuation, and for a lone event.
    let folded = "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260105T090000Z\r\nSUMMARY:ok\r\n \0more\r\nEND:VEVENT\r\n";
    let err = Event::from_ics(&c, folded, &FingerprintPolicy::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
}
