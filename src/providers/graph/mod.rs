//! [`GraphSource`]: Outlook and Microsoft 365 calendars through Microsoft Graph delta rounds
//! (feature `graph`).
//!
//! The provider template: `client` (calendars, delta pages and events on the shared HTTP
//! client, four at once per mailbox), `wire` (the JSON), `map` (instance rows to VEVENTs and
//! events, `GlobalObjectId` unwrapping) and this module (windows, rounds, merging, the
//! [`CalendarSource`]).

mod client;
mod map;
mod wire;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use url::Url;

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

use client::{Answered, GraphClient};
use map::{fill_from_master, is_partial, map_event};
use wire::{GraphCalendar, GraphEvent};

/// Microsoft Graph's API root.
pub const GRAPH_API: &str = "https://graph.microsoft.com/v1.0";

/// How a [`GraphSource`] talks to Graph and which window it mirrors.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GraphConfig {
    /// The API root. Default [`GRAPH_API`].
    pub api: String,
    /// Credentials (a [`TokenProvider`](crate::TokenProvider) as
    /// [`HttpAuth::Token`](crate::HttpAuth::Token), or a fixed bearer token), timeouts, the size
    /// cap of one page and the retries (429 and 503 honor `Retry-After`).
    pub http: HttpConfig,
    /// How far back the window reaches. Default 30 days.
    pub window_back: Duration,
    /// How far ahead the window reaches. Default 365 days.
    pub window_ahead: Duration,
    /// How far the window may slide before a new round starts. Default 7 days.
    pub window_step: Duration,
    /// Rows per page asked for (`Prefer: odata.maxpagesize`). Default 1,000.
    pub page_size: u32,
    /// Most pages one fetch follows (default 10,000): a server that pages forever (or repeats
    /// a link) stops there with [`ErrorKind::LimitExceeded`] and nothing written.
    pub max_pages: usize,
    /// Most rows one round accepts for a calendar (default 500,000): past it the fetch fails
    /// with [`ErrorKind::LimitExceeded`] and nothing is written.
    pub max_events: usize,
    /// How events are fingerprinted. Default [`FingerprintPolicy::default`].
    pub policy: FingerprintPolicy,
}

impl Default for GraphConfig {
    fn default() -> Self {
        Self {
            api: GRAPH_API.to_owned(),
            http: HttpConfig::default(),
            window_back: Duration::days(30),
            window_ahead: Duration::days(365),
            window_step: Duration::days(7),
            page_size: 1000,
            max_pages: 10_000,
            max_events: 500_000,
            policy: FingerprintPolicy::default(),
        }
    }
}

impl GraphConfig {
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

    /// Sets the window: `back` before now to `ahead` after it.
    #[must_use]
    pub fn window(mut self, back: Duration, ahead: Duration) -> Self {
        self.window_back = back;
        self.window_ahead = ahead;
        self
    }

    /// Sets how far the window may slide before a new round starts.
    #[must_use]
    pub fn window_step(mut self, step: Duration) -> Self {
        self.window_step = step;
        self
    }

    /// Sets the rows per page asked for.
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.max(1);
        self
    }

    /// Sets the most pages one fetch follows.
    #[must_use]
    pub fn max_pages(mut self, n: usize) -> Self {
        self.max_pages = n.max(1);
        self
    }

    /// Sets the most rows one round accepts for a calendar.
    #[must_use]
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }
}

