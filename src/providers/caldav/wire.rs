//! The WebDAV/CalDAV XML calscope speaks: request bodies, and a namespace-aware reader of
//! `multistatus` answers (quick-xml's `NsReader`) with limits on size and depth. Prefixes are
//! resolved, so `<d:href>`, `<ns0:href>` and a default namespace read alike. No DTD is
//! accepted and no entity but XML's predefined ones and character references is expanded.

use std::fmt::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

const DAV: &[u8] = b"DAV:";
const CALDAV: &[u8] = b"urn:ietf:params:xml:ns:caldav";
const CALSERVER: &[u8] = b"http://calendarserver.org/ns/";
const APPLE: &[u8] = b"http://apple.com/ns/ical/";

/// Deepest element nesting accepted (a multistatus needs about 8).
const MAX_DEPTH: usize = 32;

/// What went wrong reading an answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum XmlError {
    #[error("not UTF-8")]
    Encoding,
    #[error("malformed XML: {0}")]
    Syntax(String),
    #[error("elements nest deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("a DTD is not accepted")]
    Dtd,
    #[error("unknown entity &{0};")]
    Entity(String),
    #[error("no multistatus element")]
    NotMultistatus,
}

/// The namespaces calscope reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ns {
    Dav,
    CalDav,
    CalServer,
    Apple,
    Other,
}

fn ns_of(resolved: &ResolveResult<'_>) -> Ns {
    match resolved {
        ResolveResult::Bound(Namespace(DAV)) => Ns::Dav,
        ResolveResult::Bound(Namespace(CALDAV)) => Ns::CalDav,
        ResolveResult::Bound(Namespace(CALSERVER)) => Ns::CalServer,
        ResolveResult::Bound(Namespace(APPLE)) => Ns::Apple,
        _ => Ns::Other,
    }
}

/// Properties of one resource, from the propstats answered 2xx.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Props {
    pub(crate) etag: Option<String>,
    pub(crate) calendar_data: Option<String>,
    pub(crate) ctag: Option<String>,
    pub(crate) sync_token: Option<String>,
    pub(crate) displayname: Option<String>,
    pub(crate) color: Option<String>,
    pub(crate) is_calendar: bool,
    pub(crate) principal: Option<String>,
    pub(crate) home_sets: Vec<String>,
    /// `Some(true)` when supported-calendar-component-set lists VEVENT, `Some(false)` when it
    /// lists others only, `None` when the server did not say.
    pub(crate) vevent: Option<bool>,
    pub(crate) sync_collection: bool,
}

impl Props {
    fn merge(&mut self, other: Self) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(etag, calendar_data, ctag, sync_token, displayname, color, principal, vevent);
        self.is_calendar |= other.is_calendar;
        self.sync_collection |= other.sync_collection;
        self.home_sets.extend(other.home_sets);
    }
}

/// One `response` of a multistatus.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Response {
    pub(crate) href: String,
    /// The response's own status (sync-collection reports removed members as 404).
    pub(crate) status: Option<u16>,
    pub(crate) props: Props,
}

/// A `multistatus` answer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Multistatus {
    pub(crate) responses: Vec<Response>,
    /// The new token of a sync-collection report.
    pub(crate) sync_token: Option<String>,
}

/// The code of an HTTP status line (`HTTP/1.1 404 Not Found` → 404).
fn status_code(line: &str) -> Option<u16> {
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads a `multistatus` answer.
pub(crate) fn parse_multistatus(body: &[u8]) -> Result<Multistatus, XmlError> {
    let text = std::str::from_utf8(body).map_err(|_| XmlError::Encoding)?;
    let mut reader = NsReader::from_str(text);
    let mut stack: Vec<(Ns, String)> = Vec::new();
    let mut out = Multistatus::default();
    let mut seen_root = false;
    let mut response: Option<Response> = None;
    let mut propstat: Option<(Props, Option<u16>)> = None;
    let mut text_buf = String::new();
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(|e| XmlError::Syntax(e.to_string()))?;
        let ns = ns_of(&resolved);
        match event {
            Event::Start(e) => {
                let local = local_name(&e);
                if stack.is_empty() {
                    if !(ns == Ns::Dav && local == "multistatus") {
                        return Err(XmlError::NotMultistatus);
                    }
                    seen_root = true;
                }
                open(&mut stack, ns, &local, &e, &mut response, &mut propstat)?;
                text_buf.clear();
            }
            Event::Empty(e) => {
                let local = local_name(&e);
                if stack.is_empty() {
                    // `<multistatus/>`: nothing in it.
                    if ns == Ns::Dav && local == "multistatus" && !seen_root {
                        seen_root = true;
                        continue;
                    }
                    return Err(XmlError::NotMultistatus);
                }
                open(&mut stack, ns, &local, &e, &mut response, &mut propstat)?;
                text_buf.clear();
                close(&mut stack, "", &mut out, &mut response, &mut propstat);
            }
            Event::End(_) => {
                close(&mut stack, &text_buf, &mut out, &mut response, &mut propstat);
                text_buf.clear();
            }
            Event::Text(t) => {
                let content = t.xml10_content().map_err(|_| XmlError::Encoding)?;
                text_buf.push_str(&content);
            }
            Event::CData(c) => {
                let content = c.decode().map_err(|_| XmlError::Encoding)?;
                text_buf.push_str(&content);
            }
            Event::GeneralRef(r) => {
                if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) => text_buf.push(c),
                        _ => return Err(XmlError::Entity(String::from_utf8_lossy(&r).into_owned())),
                    }
                } else {
                    let name = r.decode().map_err(|_| XmlError::Encoding)?;
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(s) => text_buf.push_str(s),
                        None => return Err(XmlError::Entity(name.into_owned())),
                    }
                }
            }
            Event::DocType(_) => return Err(XmlError::Dtd),
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
        }
    }
    if !seen_root || !stack.is_empty() {
        return Err(XmlError::NotMultistatus);
    }
    Ok(out)
}

