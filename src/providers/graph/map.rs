//! Graph event rows to calscope events: each instance is rendered as a VEVENT and read by
//! [`Event::from_ics`], as for Google.
//!
//! Rendered: the UID (`iCalUId`, unwrapped from Exchange's `GlobalObjectId` when it wraps a
//! foreign UID), the RECURRENCE-ID of occurrences and exceptions (`originalStart`: the UTC
//! instant, a DATE for all-day events), start and end (DATE for all-day), `subject`, the body
//! as text, `location`, `showAs` (free → TRANSP:TRANSPARENT, tentative → STATUS:TENTATIVE,
//! the value itself as X-MICROSOFT-SHOWAS), `isCancelled` (STATUS:CANCELLED), `sensitivity`
//! (CLASS), the organizer and the attendees with their responses. Volatile by the default
//! policy: `lastModifiedDateTime` (DTSTAMP, LAST-MODIFIED), `createdDateTime`. Left out, because
//! they move daily without an edit or belong to one user's view: `@odata.etag`, `changeKey`,
//! `webLink`, `bodyPreview`, `reminderMinutesBeforeStart`, `isReminderOn`, `responseStatus`.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::fingerprint::FingerprintPolicy;
use crate::id::{CalendarId, Href};
use crate::providers::vevent::{Lines, address, param, text, utc_basic};
use crate::value::tz;

use super::wire::{DateTimeZone, GraphEvent};

/// The class id that starts every Exchange `GlobalObjectId`.
const GLOBAL_OBJECT_ID: &str = "040000008200E00074C5B7101A82E008";

/// The UID inside an Exchange `GlobalObjectId` (hex) that wraps a foreign UID (the `vCal-Uid`
/// payload, as a meeting invited from Google carries it); any other id as it is.
pub(crate) fn unwrap_uid(id: &str) -> String {
    unwrap_global_object_id(id).unwrap_or_else(|| id.to_owned())
}

fn unwrap_global_object_id(id: &str) -> Option<String> {
    if id.len() < 80 || !id.get(..32)?.eq_ignore_ascii_case(GLOBAL_OBJECT_ID) {
        return None;
    }
    let bytes: Vec<u8> = (0..id.len() / 2)
        .map(|i| id.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<_>>()?;
    let size = u32::from_le_bytes(bytes.get(36..40)?.try_into().ok()?) as usize;
    let data = bytes.get(40..40usize.checked_add(size)?)?;
    let payload = data.strip_prefix(b"vCal-Uid\x01\x00\x00\x00")?;
    let end = payload.iter().position(|&b| b == 0).unwrap_or(payload.len());
    let uid = std::str::from_utf8(payload.get(..end)?).ok()?;
    (!uid.is_empty() && !uid.chars().any(char::is_control)).then(|| uid.to_owned())
}

fn bad(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Parse, what)
}

/// Whether a row is partial: an instance without its content (seen for occurrences).
pub(crate) fn is_partial(row: &GraphEvent) -> bool {
    row.removed.is_none() && row.ical_uid.is_none() && row.subject.is_none()
}

/// `row` with the content of its series master `master`: what an unmodified occurrence holds.
/// The row keeps its own id, type, start and end; its original start is its start.
pub(crate) fn fill_from_master(row: &GraphEvent, master: &GraphEvent) -> GraphEvent {
    GraphEvent {
        id: row.id.clone(),
        kind: row.kind.clone(),
        series_master_id: row.series_master_id.clone(),
        original_start: row.original_start.clone().or_else(|| row.start.as_ref().and_then(utc_text)),
        start: row.start.clone(),
        end: row.end.clone(),
        removed: None,
        ..master.clone()
    }
}

/// The instant of a `dateTimeTimeZone` as RFC 3339 (for an original start).
fn utc_text(value: &DateTimeZone) -> Option<String> {
    instant(value).map(|t| t.to_rfc3339())
}

