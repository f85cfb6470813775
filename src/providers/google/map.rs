//! Google events to calscope events: each event resource is rendered as a VEVENT and read by
//! [`Event::from_ics`], so the `events` columns, [`EventDetails`](crate::EventDetails) and
//! everything built on events work as for any other source.
//!
//! What is rendered is what scheduling needs and a user edits; what Google changes without a
//! visible edit is left out, so it never moves a fingerprint (DESIGN.md, "Which Google fields
//! move a fingerprint?"): `etag`, `htmlLink`, `reminders`, `colorId`, the `self` flags,
//! `conferenceData` and `hangoutLink`, `attendeesOmitted`, `extendedProperties`, `creator`.
//! `updated`, `created` and `sequence` are rendered as LAST-MODIFIED, CREATED and SEQUENCE
//! (and `updated` as DTSTAMP), which the default fingerprint policy ignores.

use chrono::{DateTime, NaiveDate, Utc};

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::fingerprint::FingerprintPolicy;
use crate::id::{CalendarId, Etag, Href};
use crate::value::tz;

use crate::providers::vevent::{Lines, address, param, text, utc_basic};

use super::wire::{EventDateTime, GoogleEvent};

/// What one event resource means for the calendar.
#[derive(Debug)]
pub(crate) enum Mapped {
    /// An event to store: a single event, a series master, or an exception (live, or a
    /// cancelled instance of a live series, stored with `STATUS:CANCELLED`).
    Event(Box<Event>),
    /// A deleted event: every stored event of this href (and, for a master, its series) goes.
    Removed(Href),
    /// A cancelled exception that names its series but not its UID: the UID is the series'.
    CancelledInstance {
        /// The series' event id (`recurringEventId`).
        series: String,
    },
}

/// Maps one event resource of `calendar`. `series_uid` is the UID of the event's series, when
/// the caller knows it (for a cancelled exception that carries none).
///
/// # Errors
/// [`ErrorKind::Parse`] for an event calscope cannot render: no `id`, no `iCalUID` on a live
/// event, an unreadable start, a recurrence line that is not one.
pub(crate) fn map_event(
    calendar: &CalendarId,
    event: &GoogleEvent,
    series_uid: Option<&str>,
    policy: &FingerprintPolicy,
) -> Result<Mapped> {
    let id = event.id.as_deref().filter(|id| !id.is_empty()).ok_or_else(|| bad("an event without an id"))?;
    let href = Href::new(id)?;
    let cancelled = event.status.as_deref() == Some("cancelled");
    let exception = event.recurring_event_id.as_deref().zip(event.original_start_time.as_ref());
    let uid = event.ical_uid.as_deref().filter(|u| !u.is_empty()).or(series_uid);
    let text = match (cancelled, exception, uid) {
        (true, None, _) => return Ok(Mapped::Removed(href)),
        (true, Some((series, _)), None) => return Ok(Mapped::CancelledInstance { series: series.to_owned() }),
        (true, Some((_, original)), Some(uid)) => cancelled_instance(uid, original)?,
        (false, _, None) => return Err(bad(format!("event {id} has no iCalUID"))),
        (false, exception, Some(uid)) => vevent(event, uid, exception.map(|(_, original)| original))?,
    };
    let etag = None::<Etag>;
    let parsed = Event::from_ics(calendar, &text, policy)
        .map_err(|e| Error::new(ErrorKind::Parse, format!("event {id}: {}", e.message())))?;
    Ok(Mapped::Event(Box::new(parsed.with_href(Some(href), etag))))
}

fn bad(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Parse, what)
}

/// The VEVENT of a cancelled instance of a live series: its key, start and status only (so
/// the row stays the same whatever else Google sends along with it).
fn cancelled_instance(uid: &str, original: &EventDateTime) -> Result<String> {
    let mut out = Lines::default();
    out.push("BEGIN:VEVENT");
    out.property("UID", "", &text(uid));
    out.push(&recurrence_id(original)?);
    out.push(&date_time("DTSTART", original)?.ok_or_else(|| bad("a cancelled instance without a start"))?);
    out.push("STATUS:CANCELLED");
    out.push("END:VEVENT");
    Ok(out.finish())
}

