//! What CalDAV answers mean for calscope: resources to events, hrefs confined to their
//! collection, and the cursor a fetch keeps.

use std::collections::BTreeMap;

use url::Url;

use crate::error::{Error, ErrorKind, Result};
use crate::event::Event;
use crate::ics::{ReadOptions, read_feed};
use crate::id::{CalendarId, Cursor, Etag, Href};
use crate::providers::http::origin::percent_decode;

/// What a CalDAV fetch remembers in its cursor.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct DavCursor {
    pub(super) sync_token: Option<String>,
    pub(super) ctag: Option<String>,
    /// href → ETag, kept only for servers without sync-collection.
    pub(super) etags: BTreeMap<String, String>,
}

impl DavCursor {
    pub(super) fn parse(cursor: Option<&Cursor>) -> Self {
        let mut c = Self::default();
        for line in cursor.map(Cursor::as_str).unwrap_or_default().lines() {
            match line.split_once(' ') {
                Some(("sync-token", t)) => c.sync_token = Some(t.to_owned()),
                Some(("ctag", t)) => c.ctag = Some(t.to_owned()),
                Some(("etag", rest)) => {
                    if let Some((href, etag)) = rest.split_once(' ') {
                        c.etags.insert(href.to_owned(), etag.to_owned());
                    }
                }
                _ => {}
            }
        }
        c
    }

    pub(super) fn to_cursor(&self) -> Cursor {
        let mut text = String::new();
        let clean = |v: &str| !v.contains(['\r', '\n']);
        if let Some(t) = self.sync_token.as_deref().filter(|t| clean(t)) {
            text.push_str("sync-token ");
            text.push_str(t);
            text.push('\n');
        }
        if let Some(t) = self.ctag.as_deref().filter(|t| clean(t)) {
            text.push_str("ctag ");
            text.push_str(t);
            text.push('\n');
        }
        for (href, etag) in &self.etags {
            if clean(href) && clean(etag) && !href.contains(' ') {
                text.push_str("etag ");
                text.push_str(href);
                text.push(' ');
                text.push_str(etag);
                text.push('\n');
            }
        }
        Cursor::new(text)
    }
}

pub(super) fn read_resource(
    calendar: &CalendarId,
    href: &str,
    etag: Option<&str>,
    data: &str,
    options: &ReadOptions,
) -> Result<(Vec<Event>, Vec<String>)> {
    let read = read_feed(calendar, data.as_bytes(), options)?;
    if !read.is_complete() {
        let why = read.problems.first().map_or_else(String::new, ToString::to_string);
        return Err(Error::new(ErrorKind::Parse, format!("unreadable resource: {why}")));
    }
    let href = Href::new(href)?;
    let etag = etag.map(Etag::new).transpose()?;
    let notes = read.warnings.iter().map(|w| format!("{href}: {w}")).collect();
    let events = read.events.into_iter().map(|e| e.with_href(Some(href.clone()), etag.clone())).collect();
    Ok((events, notes))
}

/// Whether `href` names the collection itself.
pub(super) fn is_collection_itself(collection: &Url, href: &str) -> bool {
    collection.join(href).is_ok_and(|u| {
        u.origin() == collection.origin() && u.path().trim_end_matches('/') == collection.path().trim_end_matches('/')
    })
}

/// `href` resolved against `collection`, if it is a member of it: same origin, under the
/// collection's path (a direct child when `direct`), no dot segments and no encoded
/// separators, no query or fragment. The collection itself is not a member.
pub(super) fn member(collection: &Url, href: &str, direct: bool) -> std::result::Result<Url, ()> {
    let lower = href.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || href.contains('\\') || href.contains(['?', '#']) {
        return Err(());
    }
    let decoded = percent_decode(href);
    if decoded.split('/').any(|s| s == ".." || s == ".") || decoded.chars().any(char::is_control) {
        return Err(());
    }
    let url = collection.join(href).map_err(|_| ())?;
    if url.origin() != collection.origin() {
        return Err(());
    }
    let base = collection.path();
    let base = if base.ends_with('/') { base.to_owned() } else { format!("{base}/") };
    let rest = url.path().strip_prefix(base.as_str()).ok_or(())?;
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || (direct && rest.contains('/')) {
        return Err(());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_must_stay_inside_their_collection() {
        let col = Url::parse("https://dav.example.com/cal/ann/work/").unwrap();
        let ok = |h: &str| member(&col, h, false).map(|u| u.path().to_owned());
        assert_eq!(ok("/cal/ann/work/a.ics"), Ok("/cal/ann/work/a.ics".to_owned()));
        assert_eq!(ok("a%20b.ics"), Ok("/cal/ann/work/a%20b.ics".to_owned()));
        assert_eq!(ok("https://dav.example.com/cal/ann/work/x.ics"), Ok("/cal/ann/work/x.ics".to_owned()));
        for bad in [
            "/cal/ann/home/a.ics",             // another calendar
            "/cal/ann/work/../home/a.ics",     // dot segments
            "/cal/ann/work/%2e%2e/home/a.ics", // encoded dot segments
            "/cal/ann/work/a%2F..%2Fb.ics",    // encoded separators
            "/cal/ann/work/a%5cb.ics",
            "https://evil.example.com/cal/ann/work/a.ics", // another origin
            "http://dav.example.com/cal/ann/work/a.ics",   // another scheme
            "/cal/ann/work/",                              // the collection itself
            "/cal/ann/workshop/a.ics",                     // a sibling sharing the prefix
            "/cal/ann/work/a.ics?x=1",
            "/cal/ann/work/a%0a.ics",
        ] {
            assert!(ok(bad).is_err(), "{bad} was accepted");
        }
        assert!(member(&col, "/cal/ann/work/sub/a.ics", true).is_err(), "not a direct child");
        assert!(is_collection_itself(&col, "/cal/ann/work"));
    }

    #[test]
    fn cursors_round_trip_and_refuse_injected_lines() {
        let mut c =
            DavCursor { sync_token: Some("http://x/sync/1".into()), ctag: Some("c1".into()), ..Default::default() };
        c.etags.insert("/c/a.ics".into(), "\"1\"".into());
        assert_eq!(DavCursor::parse(Some(&c.to_cursor())), c);
        let injected = DavCursor { sync_token: Some("t\nctag x".into()), ..Default::default() };
        assert_eq!(DavCursor::parse(Some(&injected.to_cursor())), DavCursor::default());
    }
}
