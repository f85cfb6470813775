//! Fetching iCalendar feeds over http(s) for [`IcsSource`](crate::IcsSource) (feature `http`).

use std::fmt;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use crate::error::{Error, ErrorKind, Result};
use crate::providers::cursor::Validators;

/// How an http(s) feed is fetched.
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Whole-request timeout. Default 60 s.
    pub timeout: Duration,
    /// Connection timeout. Default 10 s.
    pub connect_timeout: Duration,
    /// Most redirects followed. Default 5.
    pub max_redirects: usize,
    /// Largest body accepted (after decompression). Default 256 MiB.
    pub max_bytes: u64,
    /// Credentials sent with every request.
    pub auth: Option<HttpAuth>,
    /// The User-Agent header.
    pub user_agent: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            max_bytes: 256 << 20,
            auth: None,
            user_agent: concat!("calscope/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

impl HttpConfig {
    /// Sets the whole-request timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the largest body accepted.
    #[must_use]
    pub fn max_bytes(mut self, max: u64) -> Self {
        self.max_bytes = max;
        self
    }

    /// Sets the most redirects followed.
    #[must_use]
    pub fn max_redirects(mut self, max: usize) -> Self {
        self.max_redirects = max;
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn auth(mut self, auth: HttpAuth) -> Self {
        self.auth = Some(auth);
        self
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_redirects", &self.max_redirects)
            .field("max_bytes", &self.max_bytes)
            .field("auth", &self.auth)
            .field("user_agent", &self.user_agent)
            .finish()
    }
}

/// Credentials for an http(s) feed. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpAuth {
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A bearer token.
    Bearer(String),
}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// A feed URL and the client that fetches it.
pub(crate) struct HttpFeed {
    url: url::Url,
    shown: String,
    client: reqwest::Client,
    config: HttpConfig,
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
    /// Credentials in the URL move to basic authentication and out of the URL.
    pub(crate) fn new(url: &str, mut config: HttpConfig) -> Result<Self> {
        let url = url.trim();
        // webcal:// means https:// (the url crate cannot switch a non-special scheme).
        let url = match url.get(..9) {
            Some(prefix) if prefix.eq_ignore_ascii_case("webcal://") => {
                format!("https://{}", url.get(9..).unwrap_or_default())
            }
            _ => url.to_owned(),
        };
        let mut url = url::Url::parse(&url).map_err(|e| Error::invalid(format!("invalid feed url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(Error::invalid("feed url must be http(s) with a host"));
        }
        if !url.username().is_empty() {
            let user = percent_decode(url.username());
            let password = url.password().map(percent_decode).unwrap_or_default();
            config.auth.get_or_insert(HttpAuth::Basic { user, password });
            let _ = url.set_username("");
            let _ = url.set_password(None);
        }
        let shown = shown(&url);
        // The ring provider, unless the host installed another one for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::limited(config.max_redirects))
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| Error::new(ErrorKind::Other, "cannot build the http client").with_source(e.without_url()))?;
        Ok(Self { url, shown, client, config })
    }

    /// The URL as safe to show: scheme, host and port only (feed paths often hold secrets).
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// One conditional GET.
    pub(crate) async fn get(&self, previous: &Validators) -> Result<Answer> {
        let mut request = self.client.get(self.url.clone());
        if let Some(etag) = &previous.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(lm) = &previous.last_modified {
            request = request.header(IF_MODIFIED_SINCE, lm);
        }
        request = match &self.config.auth {
            Some(HttpAuth::Basic { user, password }) => request.basic_auth(user, Some(password)),
            Some(HttpAuth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        let mut response = request.send().await.map_err(|e| self.error(e))?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Answer::NotModified);
        }
        if !status.is_success() {
            let kind = match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthorized,
                StatusCode::NOT_FOUND | StatusCode::GONE => ErrorKind::NotFound,
                StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => ErrorKind::Timeout,
                _ => ErrorKind::Transport,
            };
            return Err(Error::new(kind, format!("{} answered {status}", self.shown)));
        }
        let header = |name| {
            response.headers().get(name).and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok()).map(str::to_owned)
        };
        let (etag, last_modified) = (header(ETAG), header(LAST_MODIFIED));
        let max = self.config.max_bytes;
        if response.content_length().is_some_and(|n| n > max) {
            return Err(self.too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.error(e))? {
            bytes.extend_from_slice(&chunk);
            if bytes.len() as u64 > max {
                return Err(self.too_large());
            }
        }
        Ok(Answer::Body { bytes, etag, last_modified })
    }

    fn too_large(&self) -> Error {
        Error::new(ErrorKind::LimitExceeded, format!("{} sent more than {} bytes", self.shown, self.config.max_bytes))
    }

    fn error(&self, e: reqwest::Error) -> Error {
        let kind = if e.is_timeout() { ErrorKind::Timeout } else { ErrorKind::Transport };
        let what = if e.is_redirect() {
            "too many redirects"
        } else if e.is_body() || e.is_decode() {
            "body was cut off or corrupt"
        } else if e.is_timeout() {
            "timed out"
        } else {
            "request failed"
        };
        // `without_url`: the URL may hold a secret.
        Error::new(kind, format!("{}: {what}", self.shown)).with_source(e.without_url())
    }
}

impl fmt::Debug for HttpFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpFeed").field("url", &self.shown).field("config", &self.config).finish_non_exhaustive()
    }
}

fn shown(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'%', Some(v)) = (b, hex) {
            out.push(v);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_and_never_show() {
        let feed =
            HttpFeed::new("https://ann:s%3Dcret@cal.example.com/private-123/basic.ics", HttpConfig::default()).unwrap();
        assert_eq!(feed.shown(), "https://cal.example.com/…");
        assert_eq!(feed.config.auth, Some(HttpAuth::Basic { user: "ann".into(), password: "s=cret".into() }));
        let debug = format!("{feed:?}");
        assert!(!debug.contains("s=cret") && !debug.contains("private-123"), "{debug}");
        assert!(HttpFeed::new("ftp://x/y", HttpConfig::default()).is_err());
        assert_eq!(HttpFeed::new("webcal://x.org/a.ics", HttpConfig::default()).unwrap().url.scheme(), "https");
    }
}
