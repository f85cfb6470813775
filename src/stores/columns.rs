//! What the SQL stores share: the columns of an event row, built from a change, and the decoding
//! of the columns a sync loads back.
//!
//! SQLite and Postgres keep the same schema shape (see their docs); only the binding differs.

use chrono::{DateTime, Utc};

use crate::details::{EventDetails, EventStatus, EventTime, Transparency};
use crate::error::{Error, ErrorKind, Result};
use crate::event::RawText;
use crate::fingerprint::{Fingerprint, PropertyDigest, SourceHash};
use crate::id::{CalendarId, Etag, EventKey, Href, RecurrenceId, Uid};
use crate::plan::Change;
use crate::state::StoredEntry;

/// A schedule duration column (`interval_ms`): milliseconds, saturating.
pub(crate) fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A duration read back from milliseconds (a negative one is zero).
pub(crate) fn from_millis(ms: i64) -> std::time::Duration {
    std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A count read back from a signed column (a negative one is zero).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A calendar id read back from a schedule row.
pub(crate) fn stored_calendar(store: &str, id: &str) -> Result<CalendarId> {
    CalendarId::new(id)
        .map_err(|e| Error::new(ErrorKind::Storage, format!("{store} schedule: bad calendar id {id:?}: {e}")))
}

/// The schedule's rows as [`ScheduleEntry`](crate::schedule::ScheduleEntry) reads them, by
/// calendar: the same text for both SQL stores.
pub(crate) const SCHEDULE_ENTRIES: &str = "
SELECT calendar_id, spec, interval_ms, next_due_at, syncs, failures, last_error_kind, last_error,
       last_synced_at, lease_owner, lease_until, lease_token
FROM schedule ORDER BY calendar_id";

/// A `last_error_kind` column read back (an unknown code is [`ErrorKind::Other`]).
pub(crate) fn stored_error_kind(code: Option<&str>) -> Option<ErrorKind> {
    code.map(|k| ErrorKind::from_code(k).unwrap_or(ErrorKind::Other))
}

/// The `recurrence_id` column: the normalized RECURRENCE-ID, or `''` for a master or single
/// event (so that a unique index holds for masters too; a NULL would not).
pub(crate) fn rid_text(rid: Option<&RecurrenceId>) -> String {
    rid.map(ToString::to_string).unwrap_or_default()
}

fn status_text(status: &EventStatus) -> String {
    match status {
        EventStatus::Tentative => "tentative".to_owned(),
        EventStatus::Confirmed => "confirmed".to_owned(),
        EventStatus::Cancelled => "cancelled".to_owned(),
        EventStatus::Other(other) => other.clone(),
    }
}

/// One change, ready to bind: built on the caller's side (fields parsed, fingerprint computed)
/// while the database executes the previous batch.
pub(crate) enum Row {
    Upsert(Box<UpsertRow>),
    Delete { uid: Uid, rid: String },
}

/// The columns of one upserted event.
pub(crate) struct UpsertRow {
    pub(crate) uid: Uid,
    pub(crate) rid: String,
    pub(crate) recurrence_id: Option<RecurrenceId>,
    pub(crate) summary: Option<String>,
    pub(crate) location: Option<String>,
    pub(crate) description: Option<String>,
    pub(crate) starts_at: Option<DateTime<Utc>>,
    pub(crate) ends_at: Option<DateTime<Utc>>,
    pub(crate) all_day: bool,
    pub(crate) tzid: Option<String>,
    pub(crate) rrule: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) transparency: Option<&'static str>,
    pub(crate) sequence: Option<i64>,
    pub(crate) fingerprint: [u8; 16],
    pub(crate) source_hash: [u8; 16],
    pub(crate) digest: Vec<u8>,
    pub(crate) href: Option<Href>,
    pub(crate) etag: Option<Etag>,
    pub(crate) raw: RawText,
    /// The trimmed fields for expansion, when the store keeps instances.
    pub(crate) series: Option<Box<EventDetails>>,
}

