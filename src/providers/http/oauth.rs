//! [`OAuthRefresh`]: access tokens from an OAuth 2.0 refresh token (features `google`, `graph`).

use std::fmt;

use async_trait::async_trait;

use crate::error::Result;

use super::token::{Secret, TokenProvider};

/// A [`TokenProvider`] that trades a refresh token for access tokens at an OAuth 2.0 token
/// endpoint (RFC 6749, section 6): `grant_type=refresh_token` with the client's id and secret,
/// form-encoded. The access token is kept until a minute before it expires (`expires_in`), or
/// until the server refuses it. A new refresh token in the answer replaces the old one.
/// `Debug` and errors show neither the tokens nor the secret (features `google`, `graph`).
///
/// # Example
/// ```no_run
/// use std::sync::Arc;
/// use calscope::{GoogleConfig, GoogleSource, HttpAuth, HttpConfig, OAuthRefresh};
/// let tokens = OAuthRefresh::google("client-id.apps.googleusercontent.com", "client-secret", "1//refresh-token")?;
/// let config = GoogleConfig::default().http(HttpConfig::default().auth(HttpAuth::Token(Arc::new(tokens))));
/// let source = GoogleSource::account("alice", config)?;
/// # Ok::<(), calscope::Error>(())
/// ```
pub struct OAuthRefresh {
    client: super::client::HttpClient,
    endpoint: url::Url,
    client_id: String,
    client_secret: Secret,
    state: futures::lock::Mutex<OAuthState>,
}

struct OAuthState {
    refresh_token: Secret,
    access: Option<(Secret, std::time::Instant)>,
}

/// Google's token endpoint.
pub const GOOGLE_TOKEN_ENDPOINT: &str = "https://oauth2.googleapis.com/token";

impl OAuthRefresh {
    /// A provider refreshing at `endpoint`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for an endpoint that is not
    /// http(s).
    pub fn new(
        endpoint: &str,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Result<Self> {
        let (endpoint, _) = super::origin::parse_server_url(endpoint, "token endpoint")?;
        let client = super::client::HttpClient::new(
            &endpoint,
            super::config::HttpConfig::default().max_bytes(1 << 20),
            super::client::Redirects::SameOrigin,
            "oauth",
        )?;
        Ok(Self {
            client,
            endpoint,
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret),
            state: futures::lock::Mutex::new(OAuthState { refresh_token: Secret::new(refresh_token), access: None }),
        })
    }

    /// A provider refreshing at Google's token endpoint ([`GOOGLE_TOKEN_ENDPOINT`]).
    ///
    /// # Errors
    /// None in practice; the signature matches [`new`](Self::new).
    pub fn google(
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Result<Self> {
        Self::new(GOOGLE_TOKEN_ENDPOINT, client_id, client_secret, refresh_token)
    }

    async fn refresh_locked(&self, state: &mut OAuthState) -> Result<Secret> {
        use crate::error::{Error, ErrorKind};
        /// What a token endpoint answers.
        #[derive(serde::Deserialize)]
        struct Answer {
            access_token: Option<String>,
            expires_in: Option<u64>,
            refresh_token: Option<String>,
            error: Option<String>,
        }

        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", state.refresh_token.expose())
            .append_pair("client_id", &self.client_id)
            .append_pair("client_secret", self.client_secret.expose())
            .finish();
        let request = super::client::Request::new(reqwest::Method::POST, self.endpoint.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body);
        let answer = self.client.send(request).await?;
        let parsed: Option<Answer> = serde_json::from_slice(&answer.body).ok();
        let shown = self.client.shown();
        match (answer.status, parsed) {
            (200, Some(Answer { access_token: Some(token), expires_in, refresh_token, .. })) => {
                let token = Secret::new(token);
                let lifetime = std::time::Duration::from_secs(expires_in.unwrap_or(3600).saturating_sub(60));
                state.access = Some((token.clone(), std::time::Instant::now() + lifetime));
                if let Some(new) = refresh_token.filter(|t| !t.is_empty()) {
                    state.refresh_token = Secret::new(new);
                }
                Ok(token)
            }
            (status, parsed) => {
                state.access = None;
                // Only the error code: descriptions may quote what was sent.
                let code: String = parsed
                    .and_then(|a| a.error)
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect();
                let kind =
                    if matches!(status, 400 | 401 | 403) { ErrorKind::Unauthorized } else { ErrorKind::Transport };
                Err(Error::new(kind, format!("{shown}: token refresh answered {status} {code}").trim_end().to_owned()))
            }
        }
    }
}

#[async_trait]
impl TokenProvider for OAuthRefresh {
    async fn token(&self) -> Result<Secret> {
        let mut state = self.state.lock().await;
        if let Some((token, until)) = &state.access {
            if std::time::Instant::now() < *until {
                return Ok(token.clone());
            }
        }
        self.refresh_locked(&mut state).await
    }

    async fn refresh(&self) -> Result<Secret> {
        let mut state = self.state.lock().await;
        self.refresh_locked(&mut state).await
    }
}

impl fmt::Debug for OAuthRefresh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthRefresh")
            .field("endpoint", &self.client.shown())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}