/// The VEVENT of a live event.
fn vevent(event: &GoogleEvent, uid: &str, original: Option<&EventDateTime>) -> Result<String> {
    let mut out = Lines::default();
    out.push("BEGIN:VEVENT");
    out.property("UID", "", &text(uid));
    if let Some(original) = original {
        out.push(&recurrence_id(original)?);
    }
    // Volatile by the default policy: they never move a fingerprint.
    let stamp = event.updated.as_deref().and_then(utc_basic).unwrap_or_else(|| "19700101T000000Z".to_owned());
    out.push(&format!("DTSTAMP:{stamp}"));
    if let Some(created) = event.created.as_deref().and_then(utc_basic) {
        out.push(&format!("CREATED:{created}"));
    }
    if let Some(updated) = event.updated.as_deref().and_then(utc_basic) {
        out.push(&format!("LAST-MODIFIED:{updated}"));
    }
    let start = event.start.as_ref().ok_or_else(|| bad("an event without a start"))?;
    out.push(&date_time("DTSTART", start)?.ok_or_else(|| bad("an event without a start"))?);
    if !event.end_time_unspecified {
        if let Some(end) = event.end.as_ref().map(|e| date_time("DTEND", e)).transpose()?.flatten() {
            out.push(&end);
        }
    }
    if original.is_none() {
        for line in &event.recurrence {
            out.push(&recurrence_line(line)?);
        }
    }
    for (name, value) in
        [("SUMMARY", &event.summary), ("DESCRIPTION", &event.description), ("LOCATION", &event.location)]
    {
        if let Some(value) = value.as_deref() {
            out.property(name, "", &text(value));
        }
    }
    match event.status.as_deref() {
        Some("confirmed") => out.push("STATUS:CONFIRMED"),
        Some("tentative") => out.push("STATUS:TENTATIVE"),
        _ => {}
    }
    match event.transparency.as_deref() {
        Some("transparent") => out.push("TRANSP:TRANSPARENT"),
        Some("opaque") => out.push("TRANSP:OPAQUE"),
        _ => {}
    }
    match event.visibility.as_deref() {
        Some("private") => out.push("CLASS:PRIVATE"),
        Some("confidential") => out.push("CLASS:CONFIDENTIAL"),
        Some("public") => out.push("CLASS:PUBLIC"),
        _ => {}
    }
    if let Some(organizer) = &event.organizer {
        if let Some(email) = organizer.email.as_deref() {
            let params = organizer.display_name.as_deref().map(|n| format!(";CN={}", param(n))).unwrap_or_default();
            out.property("ORGANIZER", &params, &format!("mailto:{}", address(email)));
        }
    }
    for attendee in &event.attendees {
        let Some(email) = attendee.email.as_deref() else { continue };
        let mut params = String::new();
        if let Some(name) = attendee.display_name.as_deref() {
            params.push_str(";CN=");
            params.push_str(&param(name));
        }
        if attendee.resource {
            params.push_str(";CUTYPE=RESOURCE");
        }
        params.push_str(if attendee.optional { ";ROLE=OPT-PARTICIPANT" } else { ";ROLE=REQ-PARTICIPANT" });
        let partstat = match attendee.response_status.as_deref() {
            Some("accepted") => "ACCEPTED",
            Some("declined") => "DECLINED",
            Some("tentative") => "TENTATIVE",
            _ => "NEEDS-ACTION",
        };
        params.push_str(";PARTSTAT=");
        params.push_str(partstat);
        out.property("ATTENDEE", &params, &format!("mailto:{}", address(email)));
    }
    if let Some(sequence) = event.sequence {
        out.push(&format!("SEQUENCE:{sequence}"));
    }
    if let Some(kind) = event.event_type.as_deref() {
        out.property("X-GOOGLE-EVENT-TYPE", "", &text(kind));
    }
    out.push("END:VEVENT");
    Ok(out.finish())
}

