//! [`HttpClient`]: one origin's client, shared by every HTTP provider.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use url::Url;

use crate::error::{Error, ErrorKind, Result};

use super::config::{HttpAuth, HttpConfig};
use super::origin::shown;
use super::retry::retry_after;
use crate::schedule::RateLimits;

/// Where a client may follow a redirect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Redirects {
    /// Only on the client's origin: a redirect elsewhere fails as a scope violation (API
    /// providers, whose credentials must never leave their origin).
    SameOrigin,
    /// Anywhere, but credentials are sent only on the client's origin (ICS feeds, which are
    /// often served from another host than the one linked).
    Anywhere,
}

/// One request: the method, the URL (on the client's origin), headers and a body.
pub(crate) struct Request {
    method: reqwest::Method,
    url: Url,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
    retry_if: Option<fn(&Response) -> bool>,
}

impl Request {
    /// A request with `method` (every method calscope sends is idempotent: GET, PROPFIND,
    /// REPORT, so every request may be retried).
    pub(crate) fn new(method: reqwest::Method, url: Url) -> Self {
        Self { method, url, headers: Vec::new(), body: None, retry_if: None }
    }

    /// A GET.
    pub(crate) fn get(url: Url) -> Self {
        Self::new(reqwest::Method::GET, url)
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Also retries answers for which `f` is true (a provider's own rate-limit answers, such
    /// as Google's 403 naming `rateLimitExceeded`).
    #[cfg_attr(not(feature = "google"), allow(dead_code))] // Google's 403 reasons
    pub(crate) fn retry_if(mut self, f: fn(&Response) -> bool) -> Self {
        self.retry_if = Some(f);
        self
    }

    /// Sets the body.
    #[cfg_attr(not(any(feature = "caldav", feature = "google")), allow(dead_code))] // GETs have none
    pub(crate) fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = Some(body.into());
        self
    }
}

/// One answer, its body read whole (within the size cap).
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
    /// Where the answer came from, after redirects.
    #[cfg_attr(not(feature = "caldav"), allow(dead_code))] // feeds need not know
    pub(crate) url: Url,
}

impl Response {
    /// A header's value, when it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What one attempt gave.
enum Attempt {
    Answer(Response),
    Retry(Error),
    Fail(Error),
}

/// The client of one origin (scheme, host, port).
///
/// - A request for a URL of another origin fails as [`ErrorKind::ScopeViolation`] before
///   anything is sent.
/// - Redirects are followed by [`Redirects`], at most [`HttpConfig::max_redirects`].
/// - Bodies over [`HttpConfig::max_bytes`] fail as [`ErrorKind::LimitExceeded`].
/// - 429, 5xx (but 501, 505, 507), failed connections and the answers a request names
///   ([`Request::retry_if`]) are retried
///   by [`HttpConfig::retry`], honoring `Retry-After`; when the retries are spent, the last
///   answer is returned (or the last transport error).
/// - With [`HttpAuth::Token`], a 401 asks the provider to refresh once and sends again.
/// - Errors and `Debug` show the origin only; every request sent is counted.
pub(crate) struct HttpClient {
    client: reqwest::Client,
    origin: url::Origin,
    shown: String,
    config: HttpConfig,
    redirects: Redirects,
    requests: AtomicU64,
    /// The provider's name in metrics and events (`ics`, `caldav`, `google`, `graph`, `oauth`).
    provider: &'static str,
    /// The shared limits and this client's key in them.
    limit: Option<(RateLimits, String)>,
}

impl HttpClient {
    /// A client for `base`'s origin.
    ///
    /// # Errors
    /// [`ErrorKind::Other`] when the TLS stack cannot be set up.
    pub(crate) fn new(base: &Url, config: HttpConfig, redirects: Redirects, provider: &'static str) -> Result<Self> {
        // The ring provider, unless the host installed another one for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            // Redirects are followed here, by policy.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, "cannot build the http client").with_source(e.without_url()))?;
        let limit = config.rate_limits.clone().map(|limits| {
            let key = config.rate_key.clone().unwrap_or_else(|| base.host_str().unwrap_or_default().to_owned());
            (limits, key)
        });
        Ok(Self {
            client,
            origin: base.origin(),
            shown: shown(base),
            config,
            redirects,
            requests: AtomicU64::new(0),
            provider,
            limit,
        })
    }

    /// The origin, as errors and `Debug` show it.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// The configuration.
    #[cfg(test)]
    pub(crate) fn config(&self) -> &HttpConfig {
        &self.config
    }

