//! The normalized event model: what a source hands over for one VEVENT component.

use std::fmt;
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::analyze::{Analysis, analyze};
use crate::details::{self, EventDetails};
use crate::error::{Error, Result};
use crate::fingerprint::{
    Canonical, Fingerprint, FingerprintPolicy, PropertyDigest, SourceHash, canonicalize, name_hash,
};
use crate::id::{CalendarId, Etag, EventKey, Href, KeyDigest, RecurrenceId, Uid};
use crate::value::lines::{ContentLine, Lines};
use crate::value::tz::ZoneAliases;

/// Deepest component nesting [`Event::from_ics`] accepts (VEVENT > VALARM is 2).
pub const MAX_COMPONENT_DEPTH: usize = 8;

/// One VEVENT component as a source reports it: its key, fingerprint, the fields hosts
/// schedule with, and its raw text.
///
/// The scheduling fields ([`details`](Self::details)) are parsed from the raw text on first
/// use, so events that a sync does not write are never fully parsed.
#[derive(Clone)]
pub struct Event {
    key: EventKey,
    key_digest: KeyDigest,
    source_hash: SourceHash,
    /// The canonical fingerprint and digest, computed on first use under `policy`.
    canon: OnceLock<Canonical>,
    policy: Option<Arc<FingerprintPolicy>>,
    sequence: Option<i64>,
    last_modified: Option<DateTime<Utc>>,
    href: Option<Href>,
    etag: Option<Etag>,
    raw: RawText,
    details: OnceLock<Arc<EventDetails>>,
    /// The zones its feed defined under names the tz database does not know.
    zones: Option<Arc<ZoneAliases>>,
}

/// An event's text: a range of a shared buffer (a whole feed) or a buffer of its own.
#[derive(Clone)]
pub(crate) struct RawText {
    buf: Arc<String>,
    start: usize,
    end: usize,
}

impl RawText {
    pub(crate) fn owned(text: String) -> Self {
        let end = text.len();
        Self { buf: Arc::new(text), start: 0, end }
    }

    /// `buf[start..end]`; the range must lie on character boundaries (else the text is empty).
    pub(crate) fn shared(buf: &Arc<String>, start: usize, end: usize) -> Self {
        Self { buf: Arc::clone(buf), start, end }
    }

    pub(crate) fn as_str(&self) -> &str {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    fn is_whole(&self) -> bool {
        self.start == 0 && self.end == self.buf.len()
    }
}

impl Event {
    /// Reads one VEVENT component (from `BEGIN:VEVENT` to `END:VEVENT`) of `calendar`.
    ///
    /// The key is the component's UID and normalized RECURRENCE-ID; the fingerprint follows
    /// `policy` and is computed here. Field parsing is deferred to [`details`](Self::details). To read whole feeds,
    /// with UID synthesis, embedded time zones and partial failures, use
    /// [`ics::read_feed`](crate::ics::read_feed).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the component has no
    /// valid UID, an unreadable RECURRENCE-ID, nests deeper than [`MAX_COMPONENT_DEPTH`], or
    /// holds a NUL byte (no valid iCalendar content, and no database's text column takes it).
    ///
    /// # Example
    /// ```
    /// use calscope::{CalendarId, Event, FingerprintPolicy};
    /// let ics = "BEGIN:VEVENT\r\nUID:standup@example.com\r\nDTSTART:20240105T090000Z\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n";
    /// let event = Event::from_ics(&CalendarId::new("work")?, ics, &FingerprintPolicy::default())?;
    /// assert_eq!(event.key().uid.as_str(), "standup@example.com");
    /// assert_eq!(event.details().summary.as_deref(), Some("Standup"));
    /// # Ok::<(), calscope::Error>(())
    /// ```
    pub fn from_ics(calendar: &CalendarId, component: &str, policy: &FingerprintPolicy) -> Result<Self> {
        let analysis = analyze(component.as_bytes(), policy);
        if memchr::memchr(0, component.as_bytes()).is_some() {
            return Err(Error::invalid("component holds a NUL byte"));
        }
        if analysis.max_depth > MAX_COMPONENT_DEPTH {
            return Err(Error::invalid(format!("component nests deeper than {MAX_COMPONENT_DEPTH} levels")));
        }
        let uid = Uid::new(analysis.fields.uid.as_deref().unwrap_or_default())?;
        let recurrence_id = match &analysis.fields.rid {
            Some((value, tzid, is_date, this_and_future)) => {
                Some(RecurrenceId::from_ical(value, tzid.as_deref(), *is_date)?.with_this_and_future(*this_and_future))
            }
            None => None,
        };
        let key = EventKey::new(calendar.clone(), uid, recurrence_id);
        let event = Self::assemble(key, &analysis, RawText::owned(component.to_owned()), None);
        let _ = event.canon.set(canonicalize(component.as_bytes(), policy));
        Ok(event)
    }

