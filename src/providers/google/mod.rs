//! [`GoogleSource`]: Google Calendar accounts through the Calendar API v3 (feature `google`).
//!
//! The provider template: `client` (calendarList and events.list pages on the shared HTTP
//! client, Google's error reasons), `wire` (the JSON), `map` (event resources to VEVENTs and
//! events) and this module (naming, listing, sync tokens, the [`CalendarSource`]).

mod client;
mod map;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::fingerprint::FingerprintPolicy;
use crate::id::{CalendarId, Cursor, Href};
use crate::providers::http::config::HttpConfig;
use crate::source::{
    CalendarAccess, CalendarInfo, CalendarSource, Capabilities, Changes, Delta, FetchRequest, Fetched, Snapshot,
};

use crate::providers::naming::{Named, Naming};
use crate::providers::pages::Pages;

use client::{GoogleClient, Listed};
use map::{Mapped, map_event};
use wire::{CalendarListEntry, GoogleEvent};

/// Google's API root.
pub const GOOGLE_API: &str = "https://www.googleapis.com/calendar/v3";

/// How a [`GoogleSource`] talks to the Calendar API.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GoogleConfig {
    /// The API root. Default [`GOOGLE_API`]; tests and proxies point it elsewhere.
    pub api: String,
    /// Credentials ([`HttpAuth::Token`](crate::HttpAuth::Token) with the host's token
    /// provider, or a fixed bearer token), timeouts, the size cap of one page and the retries.
    pub http: HttpConfig,
    /// Most pages one fetch follows (default 10,000): a server that pages forever (or repeats
    /// a page token) stops there with [`ErrorKind::LimitExceeded`] and nothing written.
    pub max_pages: usize,
    /// Most events one fetch accepts for a calendar (default 500,000): past it the fetch fails
    /// with [`ErrorKind::LimitExceeded`] and nothing is written.
    pub max_events: usize,
    /// How events are fingerprinted. Default [`FingerprintPolicy::default`].
    pub policy: FingerprintPolicy,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        Self {
            api: GOOGLE_API.to_owned(),
            http: HttpConfig::default(),
            max_pages: 10_000,
            max_events: 500_000,
            policy: FingerprintPolicy::default(),
        }
    }
}

impl GoogleConfig {
    /// Sets the API root.
    #[must_use]
    pub fn api(mut self, api: impl Into<String>) -> Self {
        self.api = api.into();
        self
    }

    /// Sets the HTTP settings (credentials first of all).
    #[must_use]
    pub fn http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Sets the most pages one fetch follows.
    #[must_use]
    pub fn max_pages(mut self, n: usize) -> Self {
        self.max_pages = n.max(1);
        self
    }

    /// Sets the most events one fetch accepts for a calendar.
    #[must_use]
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }
}

/// Google Calendar through the Calendar API v3, incrementally with sync tokens.
///
/// # Sync
///
/// - A fetch without a cursor lists the calendar with `events.list` (`singleEvents=false`:
///   series masters and their exceptions, which is what calscope's keys are made for;
///   `maxResults=2500`; `eventTypes` pinned to every type), following `nextPageToken` to the
///   last page whatever the size of the pages before, and answers a complete [`Snapshot`]
///   whose cursor is the last page's `nextSyncToken`.
/// - A fetch with a cursor sends the same query with `syncToken` (never a parameter Google
///   forbids beside it) and answers a [`Delta`]. A 410 answers the whole listing instead, as a
///   complete snapshot, so deletions made while the token was stale are applied.
/// - An unchanged calendar costs one request.
///
/// # Identity
///
/// The UID is `iCalUID`; an exception's RECURRENCE-ID is its `originalStartTime` (a DATE for
/// all-day series, the UTC instant otherwise), as the ICS reader keys the same override. The
/// event's Google `id` is its href. A cancelled exception of a live series is stored as that
/// instance with `STATUS:CANCELLED` (its UID looked up from the series when Google sends only
/// ids); any other cancelled item removes the event of that id, and a removed series master
/// takes its exceptions along. A cancelled id never stored changes nothing.
///
/// # Content
///
/// Each event is rendered as a VEVENT (see [`GoogleSource::event_from_json`]) and read like any
/// other. What Google changes without a visible edit (`etag`, `updated`, `sequence`,
/// `htmlLink`, `reminders`, `colorId`, the `self` flags, conference data) never moves a
/// fingerprint.
///
/// # Errors
///
/// A 401 asks the token provider to refresh once, then fails as
/// [`ErrorKind::Unauthorized`]. Rate limits (403 or 429 naming `rateLimitExceeded` or
/// `userRateLimitExceeded`, and 500/502/503) are retried with jittered exponential backoff
/// that honors `Retry-After`, capped ([`HttpConfig::retry`](crate::HttpConfig::retry)); spent
/// retries and `quotaExceeded` fail as [`ErrorKind::RateLimited`] (retryable, later). Any other
/// 403 fails as [`ErrorKind::Unauthorized`], 404 as [`ErrorKind::NotFound`]; a calendar the
/// account may only see as free/busy is refused with a message saying so. An answer that is
/// not the documented JSON, or larger than the size cap, fails the fetch. Nothing is written
/// on any error, and tokens never appear in errors or `Debug`.
///
/// Needs a Tokio runtime (reqwest).
pub struct GoogleSource {
    client: GoogleClient,
    naming: Naming,
    config: GoogleConfig,
    listed: Mutex<Option<Arc<Vec<CalendarListEntry>>>>,
}

