//! The `sync` example end to end: the binary `cargo test` builds, real .ics files, a real SQLite
//! file. Writes are counted by the database itself (triggers logging every row written to
//! `events`), not by calscope's report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use calscope::sqlite::rusqlite::Connection;

/// The example binary next to this test binary (`target/<profile>/examples/sync`).
pub(crate) fn sync_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap();
    let bin = profile_dir.join("examples").join(format!("sync{}", std::env::consts::EXE_SUFFIX));
    assert!(bin.exists(), "{} is missing: `cargo test` builds the examples", bin.display());
    bin
}

struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("calscope-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A feed of (uid, summary) events, every DTSTAMP set from `stamp` (a regenerated export).
fn feed(events: &[(String, String)], stamp: u32) -> String {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//e2e//EN\r\n");
    for (uid, summary) in events {
        let _ = write!(
            out,
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261130T{:06}Z\r\nDTSTART;VALUE=DATE:20260314\r\nRRULE:FREQ=YEARLY\r\nSUMMARY:{summary}\r\nTRANSP:TRANSPARENT\r\nEND:VEVENT\r\n",
            stamp % 235_959
        );
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

fn run(db: &Path, extra: &[&str], calendars: &[(String, PathBuf)]) -> Output {
    let mut cmd = Command::new(sync_bin());
    cmd.arg("--db").arg(db).args(extra);
    for (id, path) in calendars {
        cmd.arg(format!("{id}={}", path.display()));
    }
    cmd.output().unwrap()
}

/// Logs every row written to `events` into `writes`, from inside the database.
fn count_writes(db: &Path) {
    let conn = Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE writes (op TEXT, calendar_id TEXT, uid TEXT);
         CREATE TRIGGER log_insert AFTER INSERT ON events BEGIN INSERT INTO writes VALUES ('insert', NEW.calendar_id, NEW.uid); END;
         CREATE TRIGGER log_update AFTER UPDATE ON events BEGIN INSERT INTO writes VALUES ('update', NEW.calendar_id, NEW.uid); END;
         CREATE TRIGGER log_delete AFTER DELETE ON events BEGIN INSERT INTO writes VALUES ('delete', OLD.calendar_id, OLD.uid); END;",
    )
    .unwrap();
}

/// The rows written since the last call (and forgets them).
fn take_writes(db: &Path) -> Vec<(String, String, String)> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn.prepare("SELECT op, calendar_id, uid FROM writes ORDER BY rowid").unwrap();
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect();
    conn.execute("DELETE FROM writes", []).unwrap();
    rows
}

fn rows_of(db: &Path, calendar: &str) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM events WHERE calendar_id = ?1", [calendar], |r| r.get(0)).unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    // Exactly one JSON object on stdout.
    let value: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(value.is_object());
    value
}

