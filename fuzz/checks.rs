//! What the JSON fuzz targets assert, shared with the seed replay in `tests/fuzz_seeds.rs`
//! (which runs every seed as an ordinary test, on a stable compiler, in CI).

use calscope::{CalendarId, Event, FingerprintPolicy, GoogleSource, GraphSource, Result};

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
