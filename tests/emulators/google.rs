//! An emulator of the Google Calendar API v3, as far as calscope uses it, on loopback (axum).
//!
//! Documented behaviours it reproduces (see `shared/protocols/google-graph.md`, §1):
//! - `users/me/calendarList` in pages (`maxResults` up to 250, `nextPageToken`), with
//!   `accessRole` (including `freeBusyReader`, whose events answer 404), `primary`, colors;
//! - `calendars/{id}/events`: pages of at most `maxResults` (2500), and, when asked, short and
//!   empty pages while more remain; `nextSyncToken` only on the last page; a sync token lists
//!   what changed since it was issued, deletions as items carrying only `id` and
//!   `status: cancelled`; exceptions with `recurringEventId` and `originalStartTime`; cancelled
//!   exceptions carrying only those three;
//! - 400 for a parameter forbidden beside `syncToken` (`iCalUID`, `orderBy`, `q`, `timeMin`,
//!   `timeMax`, `updatedMin`, the extended-property filters, `showDeleted=false`) and for a
//!   query that differs from the one the token was issued for;
//! - 410 `fullSyncRequired` for an expired token; 401 `authError` for an unknown access token;
//!   injected faults (403 `rateLimitExceeded` / `userRateLimitExceeded` / `quotaExceeded`,
//!   429, 503, with or without `Retry-After`, and bodies that are not JSON);
//! - accounts: each access token is one user with calendars of its own, so one holiday calendar
//!   (same calendar id, event ids and iCalUIDs) can be shared by many users;
//! - `events/{id}` (the master lookup for a cancelled exception without its UID).
//!
//! Every request is logged (path and query) for the tests to count and inspect.

#![allow(clippy::result_large_err, clippy::assigning_clones, clippy::single_match_else, clippy::too_many_lines)] // test code

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// One stored event resource.
#[derive(Clone, Debug)]
struct Item {
    json: Value,
    changed_at: u64,
    deleted: bool,
}

/// One calendar of one account.
#[derive(Clone, Debug, Default)]
pub(crate) struct Calendar {
    pub(crate) summary: String,
    pub(crate) access_role: String,
    pub(crate) primary: bool,
    items: BTreeMap<String, Item>,
    /// Tokens issued before this change number answer 410.
    expired_before: u64,
}

/// An injected answer, served instead of the next events or calendarList request.
#[derive(Clone, Debug)]
pub(crate) struct Fault {
    pub(crate) status: u16,
    pub(crate) reason: Option<&'static str>,
    pub(crate) retry_after: Option<&'static str>,
    /// A body that is not JSON instead of Google's error shape.
    pub(crate) garbage: bool,
}

impl Fault {
    pub(crate) fn new(status: u16, reason: Option<&'static str>, retry_after: Option<&'static str>) -> Self {
        Self { status, reason, retry_after, garbage: false }
    }
}

#[derive(Default)]
struct Inner {
    /// access token → account.
    tokens: HashMap<String, String>,
    /// (account, calendar id) → calendar.
    calendars: BTreeMap<(String, String), Calendar>,
    seq: u64,
    /// Issued sync tokens → (account, calendar, change number, query).
    issued: HashMap<String, (String, String, u64, String)>,
    /// Page sessions: token → (remaining items, the sync token to hand out at the end).
    sessions: HashMap<String, (VecDeque<Value>, String, usize)>,
    next_session: u64,
    faults: VecDeque<Fault>,
    /// Most items per page whatever `maxResults` asks (short pages), and an empty page after
    /// every `empty_every` pages.
    page_limit: Option<usize>,
    empty_every: Option<usize>,
    /// Every events page hands out the same page token again (a server paging forever).
    stuck: bool,
    log: Vec<String>,
}

/// The emulator: a handle to its state and its address.
#[derive(Clone)]
pub(crate) struct GoogleEmulator {
    inner: Arc<Mutex<Inner>>,
    pub(crate) addr: SocketAddr,
}

/// Parameters Google forbids beside `syncToken`.
const FORBIDDEN: [&str; 8] = [
    "iCalUID",
    "orderBy",
    "q",
    "timeMin",
    "timeMax",
    "updatedMin",
    "privateExtendedProperty",
    "sharedExtendedProperty",
];