    /// Builds an event from an analysis and the key derived from it. The fingerprint is
    /// computed under `policy` (the default when `None`) on first use.
    pub(crate) fn assemble(
        key: EventKey,
        analysis: &Analysis,
        raw: RawText,
        policy: Option<Arc<FingerprintPolicy>>,
    ) -> Self {
        Self {
            key_digest: key.digest(),
            key,
            source_hash: analysis.source_hash,
            canon: OnceLock::new(),
            policy,
            sequence: analysis.fields.sequence,
            last_modified: analysis.fields.last_modified,
            href: None,
            etag: None,
            raw,
            details: OnceLock::new(),
            zones: None,
        }
    }

    /// Reads TZIDs its feed defined itself through `zones` (before its details are parsed).
    pub(crate) fn set_zones(&mut self, zones: &Arc<ZoneAliases>) {
        self.zones = Some(Arc::clone(zones));
        self.details = OnceLock::new();
    }

    fn parse_raw(&self) -> EventDetails {
        match &self.zones {
            Some(zones) => details::parse_in(self.raw(), zones),
            None => details::parse(self.raw()),
        }
    }

    /// The same event with the source resource it came from.
    #[must_use]
    pub fn with_href(mut self, href: Option<Href>, etag: Option<Etag>) -> Self {
        self.href = href;
        self.etag = etag;
        self
    }

    /// The event's scoped identity.
    #[must_use]
    pub fn key(&self) -> &EventKey {
        &self.key
    }

    pub(crate) fn key_digest(&self) -> KeyDigest {
        self.key_digest
    }

    /// Sets the canonical form when it is already known (the reader computes it for events
    /// without UID).
    pub(crate) fn with_canonical(self, canon: Canonical) -> Self {
        let _ = self.canon.set(canon);
        self
    }

    /// The fingerprint and digest bytes without keeping the canonical form (a store writing
    /// an event once needs them once).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))] // the SQL stores'
    pub(crate) fn fingerprint_and_digest(&self) -> (Fingerprint, Vec<u8>) {
        if let Some(c) = self.canon.get() {
            return (c.fingerprint, c.digest.to_bytes());
        }
        let c = self.canonicalize();
        (c.fingerprint, c.digest.to_bytes())
    }

    fn canonical(&self) -> &Canonical {
        self.canon.get_or_init(|| self.canonicalize())
    }

    /// Computes the canonical form under the event's policy (the default when it has none).
    fn canonicalize(&self) -> Canonical {
        canonicalize(self.raw().as_bytes(), self.policy.as_deref().unwrap_or_else(|| default_policy()))
    }

    /// The content fingerprint; a write happens only when it differs from the stored one.
    ///
    /// Events read from a feed compute it on first use (it costs a pass over the text), so a
    /// re-sync whose [`source_hash`](Self::source_hash) matches the store never computes it.
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        self.canonical().fingerprint
    }

    /// The hash of the component's bytes as sent, minus volatile lines: the planner's fast
    /// path (see [`SourceHash`]). Stores keep it beside the fingerprint.
    #[must_use]
    pub fn source_hash(&self) -> SourceHash {
        self.source_hash
    }

    /// The per-property digest used to explain updates (computed with the fingerprint).
    #[must_use]
    pub fn digest(&self) -> &PropertyDigest {
        &self.canonical().digest
    }

