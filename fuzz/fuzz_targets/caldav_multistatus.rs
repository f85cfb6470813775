//! CalDAV multistatus answers (the XML reader, href confinement, calendar data): no panic,
//! nothing accepted outside the collection (see `fuzz/checks.rs`).

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = checks::caldav_multistatus(data);
});
