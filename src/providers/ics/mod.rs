//! [`IcsSource`]: one calendar from iCalendar text in a file, in memory or (feature `http`) at
//! an http(s) URL.
//!
//! The provider template: `client` (the conditional GET, on the shared HTTP client), `cursor`
//! (the validators kept between fetches); the wire format and its mapping to events are the
//! crate's feed reader, [`ics::read_feed`](crate::ics::read_feed).

#[cfg(feature = "http")]
mod client;
mod cursor;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, ErrorKind, Result};
use crate::ics::{ReadOptions, read_feed_owned, read_feed_shared};
use crate::id::CalendarId;
use crate::source::{CalendarInfo, CalendarSource, Capabilities, Changes, Delta, FetchRequest, Fetched};
use cursor::Validators;

/// One calendar read from iCalendar text: a file (read on every fetch), bytes in memory, or
/// (feature `http`) an http(s) feed URL.
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
    Bytes(Memory),
    #[cfg(feature = "http")]
    Http(Box<client::HttpFeed>),
}

/// Feed bytes held in memory; checked (UTF-8) and hashed on the first fetch, in place, then
/// shared by every fetch without a copy.
struct Memory {
    len: usize,
    raw: std::sync::Mutex<Option<Vec<u8>>>,
    read: std::sync::OnceLock<(Checked, String)>,
}

/// The feed as text when it is UTF-8, else its bytes.
type Checked = Result<Arc<String>, Arc<Vec<u8>>>;

impl Memory {
    fn new(bytes: Vec<u8>) -> Self {
        Self { len: bytes.len(), raw: std::sync::Mutex::new(Some(bytes)), read: std::sync::OnceLock::new() }
    }

    /// The text (or, when it is not UTF-8, the bytes) and the hash of the bytes.
    fn get(&self) -> &(Checked, String) {
        self.read.get_or_init(|| {
            let bytes = self.raw.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take().unwrap_or_default();
            let hash = format!("{:032x}", xxh3_128(&bytes));
            let text = String::from_utf8(bytes).map(Arc::new).map_err(|e| Arc::new(e.into_bytes()));
            (text, hash)
        })
    }
}

/// What a fetch reads: owned bytes, or text shared with the source.
enum Body {
    Owned(Vec<u8>),
    Shared(Arc<String>),
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
        Self { calendar, origin: Origin::Bytes(Memory::new(bytes.into())), options: ReadOptions::default() }
    }

    /// A source fetching an `http`, `https` or `webcal` feed URL (feature `http`).
    ///
    /// Every fetch is a conditional GET (If-None-Match / If-Modified-Since from the validators
    /// kept in the cursor): a `304 Not Modified` answers an empty delta, so an unchanged feed
    /// costs one request and no parsing; a 200 whose body hashes the same as last time does too.
    /// Redirects, timeouts and the body size are bounded by `config`; gzip is accepted.
    /// Credentials in the URL move to basic authentication; neither they nor the URL's path
    /// (Google's secret address) appear in `Debug` output or errors, which show only the origin.
    /// Needs a Tokio runtime; if the process has no rustls crypto provider installed, the
    /// `ring` provider is installed as its default.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a URL that is not http(s)/webcal with a host.
    #[cfg(feature = "http")]
    pub fn from_url(
        calendar: CalendarId,
        url: &str,
        config: crate::providers::http::config::HttpConfig,
    ) -> Result<Self> {
        let feed = client::HttpFeed::new(url, config)?;
        Ok(Self { calendar, origin: Origin::Http(Box::new(feed)), options: ReadOptions::default() })
    }

    /// Requests sent to the feed's server so far, retries and redirects included (always 0 for
    /// files and bytes).
    #[must_use]
    pub fn requests(&self) -> u64 {
        match &self.origin {
            #[cfg(feature = "http")]
            Origin::Http(feed) => feed.requests(),
            _ => 0,
        }
    }

    /// The same source with other read options (fingerprint policy, limits).
    #[must_use]
    pub fn with_options(mut self, options: ReadOptions) -> Self {
        self.options = options;
        self
    }

    /// The current validators, and the text unless it is unchanged since `previous`.
    #[cfg_attr(not(feature = "http"), allow(clippy::unused_async))] // awaits only for http
    async fn load(&self, previous: &Validators) -> Result<(Option<Body>, Validators)> {
        let (bytes, etag, last_modified) = match &self.origin {
            Origin::Bytes(memory) => {
                let (text, hash) = memory.get();
                let validators = Validators { etag: None, last_modified: None, hash: Some(hash.clone()) };
                if validators.hash == previous.hash {
                    return Ok((None, validators));
                }
                let body = match text {
                    Ok(text) => Body::Shared(Arc::clone(text)),
                    Err(bytes) => Body::Owned(bytes.as_ref().clone()),
                };
                return Ok((Some(body), validators));
            }
            Origin::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    let kind = if e.kind() == std::io::ErrorKind::NotFound {
                        ErrorKind::NotFound
                    } else {
                        ErrorKind::Transport
                    };
                    Error::new(kind, format!("cannot read {}", path.display())).with_source(e)
                })?;
                (bytes, None, None)
            }
            #[cfg(feature = "http")]
            Origin::Http(feed) => match feed.get(previous).await? {
                client::Answer::NotModified if previous.hash.is_some() => {
                    return Ok((None, previous.clone()));
                }
                client::Answer::NotModified => {
                    let shown = feed.shown();
                    return Err(Error::new(
                        ErrorKind::Transport,
                        format!("{shown} answered 304 to an unconditional request"),
                    ));
                }
                client::Answer::Body { bytes, etag, last_modified } => (bytes, etag, last_modified),
            },
        };
        let hash = Some(format!("{:032x}", xxh3_128(&bytes)));
        let unchanged = hash == previous.hash;
        let validators = Validators { etag, last_modified, hash };
        Ok((if unchanged { None } else { Some(Body::Owned(bytes)) }, validators))
    }
}

