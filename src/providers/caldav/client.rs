//! The HTTP side of [`CalDavSource`](super::CalDavSource): `WebDAV` methods on the shared
//! [`HttpClient`] (credentials, bounded answers, same-origin redirects, retries that honor
//! `Retry-After`, request counts), and the errors CalDAV answers turn into.

use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::providers::http::client::{HttpClient, Redirects, Request, Response};
use crate::providers::http::origin::parse_server_url;

use super::config::CalDavConfig;
use super::wire::XmlError;

/// The client of one server.
pub(super) struct Dav {
    http: HttpClient,
}

impl Dav {
    /// Validates `url` and builds the client; credentials in the URL become basic auth.
    pub(super) fn new(url: &str, config: &CalDavConfig) -> Result<(Self, Url)> {
        let (url, auth) = parse_server_url(url, "CalDAV")?;
        let mut http = config.http.clone();
        if let Some(auth) = auth {
            http.auth.get_or_insert(auth);
        }
        Ok((Self { http: HttpClient::new(&url, http, Redirects::SameOrigin, "caldav")? }, url))
    }

    /// The server's origin, as errors and `Debug` show it.
    pub(super) fn shown(&self) -> &str {
        self.http.shown()
    }

    /// Requests sent so far (retries and redirects included).
    pub(super) fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// Sends a `WebDAV` request (all of calscope's are idempotent: PROPFIND, REPORT).
    pub(super) async fn send(
        &self,
        method: &str,
        url: &Url,
        depth: Option<&str>,
        body: Option<String>,
    ) -> Result<Response> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| Error::invalid("bad method"))?;
        let mut request = Request::new(method, url.clone());
        if let Some(depth) = depth {
            request = request.header("depth", depth);
        }
        if let Some(body) = body {
            // Xandikos answers 415 without it.
            request = request.header("content-type", "application/xml; charset=utf-8").body(body);
        }
        self.http.send(request).await
    }

    /// The error for an unexpected status.
    pub(super) fn status_error(&self, what: &str, status: u16) -> Error {
        self.http.status_error(what, status)
    }

    pub(super) fn xml_error(&self, what: &str, e: &XmlError) -> Error {
        Error::new(ErrorKind::Parse, format!("{}: unreadable {what} answer: {e}", self.shown()))
    }

    /// The error for an href outside the collection being synced.
    pub(super) fn unsafe_href(&self, href: &str) -> Error {
        let shown: String = href.chars().take(200).filter(|c| !c.is_control()).collect();
        Error::new(
            ErrorKind::ScopeViolation,
            format!("{}: refused an href outside the collection: {shown}", self.shown()),
        )
    }
}
