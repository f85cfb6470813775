//! Validated identifiers: calendars, events, resources and cursors.
//!
//! Every event is addressed by an [`EventKey`]: its calendar, its UID and its normalized
//! RECURRENCE-ID. There is no way to name an event without its calendar.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, Datelike as _, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// Longest accepted [`CalendarId`], in bytes.
pub const MAX_CALENDAR_ID_LEN: usize = 1024;
/// Longest accepted [`Uid`], in bytes.
pub const MAX_UID_LEN: usize = 4096;

fn check_text(what: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{what} is empty")));
    }
    if value.len() > max {
        return Err(Error::invalid(format!("{what} is longer than {max} bytes")));
    }
    if has_control(value.as_bytes()) {
        return Err(Error::invalid(format!("{what} contains a control character")));
    }
    Ok(())
}

/// Whether UTF-8 text holds a control character (C0, DEL or C1), checked on bytes.
fn has_control(bytes: &[u8]) -> bool {
    // Fast path: no byte that can start a control character (a fold without early exit, so it
    // vectorizes).
    #[allow(clippy::nonminimal_bool, clippy::needless_bitwise_bool)] // branch-free on purpose
    if !bytes.iter().fold(false, |found, &b| found | (b < 0x20) | (b == 0x7F) | (b == 0xC2)) {
        return false;
    }
    bytes.iter().enumerate().any(|(i, &b)| {
        b < 0x20 || b == 0x7F || (b == 0xC2 && bytes.get(i + 1).is_some_and(|n| (0x80..=0x9F).contains(n)))
    })
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            #[doc = concat!("Validates and wraps a ", $what, ".")]
            ///
            /// # Errors
            /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the value is
            /// empty, too long or holds a control character.
            pub fn new(value: impl AsRef<str>) -> Result<Self> {
                let value = value.as_ref();
                check_text($what, value, $max)?;
                Ok(Self(Arc::from(value)))
            }

            /// The value as text.
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

text_id!(
    /// The host's name for one calendar: the scope of every event key.
    ///
    /// Any non-empty text up to [`MAX_CALENDAR_ID_LEN`] bytes without control characters. Hosts
    /// usually use their own row id or the source URL; CalDAV derives it from the collection URL.
    CalendarId, "calendar id", MAX_CALENDAR_ID_LEN
);
text_id!(
    /// An iCalendar UID, as the source wrote it.
    ///
    /// UIDs are *not* globally unique: the same meeting invite carries one UID in every
    /// attendee's calendar, and generated calendars (birthdays, holidays) reuse UIDs across users.
    /// A UID therefore only means something inside an [`EventKey`].
    Uid, "uid", MAX_UID_LEN
);
text_id!(
    /// A resource's address at its source (a CalDAV href, a feed URL).
    Href, "href", 8192
);
text_id!(
    /// A resource version tag (an HTTP ETag), compared byte for byte.
    Etag, "etag", 1024
);

impl CalendarId {
    /// A calendar id derived from the URL a calendar is fetched from (a feed or a CalDAV
    /// collection), stable across spellings of the same address.
    ///
    /// The URL is parsed and normalized by the `url` crate (scheme and host lower-cased, default
    /// port dropped, percent-encoding normalized); user name, password and fragment are removed,
    /// so credentials never end up in an id, a log line or a database key. The query is kept:
    /// feed URLs often carry the calendar's identity in it. A secret in the path (Google's
    /// private iCal address) stays part of the id; hosts that log ids should pick their own.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when `url` is not an absolute
    /// `http`, `https`, `webcal` or `file` URL.
    ///
    /// # Example
    /// ```
    /// use calscope::CalendarId;
    /// let id = CalendarId::from_url("HTTPS://user:secret@Example.com:443/cal/home/#frag")?;
    /// assert_eq!(id.as_str(), "https://example.com/cal/home/");
    /// # Ok::<(), calscope::Error>(())
    /// ```
    pub fn from_url(url: &str) -> Result<Self> {
        let mut parsed =
            url::Url::parse(url.trim()).map_err(|e| Error::invalid(format!("invalid calendar url: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https" | "webcal" | "file") {
            return Err(Error::invalid(format!("unsupported calendar url scheme {:?}", parsed.scheme())));
        }
        // Removing credentials cannot fail on http(s)/webcal URLs, which always have a host.
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
        parsed.set_fragment(None);
        Self::new(parsed.as_str())
    }
}

/// An opaque position in a source's change history (a sync token, HTTP validators, …).
///
/// Only the source that issued a cursor can read it. The engine stores it with the applied
/// changes and hands it back on the next fetch.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps a source's cursor text.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The cursor text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Cursors can hold validators that identify a user's feed; show only their size.
        write!(f, "Cursor({} bytes)", self.0.len())
    }
}

/// The normalized value of a RECURRENCE-ID: which instance of a recurring event an override
/// replaces.
///
/// Normalization makes equal instants compare equal: `20240105T090000Z` and
/// `TZID=Europe/Berlin:20240105T100000` are the same `RecurrenceId`. A DATE stays a date and a
/// floating time stays floating. `RANGE=THISANDFUTURE` is kept and is part of the identity.
///
/// The canonical text form (`Display`, `FromStr`, serde, the stores' `recurrence_id` column)
/// is `YYYYMMDD` for a date, `YYYYMMDDTHHMMSS` for a floating time and `YYYYMMDDTHHMMSSZ` for
/// an instant, followed by `;RANGE=THISANDFUTURE` when that range applies.
///
/// # Example
/// ```
/// use calscope::RecurrenceId;
/// let utc: RecurrenceId = "20240105T090000Z".parse()?;
/// let berlin = RecurrenceId::from_ical("20240105T100000", Some("Europe/Berlin"), false)?;
/// assert_eq!(utc, berlin);
/// assert_eq!(berlin.to_string(), "20240105T090000Z");
/// # Ok::<(), calscope::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecurrenceId {
    value: RecurrenceValue,
    this_and_future: bool,
}