/// Outlook and Microsoft 365 calendars through Microsoft Graph: `calendarView/delta` rounds
/// over a window of time.
///
/// # Sync
///
/// - A round follows `@odata.nextLink` through every page, empty ones included, to the
///   `@odata.deltaLink`. The first round over a window answers a complete [`Snapshot`] *of the
///   window*; later rounds, started from the stored deltaLink, answer [`Delta`]s. The cursor is
///   the whole deltaLink and the window it was made for.
/// - The window is [`GraphConfig::window_back`] before now to [`GraphConfig::window_ahead`]
///   after it. When it has slid by more than [`GraphConfig::window_step`] since the cursor's
///   round, a new round starts: its snapshot covers the new window, so events that fell out of
///   the window (the past beyond `window_back`) are deleted from the store, and events that
///   came into it are inserted. The store mirrors the window, nothing older.
/// - `@removed` means "no longer in this window" (deleted, or moved out of it): the instance
///   is removed. A 410 (whose `Location` is followed), `syncStateNotFound` or
///   `resyncRequired` starts a new round in the same fetch and answers it as a snapshot, so
///   deletions made while the token was stale are applied.
///
/// # Identity
///
/// calendarView gives instances, never series masters. A single instance is (UID, no
/// recurrence id); an occurrence or exception is (UID, RECURRENCE-ID = `originalStart`, a
/// DATE for all-day events). The UID is `iCalUId`, unwrapped from Exchange's `GlobalObjectId`
/// when it wraps a foreign UID, so one meeting has one UID in a user's Google and Outlook
/// calendars. Each instance is its own row, with its Graph `id` as href: an unchanged series
/// writes nothing, and availability reads the instances as they are.
///
/// # Rows that are not what they seem
///
/// Replayed and duplicated rows within a round are merged (the last one wins). A row that
/// carries only `id`, `type`, `start`, `end` and `seriesMasterId` (Graph sends them for
/// occurrences) is filled from its series master (one request per series and fetch), or fetched
/// whole; it never writes blanks over stored fields.
///
/// # Limits
///
/// At most four requests at once per mailbox (Graph's limit), across all calendars of the
/// source; 429 and 503 honor `Retry-After`; a 401 asks the token provider to refresh once.
/// Every link Graph hands back is followed only on the API's origin. Needs a Tokio runtime.
pub struct GraphSource {
    client: GraphClient,
    naming: Naming,
    config: GraphConfig,
    listed: Mutex<Option<Listed>>,
}

/// The mailbox's calendars with their unique names.
type Listed = Arc<Vec<(String, GraphCalendar)>>;

/// Cursor lines.
const DELTA_LINE: &str = "graph-delta ";
const WINDOW_LINE: &str = "graph-window ";

/// A round's window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Window {
    fn text(self) -> (String, String) {
        (self.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(), self.end.format("%Y-%m-%dT%H:%M:%SZ").to_string())
    }
}

/// What a cursor holds: the deltaLink and its window.
fn parse_cursor(cursor: Option<&Cursor>) -> Option<(&str, Window)> {
    let text = cursor?.as_str();
    let link = text.lines().find_map(|l| l.strip_prefix(DELTA_LINE))?;
    let window = text.lines().find_map(|l| l.strip_prefix(WINDOW_LINE))?;
    let (start, end) = window.split_once(' ')?;
    let parse = |t: &str| DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc));
    Some((link, Window { start: parse(start)?, end: parse(end)? }))
}

fn to_cursor(link: &str, window: Window) -> Cursor {
    let (start, end) = window.text();
    Cursor::new(format!("{DELTA_LINE}{link}\n{WINDOW_LINE}{start} {end}\n"))
}

/// One round's rows, merged by id.
#[derive(Default)]
struct Round {
    rows: Vec<GraphEvent>,
    at: HashMap<String, usize>,
}

impl Round {
    fn add(&mut self, row: GraphEvent) {
        let Some(id) = row.id.clone() else { return };
        // A replay of the same entity: the later row wins.
        if let Some(&i) = self.at.get(&id) {
            if let Some(slot) = self.rows.get_mut(i) {
                *slot = row;
            }
        } else {
            self.at.insert(id, self.rows.len());
            self.rows.push(row);
        }
    }
}

impl GraphSource {
    /// Every calendar of the mailbox, each as `PREFIX/NAME`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an API root that is not http(s).
    pub fn account(prefix: &str, config: GraphConfig) -> Result<Self> {
        let client = GraphClient::new(&config.api, config.http.clone(), config.page_size)?;
        Ok(Self { client, naming: Naming::Account(prefix.to_owned()), config, listed: Mutex::new(None) })
    }

