//! What a store hands the planner: one calendar's stored entries, indexed by key, with its head
//! (cursor, revision, size).
//!
//! This floor sits between events and the planner: [`plan`](crate::plan()) reads a
//! [`StoredState`], and [`Store`](crate::Store) implementations build one.

use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::fingerprint::{Fingerprint, PropertyDigest, SourceHash};
use crate::id::{CalendarId, Cursor, Etag, EventKey, Href, KeyDigest};

/// A calendar's version in a store: it moves forward with every applied plan.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision of a calendar that was never applied.
    pub const ZERO: Self = Self(0);

    /// The next revision.
    #[must_use]
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }
}

/// A calendar's cursor, revision and size in a store.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CalendarHead {
    /// The cursor stored with the last applied plan.
    pub cursor: Option<Cursor>,
    /// The revision the next apply must expect.
    pub revision: Revision,
    /// How many events the calendar holds in all (also when only some were loaded).
    pub events: u64,
}

impl CalendarHead {
    /// A head with these values.
    #[must_use]
    pub fn new(cursor: Option<Cursor>, revision: Revision, events: u64) -> Self {
        Self { cursor, revision, events }
    }
}

/// What the planner needs to know about one stored event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredEntry {
    /// The event's key.
    pub key: EventKey,
    /// The fingerprint it was written with.
    pub fingerprint: Fingerprint,
    /// The source hash it was written with, when the store keeps it. With it, an event the
    /// source sends byte for byte as before (volatile lines aside) is unchanged without its
    /// fingerprint being computed; without it, every comparison computes the fingerprint.
    pub source_hash: Option<SourceHash>,
    /// The property digest it was written with, when the store keeps it (update reasons
    /// name the changed properties only when it does).
    pub digest: Option<PropertyDigest>,
    /// The source resource it came from.
    pub href: Option<Href>,
    /// The source resource's version tag.
    pub etag: Option<Etag>,
}

impl StoredEntry {
    /// An entry with just a key and a fingerprint.
    #[must_use]
    pub fn new(key: EventKey, fingerprint: Fingerprint) -> Self {
        Self { key, fingerprint, source_hash: None, digest: None, href: None, etag: None }
    }

    /// The entry describing `event` as written.
    #[must_use]
    pub fn of_event(event: &Event) -> Self {
        Self {
            key: event.key().clone(),
            fingerprint: event.fingerprint(),
            source_hash: Some(event.source_hash()),
            digest: Some(event.digest().clone()),
            href: event.href().cloned(),
            etag: event.etag().cloned(),
        }
    }

    /// The same entry with a source hash.
    #[must_use]
    pub fn with_source_hash(mut self, source_hash: Option<SourceHash>) -> Self {
        self.source_hash = source_hash;
        self
    }

    /// The same entry with a digest.
    #[must_use]
    pub fn with_digest(mut self, digest: Option<PropertyDigest>) -> Self {
        self.digest = digest;
        self
    }

    /// The same entry with a source resource.
    #[must_use]
    pub fn with_href(mut self, href: Option<Href>, etag: Option<Etag>) -> Self {
        self.href = href;
        self.etag = etag;
        self
    }
}

/// A hasher for [`EventKey`] maps: keys hash only their UID and recurrence id, which come from
/// remote data, so a keyed hasher keeps crafted UIDs from degrading lookups.
pub(crate) type KeyHasher = std::hash::RandomState;

/// Hashes a [`KeyDigest`] (already a 128-bit hash) by taking 64 of its bits.
#[derive(Default, Clone, Copy, Debug)]
pub(crate) struct DigestHasher(u64);

impl std::hash::Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only reached through `write_u128`'s default for unusual platforms: fold the bytes.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        #[allow(clippy::cast_possible_truncation)]
        {
            self.0 = (n as u64) ^ ((n >> 64) as u64);
        }
    }
}

/// A map keyed by [`KeyDigest`].
pub(crate) type DigestMap<V> = HashMap<KeyDigest, V, std::hash::BuildHasherDefault<DigestHasher>>;

/// One calendar's stored state, indexed by key for planning.
///
/// Cloning is cheap: the entries are shared (copy on write).
#[derive(Clone)]
pub struct StoredState {
    calendar: CalendarId,
    head: CalendarHead,
    rows: Arc<Rows>,
}

/// The indexed entries of a [`StoredState`].
#[derive(Clone, Default)]
struct Rows {
    entries: Vec<StoredEntry>,
    /// `entries[i].key.digest()`, contiguous, for the planner's sequential probe.
    digests: Vec<KeyDigest>,
    index: DigestMap<usize>,
}