    /// Requests sent so far (each retry and each redirect is one).
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Sends `request`, following redirects and retrying by policy.
    ///
    /// # Errors
    /// [`ErrorKind::ScopeViolation`] for a URL (or a same-origin-only redirect) off the
    /// origin; [`ErrorKind::LimitExceeded`] for a body over the cap; [`ErrorKind::Timeout`] or
    /// [`ErrorKind::Transport`] when the server cannot be reached (after the retries); what the
    /// token provider fails with.
    pub(crate) async fn send(&self, request: Request) -> Result<Response> {
        if request.url.origin() != self.origin {
            return Err(self.off_origin("a request"));
        }
        let mut backoff = self.config.retry.backoff();
        let mut url = request.url.clone();
        let (mut redirects, mut refreshed) = (0usize, false);
        let mut token = None;
        loop {
            let on_origin = url.origin() == self.origin;
            if on_origin && token.is_none() {
                if let Some(HttpAuth::Token(provider)) = &self.config.auth {
                    token = Some(provider.token().await?);
                }
            }
            // A place in the shared limits, held for the attempt.
            let permit = match &self.limit {
                Some((limits, key)) => Some(limits.acquire(key, tokio::time::sleep).await),
                None => None,
            };
            self.requests.fetch_add(1, Ordering::Relaxed);
            crate::observe::request(self.provider);
            let attempt =
                self.attempt(&request, &url, on_origin, token.as_ref().map(super::token::Secret::expose)).await;
            drop(permit);
            let answer = match attempt {
                Attempt::Fail(err) => return Err(err),
                Attempt::Retry(err) => match backoff.next_wait(None) {
                    Some(wait) => {
                        crate::observe::retry(self.provider, &self.shown, 0, wait);
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => return Err(err),
                },
                Attempt::Answer(answer) => answer,
            };
            let status = answer.status;
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                if let Some(next) = answer.header(LOCATION.as_str()).and_then(|l| url.join(l).ok()) {
                    redirects += 1;
                    if redirects > self.config.max_redirects {
                        return Err(Error::new(ErrorKind::Transport, format!("{}: too many redirects", self.shown)));
                    }
                    if self.redirects == Redirects::SameOrigin && next.origin() != self.origin {
                        return Err(self.off_origin("a redirect"));
                    }
                    url = next;
                    continue;
                }
                return Ok(answer);
            }
            if status == 401 && on_origin && !refreshed {
                if let Some(HttpAuth::Token(provider)) = &self.config.auth {
                    refreshed = true;
                    token = Some(provider.refresh().await?);
                    continue;
                }
            }
            let retryable = status == 429
                || ((500..600).contains(&status) && !matches!(status, 501 | 505 | 507))
                || request.retry_if.is_some_and(|f| f(&answer));
            if retryable {
                let asked = answer.header(RETRY_AFTER.as_str()).and_then(|v| retry_after(v, SystemTime::now()));
                let wait = backoff.next_wait(asked);
                // Told to slow down: every request on this key waits, from any calendar.
                let throttled = status == 429 || asked.is_some() || request.retry_if.is_some_and(|f| f(&answer));
                if let (Some((limits, key)), true) = (&self.limit, throttled) {
                    limits.pause(key, wait.or(asked).unwrap_or(self.config.retry.min_delay));
                }
                if let Some(wait) = wait {
                    crate::observe::retry(self.provider, &self.shown, status, wait);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            return Ok(answer);
        }
    }

    async fn attempt(&self, request: &Request, url: &Url, on_origin: bool, token: Option<&str>) -> Attempt {
        let mut builder = self.client.request(request.method.clone(), url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        // Credentials go to the client's origin only.
        if on_origin {
            builder = match (&self.config.auth, token) {
                (Some(HttpAuth::Basic { user, password }), _) => builder.basic_auth(user, Some(password)),
                (Some(HttpAuth::Bearer(token)), _) => builder.bearer_auth(token),
                (Some(HttpAuth::Token(_)), Some(token)) => builder.bearer_auth(token),
                _ => builder,
            };
        }
        let mut response = match builder.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(self.error(&e)),
        };
        let status = response.status().as_u16();
        let headers = std::mem::take(response.headers_mut());
        let max = self.config.max_bytes;
        if response.content_length().is_some_and(|n| n > max) {
            return Attempt::Fail(self.too_large());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > max {
                        return Attempt::Fail(self.too_large());
                    }
                }
                Ok(None) => break,
                Err(e) => return Attempt::Retry(self.error(&e)),
            }
        }
        Attempt::Answer(Response { status, headers, body, url: url.clone() })
    }

    fn too_large(&self) -> Error {
        Error::new(ErrorKind::LimitExceeded, format!("{} sent more than {} bytes", self.shown, self.config.max_bytes))
    }

    fn off_origin(&self, what: &str) -> Error {
        Error::new(ErrorKind::ScopeViolation, format!("{}: refused {what} to another origin", self.shown))
    }

    fn error(&self, e: &reqwest::Error) -> Error {
        let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Transport };
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_body() || e.is_decode() {
            "body was cut off or corrupt"
        } else {
            "request failed"
        };
        // The cause without its URL: a URL may hold a secret.
        let detail = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
        Error::new(kind, format!("{}: {what}", self.shown)).with_source(std::io::Error::other(detail))
    }

    /// The error for an answer with an unexpected status (`what` names the request).
    pub(crate) fn status_error(&self, what: &str, status: u16) -> Error {
        let kind = match status {
            401 | 403 => ErrorKind::Unauthorized,
            404 | 410 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            429 => ErrorKind::RateLimited,
            _ => ErrorKind::Transport,
        };
        Error::new(kind, format!("{}: {what} answered {status}", self.shown))
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("origin", &self.shown)
            .field("config", &self.config)
            .field("redirects", &self.redirects)
            .finish_non_exhaustive()
    }
}
