//! Scanner + parser over arbitrary bytes: `read_feed` must never panic or hang, and every event
//! it returns must parse its details and re-read as a component.
#![no_main]

use calscope::ics::{ReadOptions, read_feed};
use calscope::{CalendarId, Event, FingerprintPolicy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(calendar) = CalendarId::new("fuzz") else { return };
    if let Ok(read) = read_feed(&calendar, data, &ReadOptions::default()) {
        for event in &read.events {
            let _ = event.details();
            // The text of every event read from a feed is itself a readable component with the
            // same fingerprint.
            if let Ok(again) = Event::from_ics(&calendar, event.raw(), &FingerprintPolicy::default()) {
                assert_eq!(again.fingerprint(), event.fingerprint());
                // The same bytes have the same source hash (the planner's fast path).
                assert_eq!(again.source_hash(), event.source_hash());
            }
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(event) = Event::from_ics(&calendar, text, &FingerprintPolicy::default()) {
            let _ = event.details();
        }
    }
});
