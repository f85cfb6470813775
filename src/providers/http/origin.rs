//! Server URLs: validation, credentials taken out of them, and the part that is safe to show.

use url::Url;

use crate::error::{Error, Result};

use super::config::HttpAuth;

/// Parses a server URL: http or https with a host (`webcal://` means `https://`). User name
/// and password in the URL leave it and are answered as basic credentials.
///
/// # Errors
/// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) for anything else; `what` names
/// the URL in the message ("feed", "CalDAV").
pub(crate) fn parse_server_url(url: &str, what: &str) -> Result<(Url, Option<HttpAuth>)> {
    let url = url.trim();
    // webcal:// means https:// (the url crate cannot switch a non-special scheme).
    let url = match url.get(..9) {
        Some(prefix) if prefix.eq_ignore_ascii_case("webcal://") => {
            format!("https://{}", url.get(9..).unwrap_or_default())
        }
        _ => url.to_owned(),
    };
    let mut url = Url::parse(&url).map_err(|e| Error::invalid(format!("invalid {what} url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(format!("{what} url must be http(s) with a host")));
    }
    let mut auth = None;
    if !url.username().is_empty() {
        let user = percent_decode(url.username());
        let password = url.password().map(percent_decode).unwrap_or_default();
        auth = Some(HttpAuth::Basic { user, password });
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    Ok((url, auth))
}

/// Scheme, host and port: what errors and `Debug` show of a URL (paths and queries often hold
/// secrets: Google's private addresses, tokens in feed links).
pub(crate) fn shown(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// `%XX` sequences decoded (invalid ones kept as written), then read as UTF-8 (lossily).
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
    fn credentials_leave_the_url_and_webcal_means_https() {
        let (url, auth) = parse_server_url("https://ann:s%3Dcret@cal.example.com/private-123/b.ics", "feed").unwrap();
        assert_eq!(url.as_str(), "https://cal.example.com/private-123/b.ics");
        assert_eq!(auth, Some(HttpAuth::Basic { user: "ann".into(), password: "s=cret".into() }));
        assert_eq!(shown(&url), "https://cal.example.com");
        assert_eq!(parse_server_url("webcal://x.org/a.ics", "feed").unwrap().0.scheme(), "https");
        assert!(parse_server_url("ftp://x/y", "feed").is_err());
        assert!(parse_server_url("mailto:ann@example.com", "feed").is_err());
        assert_eq!(percent_decode("a%20b%zz%"), "a b%zz%");
    }
}