impl StoredState {
    /// Indexes `entries` of `calendar`.
    ///
    /// # Errors
    /// [`ErrorKind::Storage`] when an entry belongs to another calendar or a key appears
    /// twice: a store in that state has lost its uniqueness guarantee, and planning over it
    /// could not be trusted.
    pub fn new(calendar: CalendarId, head: CalendarHead, entries: Vec<StoredEntry>) -> Result<Self> {
        let mut index = DigestMap::with_capacity_and_hasher(entries.len(), std::hash::BuildHasherDefault::default());
        let mut digests = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            if entry.key.calendar != calendar {
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!("stored state of {calendar} holds an event of another calendar: {}", entry.key),
                ));
            }
            let digest = entry.key.digest();
            digests.push(digest);
            if let Some(other) = index.insert(digest, i) {
                let other = entries.get(other).map_or_else(String::new, |e| e.key.to_string());
                return Err(Error::new(
                    ErrorKind::Storage,
                    format!("stored state holds {} twice (or a key digest collision with {other})", entry.key),
                ));
            }
        }
        Ok(Self { calendar, head, rows: Arc::new(Rows { entries, digests, index }) })
    }

    /// An empty state for a calendar never applied.
    #[must_use]
    pub fn empty(calendar: CalendarId) -> Self {
        Self { calendar, head: CalendarHead::default(), rows: Arc::default() }
    }

    /// The same entries under another head (a store that kept the entries and read the head).
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn with_head(&self, head: CalendarHead) -> Self {
        Self { calendar: self.calendar.clone(), head, rows: Arc::clone(&self.rows) }
    }

    /// Brings the entries to what a committed plan wrote: `written` holds the entries of its
    /// inserts and updates, `deleted` the keys it deleted. Copies the entries only when
    /// another clone still shares them.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn absorb(&mut self, head: CalendarHead, written: Vec<StoredEntry>, deleted: &[EventKey]) {
        self.head = head;
        let rows = Arc::make_mut(&mut self.rows);
        for key in deleted {
            let digest = key.digest();
            let Some(i) = rows.index.get(&digest).copied() else { continue };
            if rows.entries.get(i).is_none_or(|e| e.key != *key) {
                continue;
            }
            rows.index.remove(&digest);
            rows.entries.swap_remove(i);
            rows.digests.swap_remove(i);
            if let Some(moved) = rows.digests.get(i) {
                rows.index.insert(*moved, i);
            }
        }
        for entry in written {
            let digest = entry.key.digest();
            match rows.index.get(&digest).copied() {
                Some(i) if rows.entries.get(i).is_some_and(|e| e.key == entry.key) => {
                    if let Some(slot) = rows.entries.get_mut(i) {
                        *slot = entry;
                    }
                }
                _ => {
                    rows.index.insert(digest, rows.entries.len());
                    rows.entries.push(entry);
                    rows.digests.push(digest);
                }
            }
        }
    }

    /// The calendar.
    #[must_use]
    pub fn calendar(&self) -> &CalendarId {
        &self.calendar
    }

    /// Cursor, revision and size.
    #[must_use]
    pub fn head(&self) -> &CalendarHead {
        &self.head
    }

    /// The loaded entries, in load order.
    #[must_use]
    pub fn entries(&self) -> &[StoredEntry] {
        &self.rows.entries
    }

    /// The entry for `key`, if loaded.
    #[must_use]
    pub fn get(&self, key: &EventKey) -> Option<&StoredEntry> {
        self.position(key).and_then(|i| self.rows.entries.get(i))
    }

    pub(crate) fn position(&self, key: &EventKey) -> Option<usize> {
        let i = self.rows.index.get(&key.digest()).copied()?;
        (self.rows.entries.get(i)?.key == *key).then_some(i)
    }

    /// The entry position for a key digest, unverified (see [`KeyDigest`]). Tries `hint`
    /// first: remote answers and store loads usually list events in the same order, and a
    /// sequential probe avoids a random memory access per event on large calendars.
    pub(crate) fn position_by_digest(&self, digest: KeyDigest, hint: usize) -> Option<usize> {
        if self.rows.digests.get(hint) == Some(&digest) {
            return Some(hint);
        }
        self.rows.index.get(&digest).copied()
    }

    /// Number of loaded entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rows.entries.len()
    }

    /// Whether no entries were loaded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rows.entries.is_empty()
    }
}

impl Debug for StoredState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredState")
            .field("calendar", &self.calendar)
            .field("head", &self.head)
            .field("entries", &self.rows.entries.len())
            .finish_non_exhaustive()
    }
}