/// The time value inside a [`RecurrenceId`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum RecurrenceValue {
    /// An all-day instance.
    Date(NaiveDate),
    /// A floating local time, not tied to any zone.
    Floating(NaiveDateTime),
    /// An instant, normalized to UTC.
    Instant(DateTime<Utc>),
}

const DATE_FMT: &str = "%Y%m%d";
const FLOATING_FMT: &str = "%Y%m%dT%H%M%S";
const RANGE_SUFFIX: &str = ";RANGE=THISANDFUTURE";

impl RecurrenceId {
    /// An all-day instance.
    #[must_use]
    pub fn date(date: NaiveDate) -> Self {
        Self { value: RecurrenceValue::Date(date), this_and_future: false }
    }

    /// A floating-time instance.
    #[must_use]
    pub fn floating(local: NaiveDateTime) -> Self {
        Self { value: RecurrenceValue::Floating(local), this_and_future: false }
    }

    /// An instance at a UTC instant.
    #[must_use]
    pub fn instant(at: DateTime<Utc>) -> Self {
        Self { value: RecurrenceValue::Instant(at), this_and_future: false }
    }

    /// An instance at a local time in the zone named `tzid`, normalized to UTC.
    ///
    /// `tzid` is an IANA name (`Europe/Berlin`) or a Windows zone name
    /// (`W. Europe Standard Time`). A local time that occurs twice (autumn) takes the first; one
    /// that does not exist (spring gap) is moved forward by the gap, as RFC 5545 prescribes.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the zone is unknown.
    pub fn zoned(local: NaiveDateTime, tzid: &str) -> Result<Self> {
        let tz =
            crate::value::tz::resolve(tzid).ok_or_else(|| Error::invalid(format!("unknown time zone {tzid:?}")))?;
        Ok(Self::instant(crate::value::tz::to_utc(tz, local)))
    }

    /// Reads an iCalendar RECURRENCE-ID value: `value` as written, its TZID parameter, and
    /// whether VALUE=DATE was given (a bare 8-digit value is read as a date either way).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the value is not a
    /// DATE or DATE-TIME, or the zone is unknown.
    pub fn from_ical(value: &str, tzid: Option<&str>, is_date: bool) -> Result<Self> {
        let value = value.trim();
        let bad = || Error::invalid(format!("invalid recurrence id {value:?}"));
        if is_date || value.len() == 8 {
            let date = crate::value::date::basic_date(value).ok_or_else(bad)?;
            return Ok(Self::date(date));
        }
        if let Some(utc) = value.strip_suffix('Z').or_else(|| value.strip_suffix('z')) {
            let local = crate::value::date::basic_date_time(utc).ok_or_else(bad)?;
            return Ok(Self::instant(Utc.from_utc_datetime(&local)));
        }
        let local = crate::value::date::basic_date_time(value).ok_or_else(bad)?;
        match tzid {
            Some(tzid) => Self::zoned(local, tzid),
            None => Ok(Self::floating(local)),
        }
    }

    /// The same instance with `RANGE=THISANDFUTURE` set or cleared.
    #[must_use]
    pub fn with_this_and_future(mut self, this_and_future: bool) -> Self {
        self.this_and_future = this_and_future;
        self
    }

    /// The normalized time value.
    #[must_use]
    pub fn value(&self) -> RecurrenceValue {
        self.value
    }

    /// Whether the override applies to this and all later instances (`RANGE=THISANDFUTURE`).
    #[must_use]
    pub fn is_this_and_future(&self) -> bool {
        self.this_and_future
    }
}