fn date_basic(value: &str) -> Option<String> {
    let date = NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").ok()?;
    Some(date.format("%Y%m%d").to_string())
}

/// `NAME;VALUE=DATE:…`, `NAME;TZID=…:…` (the local time in the event's zone) or `NAME:…Z`;
/// `None` when the value has neither a date nor a date-time.
fn date_time(name: &str, value: &EventDateTime) -> Result<Option<String>> {
    if let Some(date) = value.date.as_deref() {
        let basic = date_basic(date).ok_or_else(|| bad(format!("unreadable {name} date {date:?}")))?;
        return Ok(Some(format!("{name};VALUE=DATE:{basic}")));
    }
    let Some(at) = value.date_time.as_deref() else { return Ok(None) };
    let instant = DateTime::parse_from_rfc3339(at.trim())
        .map_err(|_| bad(format!("unreadable {name} date-time {at:?}")))?
        .with_timezone(&Utc);
    // In the event's own zone when it names one calscope knows (IANA): the row then keeps the
    // zone, and recurrences expand in it. Otherwise in UTC.
    if let Some(zone) =
        value.time_zone.as_deref().filter(|z| !z.contains(['"', ';', ':']) && !z.chars().any(char::is_control))
    {
        if let Some(resolved) = tz::resolve(zone) {
            let local = instant.with_timezone(&resolved).naive_local();
            return Ok(Some(format!("{name};TZID={zone}:{}", local.format("%Y%m%dT%H%M%S"))));
        }
    }
    Ok(Some(format!("{name}:{}", instant.format("%Y%m%dT%H%M%SZ"))))
}

/// The RECURRENCE-ID of an exception: `originalStartTime` as a DATE for all-day series, the
/// UTC instant otherwise (what the ICS reader normalizes the same override to).
fn recurrence_id(original: &EventDateTime) -> Result<String> {
    if let Some(date) = original.date.as_deref() {
        let basic = date_basic(date).ok_or_else(|| bad(format!("unreadable originalStartTime {date:?}")))?;
        return Ok(format!("RECURRENCE-ID;VALUE=DATE:{basic}"));
    }
    let at = original.date_time.as_deref().ok_or_else(|| bad("an exception without an original start"))?;
    let basic = utc_basic(at).ok_or_else(|| bad(format!("unreadable originalStartTime {at:?}")))?;
    Ok(format!("RECURRENCE-ID:{basic}"))
}

