//! The requests of [`GraphSource`](super::GraphSource): calendars, `calendarView/delta` pages
//! and single events on the shared [`HttpClient`], at most four at once per mailbox.

use tokio::sync::Semaphore;
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::providers::http::api::JsonApi;
use crate::providers::http::client::{Request, Response};
use crate::providers::http::config::HttpConfig;

use super::wire::{CalendarsPage, DeltaPage, GraphEvent, error_code};

/// Graph's limit of concurrent requests per mailbox (Outlook resources).
pub(crate) const MAILBOX_CONCURRENCY: usize = 4;

/// What a delta page request answered.
pub(crate) enum Answered {
    /// One page.
    Page(DeltaPage),
    /// The delta token is gone (410, `syncStateNotFound`, `resyncRequired`): a new round, at
    /// the `Location` Graph names when it names one.
    Gone(Option<Url>),
}

/// The client of one mailbox.
pub(crate) struct GraphClient {
    api: JsonApi,
    page_size: u32,
    mailbox: Semaphore,
}

impl GraphClient {
    /// A client for `api` (`https://graph.microsoft.com/v1.0` or an emulator's root).
    pub(crate) fn new(api: &str, http: HttpConfig, page_size: u32) -> Result<Self> {
        let api = JsonApi::new(api, "Graph API", "graph", http)?;
        Ok(Self { api, page_size, mailbox: Semaphore::new(MAILBOX_CONCURRENCY) })
    }

    pub(crate) fn shown(&self) -> &str {
        self.api.http.shown()
    }

    pub(crate) fn requests(&self) -> u64 {
        self.api.http.requests()
    }

    /// `segments` under the API root.
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url> {
        self.api.url(segments)
    }

    /// A link Graph handed back (`@odata.nextLink`, `@odata.deltaLink`, `Location`) as a URL.
    /// The client refuses it before sending when it leaves the API's origin.
    pub(crate) fn link(&self, link: &str) -> Result<Url> {
        self.api.link(link)
    }

    async fn send(&self, url: Url) -> Result<Response> {
        let _permit = self
            .mailbox
            .acquire()
            .await
            .map_err(|_| Error::new(ErrorKind::Other, "the mailbox's request limiter was closed"))?;
        let request = Request::get(url)
            .header("accept", "application/json")
            .header("prefer", format!("odata.maxpagesize={}", self.page_size))
            .header("prefer", "outlook.timezone=\"UTC\"");
        self.api.http.send(request).await
    }

    fn error(&self, what: &str, answer: &Response) -> Error {
        let code = error_code(&answer.body);
        let because = code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
        let kind = match answer.status {
            429 => ErrorKind::RateLimited,
            401 | 403 => ErrorKind::Unauthorized,
            404 | 410 => ErrorKind::NotFound,
            400 => ErrorKind::InvalidInput,
            408 | 504 => ErrorKind::Timeout,
            _ => ErrorKind::Transport,
        };
        Error::new(kind, format!("{}: {what} answered {}{because}", self.shown(), answer.status))
    }

    /// One page of the mailbox's calendars.
    pub(crate) async fn calendars(&self, url: Url) -> Result<CalendarsPage> {
        let answer = self.send(url).await?;
        if answer.status != 200 {
            return Err(self.error("calendars", &answer));
        }
        self.api.json("calendars", &answer.body)
    }

    /// One page of a delta round.
    pub(crate) async fn delta(&self, url: Url) -> Result<Answered> {
        let answer = self.send(url).await?;
        let code = error_code(&answer.body);
        let gone = answer.status == 410
            || (400..500).contains(&answer.status)
                && matches!(code.as_deref(), Some("syncStateNotFound" | "resyncRequired"));
        if gone {
            let location = answer.header("location").and_then(|l| self.link(l).ok());
            return Ok(Answered::Gone(location));
        }
        if answer.status != 200 {
            return Err(self.error("calendarView/delta", &answer));
        }
        self.api.json("calendarView/delta", &answer.body).map(Answered::Page)
    }

    /// One event by id (a series master, or an instance whose row came partial).
    pub(crate) async fn event(&self, id: &str) -> Result<Option<GraphEvent>> {
        let answer = self.send(self.url(&["me", "events", id])?).await?;
        match answer.status {
            200 => self.api.json("events", &answer.body).map(Some),
            404 | 410 => Ok(None),
            _ => Err(self.error("events", &answer)),
        }
    }
}

impl std::fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphClient").field("api", &self.api).finish_non_exhaustive()
    }
}