/// Maps one instance row of `calendar`.
///
/// # Errors
/// [`ErrorKind::Parse`] for a row calscope cannot render: no `id`, no `iCalUId`, no start.
pub(crate) fn map_event(calendar: &CalendarId, row: &GraphEvent, policy: &FingerprintPolicy) -> Result<Event> {
    let id = row.id.as_deref().filter(|id| !id.is_empty()).ok_or_else(|| bad("an event without an id"))?;
    let uid =
        row.ical_uid.as_deref().filter(|u| !u.is_empty()).ok_or_else(|| bad(format!("event {id} has no iCalUId")))?;
    let all_day = row.is_all_day == Some(true);
    let mut out = Lines::default();
    out.push("BEGIN:VEVENT");
    out.property("UID", "", &text(&unwrap_uid(uid)));
    if matches!(row.kind.as_deref(), Some("occurrence" | "exception")) {
        let original =
            row.original_start.as_deref().ok_or_else(|| bad(format!("instance {id} has no originalStart")))?;
        let at = DateTime::parse_from_rfc3339(original.trim())
            .map_err(|_| bad(format!("unreadable originalStart {original:?}")))?
            .with_timezone(&Utc);
        out.push(&if all_day {
            format!("RECURRENCE-ID;VALUE=DATE:{}", at.format("%Y%m%d"))
        } else {
            format!("RECURRENCE-ID:{}", at.format("%Y%m%dT%H%M%SZ"))
        });
    }
    let modified = row.last_modified_date_time.as_deref().and_then(utc_basic);
    out.push(&format!("DTSTAMP:{}", modified.as_deref().unwrap_or("19700101T000000Z")));
    if let Some(created) = row.created_date_time.as_deref().and_then(utc_basic) {
        out.push(&format!("CREATED:{created}"));
    }
    if let Some(modified) = &modified {
        out.push(&format!("LAST-MODIFIED:{modified}"));
    }
    let start = row.start.as_ref().ok_or_else(|| bad(format!("event {id} has no start")))?;
    out.push(&date_time("DTSTART", start, all_day)?);
    if let Some(end) = &row.end {
        out.push(&date_time("DTEND", end, all_day)?);
    }
    if let Some(subject) = row.subject.as_deref() {
        out.property("SUMMARY", "", &text(subject));
    }
    if let Some(body) = row.body.as_ref().and_then(body_text).filter(|b| !b.is_empty()) {
        out.property("DESCRIPTION", "", &text(&body));
    }
    if let Some(place) = row.location.as_ref().and_then(|l| l.display_name.as_deref()).filter(|l| !l.is_empty()) {
        out.property("LOCATION", "", &text(place));
    }
    let show_as = row.show_as.as_deref();
    if row.is_cancelled == Some(true) {
        out.push("STATUS:CANCELLED");
    } else if show_as == Some("tentative") {
        out.push("STATUS:TENTATIVE");
    }
    out.push(if show_as == Some("free") { "TRANSP:TRANSPARENT" } else { "TRANSP:OPAQUE" });
    if let Some(show_as) = show_as {
        out.property("X-MICROSOFT-SHOWAS", "", &text(show_as));
    }
    match row.sensitivity.as_deref() {
        Some("private") => out.push("CLASS:PRIVATE"),
        Some("confidential") => out.push("CLASS:CONFIDENTIAL"),
        _ => {}
    }
    if let Some(who) = row.organizer.as_ref().and_then(|o| o.email_address.as_ref()) {
        if let Some(email) = who.address.as_deref() {
            let params = who.name.as_deref().map(|n| format!(";CN={}", param(n))).unwrap_or_default();
            out.property("ORGANIZER", &params, &format!("mailto:{}", address(email)));
        }
    }
    for attendee in row.attendees.iter().flatten() {
        let Some(who) = &attendee.email_address else { continue };
        let Some(email) = who.address.as_deref() else { continue };
        let mut params = String::new();
        if let Some(name) = who.name.as_deref() {
            params.push_str(";CN=");
            params.push_str(&param(name));
        }
        params.push_str(match attendee.kind.as_deref() {
            Some("optional") => ";ROLE=OPT-PARTICIPANT",
            Some("resource") => ";CUTYPE=RESOURCE;ROLE=NON-PARTICIPANT",
            _ => ";ROLE=REQ-PARTICIPANT",
        });
        params.push_str(match attendee.status.as_ref().and_then(|s| s.response.as_deref()) {
            Some("accepted" | "organizer") => ";PARTSTAT=ACCEPTED",
            Some("declined") => ";PARTSTAT=DECLINED",
            Some("tentativelyAccepted") => ";PARTSTAT=TENTATIVE",
            _ => ";PARTSTAT=NEEDS-ACTION",
        });
        out.property("ATTENDEE", &params, &format!("mailto:{}", address(email)));
    }
    out.push("END:VEVENT");
    let event = Event::from_ics(calendar, &out.finish(), policy)
        .map_err(|e| Error::new(ErrorKind::Parse, format!("event {id}: {}", e.message())))?;
    Ok(event.with_href(Some(Href::new(id)?), None))
}

