//! The HTTP side of [`CalDavSource`](super::CalDavSource): `WebDAV` methods with credentials,
//! bounded answers, same-origin redirects and retries that honor `Retry-After`.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::providers::http::{HttpAuth, percent_decode};

use super::CalDavConfig;
use super::xml::XmlError;

/// The client of one server.
pub(super) struct Dav {
    client: reqwest::Client,
    auth: Option<HttpAuth>,
    shown: String,
    max_bytes: u64,
    max_redirects: usize,
    max_retries: u32,
    max_retry_wait: Duration,
}

/// One answered request.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Vec<u8>,
    /// Where the answer came from, after redirects.
    pub(super) url: Url,
    /// Requests it took (retries and redirects included).
    pub(super) attempts: u32,
}

/// What one attempt gave.
enum Attempt {
    Done(Answer),
    Redirect(Url),
    Retry(Option<Duration>, Error),
    Fail(Error),
}

impl Dav {
    /// Validates `url` and builds the client; credentials in the URL become basic auth.
    pub(super) fn new(url: &str, config: &CalDavConfig) -> Result<(Self, Url)> {
        let mut url = Url::parse(url.trim()).map_err(|e| Error::invalid(format!("invalid CalDAV url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::invalid("CalDAV url must be http(s) with a host"));
        }
        let mut auth = config.http.auth.clone();
        if !url.username().is_empty() {
            let user = percent_decode(url.username());
            let password = url.password().map(percent_decode).unwrap_or_default();
            auth.get_or_insert(HttpAuth::Basic { user, password });
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let shown = match url.port() {
            Some(port) => format!("{}://{}:{port}", url.scheme(), url.host_str().unwrap_or_default()),
            None => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        };
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.http.timeout)
            .connect_timeout(config.http.connect_timeout)
            // Redirects are followed here, same origin only, keeping the method.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(config.http.user_agent.clone())
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, "cannot build the http client").with_source(e.without_url()))?;
        let dav = Self {
            client,
            auth,
            shown,
            max_bytes: config.http.max_bytes,
            max_redirects: config.http.max_redirects,
            max_retries: config.max_retries,
            max_retry_wait: config.max_retry_wait,
        };
        Ok((dav, url))
    }

    /// The server's origin, as errors and `Debug` show it.
    pub(super) fn shown(&self) -> &str {
        &self.shown
    }

    /// Sends a `WebDAV` request (all of calscope's are idempotent: PROPFIND, REPORT), following
    /// same-origin redirects and retrying 5xx, 429 and failed connections.
    pub(super) async fn send(
        &self,
        method: &str,
        url: &Url,
        depth: Option<&str>,
        body: Option<String>,
    ) -> Result<Answer> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| Error::invalid("bad method"))?;
        let mut url = url.clone();
        let (mut attempts, mut retries, mut redirects) = (0u32, 0u32, 0usize);
        loop {
            attempts += 1;
            match self.attempt(&method, &url, depth, body.clone()).await {
                Attempt::Done(mut answer) => {
                    answer.attempts = attempts;
                    return Ok(answer);
                }
                Attempt::Redirect(next) => {
                    redirects += 1;
                    if redirects > self.max_redirects || next.origin() != url.origin() {
                        return Err(Error::new(
                            ErrorKind::Transport,
                            format!("{}: too many redirects, or a redirect to another origin", self.shown),
                        ));
                    }
                    url = next;
                }
                Attempt::Fail(err) => return Err(err),
                Attempt::Retry(wait, err) => {
                    if retries >= self.max_retries {
                        return Err(err);
                    }
                    let backoff = Duration::from_millis(250u64.saturating_mul(1 << retries.min(10)));
                    tokio::time::sleep(wait.unwrap_or(backoff).min(self.max_retry_wait)).await;
                    retries += 1;
                }
            }
        }
    }

    async fn attempt(&self, method: &reqwest::Method, url: &Url, depth: Option<&str>, body: Option<String>) -> Attempt {
        let mut request = self.client.request(method.clone(), url.clone());
        if let Some(depth) = depth {
            request = request.header("Depth", depth);
        }
        if let Some(body) = body {
            // Xandikos answers 415 without it.
            request = request.header(CONTENT_TYPE, "application/xml; charset=utf-8").body(body);
        }
        request = match &self.auth {
            Some(HttpAuth::Basic { user, password }) => request.basic_auth(user, Some(password)),
            Some(HttpAuth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(None, self.error(&e)),
        };
        let status = response.status().as_u16();
        if matches!(status, 301 | 302 | 303 | 307 | 308) {
            let next = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()).and_then(|l| url.join(l).ok());
            return match next {
                Some(next) => Attempt::Redirect(next),
                None => Attempt::Done(Answer { status, body: Vec::new(), url: url.clone(), attempts: 1 }),
            };
        }
        // 501 (not implemented), 505 and 507 are answers, not hiccups: never retried.
        if status == 429 || (500..600).contains(&status) && !matches!(status, 501 | 505 | 507) {
            let wait = response.headers().get(RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(retry_after);
            return Attempt::Retry(wait, self.status_error(method.as_str(), status));
        }
        if response.content_length().is_some_and(|n| n > self.max_bytes) {
            return Attempt::Fail(self.too_large());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() as u64 > self.max_bytes {
                        return Attempt::Fail(self.too_large());
                    }
                }
                Ok(None) => break,
                Err(e) => return Attempt::Retry(None, self.error(&e)),
            }
        }
        Attempt::Done(Answer { status, body, url: url.clone(), attempts: 1 })
    }

    fn too_large(&self) -> Error {
        Error::new(ErrorKind::LimitExceeded, format!("{} sent more than {} bytes", self.shown, self.max_bytes))
    }

    fn error(&self, e: &reqwest::Error) -> Error {
        let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Transport };
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_body() || e.is_decode() {
            "answer was cut off"
        } else {
            "request failed"
        };
        let detail = std::error::Error::source(e).map(ToString::to_string).unwrap_or_default();
        Error::new(kind, format!("{}: {what}", self.shown)).with_source(std::io::Error::other(detail))
    }

    /// The error for an unexpected status.
    pub(super) fn status_error(&self, what: &str, status: u16) -> Error {
        let kind = match status {
            401 | 403 => ErrorKind::Unauthorized,
            404 | 410 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            _ => ErrorKind::Transport,
        };
        Error::new(kind, format!("{}: {what} answered {status}", self.shown))
    }

    pub(super) fn xml_error(&self, what: &str, e: &XmlError) -> Error {
        Error::new(ErrorKind::Parse, format!("{}: unreadable {what} answer: {e}", self.shown))
    }

    /// The error for an href outside the collection being synced.
    pub(super) fn unsafe_href(&self, href: &str) -> Error {
        let shown: String = href.chars().take(200).filter(|c| !c.is_control()).collect();
        Error::new(
            ErrorKind::ScopeViolation,
            format!("{}: refused an href outside the collection: {shown}", self.shown),
        )
    }
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value.trim()).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after("Sat, 01 Jan 2000 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }
}
