//! Microsoft Graph event JSON → calscope event: no panic, one well-formed VEVENT, a stable
//! fingerprint (see `fuzz/checks.rs`).

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = checks::graph_event(data);
});