/// `YYYYMMDD` or `YYYYMMDDTHHMMSS` on the stack for years 0–9999 (the stores write one per
/// instance row; chrono's formatter parses its pattern each time); `None` for other years.
fn basic_text(date: NaiveDate, time: Option<chrono::NaiveTime>) -> Option<([u8; 15], usize)> {
    use chrono::Timelike as _;
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    let mut b = *b"00000000T000000";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            if let Some(d) = b.get_mut(i) {
                // n % 10 < 10: the digit fits a byte.
                *d = b'0' + (n % 10) as u8;
            }
            n /= 10;
        }
    };
    put(0, 4, year);
    put(4, 2, date.month());
    put(6, 2, date.day());
    match time {
        Some(t) => {
            put(9, 2, t.hour());
            put(11, 2, t.minute());
            put(13, 2, t.second());
            Some((b, 15))
        }
        None => Some((b, 8)),
    }
}

impl fmt::Display for RecurrenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (date, time, zulu) = match self.value {
            RecurrenceValue::Date(d) => (d, None, false),
            RecurrenceValue::Floating(t) => (t.date(), Some(t.time()), false),
            RecurrenceValue::Instant(t) => (t.date_naive(), Some(t.time()), true),
        };
        match basic_text(date, time) {
            Some((b, n)) => f.write_str(std::str::from_utf8(b.get(..n).unwrap_or_default()).unwrap_or_default())?,
            None => match self.value {
                RecurrenceValue::Date(d) => write!(f, "{}", d.format(DATE_FMT))?,
                RecurrenceValue::Floating(t) => write!(f, "{}", t.format(FLOATING_FMT))?,
                RecurrenceValue::Instant(t) => write!(f, "{}", t.format(FLOATING_FMT))?,
            },
        }
        if zulu {
            f.write_str("Z")?;
        }
        if self.this_and_future {
            f.write_str(RANGE_SUFFIX)?;
        }
        Ok(())
    }
}

impl fmt::Debug for RecurrenceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecurrenceId({self})")
    }
}

impl FromStr for RecurrenceId {
    type Err = Error;

    /// Parses the canonical text form (see the type's docs).
    fn from_str(s: &str) -> Result<Self> {
        let (value, this_and_future) = match s.strip_suffix(RANGE_SUFFIX) {
            Some(v) => (v, true),
            None => (s, false),
        };
        if value.len() != 8 && value.len() != 15 && value.len() != 16 {
            return Err(Error::invalid(format!("invalid recurrence id {s:?}")));
        }
        Ok(Self::from_ical(value, None, false)?.with_this_and_future(this_and_future))
    }
}

impl Serialize for RecurrenceId {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecurrenceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The identity of one stored event: calendar, UID and RECURRENCE-ID.
///
/// A master (or single) event has no recurrence id; each override of a recurring event is its
/// own key under the master's UID. The calendar is part of the key, so the same UID in two
/// calendars is two unrelated events.
///
/// `Hash` covers only the UID and the recurrence id: keys are compared with their calendar
/// (`Eq` covers all three fields), but the planner works one calendar at a time and need not
/// hash the same calendar id a million times.
///
/// # Example
/// ```
/// use calscope::{CalendarId, EventKey, Uid};
/// let alice = EventKey::new(CalendarId::new("alice")?, Uid::new("xmas@holidays")?, None);
/// let bob = EventKey::new(CalendarId::new("bob")?, Uid::new("xmas@holidays")?, None);
/// assert_ne!(alice, bob);
/// # Ok::<(), calscope::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EventKey {
    /// The calendar the event belongs to.
    pub calendar: CalendarId,
    /// The event's UID.
    pub uid: Uid,
    /// The normalized RECURRENCE-ID of an override; `None` for a master or single event.
    pub recurrence_id: Option<RecurrenceId>,
}

impl EventKey {
    /// Builds a key.
    #[must_use]
    pub fn new(calendar: CalendarId, uid: Uid, recurrence_id: Option<RecurrenceId>) -> Self {
        Self { calendar, uid, recurrence_id }
    }
}

/// A 128-bit digest of a key's UID and recurrence id: its identity *within one calendar*.
///
/// The planner indexes keys by this digest so that a lookup touches one small table slot
/// instead of chasing UID strings across the heap. Two different keys of one calendar with the
/// same digest (a 2^-128 chance, or crafted by the author of that calendar's feed) could only
/// mis-plan that same calendar, exactly like a fingerprint collision; other calendars are never
/// involved because plans are per calendar and stores write by full key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct KeyDigest(pub(crate) u128);

