//! How a [`CalDavSource`](super::CalDavSource) talks to its server, and names what it finds.

use crate::providers::http::config::HttpConfig;

/// How a [`CalDavSource`](super::CalDavSource) talks to its server.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CalDavConfig {
    /// Timeouts, redirects, the largest answer accepted, credentials, the User-Agent and the
    /// retries of idempotent requests (PROPFIND, REPORT).
    pub http: HttpConfig,
    /// Resources per `calendar-multiget` request. Default 100.
    pub multiget_batch: usize,
    /// How the calendars' ids are made. Default [`CalendarNaming::Url`].
    pub naming: CalendarNaming,
    /// The most events one fetch of one calendar may bring (resources listed, or events read
    /// from them). More fail the fetch with
    /// [`ErrorKind::LimitExceeded`](crate::ErrorKind::LimitExceeded) before anything is
    /// written. Default 500,000 (as Google's and Graph's).
    pub max_events: usize,
}

impl Default for CalDavConfig {
    fn default() -> Self {
        Self { http: HttpConfig::default(), multiget_batch: 100, naming: CalendarNaming::Url, max_events: 500_000 }
    }
}

impl CalDavConfig {
    /// Sets the HTTP settings (timeouts, credentials, size limit).
    #[must_use]
    pub fn http(mut self, http: HttpConfig) -> Self {
        self.http = http;
        self
    }

    /// Sets the resources per multiget request (at least 1).
    #[must_use]
    pub fn multiget_batch(mut self, n: usize) -> Self {
        self.multiget_batch = n.max(1);
        self
    }

    /// Sets the most events one fetch of one calendar may bring.
    #[must_use]
    pub fn max_events(mut self, n: usize) -> Self {
        self.max_events = n;
        self
    }

    /// Sets how calendar ids are made.
    #[must_use]
    pub fn naming(mut self, naming: CalendarNaming) -> Self {
        self.naming = naming;
        self
    }
}

/// How a [`CalDavSource`](super::CalDavSource) names the calendars it finds.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CalendarNaming {
    /// The collection's URL without credentials, query or fragment, e.g.
    /// `https://caldav.example.com/calendars/ann/work/`: stable as long as the server keeps
    /// the collection where it is, and unique across accounts and servers.
    Url,
    /// `PREFIX/NAME`, NAME being the last segment of the collection's path (percent-decoded);
    /// just `PREFIX` when the source was given one collection's URL.
    Prefix(String),
}