    /// One calendar (its Graph id) under the host's id `id`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`] for an API root that is not http(s) or an empty calendar id.
    pub fn calendar(id: CalendarId, graph_calendar: &str, config: GraphConfig) -> Result<Self> {
        if graph_calendar.trim().is_empty() {
            return Err(Error::invalid("empty Graph calendar id"));
        }
        let client = GraphClient::new(&config.api, config.http.clone(), config.page_size)?;
        let naming = Naming::One { id, remote: graph_calendar.to_owned() };
        Ok(Self { client, naming, config, listed: Mutex::new(None) })
    }

    /// Requests sent so far (retries included).
    #[must_use]
    pub fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// Maps one Graph event row (JSON, as `calendarView/delta` answers its values) to the event
    /// calscope stores, for hosts that fetch from Graph themselves. `None` for a removal
    /// (`@removed`) and for a partial row (which needs its series master).
    ///
    /// # Errors
    /// [`ErrorKind::Parse`] for JSON that is not an event row, or a row calscope cannot render.
    pub fn event_from_json(calendar: &CalendarId, json: &str, policy: &FingerprintPolicy) -> Result<Option<Event>> {
        let row: GraphEvent = serde_json::from_str(json)
            .map_err(|e| Error::new(ErrorKind::Parse, "not a Graph event row").with_source(e))?;
        if row.removed.is_some() || is_partial(&row) {
            return Ok(None);
        }
        map_event(calendar, &row, policy).map(Some)
    }

