//! The `busy` example end to end: `sync` writes a real SQLite file from an .ics file, `busy`
//! answers from it, and its command-line contract (flags, the JSON shape, exit codes) holds.

use std::path::PathBuf;
use std::process::Command;

use crate::sync_example::sync_bin;

fn busy_bin() -> PathBuf {
    let bin = sync_bin().with_file_name(format!("busy{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: `cargo test` builds the examples", bin.display());
    bin
}

const FEED: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\n\
BEGIN:VEVENT\r\nUID:standup\r\nDTSTART;TZID=Europe/Berlin:20261201T093000\r\nDURATION:PT15M\r\nRRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:standup\r\nRECURRENCE-ID:20261202T083000Z\r\nDTSTART:20261202T083500Z\r\nDURATION:PT30M\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:lunch\r\nDTSTART:20261202T120000\r\nDURATION:PT1H\r\nEND:VEVENT\r\n\
BEGIN:VEVENT\r\nUID:gone\r\nDTSTART:20261203T100000Z\r\nDURATION:PT1H\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

const OTHER: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\n\
BEGIN:VEVENT\r\nUID:standup\r\nDTSTART:20261201T084000Z\r\nDURATION:PT1H\r\nEND:VEVENT\r\n\
END:VCALENDAR\r\n";

#[test]
fn busy_answers_the_documented_json_and_exit_codes() {
    let dir = std::env::temp_dir().join(format!("calscope-busy-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (db, work, home) = (dir.join("cal.db"), dir.join("work.ics"), dir.join("home.ics"));
    std::fs::write(&work, FEED).unwrap();
    std::fs::write(&home, OTHER).unwrap();
    let out = Command::new(sync_bin())
        .arg("--db")
        .arg(&db)
        .arg(format!("work={}", work.display()))
        .arg(format!("home={}", home.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let run = |args: &[&str]| Command::new(busy_bin()).arg("--db").arg(&db).args(args).output().unwrap();
    let out =
        run(&["--from", "2026-12-01T00:00:00Z", "--to", "2026-12-03T12:00:00Z", "--json", "work", "home", "nobody"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim_end(),
        concat!(
            r#"{"from":"2026-12-01T00:00:00Z","to":"2026-12-03T12:00:00Z","calendars":{"#,
            r#""work":[["2026-12-01T08:30:00Z","2026-12-01T08:45:00Z"],["2026-12-02T08:35:00Z","2026-12-02T09:05:00Z"],["2026-12-02T12:00:00Z","2026-12-02T13:00:00Z"],["2026-12-03T08:30:00Z","2026-12-03T08:45:00Z"]],"#,
            r#""home":[["2026-12-01T08:40:00Z","2026-12-01T09:40:00Z"]],"nobody":[]},"#,
            r#""merged":[["2026-12-01T08:30:00Z","2026-12-01T09:40:00Z"],["2026-12-02T08:35:00Z","2026-12-02T09:05:00Z"],["2026-12-02T12:00:00Z","2026-12-02T13:00:00Z"],["2026-12-03T08:30:00Z","2026-12-03T08:45:00Z"]]}"#
        )
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown calendar nobody"));

    // Floating times in the asked zone (answered by expanding the events), and a table.
    let out = run(&["--from", "2026-12-02T00:00:00Z", "--to", "2026-12-02T23:00:00Z", "--tz", "Asia/Tokyo", "work"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("2026-12-02T03:00:00Z  2026-12-02T04:00:00Z"), "{table}");

    // Usage errors: exit 2.
    for bad in [
        &["--from", "2026-12-01", "--to", "2026-12-03T00:00:00Z", "work"][..],
        &["--from", "2026-12-03T00:00:00Z", "--to", "2026-12-01T00:00:00Z", "work"],
        &["--from", "2026-12-01T00:00:00Z", "--to", "2026-12-03T00:00:00Z", "--tz", "Mars/Base", "work"],
        &["--from", "2026-12-01T00:00:00Z", "--to", "2026-12-03T00:00:00Z"],
        &["--from", "2026-12-01T00:00:00Z", "--to", "2026-12-03T00:00:00Z", "--frobnicate", "work"],
    ] {
        assert_eq!(run(bad).status.code(), Some(2), "{bad:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