/// Builds the row of one change; fields that could not be interpreted go to `warnings`.
///
/// With `series`, the row also keeps the fields expansion needs ([`UpsertRow::series`]).
pub(crate) fn row(change: &Change, warnings: &mut Vec<String>, series: bool) -> Row {
    let event = match change {
        Change::Insert { event } | Change::Update { event, .. } => event,
        Change::Delete { key, .. } => {
            return Row::Delete { uid: key.uid.clone(), rid: rid_text(key.recurrence_id.as_ref()) };
        }
    };
    // Parsed here, used for this row, dropped: never all events' fields at once (a series
    // keeps its trimmed scheduling fields for the instances).
    let mut details = event.parse_details();
    for p in &details.problems {
        warnings.push(format!("{}: {p}", event.key()));
    }
    let key = event.key();
    let (fingerprint, digest) = event.fingerprint_and_digest();
    let tzid = match &details.start {
        Some(EventTime::Zoned { tzid, .. }) => Some(tzid.clone()),
        _ => None,
    };
    let (summary, location, description) =
        (details.summary.take(), details.location.take(), details.description.take());
    Row::Upsert(Box::new(UpsertRow {
        uid: key.uid.clone(),
        recurrence_id: key.recurrence_id,
        rid: rid_text(key.recurrence_id.as_ref()),
        starts_at: details.start.as_ref().and_then(EventTime::to_utc),
        ends_at: details.end_utc(),
        all_day: details.is_all_day(),
        tzid,
        rrule: (!details.rrule.is_empty()).then(|| details.rrule.join("\n")),
        status: details.status.as_ref().map(status_text),
        transparency: details.transparency.map(|t| match t {
            Transparency::Opaque => "opaque",
            Transparency::Transparent => "transparent",
        }),
        summary,
        location,
        description,
        sequence: event.sequence(),
        fingerprint: fingerprint.to_bytes(),
        source_hash: event.source_hash().to_bytes(),
        digest,
        href: event.href().cloned(),
        etag: event.etag().cloned(),
        raw: event.raw_text(),
        series: series.then(|| Box::new(for_expansion(details))),
    }))
}

/// The columns a sync loads for one stored event, as the database answered them.
pub(crate) struct EntryColumns<'a> {
    pub(crate) uid: &'a str,
    pub(crate) rid: &'a str,
    pub(crate) fingerprint: &'a [u8],
    pub(crate) source_hash: Option<&'a [u8]>,
    pub(crate) digest: Option<&'a [u8]>,
    pub(crate) href: Option<&'a str>,
    pub(crate) etag: Option<&'a str>,
}

/// A storage error for stored data this build cannot read.
pub(crate) fn corrupt(store: &str, what: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Storage, format!("{store}: unreadable stored data: {what}"))
}

/// Decodes one stored row; anything unreadable is a storage error naming the row.
pub(crate) fn entry(store: &str, calendar: &CalendarId, c: &EntryColumns<'_>) -> Result<StoredEntry> {
    let bad = |what: &str| corrupt(store, format!("{what} of {calendar}/{}", c.uid));
    let key_uid = Uid::new(c.uid).map_err(|_| bad("uid"))?;
    let recurrence_id = if c.rid.is_empty() { None } else { Some(c.rid.parse().map_err(|_| bad("recurrence_id"))?) };
    let hash16 = |bytes: &[u8]| <[u8; 16]>::try_from(bytes).ok();
    let fingerprint = hash16(c.fingerprint).map(Fingerprint::from_bytes).ok_or_else(|| bad("fingerprint"))?;
    let source_hash = match c.source_hash {
        Some(b) => Some(hash16(b).map(SourceHash::from_bytes).ok_or_else(|| bad("source_hash"))?),
        None => None,
    };
    let digest = match c.digest {
        Some(b) => Some(PropertyDigest::from_bytes(b).map_err(|_| bad("digest"))?),
        None => None,
    };
    let href = c.href.map(|h| Href::new(h).map_err(|_| bad("href"))).transpose()?;
    let etag = c.etag.map(|e| Etag::new(e).map_err(|_| bad("etag"))).transpose()?;
    Ok(StoredEntry::new(EventKey::new(calendar.clone(), key_uid, recurrence_id), fingerprint)
        .with_source_hash(source_hash)
        .with_digest(digest)
        .with_href(href, etag))
}

/// The entry a store holds after writing `row` for `key`.
#[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
pub(crate) fn written_entry(key: &EventKey, row: &UpsertRow) -> StoredEntry {
    StoredEntry::new(key.clone(), Fingerprint::from_bytes(row.fingerprint))
        .with_source_hash(Some(SourceHash::from_bytes(row.source_hash)))
        .with_digest(PropertyDigest::from_bytes(&row.digest).ok())
        .with_href(row.href.clone(), row.etag.clone())
}

/// A stored row's fields for expansion, from its `raw` text and its `tzid` column. A DTSTART
/// whose TZID only its feed defined is stored with the zone that definition matched in
/// `tzid` (the feed's VTIMEZONE is not in `raw`): the text is read again with that zone.
pub(crate) fn stored_details(raw: &str, tzid: Option<&str>) -> EventDetails {
    let details = crate::details::parse(raw);
    if let (Some(EventTime::Zoned { tzid: written, utc: None, .. }), Some(column)) = (&details.start, tzid)
        && let Some(zone) = crate::value::tz::resolve(column)
    {
        let written = written.trim().trim_matches('"').to_owned();
        return crate::details::parse_in(raw, &crate::value::tz::ZoneAliases::new(vec![(written, zone)]));
    }
    details
}

/// The trimmed fields a series needs for expansion (no texts, people or problems).
pub(crate) fn for_expansion(mut d: EventDetails) -> EventDetails {
    d.summary = None;
    d.description = None;
    d.location = None;
    d.organizer = None;
    d.attendees = Vec::new();
    d.problems = Vec::new();
    d
}
