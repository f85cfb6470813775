//! What the JSON fuzz targets assert, shared with the seed replay in `tests/fuzz_seeds.rs`
//! (which runs every seed as an ordinary test, on a stable compiler, in CI).

use calscope::busy::{BusyInterval, merge, spans};
use calscope::{Busy, CalendarId, Event, Expander, FingerprintPolicy, GoogleSource, GraphSource, Result, Zone};

/// A provider's mapping of one JSON event to the event calscope stores.
type Map = fn(&CalendarId, &str, &FingerprintPolicy) -> Result<Option<Event>>;

/// Google event JSON → event; whether it mapped to one.
pub(crate) fn google_event(data: &[u8]) -> bool {
    check(data, GoogleSource::event_from_json)
}

/// Graph event JSON → event; whether it mapped to one.
pub(crate) fn graph_event(data: &[u8]) -> bool {
    check(data, GraphSource::event_from_json)
}

/// The collection the CalDAV target's answers are for.
const COLLECTION: &str = "https://dav.example.com/cal/ann/work/";

/// A CalDAV multistatus answer: no panic; every href calscope accepts names a member of the
/// collection (same origin, under its path, no dot segments, not the collection itself), and
/// parsing is a function of the bytes. Whether the answer parsed.
pub(crate) fn caldav_multistatus(data: &[u8]) -> bool {
    let Some(members) = calscope::__fuzz::fuzz_multistatus(COLLECTION, data) else { return false };
    for (href, url, _) in &members {
        let Some(url) = url else { continue };
        assert!(url.starts_with(COLLECTION) && url.len() > COLLECTION.len(), "{href:?} accepted as {url}");
        let path = url.trim_start_matches("https://dav.example.com");
        assert!(!path.split('/').any(|s| s == ".." || s == "."), "{href:?} accepted as {url}");
        assert!(!url.contains(['?', '#', '\\']), "{href:?} accepted as {url}");
    }
    assert_eq!(
        calscope::__fuzz::fuzz_multistatus(COLLECTION, data),
        Some(members),
        "parsing is a function of the bytes"
    );
    true
}

/// Whatever the bytes: no panic; an event that maps is one well-formed VEVENT (nothing in the
/// JSON ended a line or began a component), maps again to the same fingerprint, and re-reads
/// from its own text with the same key and fingerprint.
fn check(data: &[u8], map: Map) -> bool {
    let Ok(json) = std::str::from_utf8(data) else { return false };
    let cal = CalendarId::new("fuzz").expect("a valid id");
    let policy = FingerprintPolicy::default();
    let Ok(Some(event)) = map(&cal, json, &policy) else { return false };
    let again = map(&cal, json, &policy).expect("maps again").expect("an event again");
    assert_eq!(again.fingerprint(), event.fingerprint(), "the same JSON, another fingerprint");
    let raw = event.raw();
    let lines: Vec<&str> = raw.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.first(), Some(&"BEGIN:VEVENT"), "{raw}");
    assert_eq!(lines.last(), Some(&"END:VEVENT"), "{raw}");
    let components = lines.iter().filter(|l| l.starts_with("BEGIN:") || l.starts_with("END:")).count();
    assert_eq!(components, 2, "one component: {raw}");
    assert!(!raw.replace("\r\n", "").contains(['\r', '\n']), "a bare line break: {raw}");
    let reread = Event::from_ics(&cal, raw, &policy).expect("its own text reads");
    assert_eq!(reread.key(), event.key());
    assert_eq!(reread.fingerprint(), event.fingerprint());
    true
}

/// Busy intervals from bytes: each 9 bytes are a start and a length in minutes (two 32-bit
/// numbers, so starts reach far around the epoch) and a tentative flag; the window is the first
/// interval's span when it has one.
fn intervals(data: &[u8]) -> (Vec<BusyInterval>, chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let at = |minutes: i64| chrono::DateTime::from_timestamp(minutes * 60, 0).unwrap_or_default();
    let mut out = Vec::new();
    for chunk in data.chunks_exact(9) {
        let start = i64::from(i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) / 64);
        let length = i64::from(i32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) % 10_000);
        out.push(BusyInterval::new(at(start), at(start + length), chunk[8] & 1 == 1));
    }
    let (from, to) = match out.first() {
        Some(w) if w.start < w.end => (w.start, w.end),
        _ => (at(i64::from(i32::MIN / 64)), at(i64::from(i32::MAX / 64) + 10_000)),
    };
    (out, from, to)
}