fn local_name(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

/// Whether the innermost open elements are `path` (innermost last).
fn ends_with(stack: &[(Ns, String)], path: &[(Ns, &str)]) -> bool {
    stack.len() >= path.len()
        && stack.iter().rev().zip(path.iter().rev()).all(|((ns, name), (want_ns, want))| ns == want_ns && name == want)
}

fn open(
    stack: &mut Vec<(Ns, String)>,
    ns: Ns,
    local: &str,
    e: &BytesStart<'_>,
    response: &mut Option<Response>,
    propstat: &mut Option<(Props, Option<u16>)>,
) -> Result<(), XmlError> {
    if stack.len() >= MAX_DEPTH {
        return Err(XmlError::TooDeep);
    }
    if ns == Ns::Dav && local == "response" && ends_with(stack, &[(Ns::Dav, "multistatus")]) {
        *response = Some(Response::default());
    }
    if ns == Ns::Dav && local == "propstat" && response.is_some() {
        *propstat = Some((Props::default(), None));
    }
    // Marker elements: their presence is the value.
    if let Some((props, _)) = propstat.as_mut() {
        if ns == Ns::CalDav && local == "calendar" && ends_with(stack, &[(Ns::Dav, "resourcetype")]) {
            props.is_calendar = true;
        }
        if ns == Ns::Dav && local == "sync-collection" && ends_with(stack, &[(Ns::Dav, "report")]) {
            props.sync_collection = true;
        }
        if ns == Ns::CalDav && local == "comp" && ends_with(stack, &[(Ns::CalDav, "supported-calendar-component-set")])
        {
            let name = e
                .try_get_attribute("name")
                .ok()
                .flatten()
                .map(|a| String::from_utf8_lossy(&a.value).to_ascii_uppercase());
            let vevent = name.as_deref() == Some("VEVENT");
            props.vevent = Some(props.vevent.unwrap_or(false) || vevent);
        }
    }
    stack.push((ns, local.to_owned()));
    Ok(())
}

fn close(
    stack: &mut Vec<(Ns, String)>,
    text: &str,
    out: &mut Multistatus,
    response: &mut Option<Response>,
    propstat: &mut Option<(Props, Option<u16>)>,
) {
    use Ns::{Apple, CalDav, CalServer, Dav};
    let trimmed = text.trim();
    let value = || Some(trimmed.to_owned());
    if let Some((props, status)) = propstat.as_mut() {
        let in_prop = |path: &[(Ns, &str)]| {
            let mut full = vec![(Dav, "prop")];
            full.extend_from_slice(path);
            ends_with(stack, &full)
        };
        if in_prop(&[(Dav, "getetag")]) {
            props.etag = value();
        } else if in_prop(&[(CalDav, "calendar-data")]) {
            // Not trimmed: the text is the calendar.
            props.calendar_data = Some(text.to_owned());
        } else if in_prop(&[(CalServer, "getctag")]) {
            props.ctag = value();
        } else if in_prop(&[(Dav, "sync-token")]) {
            props.sync_token = value();
        } else if in_prop(&[(Dav, "displayname")]) {
            props.displayname = value();
        } else if in_prop(&[(Apple, "calendar-color")]) {
            props.color = value();
        } else if in_prop(&[(Dav, "current-user-principal"), (Dav, "href")]) {
            props.principal = value();
        } else if in_prop(&[(CalDav, "calendar-home-set"), (Dav, "href")]) {
            props.home_sets.push(trimmed.to_owned());
        } else if ends_with(stack, &[(Dav, "propstat"), (Dav, "status")]) {
            *status = status_code(trimmed);
        }
    }
    if ends_with(stack, &[(Dav, "propstat")]) {
        if let (Some(r), Some((props, status))) = (response.as_mut(), propstat.take()) {
            if status.is_none_or(|s| (200..300).contains(&s)) {
                r.props.merge(props);
            }
        }
    } else if let Some(r) = response.as_mut() {
        if ends_with(stack, &[(Dav, "response"), (Dav, "href")]) {
            trimmed.clone_into(&mut r.href);
        } else if ends_with(stack, &[(Dav, "response"), (Dav, "status")]) {
            r.status = status_code(trimmed);
        }
    }
    if ends_with(stack, &[(Dav, "multistatus"), (Dav, "response")]) {
        if let Some(r) = response.take() {
            out.responses.push(r);
        }
    } else if ends_with(stack, &[(Dav, "multistatus"), (Dav, "sync-token")]) {
        out.sync_token = value();
    }
    stack.pop();
}

/// The precondition an error body names (`<D:error><D:valid-sync-token/></D:error>` →
/// `valid-sync-token`), if it is well-formed XML at all.
pub(crate) fn error_condition(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let mut reader = NsReader::from_str(text);
    let mut depth = 0usize;
    loop {
        match reader.read_resolved_event().ok()? {
            (_, Event::Start(e)) => {
                depth += 1;
                if depth == 2 {
                    return Some(local_name(&e));
                }
                if depth > MAX_DEPTH {
                    return None;
                }
            }
            (_, Event::Empty(e)) if depth == 1 => return Some(local_name(&e)),
            (_, Event::End(_)) => depth = depth.saturating_sub(1),
            (_, Event::Eof | Event::DocType(_)) => return None,
            _ => {}
        }
    }
}

/// Escapes text for an element's content.
fn escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

/// PROPFIND for discovery and calendar listing.
pub(crate) const PROPFIND_DISCOVERY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/" xmlns:a="http://apple.com/ns/ical/">
  <d:prop>
    <d:resourcetype/><d:current-user-principal/><c:calendar-home-set/><d:displayname/>
    <a:calendar-color/><cs:getctag/><d:sync-token/><c:supported-calendar-component-set/>
    <d:supported-report-set/>
  </d:prop>
</d:propfind>"#;

/// PROPFIND of a collection's ctag and sync token (Depth 0).
pub(crate) const PROPFIND_CTAG: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">
  <d:prop><cs:getctag/><d:sync-token/></d:prop>
</d:propfind>"#;

/// PROPFIND of every member's ETag (Depth 1).
pub(crate) const PROPFIND_ETAGS: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<d:propfind xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">
  <d:prop><d:getetag/><d:resourcetype/><cs:getctag/></d:prop>
</d:propfind>"#;

/// A sync-collection REPORT (RFC 6578) from `token` (empty for the initial sync).
pub(crate) fn sync_collection(token: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<d:sync-collection xmlns:d="DAV:">
  <d:sync-token>{}</d:sync-token>
  <d:sync-level>1</d:sync-level>
  <d:prop><d:getetag/></d:prop>
</d:sync-collection>"#,
        escape(token)
    )
}