    /// The mailbox's calendars with their unique names (every page), cached.
    async fn list(&self) -> Result<Listed> {
        if let Some(listed) = self.listed.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return Ok(Arc::clone(listed));
        }
        let mut all: Vec<GraphCalendar> = Vec::new();
        let mut url = self.client.url(&["me", "calendars"])?;
        let mut pages = Pages::new("calendars", self.client.shown(), self.config.max_pages, usize::MAX);
        loop {
            let page = self.client.calendars(url.clone()).await?;
            pages.page(page.value.len())?;
            all.extend(page.value);
            let Some(next) = page.next_link else { break };
            pages.next(&next)?;
            url = self.client.link(&next)?;
        }
        let mut names: HashMap<String, usize> = HashMap::new();
        let unique: Vec<(String, GraphCalendar)> = all
            .into_iter()
            .map(|c| {
                let base = c.name.clone().filter(|n| !n.trim().is_empty()).unwrap_or_else(|| c.id.clone());
                let n = names.entry(base.clone()).or_insert(0);
                *n += 1;
                let name = if *n == 1 { base } else { format!("{base}~{n}") };
                (name, c)
            })
            .collect();
        let unique = Arc::new(unique);
        *self.listed.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&unique));
        Ok(unique)
    }

    /// The Graph calendar id behind a host id.
    async fn graph_id(&self, id: &CalendarId) -> Result<String> {
        match self.naming.resolve(id)? {
            Named::One(graph) => Ok(graph.to_owned()),
            // In a mailbox, the rest of the id is a calendar's (unique) name.
            Named::InAccount(name) => {
                let listed = self.list().await?;
                listed
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, c)| c.id.clone())
                    .ok_or_else(|| Error::new(ErrorKind::NotFound, format!("this source does not serve {id}")))
            }
        }
    }

    fn window(&self) -> Window {
        let now = Utc::now();
        // Whole seconds: the window goes into URLs and cursors as text.
        let now = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        // A window reaching past chrono's range is cut at its ends, never a panic.
        let start = now.checked_sub_signed(self.config.window_back).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let end = now.checked_add_signed(self.config.window_ahead).unwrap_or(DateTime::<Utc>::MAX_UTC);
        Window { start, end }
    }

    fn initial(&self, graph: &str, window: Window) -> Result<Url> {
        let mut url = self.client.url(&["me", "calendars", graph, "calendarView", "delta"])?;
        let (start, end) = window.text();
        url.query_pairs_mut().append_pair("startDateTime", &start).append_pair("endDateTime", &end);
        Ok(url)
    }

    /// Every page of one round from `url`; `None` when the token is gone (with the Location).
    async fn round(&self, url: Url) -> Result<std::result::Result<(Round, String), Option<Url>>> {
        let mut round = Round::default();
        let mut url = url;
        let mut pages =
            Pages::new("calendarView/delta", self.client.shown(), self.config.max_pages, self.config.max_events);
        loop {
            let page = match self.client.delta(url.clone()).await? {
                Answered::Page(page) => page,
                Answered::Gone(location) => return Ok(Err(location)),
            };
            pages.page(page.value.len())?;
            for row in page.value {
                round.add(row);
            }
            match (page.next_link, page.delta_link) {
                (Some(next), _) => {
                    pages.next(&next)?;
                    url = self.client.link(&next)?;
                }
                (None, Some(delta)) => {
                    // A deltaLink off the API's origin is refused now, before it is stored.
                    let link = self.client.link(&delta)?;
                    if link.origin() != url.origin() {
                        return Err(Error::new(
                            ErrorKind::ScopeViolation,
                            format!("{}: refused a deltaLink to another origin", self.client.shown()),
                        ));
                    }
                    return Ok(Ok((round, link.to_string())));
                }
                (None, None) => {
                    return Err(Error::new(
                        ErrorKind::Parse,
                        format!("{}: a delta page with neither nextLink nor deltaLink", self.client.shown()),
                    ));
                }
            }
        }
    }

    /// The round's rows as events and removed hrefs; partial rows filled from their masters.
    async fn map_round(
        &self,
        calendar: &CalendarId,
        round: Round,
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<Event>, Vec<Href>, usize)> {
        let mut masters: HashMap<String, Option<GraphEvent>> = HashMap::new();
        let (mut events, mut removed, mut unreadable) = (Vec::new(), Vec::new(), 0usize);
        for row in round.rows {
            if row.removed.is_some() {
                if let Some(id) = row.id.as_deref() {
                    removed.push(Href::new(id)?);
                }
                continue;
            }
            let row = if is_partial(&row) {
                let filled = match (row.kind.as_deref(), row.series_master_id.clone()) {
                    (Some("occurrence"), Some(master)) => {
                        if !masters.contains_key(&master) {
                            let fetched = self.client.event(&master).await?;
                            masters.insert(master.clone(), fetched);
                        }
                        masters.get(&master).and_then(Option::as_ref).map(|m| fill_from_master(&row, m))
                    }
                    _ => match row.id.as_deref() {
                        Some(id) => self.client.event(id).await?,
                        None => None,
                    },
                };
                let Some(filled) = filled else {
                    // Its master is gone too: a removal will follow; write nothing now.
                    warnings.push(format!("skipped a partial row whose event is gone: {}", row.id.unwrap_or_default()));
                    continue;
                };
                filled
            } else {
                row
            };
            match map_event(calendar, &row, &self.config.policy) {
                Ok(event) => events.push(event),
                Err(e) => {
                    unreadable += 1;
                    warnings.push(format!("skipped: {}", e.message()));
                }
            }
        }
        Ok((events, removed, unreadable))
    }

    /// A new round over `window` (from `start`, or the initial URL), answered as a snapshot.
    async fn snapshot(
        &self,
        request: &FetchRequest<'_>,
        graph: &str,
        window: Window,
        start: Option<Url>,
        warnings: &mut Vec<String>,
    ) -> Result<Fetched> {
        request.snapshot_coming().await;
        let url = match start {
            Some(url) => url,
            None => self.initial(graph, window)?,
        };
        let Ok((round, link)) = self.round(url).await? else {
            return Err(Error::new(
                ErrorKind::Transport,
                format!("{}: a new delta round was refused as expired", self.client.shown()),
            ));
        };
        let (events, _, unreadable) = self.map_round(request.calendar, round, warnings).await?;
        let snapshot = if unreadable == 0 { Snapshot::complete(events) } else { Snapshot::incomplete(events) };
        Ok(Fetched::new(Changes::Snapshot(snapshot), Some(to_cursor(&link, window)))
            .with_warnings(std::mem::take(warnings)))
    }
}