impl EventKey {
    pub(crate) fn digest(&self) -> KeyDigest {
        // The recurrence id (encoded without ambiguity) seeds a one-shot hash of the UID.
        let mut rid = [0u8; 16];
        if let Some(r) = self.recurrence_id {
            let (tag, n) = match r.value {
                RecurrenceValue::Date(d) => (1u8, i64::from(d.num_days_from_ce())),
                RecurrenceValue::Floating(t) => (2, t.and_utc().timestamp()),
                RecurrenceValue::Instant(t) => (3, t.timestamp()),
            };
            rid[0] = tag;
            rid[1] = u8::from(r.this_and_future);
            rid[2..10].copy_from_slice(&n.to_le_bytes());
        }
        let seed = xxhash_rust::xxh3::xxh3_64_with_seed(&rid, 0x6361_6c73_636f_7065); // "calscope"
        KeyDigest(xxhash_rust::xxh3::xxh3_128_with_seed(self.uid.as_str().as_bytes(), seed))
    }
}

impl Hash for EventKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.uid.hash(state);
        self.recurrence_id.hash(state);
    }
}

impl PartialOrd for EventKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for EventKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.calendar
            .cmp(&other.calendar)
            .then_with(|| self.uid.cmp(&other.uid))
            .then_with(|| self.recurrence_id.cmp(&other.recurrence_id))
    }
}

impl fmt::Display for EventKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.calendar, self.uid)?;
        if let Some(rid) = &self.recurrence_id {
            write!(f, "@{rid}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_and_control_characters() {
        assert!(CalendarId::new("").is_err());
        assert!(Uid::new("a\r\nb").is_err());
        assert!(Uid::new("x".repeat(MAX_UID_LEN + 1)).is_err());
        assert!(Uid::new("040000008200E00074C5B7101A82E008").is_ok());
        assert!(Uid::new("a\u{85}b").is_err(), "C1 control");
        assert!(Uid::new("caf\u{e9}-\u{20ac}").is_ok());
    }

    #[test]
    fn recurrence_id_normalizes_equal_instants() {
        let utc = RecurrenceId::from_ical("20240705T080000Z", None, false).unwrap();
        let berlin = RecurrenceId::from_ical("20240705T100000", Some("Europe/Berlin"), false).unwrap();
        assert_eq!(utc, berlin);
        let date = RecurrenceId::from_ical("20240705", None, false).unwrap();
        assert_eq!(date.value(), RecurrenceValue::Date(NaiveDate::from_ymd_opt(2024, 7, 5).unwrap()));
        assert_ne!(date, utc);
        let floating = RecurrenceId::from_ical("20240705T080000", None, false).unwrap();
        assert_ne!(floating, utc);
    }

    #[test]
    fn recurrence_id_text_round_trips() {
        for text in ["20240705", "20240705T080000", "20240705T080000Z", "20240705T080000Z;RANGE=THISANDFUTURE"] {
            let rid: RecurrenceId = text.parse().unwrap();
            assert_eq!(rid.to_string(), text);
        }
        assert!("2024070".parse::<RecurrenceId>().is_err());
        assert!("20241305".parse::<RecurrenceId>().is_err());
        assert!(RecurrenceId::from_ical("20240705T100000", Some("Mars/Olympus"), false).is_err());
    }

    #[test]
    fn calendar_ids_from_urls_drop_credentials() {
        let id = CalendarId::from_url("https://bob:pw@cal.example.com/dav/bob/home/").unwrap();
        assert_eq!(id.as_str(), "https://cal.example.com/dav/bob/home/");
        assert!(CalendarId::from_url("mailto:x@y").is_err());
        assert!(CalendarId::from_url("/relative").is_err());
    }

    #[test]
    fn this_and_future_is_part_of_identity() {
        let plain: RecurrenceId = "20240705T080000Z".parse().unwrap();
        assert_ne!(plain, plain.with_this_and_future(true));
    }

    /// The stack formatter writes what chrono's would, in every year it handles and around.
    #[test]
    fn recurrence_id_text_matches_chronos_format() {
        for (y, mo, d, h, mi, se) in [
            (2026, 12, 1, 9, 5, 7),
            (1, 1, 1, 0, 0, 0),
            (999, 12, 31, 23, 59, 59),
            (9999, 6, 15, 12, 30, 0),
            (10000, 1, 1, 0, 0, 0),
            (-5, 3, 4, 1, 2, 3),
        ] {
            let date = NaiveDate::from_ymd_opt(y, mo, d).unwrap();
            let t = date.and_hms_opt(h, mi, se).unwrap();
            assert_eq!(RecurrenceId::date(date).to_string(), date.format(DATE_FMT).to_string());
            assert_eq!(RecurrenceId::floating(t).to_string(), t.format(FLOATING_FMT).to_string());
            assert_eq!(
                RecurrenceId::instant(t.and_utc()).with_this_and_future(true).to_string(),
                format!("{}Z{RANGE_SUFFIX}", t.format(FLOATING_FMT))
            );
        }
    }
}
