//! [`CalDavSource`]: calendars of a CalDAV account, synced incrementally (feature `caldav`).
//!
//! The provider template: `config` (what the host sets), `client` (`WebDAV` requests on the
//! shared HTTP client), `wire` (the multistatus XML), `map` (resources to events, href
//! confinement, the cursor) and this module (discovery and the [`CalendarSource`]).

mod client;
mod config;
mod map;
mod wire;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::ics::ReadOptions;
use crate::id::{CalendarId, Href};
use crate::providers::http::client::Response as HttpResponse;
use crate::providers::http::origin::percent_decode;
use crate::source::{CalendarInfo, CalendarSource, Capabilities, Changes, Delta, FetchRequest, Fetched, Snapshot};

use client::Dav;
pub use config::{CalDavConfig, CalendarNaming};
use map::{DavCursor, is_collection_itself, member, read_resource};
use wire::{Multistatus, Response};

/// One calendar collection found on the server.
struct Collection {
    id: CalendarId,
    url: Url,
    name: Option<String>,
    color: Option<String>,
    /// The server answers sync-collection REPORTs for it (cleared when one is refused).
    sync: AtomicBool,
}

/// A CalDAV account (or one of its calendars) as a [`CalendarSource`]: iCloud, Fastmail,
/// Nextcloud, Google, Radicale, Xandikos and every server following RFC 4791 and RFC 6578.
///
/// # Discovery
///
/// [`discover`](Self::discover) accepts a server URL, a principal URL or a collection URL. It
/// asks for `current-user-principal` (trying `/.well-known/caldav` when the URL says nothing),
/// then the principal's `calendar-home-set`, then lists the calendars there (display name,
/// sync support, components; only calendars that can hold events are kept). Ids follow
/// [`CalendarNaming`].
///
/// # Sync
///
/// - With RFC 6578 (nearly every server): the cursor is the collection's sync token. A fetch
///   sends one `sync-collection` REPORT from it and fetches the changed resources with
///   `calendar-multiget`, in batches; members the server reports as gone become
///   [`Delta::removed_hrefs`]. A truncated answer (507 on the collection, with a continuation
///   token) is followed until complete. An invalid or expired token (403 or 412 naming
///   `DAV:valid-sync-token`) makes the fetch list the whole calendar instead and answer a
///   [`Snapshot`], from which deletions in the gap follow. An unchanged calendar costs one
///   request.
/// - Without it: the cursor holds the collection's ctag and every member's ETag. An unchanged
///   ctag costs one request; otherwise a Depth 1 PROPFIND lists the ETags and only members
///   whose ETag changed are fetched.
///
/// A resource holds a master and its overrides (RFC 4791): each becomes its own event, all
/// carrying the resource's href and ETag, and a changed resource replaces all of its events.
/// Fingerprints decide what is written, so a server that re-serializes (property order, line
/// endings) costs a fetch but no write.
///
/// # Safety
///
/// Every href in an answer must lie inside the collection being synced: same origin, under
/// the collection's path, no `..` or `.` segment, no encoded `/` or `\`. Anything else is
/// refused with a warning naming it, so a buggy or hostile server cannot write into another
/// calendar. Answers are bounded in size ([`HttpConfig::max_bytes`](crate::HttpConfig::max_bytes)) and XML depth, no DTD is
/// accepted and no external entity resolved. Credentials never appear in `Debug` output or
/// errors, which show the server's origin only. Idempotent requests are retried on 5xx, 429
/// and failed connections, with exponential backoff that honors `Retry-After`.
///
/// Needs a Tokio runtime with its time driver (reqwest does).
pub struct CalDavSource {
    dav: Dav,
    start: Url,
    config: CalDavConfig,
    collections: Mutex<Option<std::sync::Arc<Vec<Collection>>>>,
}

impl fmt::Debug for CalDavSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CalDavSource").field("server", &self.dav.shown()).finish_non_exhaustive()
    }
}

/// What a listing found: members with their ETags, and members gone.
#[derive(Default)]
struct Listing {
    changed: Vec<(String, Option<String>)>,
    removed: Vec<String>,
    sync_token: Option<String>,
}