/// A calendar-multiget REPORT (RFC 4791) of `hrefs` (paths).
pub(crate) fn multiget<'a>(hrefs: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?>
<c:calendar-multiget xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav">
  <d:prop><d:getetag/><c:calendar-data/></d:prop>
"#,
    );
    for href in hrefs {
        let _ = writeln!(body, "  <d:href>{}</d:href>", escape(href));
    }
    body.push_str("</c:calendar-multiget>");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_default_namespaces_read_alike() {
        // Xandikos's style: ns0/ns1 prefixes.
        let prefixed = br#"<ns0:multistatus xmlns:ns0="DAV:" xmlns:ns1="urn:ietf:params:xml:ns:caldav"><ns0:response><ns0:href>/user/calendars/calendar/</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:resourcetype><ns0:collection /><ns1:calendar /></ns0:resourcetype><ns0:supported-report-set><ns0:supported-report><ns0:report><ns0:sync-collection /></ns0:report></ns0:supported-report></ns0:supported-report-set></ns0:prop></ns0:propstat><ns0:propstat><ns0:status>HTTP/1.1 404 Not Found</ns0:status><ns0:prop><ns0:displayname>ignored</ns0:displayname></ns0:prop></ns0:propstat></ns0:response></ns0:multistatus>"#;
        // Radicale's style: a default namespace.
        let default = br#"<?xml version='1.0' encoding='utf-8'?>
<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response><href>/user/calendars/calendar/</href><propstat><prop><resourcetype><collection /><C:calendar /></resourcetype><supported-report-set><supported-report><report><sync-collection /></report></supported-report></supported-report-set></prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>"#;
        let a = parse_multistatus(prefixed).unwrap();
        let b = parse_multistatus(default).unwrap();
        assert_eq!(a, b);
        let r = &a.responses[0];
        assert!(r.props.is_calendar && r.props.sync_collection);
        assert_eq!(r.props.displayname, None, "a 404 propstat is not a value");
    }

    #[test]
    fn calendar_data_keeps_its_text_and_references_resolve() {
        let body = br#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav"><d:response><d:href>/c/a%20b.ics</d:href><d:propstat><d:prop><d:getetag>"e1"</d:getetag><c:calendar-data>BEGIN:VCALENDAR&#13;
SUMMARY:a &amp; b &lt;x&gt;&#13;
END:VCALENDAR&#13;
</c:calendar-data></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response><d:response><d:href>/c/gone.ics</d:href><d:status>HTTP/1.1 404 Not Found</d:status></d:response><d:sync-token>http://x/sync/2</d:sync-token></d:multistatus>"#;
        let m = parse_multistatus(body).unwrap();
        assert_eq!(m.sync_token.as_deref(), Some("http://x/sync/2"));
        assert_eq!(m.responses[0].props.etag.as_deref(), Some("\"e1\""));
        assert_eq!(
            m.responses[0].props.calendar_data.as_deref(),
            Some("BEGIN:VCALENDAR\r\nSUMMARY:a & b <x>\r\nEND:VCALENDAR\r\n")
        );
        assert_eq!((m.responses[1].href.as_str(), m.responses[1].status), ("/c/gone.ics", Some(404)));
    }

    #[test]
    fn discovery_properties_are_read() {
        let body = br#"<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/" xmlns:a="http://apple.com/ns/ical/"><d:response><d:href>/cal/ann/work/</d:href><d:propstat><d:prop><d:displayname> Work </d:displayname><a:calendar-color>#FF8800FF</a:calendar-color><cs:getctag>c-7</cs:getctag><d:sync-token>t-7</d:sync-token><c:supported-calendar-component-set><c:comp name="VTODO"/><c:comp name="VEVENT"/></c:supported-calendar-component-set><d:current-user-principal><d:href>/p/ann/</d:href></d:current-user-principal><c:calendar-home-set><d:href>/cal/ann/</d:href></c:calendar-home-set></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response><d:response><d:href>/cal/ann/tasks/</d:href><d:propstat><d:prop><c:supported-calendar-component-set><c:comp name="VTODO"/></c:supported-calendar-component-set></d:prop></d:propstat></d:response></d:multistatus>"#;
        let m = parse_multistatus(body).unwrap();
        let p = &m.responses[0].props;
        assert_eq!(p.displayname.as_deref(), Some("Work"));
        assert_eq!(p.color.as_deref(), Some("#FF8800FF"));
        assert_eq!((p.ctag.as_deref(), p.sync_token.as_deref()), (Some("c-7"), Some("t-7")));
        assert_eq!(p.principal.as_deref(), Some("/p/ann/"));
        assert_eq!(p.home_sets, ["/cal/ann/"]);
        assert_eq!(p.vevent, Some(true));
        assert_eq!(m.responses[1].props.vevent, Some(false), "a task list holds no events");
    }

    #[test]
    fn hostile_and_broken_answers_are_errors() {
        let dtd = br#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><d:multistatus xmlns:d="DAV:"><d:response><d:href>&e;</d:href></d:response></d:multistatus>"#;
        assert!(matches!(parse_multistatus(dtd), Err(XmlError::Dtd)));
        let entity = br#"<d:multistatus xmlns:d="DAV:"><d:response><d:href>&e;</d:href></d:response></d:multistatus>"#;
        assert!(parse_multistatus(entity).is_err());
        let deep =
            format!(r#"<d:multistatus xmlns:d="DAV:">{}{}</d:multistatus>"#, "<d:x>".repeat(100), "</d:x>".repeat(100));
        assert!(matches!(parse_multistatus(deep.as_bytes()), Err(XmlError::TooDeep)));
        assert!(matches!(parse_multistatus(b"<html>nope</html>"), Err(XmlError::NotMultistatus)));
        assert!(parse_multistatus(br#"<d:multistatus xmlns:d="DAV:"><d:response>"#).is_err());
        assert!(matches!(parse_multistatus(&[0xff, 0xfe]), Err(XmlError::Encoding)));
    }

    #[test]
    fn error_bodies_name_their_precondition() {
        let body = br#"<?xml version="1.0"?><D:error xmlns:D="DAV:"><D:valid-sync-token/></D:error>"#;
        assert_eq!(error_condition(body).as_deref(), Some("valid-sync-token"));
        assert_eq!(error_condition(b"not xml"), None);
        assert!(multiget(["/a&b.ics"]).contains("/a&amp;b.ics"));
        assert!(sync_collection("<t>").contains("&lt;t&gt;"));
    }
}
