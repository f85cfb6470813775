//! [`IcsSource`]: one calendar from iCalendar text in a file or in memory.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, ErrorKind, Result};
use crate::ics::{ReadOptions, read_feed_owned};
use crate::id::{CalendarId, Cursor};
use crate::source::{CalendarInfo, CalendarSource, Capabilities, Changes, Delta, FetchRequest, Fetched};

/// One calendar read from iCalendar text: a file (read on every fetch) or bytes in memory.
///
/// Every fetch answers a complete [`Snapshot`](crate::Snapshot) (incomplete when some
/// components could not be read; see [`read_feed`](crate::ics::read_feed)), with a cursor that
/// is a hash of the whole text: when the text has not changed since the stored cursor, the fetch
/// answers an empty delta without reading a component, so an unchanged feed costs one hash.
///
/// File reads are blocking `std::fs` calls; async hosts that read large files should fetch the
/// bytes themselves (on a blocking pool) and use [`IcsSource::from_bytes`].
///
/// # Example
/// ```
/// use calscope::{CalendarId, Engine, IcsSource, MemoryStore};
/// # futures::executor::block_on(async {
/// let cal = CalendarId::new("holidays")?;
/// let feed = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:xmas\r\nDTSTART;VALUE=DATE:20261225\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
/// let source = IcsSource::from_bytes(cal.clone(), feed);
/// let engine = Engine::new(MemoryStore::new());
/// assert_eq!(engine.sync(&source, &cal).await.inserted, 1);
/// # Ok::<(), calscope::Error>(()) }).unwrap();
/// ```
pub struct IcsSource {
    calendar: CalendarId,
    origin: Origin,
    options: ReadOptions,
}

enum Origin {
    File(PathBuf),
    Bytes(Arc<Vec<u8>>),
}

impl IcsSource {
    /// A source reading the file at `path` for `calendar`.
    #[must_use]
    pub fn from_file(calendar: CalendarId, path: impl Into<PathBuf>) -> Self {
        Self { calendar, origin: Origin::File(path.into()), options: ReadOptions::default() }
    }

    /// A source over iCalendar text held in memory.
    #[must_use]
    pub fn from_bytes(calendar: CalendarId, bytes: impl Into<Vec<u8>>) -> Self {
        Self { calendar, origin: Origin::Bytes(Arc::new(bytes.into())), options: ReadOptions::default() }
    }

    /// The same source with other read options (fingerprint policy, limits).
    #[must_use]
    pub fn with_options(mut self, options: ReadOptions) -> Self {
        self.options = options;
        self
    }

    fn bytes(&self) -> Result<Vec<u8>> {
        match &self.origin {
            Origin::Bytes(b) => Ok(b.as_ref().clone()),
            Origin::File(path) => std::fs::read(path).map_err(|e| {
                let kind =
                    if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Transport };
                Error::new(kind, format!("cannot read {}", path.display())).with_source(e)
            }),
        }
    }
}

impl fmt::Debug for IcsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match &self.origin {
            Origin::File(p) => format!("file {}", p.display()),
            Origin::Bytes(b) => format!("{} bytes", b.len()),
        };
        f.debug_struct("IcsSource").field("calendar", &self.calendar).field("origin", &origin).finish_non_exhaustive()
    }
}

/// The cursor of a text: its 128-bit hash.
fn content_cursor(bytes: &[u8]) -> Cursor {
    Cursor::new(format!("xxh3:{:032x}", xxh3_128(bytes)))
}

#[async_trait]
impl CalendarSource for IcsSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only().with_cursor(true)
    }

    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        Ok(vec![CalendarInfo::new(self.calendar.clone(), None)])
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        if request.calendar != &self.calendar {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("this source serves {}, not {}", self.calendar, request.calendar),
            ));
        }
        let bytes = self.bytes()?;
        let cursor = content_cursor(&bytes);
        if request.cursor == Some(&cursor) {
            return Ok(Fetched::new(Changes::Delta(Delta::default()), Some(cursor)));
        }
        let read = read_feed_owned(&self.calendar, bytes, &self.options)?;
        let (snapshot, notes) = read.into_snapshot();
        Ok(Fetched::new(Changes::Snapshot(snapshot), Some(cursor)).with_warnings(notes))
    }
}
