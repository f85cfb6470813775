//! The requests of [`GoogleSource`](super::GoogleSource): `calendarList` and `events.list`
//! pages on the shared [`HttpClient`], and what Google's error answers mean.

use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::providers::http::api::JsonApi;
use crate::providers::http::client::{Request, Response};
use crate::providers::http::config::HttpConfig;

use super::wire::{CalendarListPage, EventsPage, GoogleEvent, error_reason};

/// The event types asked for, on every call alike (Google's default has changed over time, so
/// the list is pinned; the sync token must always see the same query).
pub(crate) const EVENT_TYPES: [&str; 6] =
    ["birthday", "default", "focusTime", "fromGmail", "outOfOffice", "workingLocation"];

/// Events per page asked for (Google's maximum).
const MAX_RESULTS: &str = "2500";

/// Calendars per `calendarList` page asked for (Google's maximum).
const MAX_CALENDARS: &str = "250";

/// What an `events.list` call answered.
pub(crate) enum Listed {
    /// One page.
    Page(EventsPage),
    /// 410 to a sync token: a full listing is needed.
    Gone,
}

/// The client of one API root.
pub(crate) struct GoogleClient {
    api: JsonApi,
}

impl GoogleClient {
    /// A client for `api` (`https://www.googleapis.com/calendar/v3` or an emulator's root).
    pub(crate) fn new(api: &str, http: HttpConfig) -> Result<Self> {
        Ok(Self { api: JsonApi::new(api, "Google API", "google", http)? })
    }

    /// The API's origin, as errors show it.
    pub(crate) fn shown(&self) -> &str {
        self.api.http.shown()
    }

    /// Requests sent so far.
    pub(crate) fn requests(&self) -> u64 {
        self.api.http.requests()
    }

    /// One page of the account's calendars.
    pub(crate) async fn calendar_list(&self, page_token: Option<&str>) -> Result<CalendarListPage> {
        let mut url = self.api.url(&["users", "me", "calendarList"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("maxResults", MAX_CALENDARS);
            if let Some(token) = page_token {
                q.append_pair("pageToken", token);
            }
        }
        let answer = self.get(url).await?;
        if answer.status != 200 {
            return Err(self.error("calendarList", &answer));
        }
        self.api.json("calendarList", &answer.body)
    }

    /// One page of `events.list` for `calendar`: the pinned query, with the sync token when
    /// there is one (and none of the parameters Google forbids beside it).
    pub(crate) async fn events(
        &self,
        calendar: &str,
        sync_token: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<Listed> {
        let mut url = self.api.url(&["calendars", calendar, "events"])?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("maxResults", MAX_RESULTS);
            q.append_pair("singleEvents", "false");
            for kind in EVENT_TYPES {
                q.append_pair("eventTypes", kind);
            }
            if let Some(token) = sync_token {
                q.append_pair("syncToken", token);
            }
            if let Some(token) = page_token {
                q.append_pair("pageToken", token);
            }
        }
        let answer = self.get(url).await?;
        match answer.status {
            200 => self.api.json("events.list", &answer.body).map(Listed::Page),
            410 if sync_token.is_some() => Ok(Listed::Gone),
            _ => Err(self.error("events.list", &answer)),
        }
    }

    /// One event by id: `None` when it is gone (404, 410, or cancelled).
    pub(crate) async fn event(&self, calendar: &str, id: &str) -> Result<Option<GoogleEvent>> {
        let url = self.api.url(&["calendars", calendar, "events", id])?;
        let answer = self.get(url).await?;
        match answer.status {
            200 => {
                let event: GoogleEvent = self.api.json("events.get", &answer.body)?;
                Ok((event.status.as_deref() != Some("cancelled")).then_some(event))
            }
            404 | 410 => Ok(None),
            _ => Err(self.error("events.get", &answer)),
        }
    }

    async fn get(&self, url: Url) -> Result<Response> {
        self.api.http.send(Request::get(url).header("accept", "application/json").retry_if(is_rate_limit)).await
    }

    /// The error for an answer that is not a success. Google's reasons decide the kind:
    /// rate limits are [`ErrorKind::RateLimited`] (retryable), `quotaExceeded` too, without a
    /// retry of its own; any other 403 is [`ErrorKind::Unauthorized`], 404 is
    /// [`ErrorKind::NotFound`].
    pub(crate) fn error(&self, what: &str, answer: &Response) -> Error {
        let reason = error_reason(&answer.body);
        let shown = self.shown();
        let because = reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
        let kind = match (answer.status, reason.as_deref()) {
            (403 | 429, Some("rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded")) | (429, _) => {
                ErrorKind::RateLimited
            }
            (401 | 403, _) => ErrorKind::Unauthorized,
            (404 | 410, _) => ErrorKind::NotFound,
            (400, _) => ErrorKind::InvalidInput,
            (408 | 504, _) => ErrorKind::Timeout,
            _ => ErrorKind::Transport,
        };
        Error::new(kind, format!("{shown}: {what} answered {}{because}", answer.status))
    }
}

/// Google answers rate limits as 403 (or 429) naming `rateLimitExceeded` or
/// `userRateLimitExceeded`: retried with backoff. `quotaExceeded` (a usage limit for the day)
/// is not: retrying within a minute cannot help.
fn is_rate_limit(answer: &Response) -> bool {
    answer.status == 403
        && matches!(error_reason(&answer.body).as_deref(), Some("rateLimitExceeded" | "userRateLimitExceeded"))
}

impl std::fmt::Debug for GoogleClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleClient").field("api", &self.api).finish_non_exhaustive()
    }
}