impl GoogleEmulator {
    pub(crate) async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/calendar/v3/users/me/calendarList", get(calendar_list))
            .route("/calendar/v3/calendars/{calendar}/events", get(events))
            .route("/calendar/v3/calendars/{calendar}/events/{id}", get(event))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner, addr }
    }

    /// The API root to configure a `GoogleSource` with.
    pub(crate) fn api(&self) -> String {
        format!("http://{}/calendar/v3", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    /// Adds a user whose access token is `token`.
    pub(crate) fn user(&self, account: &str, token: &str) {
        self.with(|i| i.tokens.insert(token.to_owned(), account.to_owned()));
    }

    /// Adds (or replaces the settings of) a calendar of `account`.
    pub(crate) fn calendar(&self, account: &str, id: &str, summary: &str, access_role: &str, primary: bool) {
        self.with(|i| {
            let cal = i.calendars.entry((account.to_owned(), id.to_owned())).or_default();
            cal.summary = summary.to_owned();
            cal.access_role = access_role.to_owned();
            cal.primary = primary;
        });
    }

    /// Puts an event resource (its `id` field names it); unchanged content is not a change.
    pub(crate) fn put(&self, account: &str, calendar: &str, event: Value) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            let cal = i.calendars.get_mut(&(account.to_owned(), calendar.to_owned())).expect("calendar exists");
            let id = event["id"].as_str().expect("an id").to_owned();
            if cal.items.get(&id).is_some_and(|it| !it.deleted && it.json == event) {
                return;
            }
            cal.items.insert(id, Item { json: event, changed_at: seq, deleted: false });
        });
    }

    /// Deletes an event: later deltas carry it as `{id, status: cancelled}`.
    pub(crate) fn delete(&self, account: &str, calendar: &str, id: &str) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            let cal = i.calendars.get_mut(&(account.to_owned(), calendar.to_owned())).expect("calendar exists");
            if let Some(item) = cal.items.get_mut(id) {
                item.deleted = true;
                item.changed_at = seq;
            }
        });
    }

    /// The event ids of a calendar that are not deleted.
    pub(crate) fn ids(&self, account: &str, calendar: &str) -> Vec<String> {
        self.with(|i| {
            i.calendars
                .get(&(account.to_owned(), calendar.to_owned()))
                .map(|c| c.items.iter().filter(|(_, it)| !it.deleted).map(|(id, _)| id.clone()).collect())
                .unwrap_or_default()
        })
    }

    /// What Google changes without an edit: `etag`, `updated`, `sequence`, `htmlLink`,
    /// `reminders`, `colorId`, the `self` flags and conference data, on every event of every
    /// account. Each becomes a change that deltas report.
    pub(crate) fn churn(&self, round: u64) {
        self.with(|i| {
            let mut seq = i.seq;
            for cal in i.calendars.values_mut() {
                for item in cal.items.values_mut().filter(|it| !it.deleted) {
                    seq += 1;
                    let j = &mut item.json;
                    j["etag"] = json!(format!("\"{round}{seq}\""));
                    j["updated"] = json!(format!("2026-11-{:02}T10:{:02}:00.000Z", 1 + round % 28, seq % 60));
                    j["sequence"] = json!(round);
                    j["htmlLink"] = json!(format!("https://www.google.com/calendar/event?eid={seq}"));
                    j["reminders"] = json!({"useDefault": round % 2 == 0});
                    j["colorId"] = json!(format!("{}", 1 + round % 11));
                    j["creator"] = json!({"email": "someone@example.com", "self": round % 2 == 0});
                    j["conferenceData"] =
                        json!({"createRequest": {"status": {"statusCode": "pending"}}, "round": round});
                    item.changed_at = seq;
                }
            }
            i.seq = seq;
        });
    }

    /// Makes every sync token issued so far for this calendar answer 410.
    pub(crate) fn expire(&self, account: &str, calendar: &str) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            if let Some(cal) = i.calendars.get_mut(&(account.to_owned(), calendar.to_owned())) {
                cal.expired_before = seq;
            }
        });
    }

    /// Serves `faults` instead of the next requests, in order.
    pub(crate) fn faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.with(|i| i.faults.extend(faults));
    }

    /// At most `limit` items per page, and an empty page after every `empty_every` pages.
    pub(crate) fn short_pages(&self, limit: Option<usize>, empty_every: Option<usize>) {
        self.with(|i| {
            i.page_limit = limit;
            i.empty_every = empty_every;
        });
    }

    /// Every events page from now on holds the first item and the same `nextPageToken`.
    pub(crate) fn stuck_pages(&self, on: bool) {
        self.with(|i| i.stuck = on);
    }

    /// The requests so far (`PATH?QUERY`), and forgets them.
    pub(crate) fn take_log(&self) -> Vec<String> {
        self.with(|i| std::mem::take(&mut i.log))
    }
}