impl fmt::Debug for IcsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match &self.origin {
            Origin::File(p) => format!("file {}", p.display()),
            Origin::Bytes(m) => format!("{} bytes", m.len),
            #[cfg(feature = "http")]
            Origin::Http(feed) => feed.shown().to_owned(),
        };
        f.debug_struct("IcsSource").field("calendar", &self.calendar).field("origin", &origin).finish_non_exhaustive()
    }
}

impl IcsSource {
    /// The fetch, without counting its requests.
    async fn fetch_uncounted(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        if request.calendar != &self.calendar {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("this source serves {}, not {}", self.calendar, request.calendar),
            ));
        }
        let previous = Validators::from_cursor(request.cursor);
        let (bytes, validators) = self.load(&previous).await?;
        let cursor = validators.to_cursor();
        let Some(bytes) = bytes else {
            // Unchanged since the stored cursor: nothing to read, nothing to write.
            return Ok(Fetched::new(Changes::Delta(Delta::default()), Some(cursor)));
        };
        // A new body is always read whole: the engine may load the stored state meanwhile.
        request.snapshot_coming().await;
        let read = match bytes {
            Body::Owned(bytes) => read_feed_owned(&self.calendar, bytes, &self.options)?,
            Body::Shared(text) => read_feed_shared(&self.calendar, text, &self.options)?,
        };
        let (snapshot, notes) = read.into_snapshot();
        Ok(Fetched::new(Changes::Snapshot(snapshot), Some(cursor)).with_warnings(notes))
    }
}

#[async_trait]
impl CalendarSource for IcsSource {
    fn capabilities(&self) -> Capabilities {
        // Its deltas are always empty: "unchanged since the cursor".
        Capabilities::snapshot_only().with_cursor(true).with_delta(true)
    }

    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        Ok(vec![CalendarInfo::new(self.calendar.clone(), None)])
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        crate::source::counting(|| self.requests(), self.fetch_uncounted(request)).await
    }

    fn kind(&self) -> &'static str {
        "ics"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::Cursor;
    use crate::source::SnapshotNotice;

    /// Fetches with the engine's notice attached; answers the fetch and whether it announced
    /// a snapshot.
    fn fetch_announcing(source: &IcsSource, cursor: Option<&Cursor>) -> (Fetched, bool) {
        let (notice, mut coming) = SnapshotNotice::new();
        let request = FetchRequest::new(&source.calendar, cursor).with_notice(&notice);
        let fetched = futures::executor::block_on(source.fetch(request)).unwrap();
        notice.close();
        (fetched, matches!(coming.try_recv(), Ok(Some(()))))
    }

    #[test]
    fn a_new_body_is_announced_as_a_snapshot_and_an_unchanged_one_is_not() {
        let cal = CalendarId::new("feed").unwrap();
        let feed =
            "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:1\r\nDTSTART:20260105T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let source = IcsSource::from_bytes(cal, feed.as_bytes().to_vec());
        let (first, announced) = fetch_announcing(&source, None);
        assert!(announced);
        assert!(matches!(first.changes, Changes::Snapshot(_)));
        let (again, announced) = fetch_announcing(&source, first.cursor.as_ref());
        assert!(!announced);
        assert!(matches!(again.changes, Changes::Delta(ref d) if d.is_empty()));
    }
}