impl CalDavSource {
    /// Connects to `url` (a server, principal or collection URL) and discovers its calendars.
    /// Credentials in the URL move to basic authentication.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for a URL that is not http(s); [`ErrorKind::Unauthorized`]
    /// when the server refuses the credentials; [`ErrorKind::NotFound`] when no calendar can be
    /// found from the URL; transport failures.
    pub async fn discover(url: &str, config: CalDavConfig) -> Result<Self> {
        let (dav, start) = Dav::new(url, &config)?;
        let source = Self { dav, start, config, collections: Mutex::new(None) };
        source.collections().await?;
        Ok(source)
    }

    /// Requests sent to the server so far (retries included).
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.dav.requests()
    }

    async fn send(&self, method: &str, url: &Url, depth: Option<&str>, body: Option<String>) -> Result<HttpResponse> {
        self.dav.send(method, url, depth, body).await
    }

    /// A PROPFIND answered as a multistatus.
    async fn propfind(&self, url: &Url, depth: &str, body: &str) -> Result<(Url, Multistatus)> {
        let answer = self.send("PROPFIND", url, Some(depth), Some(body.to_owned())).await?;
        let status = answer.status;
        if status != 207 {
            return Err(self.dav.status_error("PROPFIND", status));
        }
        let parsed = wire::parse_multistatus(&answer.body).map_err(|e| self.dav.xml_error("PROPFIND", &e))?;
        Ok((answer.url, parsed))
    }

    /// The calendars, discovered on first use.
    async fn collections(&self) -> Result<std::sync::Arc<Vec<Collection>>> {
        if let Some(c) = self.collections.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref() {
            return Ok(std::sync::Arc::clone(c));
        }
        let found = std::sync::Arc::new(self.discover_collections().await?);
        *self.collections.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::sync::Arc::clone(&found));
        Ok(found)
    }

    async fn discover_collections(&self) -> Result<Vec<Collection>> {
        let first = self.propfind(&self.start, "0", wire::PROPFIND_DISCOVERY).await;
        let (mut at, mut props) = match first {
            Ok((url, m)) => (url, m.responses.into_iter().next().map(|r| r.props).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::Transport => {
                (self.start.clone(), wire::Props::default())
            }
            Err(e) => return Err(e),
        };
        if props.is_calendar {
            let id = self.id_for(&at, true)?;
            let sync = AtomicBool::new(true);
            return Ok(vec![Collection { id, url: at, name: props.displayname, color: props.color, sync }]);
        }
        if props.principal.is_none() && props.home_sets.is_empty() {
            // The URL says nothing: the well-known entry point (RFC 6764) usually redirects to
            // where the server lives.
            let well_known = at.join("/.well-known/caldav").map_err(|e| Error::invalid(e.to_string()))?;
            if let Ok((url, m)) = self.propfind(&well_known, "0", wire::PROPFIND_DISCOVERY).await {
                at = url;
                props = m.responses.into_iter().next().map(|r| r.props).unwrap_or_default();
            }
        }
        let mut homes = props.home_sets.clone();
        if homes.is_empty() {
            if let Some(principal) = props.principal.as_deref() {
                let principal = self.same_origin(&at, principal)?;
                let (_, m) = self.propfind(&principal, "0", wire::PROPFIND_DISCOVERY).await?;
                homes = m.responses.into_iter().flat_map(|r| r.props.home_sets).collect();
            }
        }
        let homes: Vec<Url> = if homes.is_empty() {
            vec![at.clone()] // a calendar home given directly
        } else {
            homes.iter().map(|h| self.same_origin(&at, h)).collect::<Result<_>>()?
        };
        let mut found = Vec::new();
        for home in homes {
            let (home, m) = self.propfind(&home, "1", wire::PROPFIND_DISCOVERY).await?;
            for r in m.responses {
                if !r.props.is_calendar || r.props.vevent == Some(false) {
                    continue;
                }
                let Ok(url) = member(&home, &r.href, true) else { continue };
                let id = self.id_for(&url, false)?;
                let sync = AtomicBool::new(r.props.sync_collection);
                found.push(Collection { id, url, name: r.props.displayname, color: r.props.color, sync });
            }
        }
        if found.is_empty() {
            return Err(Error::new(ErrorKind::NotFound, format!("{}: no calendar found", self.dav.shown())));
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }

    /// `href` resolved against `base`, refused unless it stays on the same origin.
    fn same_origin(&self, base: &Url, href: &str) -> Result<Url> {
        let url = base.join(href).map_err(|_| self.dav.unsafe_href(href))?;
        if url.origin() != base.origin() {
            return Err(self.dav.unsafe_href(href));
        }
        Ok(url)
    }

    fn id_for(&self, collection: &Url, given: bool) -> Result<CalendarId> {
        match &self.config.naming {
            CalendarNaming::Url => {
                let mut url = collection.clone();
                let _ = url.set_username("");
                let _ = url.set_password(None);
                url.set_query(None);
                url.set_fragment(None);
                CalendarId::new(url.as_str())
            }
            CalendarNaming::Prefix(prefix) if given => CalendarId::new(prefix),
            CalendarNaming::Prefix(prefix) => {
                let segment = collection.path_segments().and_then(|mut s| s.rfind(|s| !s.is_empty()));
                let name = percent_decode(segment.unwrap_or("calendar"));
                CalendarId::new(format!("{prefix}/{name}"))
            }
        }
    }

    async fn collection(&self, id: &CalendarId) -> Result<(std::sync::Arc<Vec<Collection>>, usize)> {
        let all = self.collections().await?;
        let i = all
            .iter()
            .position(|c| &c.id == id)
            .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("{}: no calendar {id}", self.dav.shown())))?;
        Ok((all, i))
    }

    /// One sync-collection REPORT from `token`, following 507 continuations. `Ok(None)` when
    /// the token is no longer valid, or (for the initial, empty token) when the server refuses
    /// sync-collection altogether.
    async fn sync_report(&self, col: &Collection, token: &str) -> Result<Option<Listing>> {
        let mut listing = Listing::default();
        let mut token = token.to_owned();
        // A server that truncates forever is a server bug: bounded.
        for _ in 0..1000 {
            let answer = self.send("REPORT", &col.url, Some("1"), Some(wire::sync_collection(&token))).await?;
            match answer.status {
                207 => {}
                403 | 412 if wire::error_condition(&answer.body).as_deref() == Some("valid-sync-token") => {
                    return Ok(None);
                }
                // Some servers refuse an unknown or malformed token without naming the
                // precondition (a bare 403, 412 or 400).
                400 | 403 | 412 if !token.is_empty() => return Ok(None),
                // An initial report refused: the server does not do sync-collection here.
                400 | 403 | 405 | 501 if token.is_empty() => return Ok(None),
                status => return Err(self.dav.status_error("REPORT sync-collection", status)),
            }
            let m = wire::parse_multistatus(&answer.body).map_err(|e| self.dav.xml_error("REPORT", &e))?;
            let mut truncated = false;
            for r in m.responses {
                if r.status == Some(507) && member(&col.url, &r.href, false).is_err() {
                    truncated = true;
                    continue;
                }
                let Ok(url) = member(&col.url, &r.href, false) else {
                    if !is_collection_itself(&col.url, &r.href) {
                        return Err(self.dav.unsafe_href(&r.href));
                    }
                    continue;
                };
                let href = url.path().to_owned();
                if r.status == Some(404) {
                    listing.changed.retain(|(h, _)| h != &href);
                    listing.removed.push(href);
                } else {
                    listing.removed.retain(|h| h != &href);
                    listing.changed.push((href, r.props.etag));
                }
            }
            let next = m.sync_token.ok_or_else(|| {
                Error::new(ErrorKind::Parse, format!("{}: sync-collection answer without a token", self.dav.shown()))
            })?;
            listing.sync_token = Some(next.clone());
            if !truncated {
                return Ok(Some(listing));
            }
            token = next;
        }
        Err(Error::new(ErrorKind::LimitExceeded, format!("{}: sync-collection never completed", self.dav.shown())))
    }

    /// Every member with its ETag (Depth 1 PROPFIND), and the collection's ctag.
    async fn etag_listing(&self, col: &Collection) -> Result<(BTreeMap<String, String>, Option<String>)> {
        let (_, m) = self.propfind(&col.url, "1", wire::PROPFIND_ETAGS).await?;
        let mut etags = BTreeMap::new();
        let mut ctag = None;
        for r in m.responses {
            if is_collection_itself(&col.url, &r.href) {
                ctag = r.props.ctag;
                continue;
            }
            let url = member(&col.url, &r.href, false).map_err(|()| self.dav.unsafe_href(&r.href))?;
            if let Some(etag) = r.props.etag {
                etags.insert(url.path().to_owned(), etag);
            }
        }
        Ok((etags, ctag))
    }

    /// Fetches `hrefs` with calendar-multiget and reads their events. Answers the events, the
    /// hrefs the server no longer has, and how many resources could not be read.
    async fn multiget(
        &self,
        col: &Collection,
        hrefs: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<Event>, Vec<String>, usize)> {
        let mut events = Vec::new();
        let mut missing = Vec::new();
        let mut unreadable = 0;
        let options = ReadOptions::default();
        let max = self.config.max_events;
        let too_many = || {
            Error::new(ErrorKind::LimitExceeded, format!("{}: more than {max} events in {}", self.dav.shown(), col.id))
        };
        if hrefs.len() > max {
            return Err(too_many());
        }
        for batch in hrefs.chunks(self.config.multiget_batch.max(1)) {
            let body = wire::multiget(batch.iter().map(String::as_str));
            let answer = self.send("REPORT", &col.url, Some("1"), Some(body)).await?;
            if answer.status != 207 {
                return Err(self.dav.status_error("REPORT calendar-multiget", answer.status));
            }
            let m = wire::parse_multistatus(&answer.body).map_err(|e| self.dav.xml_error("REPORT", &e))?;
            // Answers come in any order: match them by href.
            let mut by_href: HashMap<String, Response> = HashMap::new();
            for r in m.responses {
                let url = member(&col.url, &r.href, false).map_err(|()| self.dav.unsafe_href(&r.href))?;
                by_href.insert(url.path().to_owned(), r);
            }
            for href in batch {
                let Some(r) = by_href.remove(href) else {
                    missing.push(href.clone());
                    continue;
                };
                let Some(data) = r.props.calendar_data.filter(|_| r.status.is_none_or(|s| s < 300)) else {
                    missing.push(href.clone());
                    continue;
                };
                match read_resource(&col.id, href, r.props.etag.as_deref(), &data, &options) {
                    Ok((mut read, notes)) => {
                        warnings.extend(notes);
                        events.append(&mut read);
                        if events.len() > max {
                            return Err(too_many());
                        }
                    }
                    Err(e) => {
                        unreadable += 1;
                        warnings.push(format!("{href}: {e}"));
                    }
                }
            }
        }
        Ok((events, missing, unreadable))
    }

    /// The whole calendar as a snapshot, with the cursor to continue from. Announced first: the
    /// engine loads the stored state during the listing and the downloads.
    async fn snapshot(
        &self,
        col: &Collection,
        request: FetchRequest<'_>,
        warnings: &mut Vec<String>,
    ) -> Result<(Changes, DavCursor)> {
        request.snapshot_coming().await;
        let (hrefs, cursor) = if col.sync.load(Ordering::Relaxed) {
            match self.sync_report(col, "").await {
                Ok(Some(listing)) => {
                    let hrefs: Vec<String> = listing.changed.into_iter().map(|(h, _)| h).collect();
                    (hrefs, DavCursor { sync_token: listing.sync_token, ..DavCursor::default() })
                }
                Err(e) => return Err(e),
                Ok(None) => {
                    // The server refuses even an initial sync-collection: it does not do them
                    // after all. List ETags instead, from now on.
                    col.sync.store(false, Ordering::Relaxed);
                    return Box::pin(self.snapshot(col, request, warnings)).await;
                }
            }
        } else {
            let (etags, ctag) = self.etag_listing(col).await?;
            let hrefs = etags.keys().cloned().collect();
            (hrefs, DavCursor { ctag, etags, ..DavCursor::default() })
        };
        let (events, _, unreadable) = self.multiget(col, &hrefs, warnings).await?;
        let snapshot = if unreadable == 0 { Snapshot::complete(events) } else { Snapshot::incomplete(events) };
        Ok((Changes::Snapshot(snapshot), cursor))
    }

    async fn fetch_collection(&self, col: &Collection, request: FetchRequest<'_>) -> Result<Fetched> {
        let cursor = request.cursor;
        let mut warnings = Vec::new();
        let previous = DavCursor::parse(cursor);
        if col.sync.load(Ordering::Relaxed) {
            if let Some(token) = previous.sync_token.as_deref() {
                if let Some(listing) = self.sync_report(col, token).await? {
                    let hrefs: Vec<String> = listing.changed.iter().map(|(h, _)| h.clone()).collect();
                    let (upserts, missing, unreadable) = self.multiget(col, &hrefs, &mut warnings).await?;
                    if unreadable > 0 {
                        warnings.push(format!(
                            "{unreadable} changed resources could not be read; their stored events are kept"
                        ));
                    }
                    let mut removed_hrefs: Vec<Href> = Vec::new();
                    for h in listing.removed.iter().chain(&missing) {
                        removed_hrefs.push(Href::new(h)?);
                    }
                    let delta = Delta { upserts, removals: Vec::new(), removed_hrefs };
                    let next = DavCursor { sync_token: listing.sync_token, ..DavCursor::default() };
                    return Ok(Fetched::new(Changes::Delta(delta), Some(next.to_cursor())).with_warnings(warnings));
                }
                warnings.push("sync token expired; listed the whole calendar".to_owned());
            }
            let (changes, next) = self.snapshot(col, request, &mut warnings).await?;
            return Ok(Fetched::new(changes, Some(next.to_cursor())).with_warnings(warnings));
        }
        // Without sync-collection: the ctag first, then ETags.
        if previous.ctag.is_some() {
            let (_, m) = self.propfind(&col.url, "0", wire::PROPFIND_CTAG).await?;
            let ctag = m.responses.into_iter().next().and_then(|r| r.props.ctag);
            if ctag.is_some() && ctag == previous.ctag {
                return Ok(Fetched::new(Changes::Delta(Delta::default()), cursor.cloned()));
            }
        }
        if previous.ctag.is_none() && previous.etags.is_empty() {
            let (changes, next) = self.snapshot(col, request, &mut warnings).await?;
            return Ok(Fetched::new(changes, Some(next.to_cursor())).with_warnings(warnings));
        }
        let (etags, ctag) = self.etag_listing(col).await?;
        let changed: Vec<String> =
            etags.iter().filter(|(h, e)| previous.etags.get(*h) != Some(*e)).map(|(h, _)| h.clone()).collect();
        let (upserts, missing, unreadable) = self.multiget(col, &changed, &mut warnings).await?;
        if unreadable > 0 {
            warnings.push(format!("{unreadable} changed resources could not be read; their stored events are kept"));
        }
        let mut removed_hrefs = Vec::new();
        for h in previous.etags.keys().filter(|h| !etags.contains_key(*h)).chain(&missing) {
            removed_hrefs.push(Href::new(h)?);
        }
        let next = DavCursor { ctag, etags, ..DavCursor::default() };
        let delta = Delta { upserts, removals: Vec::new(), removed_hrefs };
        Ok(Fetched::new(Changes::Delta(delta), Some(next.to_cursor())).with_warnings(warnings))
    }
}