/// Whatever the intervals: the merge is sorted, disjoint, inside the window, maximal (no two
/// touching intervals of one kind), and covers each instant exactly as the input does (busy
/// where any interval is busy, tentative where only tentative ones are). Whether any busy time
/// remained.
pub(crate) fn busy_merge(data: &[u8]) -> bool {
    let (input, from, to) = intervals(data);
    let merged = merge(input.iter().copied(), from, to);
    for pair in merged.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert!(a.end <= b.start, "not sorted and disjoint: {a:?} {b:?}");
        assert!(a.end < b.start || a.tentative != b.tentative, "not maximal: {a:?} {b:?}");
    }
    let state = |set: &[BusyInterval], t| {
        let covering = set.iter().filter(|i| i.start <= t && t < i.end);
        covering.fold(None, |acc: Option<bool>, i| Some(acc.unwrap_or(true) && i.tentative))
    };
    let clipped: Vec<BusyInterval> = input
        .iter()
        .map(|i| BusyInterval::new(i.start.max(from), i.end.min(to), i.tentative))
        .filter(|i| i.start < i.end)
        .collect();
    for i in &merged {
        assert!(i.start < i.end && i.start >= from && i.end <= to, "outside the window or empty: {i:?}");
    }
    for probe in clipped.iter().chain(&merged).flat_map(|i| [i.start, i.end]) {
        assert_eq!(state(&merged, probe), state(&clipped, probe), "at {probe}: {merged:?} from {clipped:?}");
    }
    let plain = spans(&merged);
    for pair in plain.windows(2) {
        assert!(pair[0].1 < pair[1].0, "spans touch: {plain:?}");
    }
    // A busy query's path: the input dealt to three calendars, each merged, then the merged
    // lists merged by unions; the same answer.
    let mut dealt: [Vec<BusyInterval>; 3] = Default::default();
    for (n, i) in input.iter().enumerate() {
        dealt[n % 3].push(*i);
    }
    let lists: Vec<Vec<BusyInterval>> = dealt.into_iter().map(|d| merge(d, from, to)).collect();
    let refs: Vec<&[BusyInterval]> = lists.iter().map(Vec::as_slice).collect();
    assert_eq!(calscope::__fuzz::merge_lists(&refs, from, to), merged, "merging merged lists differs");
    !merged.is_empty()
}

/// Whatever the feed: each series expands, over 1990–2030 in Berlin, to instances sorted by
/// start, each with start ≤ end, overlapping the window (RFC 4791's test), no more than the cap,
/// and free when zero-length. Whether any instance came out.
pub(crate) fn expand(data: &[u8]) -> bool {
    let cal = CalendarId::new("fuzz").expect("a valid id");
    let Ok(read) = calscope::ics::read_feed(&cal, data, &calscope::ics::ReadOptions::default()) else { return false };
    let from: chrono::DateTime<chrono::Utc> = "1990-01-01T00:00:00Z".parse().expect("a time");
    let to: chrono::DateTime<chrono::Utc> = "2030-01-01T00:00:00Z".parse().expect("a time");
    let zone = Zone::named("Europe/Berlin").expect("a zone");
    let mut any = false;
    for (_, x) in Expander::new(zone).max_instances(500).expand_events(&read.events, from, to) {
        // The cap is per series of generated occurrences; overrides come on top.
        assert!(x.instances.len() <= 500 + read.events.len(), "{} instances", x.instances.len());
        for pair in x.instances.windows(2) {
            assert!(pair[0].start <= pair[1].start, "not sorted: {pair:?}");
        }
        let mut ids: Vec<_> = x.instances.iter().map(|i| i.recurrence_id).collect();
        ids.sort();
        for pair in ids.windows(2) {
            assert_ne!(pair[0], pair[1], "two instances with one recurrence id");
        }
        for i in &x.instances {
            assert!(i.start <= i.end, "ends before it starts: {i:?}");
            let overlaps = if i.end > i.start { i.start < to && i.end > from } else { from <= i.start && i.start < to };
            assert!(overlaps, "outside the window: {i:?}");
            if i.start == i.end {
                assert_eq!(i.busy, Busy::Free, "zero-length but busy: {i:?}");
            }
        }
        any |= !x.instances.is_empty();
    }
    any
}
