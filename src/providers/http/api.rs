//! [`JsonApi`]: the root of a JSON API (Google Calendar, Microsoft Graph) on the shared client:
//! its URLs, and the reading of its answers.

use url::Url;

use crate::error::{Error, ErrorKind, Result};

use super::client::{HttpClient, Redirects};
use super::config::HttpConfig;
use super::origin::parse_server_url;

/// One API root, same origin only.
#[derive(Debug)]
pub(crate) struct JsonApi {
    pub(crate) http: HttpClient,
    root: Url,
}

impl JsonApi {
    /// The API at `api` (`what` names it in errors).
    pub(crate) fn new(api: &str, what: &str, provider: &'static str, http: HttpConfig) -> Result<Self> {
        let (mut root, _) = parse_server_url(api, what)?;
        if !root.path().ends_with('/') {
            let path = format!("{}/", root.path());
            root.set_path(&path);
        }
        let http = HttpClient::new(&root, http, Redirects::SameOrigin, provider)?;
        Ok(Self { http, root })
    }

    /// `segments` under the root, each percent-encoded.
    pub(crate) fn url(&self, segments: &[&str]) -> Result<Url> {
        let mut url = self.root.clone();
        url.path_segments_mut()
            .map_err(|()| Error::invalid("the API root cannot hold a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// A link the API handed back, resolved against the root (the client refuses it before
    /// sending when it leaves the API's origin).
    pub(crate) fn link(&self, link: &str) -> Result<Url> {
        self.root
            .join(link)
            .map_err(|_| Error::new(ErrorKind::Parse, format!("{}: an unreadable link", self.http.shown())))
    }

    /// An answer's JSON body.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self, what: &str, body: &[u8]) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| {
            Error::new(ErrorKind::Parse, format!("{}: unreadable {what} answer", self.http.shown()))
                .with_source(std::io::Error::other(e.to_string()))
        })
    }
}
