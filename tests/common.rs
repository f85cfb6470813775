//! Builders shared by the integration tests. Events are built with the `icalendar` crate, whose
//! serializer stamps a fresh DTSTAMP on every build, as real feeds do.

use std::fmt::Write as _;

use calscope::{CalendarId, Event, EventKey, FingerprintPolicy, RecurrenceId, Uid};
use chrono::{TimeZone as _, Utc};
use icalendar::{Component as _, EventLike as _};

/// A VEVENT under construction.
#[derive(Clone, Debug)]
pub(crate) struct Ev {
    pub(crate) uid: String,
    pub(crate) rid: Option<String>,
    pub(crate) summary: String,
    pub(crate) sequence: Option<u32>,
    pub(crate) stamp: i64,
    pub(crate) href: Option<String>,
}

pub(crate) fn ev(uid: &str, summary: &str) -> Ev {
    Ev { uid: uid.to_owned(), rid: None, summary: summary.to_owned(), sequence: None, stamp: 0, href: None }
}

impl Ev {
    pub(crate) fn rid(mut self, rid: &str) -> Self {
        self.rid = Some(rid.to_owned());
        self
    }
    pub(crate) fn seq(mut self, seq: u32) -> Self {
        self.sequence = Some(seq);
        self
    }
    /// Sets DTSTAMP to this many seconds after 2026-01-01: a regenerated feed.
    pub(crate) fn stamp(mut self, secs: i64) -> Self {
        self.stamp = secs;
        self
    }
    pub(crate) fn href(mut self, href: &str) -> Self {
        self.href = Some(href.to_owned());
        self
    }

    pub(crate) fn ics(&self) -> String {
        let mut e = icalendar::Event::new();
        e.uid(&self.uid)
            .summary(&self.summary)
            .starts(Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap())
            .ends(Utc.with_ymd_and_hms(2026, 1, 5, 10, 0, 0).unwrap())
            .timestamp(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + chrono::Duration::seconds(self.stamp));
        if let Some(rid) = &self.rid {
            e.add_property("RECURRENCE-ID", rid);
        }
        if let Some(seq) = self.sequence {
            e.sequence(seq);
        }
        e.done().to_string()
    }

    pub(crate) fn build(&self, calendar: &str) -> Event {
        let event = Event::from_ics(&cal(calendar), &self.ics(), &FingerprintPolicy::default()).unwrap();
        match &self.href {
            Some(h) => event.with_href(Some(calscope::Href::new(h).unwrap()), None),
            None => event,
        }
    }
}

pub(crate) fn cal(id: &str) -> CalendarId {
    CalendarId::new(id).unwrap()
}

pub(crate) fn key(calendar: &str, uid: &str, rid: Option<&str>) -> EventKey {
    EventKey::new(cal(calendar), Uid::new(uid).unwrap(), rid.map(|r| r.parse::<RecurrenceId>().unwrap()))
}

/// Runs a future to completion on the current thread (the engine needs no runtime).
pub(crate) fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// A VCALENDAR of (UID, SUMMARY) events, every DTSTAMP set to `stamp`.
pub(crate) fn feed(events: &[(&str, &str)], stamp: &str) -> String {
    let mut out = String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n");
    for (uid, summary) in events {
        let _ = write!(
            out,
            "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:{stamp}\r\nDTSTART:20260105T090000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\n"
        );
    }
    out.push_str("END:VCALENDAR\r\n");
    out
}

/// A SQLite file the store created, with triggers logging every row written to `events`:
/// write economy counted by the database itself, not by calscope's report.
#[cfg(feature = "sqlite")]
pub(crate) fn counted_db(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("calscope-counted-{name}-{}.db", std::process::id()));
    remove_db(&path);
    drop(calscope::SqliteStore::open(&path).unwrap());
    calscope::sqlite::rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE writes (op TEXT, calendar_id TEXT, uid TEXT, rid TEXT);
             CREATE TRIGGER log_insert AFTER INSERT ON events BEGIN INSERT INTO writes VALUES ('insert', NEW.calendar_id, NEW.uid, NEW.recurrence_id); END;
             CREATE TRIGGER log_update AFTER UPDATE ON events BEGIN INSERT INTO writes VALUES ('update', NEW.calendar_id, NEW.uid, NEW.recurrence_id); END;
             CREATE TRIGGER log_delete AFTER DELETE ON events BEGIN INSERT INTO writes VALUES ('delete', OLD.calendar_id, OLD.uid, OLD.recurrence_id); END;
             CREATE TABLE instance_writes (op TEXT, calendar_id TEXT, uid TEXT, rid TEXT);
             CREATE TRIGGER log_instance_insert AFTER INSERT ON instances BEGIN INSERT INTO instance_writes VALUES ('insert', NEW.calendar_id, NEW.uid, NEW.recurrence_id); END;
             CREATE TRIGGER log_instance_update AFTER UPDATE ON instances BEGIN INSERT INTO instance_writes VALUES ('update', NEW.calendar_id, NEW.uid, NEW.recurrence_id); END;
             CREATE TRIGGER log_instance_delete AFTER DELETE ON instances BEGIN INSERT INTO instance_writes VALUES ('delete', OLD.calendar_id, OLD.uid, OLD.recurrence_id); END;
             CREATE TABLE month_writes (op TEXT, calendar_id TEXT, month INTEGER);
             CREATE TRIGGER log_month_insert AFTER INSERT ON busy_months BEGIN INSERT INTO month_writes VALUES ('insert', NEW.calendar_id, NEW.month); END;
             CREATE TRIGGER log_month_update AFTER UPDATE ON busy_months BEGIN INSERT INTO month_writes VALUES ('update', NEW.calendar_id, NEW.month); END;
             CREATE TRIGGER log_month_delete AFTER DELETE ON busy_months BEGIN INSERT INTO month_writes VALUES ('delete', OLD.calendar_id, OLD.month); END;",
        )
        .unwrap();
    path
}

/// The rows the triggers logged since the last call, as (op, uid, recurrence id), and forgets
/// them.
#[cfg(feature = "sqlite")]
pub(crate) fn take_writes(store: &calscope::SqliteStore) -> Vec<(String, String, String)> {
    futures::executor::block_on(store.with_connection(|conn| {
        let rows = conn
            .prepare("SELECT op, uid, rid FROM writes ORDER BY rowid")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        conn.execute("DELETE FROM writes", [])?;
        Ok(rows)
    }))
    .unwrap()
}

/// The `instances` rows the triggers logged since the last call, as (op, uid, recurrence id),
/// and forgets them.
#[cfg(feature = "sqlite")]
pub(crate) fn take_instance_writes(store: &calscope::SqliteStore) -> Vec<(String, String, String)> {
    futures::executor::block_on(store.with_connection(|conn| {
        let rows = conn
            .prepare("SELECT op, uid, rid FROM instance_writes ORDER BY rowid")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        conn.execute("DELETE FROM instance_writes", [])?;
        Ok(rows)
    }))
    .unwrap()
}

/// The `busy_months` rows the triggers logged since the last call, as (op, month), and
/// forgets them.
#[cfg(feature = "sqlite")]
pub(crate) fn take_month_writes(store: &calscope::SqliteStore) -> Vec<(String, i64)> {
    futures::executor::block_on(store.with_connection(|conn| {
        let rows = conn
            .prepare("SELECT op, month FROM month_writes ORDER BY rowid")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        conn.execute("DELETE FROM month_writes", [])?;
        Ok(rows)
    }))
    .unwrap()
}

/// Removes a SQLite file and its WAL.
pub(crate) fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}