impl fmt::Debug for GraphSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let naming = match &self.naming {
            Naming::Account(prefix) => format!("mailbox {prefix}/…"),
            Naming::One { id, .. } => format!("{id}"),
        };
        f.debug_struct("GraphSource")
            .field("api", &self.client.shown())
            .field("calendars", &naming)
            .finish_non_exhaustive()
    }
}

impl GraphSource {
    /// The fetch, without counting its requests.
    async fn fetch_uncounted(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        let graph = self.graph_id(request.calendar).await?;
        let window = self.window();
        let mut warnings = Vec::new();
        let Some((link, made_for)) = parse_cursor(request.cursor) else {
            return self.snapshot(&request, &graph, window, None, &mut warnings).await;
        };
        let slid = (window.start - made_for.start).abs() > self.config.window_step;
        if slid {
            warnings.push("the window slid: a new round over the new window".to_owned());
            return self.snapshot(&request, &graph, window, None, &mut warnings).await;
        }
        let url = self.client.link(link)?;
        let (round, next) = match self.round(url).await? {
            Ok(done) => done,
            Err(location) => {
                warnings.push("the delta token expired; a new round over the window".to_owned());
                // A Location off the API's origin is refused by the client before it is sent.
                return self.snapshot(&request, &graph, made_for, location, &mut warnings).await;
            }
        };
        let (upserts, removed_hrefs, _) = self.map_round(request.calendar, round, &mut warnings).await?;
        let delta = Delta { upserts, removals: Vec::new(), removed_hrefs };
        Ok(Fetched::new(Changes::Delta(delta), Some(to_cursor(&next, made_for))).with_warnings(warnings))
    }
}

#[async_trait]
impl CalendarSource for GraphSource {
    fn capabilities(&self) -> Capabilities {
        Capabilities::snapshot_only().with_cursor(true).with_delta(true).with_list_calendars(true)
    }

    async fn calendars(&self) -> Result<Vec<CalendarInfo>> {
        let listed = self.list().await?;
        let info = |id: CalendarId, c: &GraphCalendar| {
            let access = if c.can_edit { CalendarAccess::Write } else { CalendarAccess::Read };
            CalendarInfo::new(id, c.name.clone())
                .with_color(c.hex_color.clone().filter(|h| !h.is_empty()))
                .with_access(Some(access))
                .with_primary(c.is_default_calendar)
        };
        Ok(match &self.naming {
            Naming::Account(prefix) => listed
                .iter()
                .filter_map(|(name, c)| CalendarId::new(format!("{prefix}/{name}")).ok().map(|id| info(id, c)))
                .collect(),
            Naming::One { id, remote: graph } => match listed.iter().find(|(_, c)| &c.id == graph) {
                Some((_, c)) => vec![info(id.clone(), c)],
                None => vec![CalendarInfo::new(id.clone(), None)],
            },
        })
    }

    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched> {
        crate::source::counting(|| self.requests(), self.fetch_uncounted(request)).await
    }

    fn kind(&self) -> &'static str {
        "graph"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_hold_the_link_and_the_window() {
        let window = Window {
            start: DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z").unwrap().with_timezone(&Utc),
            end: DateTime::parse_from_rfc3339("2027-12-01T00:00:00Z").unwrap().with_timezone(&Utc),
        };
        let cursor =
            to_cursor("https://graph.microsoft.com/v1.0/me/calendars/A/calendarView/delta?$deltatoken=x", window);
        let (link, back) = parse_cursor(Some(&cursor)).unwrap();
        assert!(link.ends_with("$deltatoken=x"));
        assert_eq!(back, window);
        assert!(parse_cursor(Some(&Cursor::new("graph-delta x\n"))).is_none());
    }

    #[test]
    fn replays_merge_and_the_last_row_wins() {
        let mut round = Round::default();
        for subject in ["a", "b", "c"] {
            round.add(GraphEvent { id: Some("1".into()), subject: Some(subject.into()), ..GraphEvent::default() });
        }
        round.add(GraphEvent { id: Some("2".into()), ..GraphEvent::default() });
        round.add(GraphEvent::default());
        assert_eq!(round.rows.len(), 2);
        assert_eq!(round.rows[0].subject.as_deref(), Some("c"));
    }
}
