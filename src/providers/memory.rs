//! An in-memory [`CalendarSource`] with a change log: snapshots, deltas and cursor expiry.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::id::{CalendarId, Cursor, EventKey};
use crate::source::{CalendarInfo, CalendarSource, Capabilities, Changes, Delta, FetchRequest, Fetched, Snapshot};

/// A [`CalendarSource`] over events held in memory.
///
/// Every change is logged with a version; a cursor is a version. A fetch with a cursor
/// answers a [`Delta`] of what changed since (unless the source is snapshot-only), and
/// [`expire_cursors`](Self::expire_cursors) forgets the log so older cursors fail with
/// [`ErrorKind::CursorExpired`], as sync tokens do on real servers. Hosts use it in tests and
/// to feed events they already hold.
#[derive(Debug)]
pub struct MemorySource {
    inner: Mutex<BTreeMap<CalendarId, Calendar>>,
    delta: bool,
}

#[derive(Debug, Default)]
struct Calendar {
    events: BTreeMap<EventKey, Event>,
    version: u64,
    /// (version, key) of every change after `floor`.
    log: Vec<(u64, EventKey)>,
    floor: u64,
}

impl Default for MemorySource {
    fn default() -> Self {
        Self::new()
    }
}

impl MemorySource {
    /// An empty source that answers deltas.
    #[must_use]
    pub fn new() -> Self {
        Self { inner: Mutex::default(), delta: true }
    }

    /// An empty source that always answers complete snapshots.
    #[must_use]
    pub fn snapshot_only() -> Self {
        Self { inner: Mutex::default(), delta: false }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<CalendarId, Calendar>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `calendar` exist (empty) so that it is listed and fetchable.
    pub fn add_calendar(&self, calendar: &CalendarId) {
        self.lock().entry(calendar.clone()).or_default();
    }

    /// Adds or replaces an event (in its key's calendar).
    pub fn put(&self, event: Event) {
        let mut inner = self.lock();
        let cal = inner.entry(event.key().calendar.clone()).or_default();
        cal.version += 1;
        cal.log.push((cal.version, event.key().clone()));
        cal.events.insert(event.key().clone(), event);
    }

    /// Removes an event; returns whether it existed.
    pub fn remove(&self, key: &EventKey) -> bool {
        let mut inner = self.lock();
        let Some(cal) = inner.get_mut(&key.calendar) else { return false };
        if cal.events.remove(key).is_none() {
            return false;
        }
        cal.version += 1;
        cal.log.push((cal.version, key.clone()));
        true
    }

    /// Replaces the whole content of `calendar`, logging only what differs.
    pub fn replace_all(&self, calendar: &CalendarId, events: Vec<Event>) {
        let mut wanted: BTreeMap<EventKey, Event> = BTreeMap::new();
        for e in events.into_iter().filter(|e| &e.key().calendar == calendar) {
            wanted.insert(e.key().clone(), e);
        }
        let current: Vec<EventKey> =
            self.lock().get(calendar).map(|c| c.events.keys().cloned().collect()).unwrap_or_default();
        for key in current.iter().filter(|k| !wanted.contains_key(k)) {
            self.remove(key);
        }
        self.add_calendar(calendar);
        for (key, event) in wanted {
            let same = self.lock().get(calendar).and_then(|c| c.events.get(&key)).is_some_and(|e| e == &event);
            if !same {
                self.put(event);
            }
        }
    }

    /// Forgets the change log of `calendar`: cursors issued before now expire.
    pub fn expire_cursors(&self, calendar: &CalendarId) {
        if let Some(cal) = self.lock().get_mut(calendar) {
            cal.log.clear();
            cal.floor = cal.version;
        }
    }
}

#[async_trait]
impl CalendarSource for MemorySource {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only().with_cursor(true).with_delta(self.delta).with_list_calendars(true)
    }

    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        Ok(self.lock().keys().map(|id| CalendarInfo::new(id.clone(), None)).collect())
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let inner = self.lock();
        let cal = inner
            .get(request.calendar)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("no calendar {}", request.calendar)))?;
        let next = Some(Cursor::new(format!("v{}", cal.version)));
        let since = match request.cursor {
            Some(c) if self.delta => {
                let v = c.as_str().strip_prefix('v').and_then(|v| v.parse::<u64>().ok());
                match v {
                    Some(v) if v >= cal.floor && v <= cal.version => Some(v),
                    _ => return Err(Error::new(ErrorKind::CursorExpired, "cursor is no longer valid")),
                }
            }
            _ => None,
        };
        let Some(since) = since else {
            return Ok(Fetched::new(
                Changes::Snapshot(Snapshot::complete(cal.events.values().cloned().collect())),
                next,
            ));
        };
        let mut touched: Vec<&EventKey> = cal.log.iter().filter(|(v, _)| *v > since).map(|(_, k)| k).collect();
        touched.sort();
        touched.dedup();
        let mut delta = Delta::default();
        for key in touched {
            match cal.events.get(key) {
                Some(e) => delta.upserts.push(e.clone()),
                None => delta.removals.push(key.clone()),
            }
        }
        Ok(Fetched::new(Changes::Delta(delta), next))
    }
}