#[test]
fn birthday_calendars_sharing_uids_rewrite_nothing_and_one_change_writes_one_row() {
    let dir = Dir::new("birthdays");
    let db = dir.file("sync.db");
    let n = 200;
    // Every calendar holds the same 30 generated birthday events (same UIDs), plus two own.
    let birthdays: Vec<(String, String)> =
        (0..30).map(|i| (format!("birthday-{i}@contacts.google.com"), format!("Birthday {i}"))).collect();
    let calendars: Vec<(String, PathBuf)> =
        (0..n).map(|c| (format!("user-{c}"), dir.file(&format!("{c}.ics")))).collect();
    let write_feeds = |stamp: u32, changed: Option<usize>| {
        for (c, (_, path)) in calendars.iter().enumerate() {
            let mut events = birthdays.clone();
            if changed == Some(c) {
                events[7].1 = "Birthday 7 (moved)".to_owned();
            }
            events.push((format!("own-{c}-a"), "Dentist".to_owned()));
            events.push((format!("own-{c}-b"), "Gym".to_owned()));
            std::fs::write(path, feed(&events, stamp)).unwrap();
        }
    };

    write_feeds(1, None);
    let first = run(&db, &["--json"], &calendars);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let report = json(&first);
    let inserted: u64 = report["calendars"].as_array().unwrap().iter().map(|c| c["inserted"].as_u64().unwrap()).sum();
    assert_eq!(inserted, 200 * 32);
    assert_eq!(rows_of(&db, "user-0"), 32);
    count_writes(&db);

    // Every DTSTAMP regenerated: the database sees zero row writes.
    write_feeds(2, None);
    let resync = run(&db, &[], &calendars);
    assert!(resync.status.success());
    assert_eq!(take_writes(&db), vec![]);

    // One birthday edited in one calendar: one row written, in that calendar.
    write_feeds(3, Some(117));
    let one = run(&db, &["--json"], &calendars);
    assert!(one.status.success());
    assert_eq!(
        take_writes(&db),
        vec![("update".to_owned(), "user-117".to_owned(), "birthday-7@contacts.google.com".to_owned())]
    );
    let conn = Connection::open(&db).unwrap();
    let summary: String = conn
        .query_row(
            "SELECT summary FROM events WHERE calendar_id = 'user-118' AND uid = 'birthday-7@contacts.google.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(summary, "Birthday 7", "the same UID in another calendar is untouched");
}

#[test]
fn a_truncated_feed_deletes_nothing_and_exits_1_while_other_calendars_commit() {
    let dir = Dir::new("truncated");
    let db = dir.file("sync.db");
    let events = |tag: &str| (0..20).map(|i| (format!("e{i}"), format!("{tag} {i}"))).collect::<Vec<_>>();
    let calendars = vec![("good".to_owned(), dir.file("good.ics")), ("cut".to_owned(), dir.file("cut.ics"))];
    std::fs::write(&calendars[0].1, feed(&events("v1"), 1)).unwrap();
    std::fs::write(&calendars[1].1, feed(&events("v1"), 1)).unwrap();
    assert!(run(&db, &[], &calendars).status.success());
    count_writes(&db);

    let mut edited = events("v1");
    edited[3].1 = "v2 3".to_owned();
    std::fs::write(&calendars[0].1, feed(&edited, 2)).unwrap();
    let full = feed(&events("v1"), 2);
    std::fs::write(&calendars[1].1, &full[..full.len() / 2]).unwrap();
    let out = run(&db, &["--json"], &calendars);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["calendars"][0]["status"], "ok");
    assert_eq!(report["calendars"][1]["status"], "error");
    assert!(report["calendars"][1]["error"].as_str().unwrap().contains("truncated"), "{report}");
    assert_eq!(take_writes(&db), vec![("update".to_owned(), "good".to_owned(), "e3".to_owned())]);
    assert_eq!(rows_of(&db, "cut"), 20);
}

#[test]
fn an_empty_feed_deletes_nothing_without_allow_empty() {
    let dir = Dir::new("empty");
    let db = dir.file("sync.db");
    let path = dir.file("cal.ics");
    let calendars = vec![("cal".to_owned(), path.clone())];
    let events: Vec<(String, String)> = (0..5).map(|i| (format!("e{i}"), "x".to_owned())).collect();
    std::fs::write(&path, feed(&events, 1)).unwrap();
    assert!(run(&db, &[], &calendars).status.success());
    count_writes(&db);

    std::fs::write(&path, feed(&[], 2)).unwrap();
    let blocked = run(&db, &["--json"], &calendars);
    assert_eq!(blocked.status.code(), Some(1));
    assert_eq!(json(&blocked)["calendars"][0]["status"], "error");
    assert_eq!(take_writes(&db), vec![]);
    assert_eq!(rows_of(&db, "cal"), 5);

    let allowed = run(&db, &["--allow-empty"], &calendars);
    assert!(allowed.status.success());
    assert_eq!(take_writes(&db).len(), 5);
    assert_eq!(rows_of(&db, "cal"), 0);
}

#[test]
fn usage_errors_exit_2_with_one_clear_line_and_no_json() {
    let dir = Dir::new("usage");
    let db = dir.file("sync.db");
    for args in [
        vec!["--json".to_owned()],
        vec!["--db".to_owned(), db.display().to_string(), "--json".to_owned(), "no-equals-sign".to_owned()],
        vec!["--db".to_owned(), db.display().to_string(), "x=ftp://example.com/cal.ics".to_owned()],
        vec!["--db".to_owned(), db.display().to_string(), "=cal.ics".to_owned()],
        vec!["--db".to_owned(), db.display().to_string(), "--frobnicate".to_owned(), "a=b.ics".to_owned()],
    ] {
        let out = Command::new(sync_bin()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.starts_with("sync: "), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // A missing file is a failed calendar (exit 1), reported in one line, not a crash.
    let out = run(&db, &[], &[("gone".to_owned(), dir.file("missing.ics"))]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("error   gone: cannot read")), "{text}");
}