impl CalDavSource {
    /// The fetch, without counting its requests.
    async fn fetch_uncounted(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let (all, i) = self.collection(request.calendar).await?;
        let col = all.get(i).ok_or_else(|| Error::new(ErrorKind::NotFound, "calendar list changed"))?;
        self.fetch_collection(col, request).await
    }
}

#[async_trait]
impl CalendarSource for CalDavSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only().with_cursor(true).with_delta(true).with_list_calendars(true)
    }

    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        let all = self.collections().await?;
        Ok(all.iter().map(|c| CalendarInfo::new(c.id.clone(), c.name.clone()).with_color(c.color.clone())).collect())
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        crate::source::counting(|| self.requests(), self.fetch_uncounted(request)).await
    }

    fn kind(&self) -> &'static str {
        "caldav"
    }
}

/// What calscope makes of a multistatus answer for `collection`, for the fuzz targets and
/// their seed replay: `None` when the answer is refused whole, else each response's href with
/// the member URL calscope would fetch (`None` when the href is refused), and the number of
/// events its calendar data holds. Not part of the API.
#[doc(hidden)]
#[must_use]
pub fn fuzz_multistatus(collection: &str, body: &[u8]) -> Option<Vec<(String, Option<String>, usize)>> {
    let collection = Url::parse(collection).ok()?;
    let calendar = CalendarId::new("fuzz").ok()?;
    let parsed = wire::parse_multistatus(body).ok()?;
    let options = ReadOptions::default();
    Some(
        parsed
            .responses
            .iter()
            .map(|r| {
                let url = member(&collection, &r.href, false).ok().map(|u| u.to_string());
                let events = r
                    .props
                    .calendar_data
                    .as_deref()
                    .filter(|_| url.is_some())
                    .and_then(|data| read_resource(&calendar, &r.href, r.props.etag.as_deref(), data, &options).ok())
                    .map_or(0, |(events, _)| events.len());
                (r.href.clone(), url, events)
            })
            .collect(),
    )
}