fn error(status: u16, reason: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap();
    let body = json!({"error": {"code": status, "message": reason, "errors": [{"domain": "global", "reason": reason, "message": reason}]}});
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn ok(body: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Logs the request, checks the token, serves a fault if one is queued.
fn enter(inner: &mut Inner, headers: &HeaderMap, path: &str, query: Option<&str>) -> Result<String, Response> {
    inner.log.push(format!("{path}?{}", query.unwrap_or_default()));
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(account) = inner.tokens.get(token).cloned() else { return Err(error(401, "authError")) };
    if let Some(fault) = inner.faults.pop_front() {
        let code = StatusCode::from_u16(fault.status).unwrap();
        let mut response = if fault.garbage {
            (code, "<html>not json</html>").into_response()
        } else {
            error(fault.status, fault.reason.unwrap_or("backendError"))
        };
        if let Some(after) = fault.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, after.parse().unwrap());
        }
        return Err(response);
    }
    Ok(account)
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

async fn calendar_list(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let account = match enter(&mut inner, &headers, "calendarList", query.as_deref()) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let params = pairs(query.as_deref());
    let max: usize = params.iter().find(|(k, _)| k == "maxResults").and_then(|(_, v)| v.parse().ok()).unwrap_or(100);
    if max > 250 {
        return error(400, "invalid maxResults");
    }
    let start: usize = params.iter().find(|(k, _)| k == "pageToken").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let all: Vec<Value> = inner
        .calendars
        .iter()
        .filter(|((a, _), _)| *a == account)
        .map(|((_, id), c)| {
            json!({"kind": "calendar#calendarListEntry", "etag": "\"e\"", "id": id, "summary": c.summary,
                   "timeZone": "Europe/Berlin", "accessRole": c.access_role, "primary": c.primary,
                   "backgroundColor": "#9fe1e7"})
        })
        .collect();
    let page: Vec<Value> = all.iter().skip(start).take(max).cloned().collect();
    let mut body = json!({"kind": "calendar#calendarList", "items": page});
    if start + max < all.len() {
        body["nextPageToken"] = json!((start + max).to_string());
    }
    ok(&body)
}

async fn events(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut guard = inner.lock().unwrap();
    let inner = &mut *guard;
    let account = match enter(inner, &headers, &format!("events/{calendar}"), query.as_deref()) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let params = pairs(query.as_deref());
    let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let sync_token = get("syncToken");
    if sync_token.is_some() {
        if let Some((bad, _)) = params.iter().find(|(k, _)| FORBIDDEN.contains(&k.as_str())) {
            return error(400, &format!("invalid parameter {bad} beside syncToken"));
        }
        if get("showDeleted").as_deref() == Some("false") {
            return error(400, "showDeleted=false beside syncToken");
        }
    }
    let max: usize = get("maxResults").and_then(|v| v.parse().ok()).unwrap_or(250);
    if max > 2500 {
        return error(400, "invalid maxResults");
    }
    // The query without tokens: a token must always be used with the query it came from.
    let mut signature: Vec<String> =
        params.iter().filter(|(k, _)| k != "syncToken" && k != "pageToken").map(|(k, v)| format!("{k}={v}")).collect();
    signature.sort();
    let signature = signature.join("&");
    let key = (account.clone(), calendar.clone());
    let Some(cal) = inner.calendars.get(&key) else { return error(404, "notFound") };
    if cal.access_role == "freeBusyReader" {
        return error(404, "notFound");
    }
    if inner.stuck {
        let first: Vec<Value> = cal.items.values().filter(|it| !it.deleted).take(1).map(|it| it.json.clone()).collect();
        return ok(
            &json!({"kind": "calendar#events", "summary": calendar, "items": first, "nextPageToken": "page-stuck"}),
        );
    }
    let (mut remaining, next_sync, served) = match get("pageToken") {
        Some(page) => match inner.sessions.remove(&page) {
            Some(session) => session,
            None => return error(400, "invalid pageToken"),
        },
        None => {
            let since = match &sync_token {
                None => None,
                Some(token) => match inner.issued.get(token) {
                    Some((a, c, seq, sig)) if *a == account && *c == calendar => {
                        if *sig != signature {
                            return error(400, "the query differs from the one the sync token was issued for");
                        }
                        if *seq < cal.expired_before {
                            return error(410, "fullSyncRequired");
                        }
                        Some(*seq)
                    }
                    _ => return error(410, "fullSyncRequired"),
                },
            };
            let items: VecDeque<Value> = cal
                .items
                .iter()
                .filter(|(_, it)| match since {
                    None => !it.deleted,
                    Some(s) => it.changed_at > s,
                })
                .map(|(id, it)| {
                    if it.deleted {
                        json!({"kind": "calendar#event", "etag": "\"x\"", "id": id, "status": "cancelled"})
                    } else {
                        it.json.clone()
                    }
                })
                .collect();
            let token = format!("sync-{}-{}", inner.seq, inner.issued.len());
            inner.issued.insert(token.clone(), (account.clone(), calendar.clone(), inner.seq, signature.clone()));
            (items, token, 0)
        }
    };
    let empty = inner.empty_every.is_some_and(|n| served > 0 && served % n == 0) && !remaining.is_empty();
    let take = if empty { 0 } else { max.min(inner.page_limit.unwrap_or(max)).min(remaining.len()) };
    let page: Vec<Value> = remaining.drain(..take).collect();
    let mut body = json!({"kind": "calendar#events", "summary": calendar, "items": page});
    if remaining.is_empty() {
        body["nextSyncToken"] = json!(next_sync);
    } else {
        inner.next_session += 1;
        let page_token = format!("page-{}", inner.next_session);
        inner.sessions.insert(page_token.clone(), (remaining, next_sync, served + 1));
        body["nextPageToken"] = json!(page_token);
    }
    ok(&body)
}

async fn event(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((calendar, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut inner = inner.lock().unwrap();
    let account = match enter(&mut inner, &headers, &format!("event/{calendar}/{id}"), None) {
        Ok(a) => a,
        Err(r) => return r,
    };
    match inner.calendars.get(&(account, calendar)).and_then(|c| c.items.get(&id)) {
        Some(item) if !item.deleted => ok(&item.json),
        Some(_) => ok(&json!({"id": id, "status": "cancelled"})),
        None => error(404, "notFound"),
    }
}

/// An event resource: a timed event (`start` as RFC 3339 in Europe/Berlin), one hour long.
pub(crate) fn timed(id: &str, uid: &str, summary: &str, start: &str) -> Value {
    json!({"kind": "calendar#event", "etag": "\"1\"", "id": id, "status": "confirmed", "iCalUID": uid,
           "summary": summary, "updated": "2026-11-01T10:00:00.000Z", "created": "2026-10-01T10:00:00.000Z",
           "sequence": 0, "htmlLink": "https://www.google.com/calendar/event?eid=1", "eventType": "default",
           "start": {"dateTime": start, "timeZone": "Europe/Berlin"},
           "end": {"dateTime": plus_hour(start), "timeZone": "Europe/Berlin"},
           "organizer": {"email": "ann@example.com", "displayName": "Ann", "self": true},
           "attendees": [{"email": "bo@example.com", "responseStatus": "accepted"},
                         {"email": "ann@example.com", "responseStatus": "accepted", "self": true, "organizer": true}],
           "reminders": {"useDefault": true}})
}

/// An all-day holiday as Google's generated calendars serve them.
pub(crate) fn holiday(id: &str, summary: &str, date: &str) -> Value {
    json!({"kind": "calendar#event", "etag": "\"1\"", "id": id, "status": "confirmed",
           "iCalUID": format!("{id}@google.com"), "summary": summary, "transparency": "transparent",
           "visibility": "public", "updated": "2026-01-01T00:00:00.000Z", "eventType": "default",
           "start": {"date": date}, "end": {"date": next_day(date)},
           "organizer": {"email": "en.usa#holiday@group.v.calendar.google.com", "displayName": "Holidays in United States", "self": true}})
}

fn plus_hour(start: &str) -> String {
    let t = chrono::DateTime::parse_from_rfc3339(start).unwrap() + chrono::Duration::hours(1);
    t.to_rfc3339()
}

fn next_day(date: &str) -> String {
    let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap() + chrono::Duration::days(1);
    d.format("%Y-%m-%d").to_string()
}
