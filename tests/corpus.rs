//! The real-world corpus: every file in `$CALSCOPE_CORPUS` (the shared `fixtures/realworld`
//! folder) is read and checked against the expectation its README row gives (`parse`,
//! `partial`, `reject`). Without the variable the test says it was skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use calscope::ics::{ReadOptions, read_feed};

use crate::common::cal;

/// (expectation, VEVENT count) per file, from the README's table.
fn expectations(readme: &Path) -> BTreeMap<String, (String, usize)> {
    let text = std::fs::read_to_string(readme).unwrap();
    let mut map = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let file = line.split('`').nth(1).unwrap().to_owned();
        let expect = line.split("**").nth(1).map(str::to_owned);
        let count = line.trim_end_matches('|').rsplit('|').next().and_then(|c| c.trim().parse().ok());
        if let (Some(expect), Some(count)) = (expect, count) {
            map.insert(file, (expect, count));
        }
    }
    map
}

#[test]
fn real_world_corpus_meets_its_expectations() {
    let Some(dir) = std::env::var_os("CALSCOPE_CORPUS").map(PathBuf::from) else {
        eprintln!("skipped: set CALSCOPE_CORPUS to the fixtures/realworld folder to run the corpus test");
        return;
    };
    let expected = expectations(&dir.join("../README.md"));
    assert!(expected.len() >= 70, "README rows not found: {}", expected.len());
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "ics"))
        .collect();
    files.sort();
    assert_eq!(files.len(), expected.len(), "every file has a README row");
    let mut failures = Vec::new();
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        let result = read_feed(&cal("corpus"), &bytes, &ReadOptions::default());
        let got = match &result {
            Err(_) => "reject",
            Ok(r) if r.is_complete() => "parse",
            Ok(_) => "partial",
        };
        if let Ok(r) = &result {
            for e in &r.events {
                let _ = e.details(); // never panics
            }
        }
        let (want, vevents) = expected.get(&name).map_or(("?", 0), |(w, n)| (w.as_str(), *n));
        // A file that parses cleanly yields every VEVENT it holds (duplicates included).
        if let (Ok(r), "parse") = (&result, want) {
            if r.events.len() != vevents {
                failures.push(format!("{name}: {vevents} VEVENTs, read {}", r.events.len()));
            }
        }
        if got != want {
            let detail = match &result {
                Err(e) => e.to_string(),
                Ok(r) => format!("{:?}", r.problems.iter().map(ToString::to_string).collect::<Vec<_>>()),
            };
            failures.push(format!("{name}: expected {want}, got {got}: {detail}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} files differ:\n{}", failures.len(), files.len(), failures.join("\n"));
}
