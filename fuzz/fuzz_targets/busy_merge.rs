//! The busy merge: intervals in any order → sorted, disjoint, maximal, the same coverage (see
//! `fuzz/checks.rs`).

#![no_main]

#[allow(dead_code)] // each target uses one of the checks
#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = checks::busy_merge(data);
});
