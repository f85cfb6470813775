//! Every fuzz target's seeds (`fuzz/seeds/TARGET/`) replayed as ordinary tests, on the stable
//! compiler: the checks the fuzzers assert (`fuzz/checks.rs`) hold for each seed, and a crash
//! the fuzzers found, once added as a seed, stays fixed.

#![cfg(all(feature = "google", feature = "graph", feature = "caldav"))]

use std::path::Path;

#[path = "../fuzz/checks.rs"]
mod checks;

fn replay(target: &str, check: fn(&[u8]) -> bool) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut seeds: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    seeds.sort();
    assert!(seeds.len() >= 5, "{} seeds in {}", seeds.len(), dir.display());
    let mut mapped = 0;
    for seed in &seeds {
        let data = std::fs::read(seed).unwrap();
        let run = std::panic::catch_unwind(|| check(&data));
        assert!(run.is_ok(), "{} fails its check", seed.display());
        mapped += usize::from(run.unwrap_or(false));
    }
    // The seeds reach the checks: most of them are events (the rest removals and partial rows).
    assert!(mapped * 3 >= seeds.len() * 2, "only {mapped} of {} seeds mapped to an event", seeds.len());
}

#[test]
fn google_event_seeds_hold() {
    replay("google_event", checks::google_event);
}

#[test]
fn graph_event_seeds_hold() {
    replay("graph_event", checks::graph_event);
}

#[test]
fn caldav_multistatus_seeds_hold() {
    replay("caldav_multistatus", checks::caldav_multistatus);
}

#[test]
fn hostile_hrefs_are_refused_and_members_kept() {
    let body =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/caldav_multistatus/hostile_hrefs.xml"))
            .unwrap();
    let members = calscope::__fuzz::fuzz_multistatus("https://dav.example.com/cal/ann/work/", &body).unwrap();
    let accepted: Vec<&str> = members.iter().filter_map(|(_, url, _)| url.as_deref()).collect();
    assert_eq!(accepted, ["https://dav.example.com/cal/ann/work/ok.ics"]);
    let multiget =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/caldav_multistatus/multiget.xml"))
            .unwrap();
    let members = calscope::__fuzz::fuzz_multistatus("https://dav.example.com/cal/ann/work/", &multiget).unwrap();
    assert_eq!(members[0].2, 1, "the calendar data holds one event: {members:?}");
}

#[test]
fn busy_merge_seeds_hold() {
    replay("busy_merge", checks::busy_merge);
}

#[test]
fn expand_seeds_hold() {
    replay("expand", checks::expand);
}
