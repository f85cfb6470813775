//! The machinery every HTTP provider shares (feature `http`).
//!
//! One place decides how calscope talks HTTP, so every provider (ICS feeds, CalDAV, and the API
//! providers to come) behaves the same:
//!
//! - [`config`]: [`HttpConfig`] (timeouts, redirects, the size cap, credentials, User-Agent,
//!   the [`RetryPolicy`]) and [`HttpAuth`], whose `Debug` never shows a secret;
//! - [`origin`]: URL validation, credentials moved out of URLs, the origin as errors show it;
//! - [`retry`]: exponential backoff with jitter (the `backon` crate) and `Retry-After` (seconds
//!   or an HTTP date, read by the `httpdate` crate), capped;
//! - [`token`]: [`TokenProvider`], the host's source of bearer tokens, asked to refresh once
//!   after a 401;
//! - [`oauth`]: [`OAuthRefresh`](crate::OAuthRefresh), a token provider trading a refresh
//!   token at an OAuth 2.0 token endpoint (with `google` or `graph`);
//! - [`client`]: [`HttpClient`], one origin's client: it refuses URLs of other origins before
//!   sending, follows redirects by policy, bounds bodies, retries idempotent requests and counts
//!   every request it sends.
//!
//! A provider is then four parts (the provider template): `client` (its requests, on top of
//! [`HttpClient`]), `wire` (the XML or JSON types it reads), `map` (wire to [`Event`](crate::Event))
//! and `mod` (the [`CalendarSource`](crate::CalendarSource)).

#[cfg(any(feature = "google", feature = "graph"))]
pub(crate) mod api;
pub(crate) mod client;
pub(crate) mod config;
#[cfg(any(feature = "google", feature = "graph"))]
pub(crate) mod oauth;
pub(crate) mod origin;
pub(crate) mod retry;
pub(crate) mod token;
