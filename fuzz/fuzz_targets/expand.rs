//! Recurrence expansion of any feed: read, grouped into series, expanded over a decade; the
//! instances are sorted, inside the window, within the cap, and never hang (see
//! `fuzz/checks.rs`).

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = checks::expand(data);
});