/// The cursor line holding a sync token.
const TOKEN_LINE: &str = "google-sync-token ";

impl GoogleSource {
    /// Every calendar of the account, each as `PREFIX/CALENDAR_ID`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an API root that is not http(s).
    pub fn account(prefix: &str, config: GoogleConfig) -> Result<Self> {
        let client = GoogleClient::new(&config.api, config.http.clone())?;
        Ok(Self { client, naming: Naming::Account(prefix.to_owned()), config, listed: Mutex::new(None) })
    }

    /// One calendar (`primary`, `alice@example.com`, `en.usa#holiday@group.v.calendar.google.com`)
    /// under the host's id `id`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an API root that is not http(s) or an empty calendar id.
    pub fn calendar(id: CalendarId, google_calendar: &str, config: GoogleConfig) -> Result<Self> {
        if google_calendar.trim().is_empty() {
            return Err(Error::invalid("empty Google calendar id"));
        }
        let client = GoogleClient::new(&config.api, config.http.clone())?;
        let naming = Naming::One { id, remote: google_calendar.to_owned() };
        Ok(Self { client, naming, config, listed: Mutex::new(None) })
    }

    /// Requests sent so far (retries included).
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// Maps one Google event resource (JSON, as `events.list` answers its items) to the event
    /// calscope stores, for hosts that fetch from Google themselves. `None` for a deleted event
    /// and for a cancelled exception that does not carry its `iCalUID`.
    ///
    /// # Errors
    /// [`ErrorKind::Parse`] for JSON that is not an event resource, or an event calscope
    /// cannot render (no `id`, no `iCalUID` on a live event, an unreadable start, a
    /// `recurrence` line that is not one).
    ///
    /// # Example
    /// ```
    /// use calscope::{CalendarId, FingerprintPolicy, GoogleSource};
    /// let cal = CalendarId::new("alice")?;
    /// let json = r#"{"id":"abc","iCalUID":"abc@google.com","summary":"Lunch",
    ///   "start":{"dateTime":"2026-12-01T12:00:00+01:00","timeZone":"Europe/Berlin"},
    ///   "end":{"dateTime":"2026-12-01T13:00:00+01:00","timeZone":"Europe/Berlin"}}"#;
    /// let event = GoogleSource::event_from_json(&cal, json, &FingerprintPolicy::default())?.unwrap();
    /// assert_eq!(event.key().uid.as_str(), "abc@google.com");
    /// assert_eq!(event.details().summary.as_deref(), Some("Lunch"));
    /// # Ok::<(), calscope::Error>(())
    /// ```
    pub fn event_from_json(calendar: &CalendarId, json: &str, policy: &FingerprintPolicy) -> Result<Option<Event>> {
        let event: GoogleEvent = serde_json::from_str(json)
            .map_err(|e| Error::new(ErrorKind::Parse, "not a Google event resource").with_source(e))?;
        Ok(match map_event(calendar, &event, None, policy)? {
            Mapped::Event(e) => Some(*e),
            Mapped::Removed(_) | Mapped::CancelledInstance { .. } => None,
        })
    }

    /// The Google calendar id behind a host id.
    fn google_id<'a>(&'a self, id: &'a CalendarId) -> Result<&'a str> {
        // In an account, the rest of the id is the Google calendar id itself.
        Ok(match self.naming.resolve(id)? {
            Named::One(google) | Named::InAccount(google) => google,
        })
    }

