//! Bearer tokens from the host: [`TokenProvider`], [`StaticToken`] and [`Secret`].

use std::fmt;

use async_trait::async_trait;

use crate::error::Result;

/// A secret string (an access token, a password) whose `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    #[must_use]
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where an HTTP provider gets bearer tokens: the host keeps credentials, calscope asks.
///
/// # Behavior
///
/// - [`token`](Self::token) is called before every request; it may answer a cached token.
/// - [`refresh`](Self::refresh) is called at most once per request, after the server answered
///   401 to the last token; the request is then sent again with the new token. A second 401
///   fails the request as [`ErrorKind::Unauthorized`](crate::ErrorKind::Unauthorized).
/// - Implementations never put a token in their `Debug` output or their errors.
#[async_trait]
pub trait TokenProvider: Send + Sync + fmt::Debug {
    /// The token to send now.
    ///
    /// # Errors
    /// Whatever keeps the host from answering one; the request is not sent.
    async fn token(&self) -> Result<Secret>;

    /// A new token, after the server refused the last one.
    ///
    /// # Errors
    /// Whatever keeps the host from refreshing; the request fails with it.
    async fn refresh(&self) -> Result<Secret>;
}

/// A [`TokenProvider`] with one fixed token (a refresh answers the same token).
#[derive(Clone, Debug)]
pub struct StaticToken(Secret);

impl StaticToken {
    /// A provider that always answers `token`.
    #[must_use]
    pub fn new(token: impl Into<String>) -> Self {
        Self(Secret::new(token))
    }
}

#[async_trait]
impl TokenProvider for StaticToken {
    async fn token(&self) -> Result<Secret> {
        Ok(self.0.clone())
    }

    async fn refresh(&self) -> Result<Secret> {
        Ok(self.0.clone())
    }
}
