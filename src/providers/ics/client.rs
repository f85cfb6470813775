//! The HTTP side of [`IcsSource`](crate::IcsSource) (feature `http`): conditional GETs of one
//! feed URL on the shared [`HttpClient`].

use std::fmt;

use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::providers::http::client::{HttpClient, Redirects, Request};
use crate::providers::http::config::HttpConfig;
use crate::providers::http::origin::parse_server_url;

use super::cursor::Validators;

/// A feed URL and the client that fetches it.
pub(crate) struct HttpFeed {
    url: Url,
    client: HttpClient,
}

/// What one conditional GET answered.
pub(crate) enum Answer {
    /// 304: nothing changed since the validators in the cursor.
    NotModified,
    /// 200: the body and the validators to keep.
    Body { bytes: Vec<u8>, etag: Option<String>, last_modified: Option<String> },
}

impl HttpFeed {
    /// Validates `url` (http, https or webcal, which means https) and builds the client.
    /// Credentials in the URL move to basic authentication and out of the URL. Redirects may
    /// lead to another host (feeds are often served from one), without the credentials,
    /// unless [`HttpConfig::same_origin_redirects`] confines them.
    pub(crate) fn new(url: &str, mut config: HttpConfig) -> Result<Self> {
        let (url, auth) = parse_server_url(url, "feed")?;
        if let Some(auth) = auth {
            config.auth.get_or_insert(auth);
        }
        let redirects = if config.same_origin_redirects { Redirects::SameOrigin } else { Redirects::Anywhere };
        let client = HttpClient::new(&url, config, redirects, "ics")?;
        Ok(Self { url, client })
    }

    /// The origin, safe to show (feed paths often hold secrets).
    pub(crate) fn shown(&self) -> &str {
        self.client.shown()
    }

    /// Requests sent so far (retries and redirects included).
    pub(crate) fn requests(&self) -> u64 {
        self.client.requests()
    }

    /// One conditional GET.
    pub(crate) async fn get(&self, previous: &Validators) -> Result<Answer> {
        let mut request = Request::get(self.url.clone());
        if let Some(etag) = &previous.etag {
            request = request.header("if-none-match", etag.clone());
        }
        if let Some(lm) = &previous.last_modified {
            request = request.header("if-modified-since", lm.clone());
        }
        let response = self.client.send(request).await?;
        match response.status {
            304 => Ok(Answer::NotModified),
            200..=299 => {
                let etag = response.header("etag").map(str::to_owned);
                let last_modified = response.header("last-modified").map(str::to_owned);
                Ok(Answer::Body { bytes: response.body, etag, last_modified })
            }
            300..=399 => {
                Err(Error::new(ErrorKind::Transport, format!("{}: a redirect without a location", self.shown())))
            }
            status => Err(self.client.status_error("GET", status)),
        }
    }
}

impl fmt::Debug for HttpFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFeed").field("client", &self.client).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::http::config::HttpAuth;

    #[test]
    fn credentials_leave_the_url_and_never_show() {
        let feed =
            HttpFeed::new("https://ann:s%3Dcret@cal.example.com/private-123/basic.ics", HttpConfig::default()).unwrap();
        assert_eq!(feed.shown(), "https://cal.example.com");
        assert_eq!(feed.client.config().auth, Some(HttpAuth::Basic { user: "ann".into(), password: "s=cret".into() }));
        let debug = format!("{feed:?}");
        assert!(!debug.contains("s=cret") && !debug.contains("private-123"), "{debug}");
        assert!(HttpFeed::new("ftp://x/y", HttpConfig::default()).is_err());
        assert_eq!(HttpFeed::new("webcal://x.org/a.ics", HttpConfig::default()).unwrap().url.scheme(), "https");
    }
}