    /// The SEQUENCE property, when present and numeric.
    #[must_use]
    pub fn sequence(&self) -> Option<i64> {
        self.sequence
    }

    /// The LAST-MODIFIED property as UTC, when present and readable.
    #[must_use]
    pub fn last_modified(&self) -> Option<DateTime<Utc>> {
        self.last_modified
    }

    /// How recent this copy is among copies with the same key: (SEQUENCE, LAST-MODIFIED), where a
    /// missing value is older than any present one. The planner's duplicate rule and the feed
    /// reader's ambiguity check both order copies by this.
    pub(crate) fn recency(&self) -> (Option<i64>, Option<DateTime<Utc>>) {
        (self.sequence, self.last_modified)
    }

    /// The source resource this event was read from (a CalDAV href), when known.
    #[must_use]
    pub fn href(&self) -> Option<&Href> {
        self.href.as_ref()
    }

    /// The version tag of the source resource, when known.
    #[must_use]
    pub fn etag(&self) -> Option<&Etag> {
        self.etag.as_ref()
    }

    /// The text, sharing its buffer (for stores that write it on another thread).
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))] // the SQL stores'
    pub(crate) fn raw_text(&self) -> RawText {
        self.raw.clone()
    }

    /// The component text exactly as the source gave it.
    #[must_use]
    pub fn raw(&self) -> &str {
        self.raw.as_str()
    }

    /// The same event holding its own copy of its text.
    ///
    /// Events read from a feed share the feed's text buffer (one allocation and no copy per
    /// event); an event kept long after its feed is gone keeps that whole buffer alive. Hosts
    /// (and stores) that keep events call this first.
    #[must_use]
    pub fn detach(&self) -> Self {
        let mut copy = self.clone();
        if !self.raw.is_whole() {
            copy.raw = RawText::owned(self.raw().to_owned());
        }
        copy
    }

    /// The fields hosts schedule with, parsed from the raw text on first call.
    ///
    /// Parsing never fails as a whole: what cannot be interpreted is left empty and listed in
    /// [`EventDetails::problems`].
    #[must_use]
    pub fn details(&self) -> &EventDetails {
        self.details.get_or_init(|| Arc::new(self.parse_raw()))
    }

    /// The fields hosts schedule with, parsed now and not kept: stores that write many events
    /// call this, so a sync never holds every event's fields at once. Answers a copy when
    /// [`details`](Self::details) already parsed them.
    #[must_use]
    pub fn parse_details(&self) -> EventDetails {
        match self.details.get() {
            Some(details) => EventDetails::clone(details),
            None => self.parse_raw(),
        }
    }

    /// Names of the properties that differ from a stored version with digest `stored`.
    ///
    /// Names of properties this version no longer has are resolved from the standard
    /// iCalendar property names; an unknown removed property shows as `property#<hash>`.
    #[must_use]
    pub fn changed_properties(&self, stored: &PropertyDigest) -> Vec<String> {
        let wanted = self.digest().differing_names(stored);
        let mut found: Vec<Option<String>> = vec![None; wanted.len()];
        let mut missing = wanted.len();
        let mut upper = Vec::with_capacity(32);
        let mut depth = 0usize;
        let mut lines = Lines::new(self.raw().as_bytes());
        while let Some(line) = lines.next_line() {
            if missing == 0 {
                break;
            }
            let Some(cl) = ContentLine::split(line.text) else { continue };
            let name = if cl.is(b"BEGIN") {
                depth += 1;
                if depth != 2 {
                    continue;
                }
                cl.value
            } else if cl.is(b"END") {
                depth = depth.saturating_sub(1);
                continue;
            } else if depth == 1 {
                cl.name
            } else {
                continue;
            };
            upper.clear();
            upper.extend_from_slice(name);
            upper.make_ascii_uppercase();
            let h = name_hash(&upper);
            if let Some(slot @ None) = wanted.iter().position(|&w| w == h).and_then(|i| found.get_mut(i)) {
                *slot = Some(String::from_utf8_lossy(&upper).into_owned());
                missing -= 1;
            }
        }
        if missing > 0 {
            for (h, std_name) in standard_names() {
                if let Some(i) = wanted.iter().position(|w| w == h) {
                    if let Some(slot @ None) = found.get_mut(i) {
                        *slot = Some((*std_name).to_owned());
                    }
                }
            }
        }
        let mut names: Vec<String> =
            wanted.iter().zip(found).map(|(h, name)| name.unwrap_or_else(|| format!("property#{h:08x}"))).collect();
        names.sort();
        names
    }
}

