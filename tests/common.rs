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
