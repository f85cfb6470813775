//! How an HTTP provider talks to its server: [`HttpConfig`] and [`HttpAuth`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::retry::RetryPolicy;
use super::token::TokenProvider;
use crate::schedule::RateLimits;

/// How an HTTP provider (an ICS feed, a CalDAV server) talks to its server.
#[derive(Clone)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Whole-request timeout. Default 60 s.
    pub timeout: Duration,
    /// Connection timeout. Default 10 s.
    pub connect_timeout: Duration,
    /// Most redirects followed. Default 5.
    pub max_redirects: usize,
    /// Follow redirects only on the configured origin (scheme, host, port): a redirect
    /// elsewhere fails as [`ErrorKind::ScopeViolation`](crate::ErrorKind::ScopeViolation)
    /// before it is sent. CalDAV and the API providers always confine redirects; an ICS feed
    /// does when this is set. Default `false` for feeds, which are often redirected to
    /// another host (a published calendar's partition, a CDN), with credentials never sent
    /// off the origin. Set it for feed URLs that untrusted users enter, so that a redirect
    /// cannot reach a host the URL's vetting never saw.
    pub same_origin_redirects: bool,
    /// Largest body accepted (after decompression). Default 256 MiB.
    pub max_bytes: u64,
    /// Credentials sent with every request.
    pub auth: Option<HttpAuth>,
    /// The User-Agent header.
    pub user_agent: String,
    /// How failed idempotent requests are retried. Default [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// Rate limits shared with the process's other sources; none by default.
    pub rate_limits: Option<RateLimits>,
    /// The key this source's requests spend in [`rate_limits`](Self::rate_limits) (an account,
    /// a mailbox); `None` for the server's host.
    pub rate_key: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            max_redirects: 5,
            same_origin_redirects: false,
            max_bytes: 256 << 20,
            auth: None,
            user_agent: concat!("calscope/", env!("CARGO_PKG_VERSION")).to_owned(),
            retry: RetryPolicy::default(),
            rate_limits: None,
            rate_key: None,
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

    /// Follows redirects only on the configured origin; see
    /// [`same_origin_redirects`](Self::same_origin_redirects).
    #[must_use]
    pub fn same_origin_redirects(mut self, on: bool) -> Self {
        self.same_origin_redirects = on;
        self
    }

    /// Sets the credentials.
    #[must_use]
    pub fn auth(mut self, auth: HttpAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Spends this source's requests in `limits`, shared with every source given the same
    /// limits (clone one [`RateLimits`] into each source's config).
    #[must_use]
    pub fn rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = Some(limits);
        self
    }

    /// Sets the key this source's requests spend (default: the server's host). Key API
    /// sources by account (`google:alice@example.com`, `graph:bob@contoso.com`), so that one
    /// account's calendars share its quota.
    #[must_use]
    pub fn rate_key(mut self, key: impl Into<String>) -> Self {
        self.rate_key = Some(key.into());
        self
    }
}

impl fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpConfig")
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_redirects", &self.max_redirects)
            .field("same_origin_redirects", &self.same_origin_redirects)
            .field("max_bytes", &self.max_bytes)
            .field("auth", &self.auth)
            .field("user_agent", &self.user_agent)
            .field("retry", &self.retry)
            .field("rate_limits", &self.rate_limits)
            .field("rate_key", &self.rate_key)
            .finish()
    }
}

/// Credentials for an HTTP provider. `Debug` never shows the secret.
#[derive(Clone)]
#[non_exhaustive]
pub enum HttpAuth {
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// A fixed bearer token.
    Bearer(String),
    /// Bearer tokens from the host's [`TokenProvider`]: asked before each request, and asked
    /// to refresh once when the server answers 401.
    Token(Arc<dyn TokenProvider>),
}

impl PartialEq for HttpAuth {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Basic { user: a, password: p }, Self::Basic { user: b, password: q }) => a == b && p == q,
            (Self::Bearer(a), Self::Bearer(b)) => a == b,
            (Self::Token(a), Self::Token(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for HttpAuth {}

impl fmt::Debug for HttpAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
            Self::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Self::Token(provider) => write!(f, "Token({provider:?})"),
        }
    }
}