/// The policy events fall back to when none was given (deserialized events carry their
/// fingerprint, so it is rarely needed).
fn default_policy() -> &'static FingerprintPolicy {
    static DEFAULT: OnceLock<FingerprintPolicy> = OnceLock::new();
    DEFAULT.get_or_init(FingerprintPolicy::default)
}

fn standard_names() -> &'static [(u32, &'static str)] {
    static TABLE: OnceLock<Vec<(u32, &'static str)>> = OnceLock::new();
    TABLE.get_or_init(|| STANDARD_NAMES.iter().map(|n| (name_hash(n.as_bytes()), *n)).collect())
}

/// Property and component names an update reason can name even when only the stored version
/// had them.
const STANDARD_NAMES: [&str; 36] = [
    "ATTACH",
    "ATTENDEE",
    "CATEGORIES",
    "CLASS",
    "COLOR",
    "COMMENT",
    "CONFERENCE",
    "CONTACT",
    "CREATED",
    "DESCRIPTION",
    "DTEND",
    "DTSTAMP",
    "DTSTART",
    "DURATION",
    "EXDATE",
    "GEO",
    "IMAGE",
    "LAST-MODIFIED",
    "LOCATION",
    "ORGANIZER",
    "PRIORITY",
    "RDATE",
    "RECURRENCE-ID",
    "RELATED-TO",
    "RESOURCES",
    "RRULE",
    "SEQUENCE",
    "STATUS",
    "SUMMARY",
    "TRANSP",
    "UID",
    "URL",
    "VALARM",
    "X-ALT-DESC",
    "X-MICROSOFT-CDO-BUSYSTATUS",
    "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR",
];

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("key", &self.key)
            .field("source_hash", &self.source_hash)
            .field("sequence", &self.sequence)
            .field("href", &self.href)
            .field("raw_len", &self.raw().len())
            .finish_non_exhaustive()
    }
}

/// Two events are equal when key, fingerprint, resource and raw text are equal.
impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
            && self.fingerprint() == other.fingerprint()
            && self.href == other.href
            && self.etag == other.etag
            && self.raw() == other.raw()
    }
}

impl Eq for Event {}

#[derive(Serialize, Deserialize)]
struct EventRepr {
    key: EventKey,
    fingerprint: Fingerprint,
    digest: PropertyDigest,
    source_hash: SourceHash,
    sequence: Option<i64>,
    last_modified: Option<DateTime<Utc>>,
    href: Option<Href>,
    etag: Option<Etag>,
    raw: String,
    #[serde(skip_deserializing)]
    details: Option<EventDetails>,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        EventRepr {
            key: self.key.clone(),
            fingerprint: self.fingerprint(),
            digest: self.digest().clone(),
            source_hash: self.source_hash,
            sequence: self.sequence,
            last_modified: self.last_modified,
            href: self.href.clone(),
            etag: self.etag.clone(),
            raw: self.raw().to_owned(),
            details: Some(self.details().clone()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Event {
    /// Reads the serialized form; `details` are re-parsed from `raw` when needed.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let r = EventRepr::deserialize(d)?;
        Ok(Self {
            key_digest: r.key.digest(),
            key: r.key,
            source_hash: r.source_hash,
            canon: OnceLock::from(Canonical { fingerprint: r.fingerprint, digest: r.digest }),
            policy: None,
            sequence: r.sequence,
            last_modified: r.last_modified,
            href: r.href,
            etag: r.etag,
            raw: RawText::owned(r.raw),
            details: OnceLock::new(),
            zones: None,
        })
    }
}