    /// Every calendar of the account (every page), cached for the source's life.
    async fn list(&self) -> Result<Arc<Vec<CalendarListEntry>>> {
        if let Some(listed) = self.listed.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return Ok(Arc::clone(listed));
        }
        let mut all = Vec::new();
        let mut page_token: Option<String> = None;
        let mut pages = Pages::new("calendarList", self.client.shown(), self.config.max_pages, usize::MAX);
        loop {
            let page = self.client.calendar_list(page_token.as_deref()).await?;
            pages.page(page.items.len())?;
            all.extend(page.items.into_iter().filter(|c| !c.deleted));
            let Some(next) = page.next_page_token else { break };
            pages.next(&next)?;
            page_token = Some(next);
        }
        let all = Arc::new(all);
        *self.listed.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&all));
        Ok(all)
    }

    fn info(id: CalendarId, entry: &CalendarListEntry) -> CalendarInfo {
        let access = match entry.access_role.as_deref() {
            Some("owner") => Some(CalendarAccess::Owner),
            Some("writer") => Some(CalendarAccess::Write),
            Some("reader") => Some(CalendarAccess::Read),
            Some("freeBusyReader") => Some(CalendarAccess::FreeBusyOnly),
            _ => None,
        };
        let name = entry.summary_override.clone().or_else(|| entry.summary.clone());
        CalendarInfo::new(id, name)
            .with_color(entry.background_color.clone())
            .with_time_zone(entry.time_zone.clone())
            .with_access(access)
            .with_primary(entry.primary)
    }

    /// The list entry of a Google calendar id (`primary` is the primary entry), when listed.
    fn entry<'a>(listed: &'a [CalendarListEntry], google: &str) -> Option<&'a CalendarListEntry> {
        listed.iter().find(|c| c.id == google || (google == "primary" && c.primary))
    }

    /// Every page of one listing; `None` when the sync token is gone (410).
    async fn listing(&self, google: &str, sync_token: Option<&str>) -> Result<Option<(Vec<GoogleEvent>, String)>> {
        let mut items = Vec::new();
        let mut page_token: Option<String> = None;
        let mut pages = Pages::new("events.list", self.client.shown(), self.config.max_pages, self.config.max_events);
        loop {
            let page = match self.client.events(google, sync_token, page_token.as_deref()).await {
                Ok(Listed::Page(page)) => page,
                Ok(Listed::Gone) => return Ok(None),
                Err(e) => return Err(self.explain(google, e).await),
            };
            pages.page(page.items.len())?;
            items.extend(page.items);
            let Some(next) = page.next_page_token else {
                let token = page.next_sync_token.filter(|t| !t.is_empty() && !t.contains(['\r', '\n']));
                let token = token.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Parse,
                        format!("{}: the last events.list page has no nextSyncToken", self.client.shown()),
                    )
                })?;
                return Ok(Some((items, token)));
            };
            pages.next(&next)?;
            page_token = Some(next);
        }
    }

    /// A 403 or 404 to a calendar the account sees as free/busy only says so.
    async fn explain(&self, google: &str, error: Error) -> Error {
        if !matches!(error.kind(), ErrorKind::Unauthorized | ErrorKind::NotFound) {
            return error;
        }
        let free_busy = match self.list().await {
            Ok(listed) => {
                Self::entry(&listed, google).is_some_and(|e| e.access_role.as_deref() == Some("freeBusyReader"))
            }
            Err(_) => false,
        };
        if free_busy {
            return Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "{}: calendar {google} is shared as free/busy only; its events cannot be read",
                    self.client.shown()
                ),
            );
        }
        error
    }

    /// Maps a listing's items. Cancelled exceptions without a UID get their series' UID: from
    /// the listing when the master is in it, else by asking for the master once.
    async fn map_items(
        &self,
        calendar: &CalendarId,
        google: &str,
        items: &[GoogleEvent],
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<Event>, Vec<Href>, usize)> {
        let mut uids: HashMap<String, Option<String>> =
            items.iter().filter_map(|e| Some((e.id.clone()?, Some(e.ical_uid.clone()?)))).collect();
        let (mut events, mut removed, mut unreadable) = (Vec::new(), Vec::new(), 0usize);
        for item in items {
            let mut mapped = map_event(calendar, item, None, &self.config.policy);
            if let Ok(Mapped::CancelledInstance { series }) = &mapped {
                let uid = if let Some(uid) = uids.get(series) {
                    uid.clone()
                } else {
                    let master = self.client.event(google, series).await?;
                    let uid = master.and_then(|m| m.ical_uid);
                    uids.insert(series.clone(), uid.clone());
                    uid
                };
                mapped = match uid {
                    Some(uid) => map_event(calendar, item, Some(&uid), &self.config.policy),
                    // The series is gone too: its removal takes the instance along.
                    None => continue,
                };
            }
            match mapped {
                Ok(Mapped::Event(e)) => events.push(*e),
                Ok(Mapped::Removed(href)) => removed.push(href),
                Ok(Mapped::CancelledInstance { .. }) => {}
                Err(e) => {
                    unreadable += 1;
                    warnings.push(format!("skipped: {}", e.message()));
                }
            }
        }
        Ok((events, removed, unreadable))
    }

    async fn snapshot(&self, request: &FetchRequest<'_>, google: &str, warnings: &mut Vec<String>) -> Result<Fetched> {
        request.snapshot_coming().await;
        let (items, token) = self.listing(google, None).await?.ok_or_else(|| {
            Error::new(ErrorKind::Transport, format!("{}: a listing without a token answered 410", self.client.shown()))
        })?;
        let (events, _, unreadable) = self.map_items(request.calendar, google, &items, warnings).await?;
        // Unreadable items are kept as they were: an incomplete snapshot deletes nothing.
        let snapshot = if unreadable == 0 { Snapshot::complete(events) } else { Snapshot::incomplete(events) };
        Ok(Fetched::new(Changes::Snapshot(snapshot), Some(cursor(&token))).with_warnings(std::mem::take(warnings)))
    }
}