/// The local date-time of a `dateTimeTimeZone` (Graph writes up to seven fraction digits).
fn local(value: &DateTimeZone) -> Option<NaiveDateTime> {
    let text = value.date_time.as_deref()?.trim();
    let text = text.split('.').next().unwrap_or(text).trim_end_matches('Z');
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").ok()
}

/// The instant of a `dateTimeTimeZone`: UTC when the zone is UTC or absent, else the local
/// time in the named zone (IANA or Windows).
fn instant(value: &DateTimeZone) -> Option<DateTime<Utc>> {
    let local = local(value)?;
    match value.time_zone.as_deref().map(str::trim) {
        None | Some("" | "UTC" | "Etc/UTC" | "tzone://Microsoft/Utc") => Some(local.and_utc()),
        Some(zone) => tz::resolve(zone).map(|z| tz::to_utc(z, local)),
    }
}

/// `NAME;VALUE=DATE:…` for all-day events, else `NAME:…Z` (the instant in UTC).
fn date_time(name: &str, value: &DateTimeZone, all_day: bool) -> Result<String> {
    let shown = value.date_time.as_deref().unwrap_or_default();
    if all_day {
        let date = local(value).ok_or_else(|| bad(format!("unreadable {name} {shown:?}")))?.date();
        return Ok(format!("{name};VALUE=DATE:{}", date.format("%Y%m%d")));
    }
    let at = instant(value).ok_or_else(|| bad(format!("unreadable {name} {shown:?}")))?;
    Ok(format!("{name}:{}", at.format("%Y%m%dT%H%M%SZ")))
}

/// A body as text: HTML bodies lose their tags and their most common entities.
fn body_text(body: &super::wire::ItemBody) -> Option<String> {
    let content = body.content.as_deref()?;
    if !body.content_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("html")) {
        return Some(content.trim().to_owned());
    }
    let mut out = String::with_capacity(content.len());
    let mut in_tag = false;
    for c in content.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                if !out.ends_with('\n') && !out.is_empty() {
                    out.push(' ');
                }
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    Some(decoded.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `GlobalObjectId` as Exchange writes one for a meeting invited from another system.
    fn wrapped(uid: &str) -> String {
        let mut data = b"vCal-Uid\x01\x00\x00\x00".to_vec();
        data.extend_from_slice(uid.as_bytes());
        data.push(0);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&[0x04, 0, 0, 0, 0x82, 0, 0xE0, 0, 0x74, 0xC5, 0xB7, 0x10, 0x1A, 0x82, 0xE0, 0x08]);
        bytes.extend_from_slice(&[0; 4]); // instance date
        bytes.extend_from_slice(&[0x10, 0x6F, 0x3A, 0xB2, 0xC1, 0x4D, 0xDB, 0x01]); // creation time
        bytes.extend_from_slice(&[0; 8]);
        bytes.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&data);
        hex(&bytes)
    }

    fn hex(bytes: &[u8]) -> String {
        const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
        bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]).map(char::from).collect()
    }

    #[test]
    fn foreign_uids_are_unwrapped_from_global_object_ids() {
        let id = wrapped("7kq9h1b2c3d4e5f6g7h8@google.com");
        assert!(id.starts_with(GLOBAL_OBJECT_ID));
        assert_eq!(unwrap_uid(&id), "7kq9h1b2c3d4e5f6g7h8@google.com");
        // Exchange's own ids (no vCal-Uid payload) and anything else stay as they are.
        let native = format!(
            "{GLOBAL_OBJECT_ID}00000000106F3AB2C14DDB010000000000000000100000009A8B7C6D5E4F30211A2B3C4D5E6F7081"
        );
        assert_eq!(unwrap_uid(&native), native);
        assert_eq!(unwrap_uid("plain-uid"), "plain-uid");
        assert_eq!(unwrap_uid(&id[..90]), &id[..90], "a cut id is kept");
    }

    #[test]
    fn html_bodies_become_text() {
        let body = super::super::wire::ItemBody {
            content_type: Some("html".into()),
            content: Some("<html><body><p>Agenda&nbsp;&amp; notes</p><div>Dial in</div></body></html>".into()),
        };
        assert_eq!(body_text(&body).as_deref(), Some("Agenda & notes Dial in"));
    }
}