/// One `recurrence` line, verbatim: RRULE, EXRULE, RDATE or EXDATE, on one line.
fn recurrence_line(line: &str) -> Result<String> {
    let name_end = line.find([':', ';']).unwrap_or(line.len());
    let name = line.get(..name_end).unwrap_or_default();
    let known = ["RRULE", "EXRULE", "RDATE", "EXDATE"].iter().any(|n| name.eq_ignore_ascii_case(n));
    if !known || name_end == line.len() || line.chars().any(char::is_control) {
        let shown: String = line.chars().filter(|c| !c.is_control()).take(80).collect();
        return Err(bad(format!("not a recurrence line: {shown:?}")));
    }
    Ok(line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> GoogleEvent {
        serde_json::from_str(json).unwrap()
    }

    fn event_of(json: &str) -> Event {
        match map_event(&CalendarId::new("c").unwrap(), &parse(json), None, &FingerprintPolicy::default()).unwrap() {
            Mapped::Event(e) => *e,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn injected_lines_never_become_properties() {
        let e = event_of(
            r#"{"id":"x","iCalUID":"u@x","start":{"dateTime":"2026-12-01T09:00:00Z"},"summary":"a\r\nEND:VEVENT\r\nBEGIN:VEVENT","location":"l","organizer":{"email":"o@x\r\nATTENDEE:mailto:evil@x","displayName":"O\"; X"}}"#,
        );
        let raw = e.raw();
        let lines: Vec<&str> = raw.split("\r\n").collect();
        assert_eq!(lines.iter().filter(|l| **l == "BEGIN:VEVENT" || **l == "END:VEVENT").count(), 2, "{raw}");
        assert!(!lines.iter().any(|l| l.starts_with("ATTENDEE")), "{raw}");
        assert_eq!(e.details().summary.as_deref(), Some("a\nEND:VEVENT\nBEGIN:VEVENT"));
        let bad_rule = parse(
            r#"{"id":"x","iCalUID":"u","start":{"dateTime":"2026-12-01T09:00:00Z"},"recurrence":["RRULE:FREQ=DAILY\r\nSUMMARY:x"]}"#,
        );
        assert!(map_event(&CalendarId::new("c").unwrap(), &bad_rule, None, &FingerprintPolicy::default()).is_err());
        let not_rule = parse(r#"{"id":"x","iCalUID":"u","start":{"date":"2026-12-01"},"recurrence":["SUMMARY:x"]}"#);
        assert!(map_event(&CalendarId::new("c").unwrap(), &not_rule, None, &FingerprintPolicy::default()).is_err());
    }

    #[test]
    fn zones_dates_and_recurrence_ids() {
        let e = event_of(
            r#"{"id":"m_20261208T080000Z","iCalUID":"s@google.com","recurringEventId":"m","originalStartTime":{"dateTime":"2026-12-08T09:00:00+01:00","timeZone":"Europe/Berlin"},"start":{"dateTime":"2026-12-08T10:00:00+01:00","timeZone":"Europe/Berlin"},"end":{"dateTime":"2026-12-08T11:00:00+01:00","timeZone":"Europe/Berlin"}}"#,
        );
        assert!(e.raw().contains("RECURRENCE-ID:20261208T080000Z\r\n"), "{}", e.raw());
        assert!(e.raw().contains("DTSTART;TZID=Europe/Berlin:20261208T100000\r\n"), "{}", e.raw());
        assert_eq!(e.key().recurrence_id.as_ref().map(ToString::to_string).as_deref(), Some("20261208T080000Z"));
        let all_day = event_of(
            r#"{"id":"h","iCalUID":"h@google.com","recurringEventId":"hm","originalStartTime":{"date":"2026-12-25"},"start":{"date":"2026-12-26"},"end":{"date":"2026-12-27"}}"#,
        );
        assert!(all_day.raw().contains("RECURRENCE-ID;VALUE=DATE:20261225\r\nDTSTAMP"), "{}", all_day.raw());
        assert!(all_day.raw().contains("DTEND;VALUE=DATE:20261227\r\n"));
    }

    #[test]
    fn cancelled_items_remove_or_cancel_one_instance() {
        let cal = CalendarId::new("c").unwrap();
        let policy = FingerprintPolicy::default();
        let removed = parse(r#"{"id":"gone","status":"cancelled"}"#);
        assert!(
            matches!(map_event(&cal, &removed, None, &policy).unwrap(), Mapped::Removed(h) if h.as_str() == "gone")
        );
        let instance = parse(
            r#"{"id":"m_1","status":"cancelled","recurringEventId":"m","originalStartTime":{"dateTime":"2026-12-08T08:00:00Z"}}"#,
        );
        assert!(
            matches!(map_event(&cal, &instance, None, &policy).unwrap(), Mapped::CancelledInstance { series } if series == "m")
        );
        let Mapped::Event(e) = map_event(&cal, &instance, Some("s@google.com"), &policy).unwrap() else { panic!() };
        assert_eq!(
            e.raw(),
            "BEGIN:VEVENT\r\nUID:s@google.com\r\nRECURRENCE-ID:20261208T080000Z\r\nDTSTART:20261208T080000Z\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n"
        );
        assert_eq!(e.href().map(Href::as_str), Some("m_1"));
        let no_uid = parse(r#"{"id":"x","start":{"date":"2026-12-01"}}"#);
        assert_eq!(map_event(&cal, &no_uid, None, &policy).unwrap_err().kind(), ErrorKind::Parse);
    }
}