fn cursor(token: &str) -> Cursor {
    Cursor::new(format!("{TOKEN_LINE}{token}\n"))
}

fn sync_token(cursor: Option<&Cursor>) -> Option<&str> {
    cursor?.as_str().lines().find_map(|l| l.strip_prefix(TOKEN_LINE)).filter(|t| !t.is_empty())
}

impl fmt::Debug for GoogleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let naming = match &self.naming {
            Naming::Account(prefix) => format!("account {prefix}/…"),
            Naming::One { id, remote: google } => format!("{id} = {google}"),
        };
        f.debug_struct("GoogleSource")
            .field("api", &self.client.shown())
            .field("calendars", &naming)
            .finish_non_exhaustive()
    }
}

impl GoogleSource {
    /// The fetch, without counting its requests.
    async fn fetch_uncounted(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let google = self.google_id(request.calendar)?;
        if let Some(listed) = self.listed.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            if Self::entry(listed, google).is_some_and(|e| e.access_role.as_deref() == Some("freeBusyReader")) {
                return Err(Error::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "{}: calendar {google} is shared as free/busy only; its events cannot be read",
                        self.client.shown()
                    ),
                ));
            }
        }
        let mut warnings = Vec::new();
        let Some(token) = sync_token(request.cursor) else {
            return self.snapshot(&request, google, &mut warnings).await;
        };
        let Some((items, next)) = self.listing(google, Some(token)).await? else {
            warnings.push("the sync token expired (410); listed the calendar whole".to_owned());
            return self.snapshot(&request, google, &mut warnings).await;
        };
        let (upserts, removed_hrefs, _) = self.map_items(request.calendar, google, &items, &mut warnings).await?;
        if !removed_hrefs.is_empty() {
            // A removed master takes its exceptions along, which the planner finds only in the
            // whole stored state (each exception is a resource of its own): ask for it.
            request.snapshot_coming().await;
        }
        let delta = Delta { upserts, removals: Vec::new(), removed_hrefs };
        Ok(Fetched::new(Changes::Delta(delta), Some(cursor(&next))).with_warnings(warnings))
    }
}

#[async_trait]
impl CalendarSource for GoogleSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only().with_cursor(true).with_delta(true).with_list_calendars(true)
    }

    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        let listed = self.list().await?;
        Ok(match &self.naming {
            Naming::Account(prefix) => listed
                .iter()
                .filter_map(|e| CalendarId::new(format!("{prefix}/{}", e.id)).ok().map(|id| Self::info(id, e)))
                .collect(),
            Naming::One { id, remote: google } => match Self::entry(&listed, google) {
                Some(entry) => vec![Self::info(id.clone(), entry)],
                None => vec![CalendarInfo::new(id.clone(), None)],
            },
        })
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        crate::source::counting(|| self.requests(), self.fetch_uncounted(request)).await
    }

    fn kind(&self) -> &'static str {
        "google"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hold_the_token_and_refuse_injected_lines() {
        assert_eq!(sync_token(Some(&cursor("CPDAlvWDx70CEPDAlvWDx70CGAU="))), Some("CPDAlvWDx70CEPDAlvWDx70CGAU="));
        assert_eq!(sync_token(None), None);
        assert_eq!(sync_token(Some(&Cursor::new("etag x\n"))), None);
    }

    #[test]
    fn ids_map_to_google_calendars() {
        let account = GoogleSource::account("me", GoogleConfig::default()).unwrap();
        let id = CalendarId::new("me/en.usa#holiday@group.v.calendar.google.com").unwrap();
        assert_eq!(account.google_id(&id).unwrap(), "en.usa#holiday@group.v.calendar.google.com");
        assert!(account.google_id(&CalendarId::new("other/x").unwrap()).is_err());
        assert!(account.google_id(&CalendarId::new("me/").unwrap()).is_err());
        let one = GoogleSource::calendar(CalendarId::new("work").unwrap(), "primary", GoogleConfig::default()).unwrap();
        assert_eq!(one.google_id(&CalendarId::new("work").unwrap()).unwrap(), "primary");
        assert!(one.google_id(&CalendarId::new("me/primary").unwrap()).is_err());
    }
}
