//! An emulator of Microsoft Graph's calendar endpoints, as far as calscope uses them, on
//! loopback (axum).
//!
//! Documented behaviours it reproduces (see `shared/protocols/google-graph.md`, §2):
//! - `GET /me/calendars` in pages (`@odata.nextLink`), with `name`, `hexColor`,
//!   `isDefaultCalendar`, `canEdit`;
//! - `GET /me/calendars/{id}/calendarView/delta?startDateTime&endDateTime`: instance rows only
//!   (single instances, occurrences and exceptions with `seriesMasterId` and `originalStart`),
//!   in rounds of pages of `Prefer: odata.maxpagesize`, with an empty page inside on request,
//!   `@odata.nextLink` to the next page and `@odata.deltaLink` on the last; the window is
//!   frozen into the tokens;
//! - later rounds from the deltaLink: changed rows in full, `@removed` for deletions and for
//!   instances that moved out of the window; on request, replayed rows (the same entity again
//!   within a round) and partial occurrence rows (only `id`, `type`, `start`, `end`,
//!   `seriesMasterId`, `@odata.etag`);
//! - `changeKey`, `@odata.etag` and `lastModifiedDateTime` churn without an edit;
//! - 410 Gone with a `Location` (the round's initial URL) for an expired token, or a 400
//!   `syncStateNotFound` on request; 401 for an unknown token; injected 429 / 503 with
//!   `Retry-After`;
//! - `GET /me/events/{id}` for series masters and instances;
//! - mailboxes by access token, with the highest number of requests in flight at once per
//!   mailbox recorded (and an optional delay per request, so that overlap shows).

#![allow(clippy::too_many_lines, clippy::single_match_else, clippy::struct_excessive_bools, clippy::assigning_clones)] // test code

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

#[derive(Clone, Debug)]
struct Row {
    json: Value,
    start: DateTime<Utc>,
    changed_at: u64,
    deleted: bool,
}

#[derive(Clone, Debug, Default)]
struct Calendar {
    name: String,
    rows: BTreeMap<String, Row>,
    expired_before: u64,
}

/// A delta token: what it was issued for.
#[derive(Clone, Debug)]
struct Token {
    account: String,
    calendar: String,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    seq: u64,
}

#[derive(Default)]
struct Inner {
    base: String,
    tokens: HashMap<String, String>,
    calendars: BTreeMap<(String, String), Calendar>,
    masters: HashMap<(String, String), Value>,
    seq: u64,
    issued: HashMap<String, Token>,
    /// skiptoken → (remaining rows, the token the round ends with, pages served).
    sessions: HashMap<String, (VecDeque<Value>, Token, usize)>,
    next: u64,
    faults: VecDeque<(u16, &'static str, Option<&'static str>)>,
    empty_page: bool,
    replay: bool,
    partial_occurrences: bool,
    sync_state_not_found: bool,
    delay: Option<Duration>,
    /// Another origin to hand out in nextLinks (a hostile or broken server).
    foreign_links: Option<String>,
    /// Every delta page hands out the same nextLink again (a server paging forever).
    stuck: bool,
    in_flight: HashMap<String, usize>,
    max_in_flight: HashMap<String, usize>,
    log: Vec<String>,
}

/// The emulator: a handle to its state and its address.
#[derive(Clone)]
pub(crate) struct GraphEmulator {
    inner: Arc<Mutex<Inner>>,
    pub(crate) addr: SocketAddr,
}

impl GraphEmulator {
    pub(crate) async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v1.0/me/calendars", get(calendars))
            .route("/v1.0/me/calendars/{calendar}/calendarView/delta", get(delta))
            .route("/v1.0/me/events/{id}", get(event))
            .with_state(Arc::clone(&inner));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        inner.lock().unwrap().base = format!("http://{addr}/v1.0");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner, addr }
    }

    pub(crate) fn api(&self) -> String {
        format!("http://{}/v1.0", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap())
    }

    pub(crate) fn mailbox(&self, account: &str, token: &str) {
        self.with(|i| i.tokens.insert(token.to_owned(), account.to_owned()));
    }

    pub(crate) fn calendar(&self, account: &str, id: &str, name: &str) {
        self.with(|i| i.calendars.entry((account.to_owned(), id.to_owned())).or_default().name = name.to_owned());
    }

    /// Puts an instance row (its `id` names it; its `start.dateTime` is UTC).
    pub(crate) fn put(&self, account: &str, calendar: &str, row: Value) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            let start = start_of(&row);
            let cal = i.calendars.get_mut(&(account.to_owned(), calendar.to_owned())).expect("calendar exists");
            let id = row["id"].as_str().expect("an id").to_owned();
            if cal.rows.get(&id).is_some_and(|r| !r.deleted && r.json == row) {
                return;
            }
            cal.rows.insert(id, Row { json: row, start, changed_at: seq, deleted: false });
        });
    }

    /// Stores a series master for `GET /me/events/{id}`.
    pub(crate) fn master(&self, account: &str, master: Value) {
        let id = master["id"].as_str().expect("an id").to_owned();
        self.with(|i| i.masters.insert((account.to_owned(), id), master));
    }

    pub(crate) fn delete(&self, account: &str, calendar: &str, id: &str) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            if let Some(row) =
                i.calendars.get_mut(&(account.to_owned(), calendar.to_owned())).and_then(|c| c.rows.get_mut(id))
            {
                row.deleted = true;
                row.changed_at = seq;
            }
        });
    }

    pub(crate) fn ids(&self, account: &str, calendar: &str) -> Vec<String> {
        self.with(|i| {
            i.calendars
                .get(&(account.to_owned(), calendar.to_owned()))
                .map(|c| c.rows.iter().filter(|(_, r)| !r.deleted).map(|(id, _)| id.clone()).collect())
                .unwrap_or_default()
        })
    }

    /// `changeKey`, `@odata.etag` and `lastModifiedDateTime` move on every row, as they do
    /// daily without an edit; every row becomes a change of the next round.
    pub(crate) fn churn(&self, round: u64) {
        self.with(|i| {
            let mut seq = i.seq;
            for cal in i.calendars.values_mut() {
                for row in cal.rows.values_mut().filter(|r| !r.deleted) {
                    seq += 1;
                    row.json["changeKey"] = json!(format!("ck{round}-{seq}"));
                    row.json["@odata.etag"] = json!(format!("W/\"ck{round}-{seq}\""));
                    row.json["lastModifiedDateTime"] = json!(format!("2026-11-{:02}T10:00:00Z", 1 + round % 28));
                    row.json["webLink"] = json!(format!("https://outlook.office365.com/owa/?itemid={seq}"));
                    row.json["bodyPreview"] = json!(format!("preview {round}"));
                    row.json["reminderMinutesBeforeStart"] = json!(round % 30);
                    row.changed_at = seq;
                }
            }
            i.seq = seq;
        });
    }

    pub(crate) fn expire(&self, account: &str, calendar: &str) {
        self.with(|i| {
            i.seq += 1;
            let seq = i.seq;
            if let Some(cal) = i.calendars.get_mut(&(account.to_owned(), calendar.to_owned())) {
                cal.expired_before = seq;
            }
        });
    }

    pub(crate) fn faults(&self, faults: impl IntoIterator<Item = (u16, &'static str, Option<&'static str>)>) {
        self.with(|i| i.faults.extend(faults));
    }

    /// An empty page after the first page of every round.
    pub(crate) fn empty_pages(&self, on: bool) {
        self.with(|i| i.empty_page = on);
    }

    /// Every round's rows sent a second time at its end.
    pub(crate) fn replays(&self, on: bool) {
        self.with(|i| i.replay = on);
    }

    /// Occurrence rows of later rounds sent with only id, type, start, end, seriesMasterId.
    pub(crate) fn partial_occurrences(&self, on: bool) {
        self.with(|i| i.partial_occurrences = on);
    }

    /// Expired tokens answer 400 `syncStateNotFound` instead of 410.
    pub(crate) fn sync_state_not_found(&self, on: bool) {
        self.with(|i| i.sync_state_not_found = on);
    }

    /// Hands out nextLinks on `base` (another origin) from now on.
    pub(crate) fn foreign_links(&self, base: Option<String>) {
        self.with(|i| i.foreign_links = base);
    }

    /// Every delta page from now on holds the first row and the same `@odata.nextLink`.
    pub(crate) fn stuck_links(&self, on: bool) {
        self.with(|i| i.stuck = on);
    }

    pub(crate) fn delay(&self, delay: Option<Duration>) {
        self.with(|i| i.delay = delay);
    }

    pub(crate) fn max_in_flight(&self, account: &str) -> usize {
        self.with(|i| i.max_in_flight.get(account).copied().unwrap_or(0))
    }

    pub(crate) fn take_log(&self) -> Vec<String> {
        self.with(|i| std::mem::take(&mut i.log))
    }
}

fn start_of(row: &Value) -> DateTime<Utc> {
    let text = row["start"]["dateTime"].as_str().unwrap_or("1970-01-01T00:00:00");
    let text = text.split('.').next().unwrap_or(text).trim_end_matches('Z');
    chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S").map(|t| t.and_utc()).unwrap_or_default()
}

fn error(status: u16, code: &str) -> Response {
    let body = json!({"error": {"code": code, "message": code, "innerError": {"request-id": "0", "date": "2026-12-01T00:00:00"}}});
    (StatusCode::from_u16(status).unwrap(), [(header::CONTENT_TYPE, "application/json")], body.to_string())
        .into_response()
}

fn ok(body: &Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Logs, checks the token, counts the request in flight, serves a queued fault.
fn enter(
    inner: &Arc<Mutex<Inner>>,
    headers: &HeaderMap,
    what: String,
) -> Result<(String, Option<Duration>), Box<Response>> {
    let mut i = inner.lock().unwrap();
    i.log.push(what);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let Some(account) = i.tokens.get(token).cloned() else {
        return Err(Box::new(error(401, "InvalidAuthenticationToken")));
    };
    if let Some((status, code, after)) = i.faults.pop_front() {
        let mut response = error(status, code);
        if let Some(after) = after {
            response.headers_mut().insert(header::RETRY_AFTER, after.parse().unwrap());
        }
        return Err(Box::new(response));
    }
    let n = i.in_flight.entry(account.clone()).or_insert(0);
    *n += 1;
    let now = *n;
    let max = i.max_in_flight.entry(account.clone()).or_insert(0);
    *max = (*max).max(now);
    Ok((account, i.delay))
}

fn leave(inner: &Arc<Mutex<Inner>>, account: &str) {
    if let Some(n) = inner.lock().unwrap().in_flight.get_mut(account) {
        *n = n.saturating_sub(1);
    }
}

fn pairs(query: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()).into_owned().collect()
}

async fn calendars(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let (account, delay) = match enter(&inner, &headers, format!("calendars?{}", query.clone().unwrap_or_default())) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let skip: usize =
        pairs(query.as_deref()).iter().find(|(k, _)| k == "$skip").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let response = {
        let i = inner.lock().unwrap();
        let all: Vec<Value> = i
            .calendars
            .iter()
            .filter(|((a, _), _)| *a == account)
            .enumerate()
            .map(|(n, ((_, id), c))| json!({"id": id, "name": c.name, "hexColor": "#ff8c00", "isDefaultCalendar": n == 0, "canEdit": true, "changeKey": "x"}))
            .collect();
        let page: Vec<Value> = all.iter().skip(skip).take(10).cloned().collect();
        let mut body = json!({"@odata.context": "x", "value": page});
        if skip + 10 < all.len() {
            body["@odata.nextLink"] = json!(format!("{}/me/calendars?$skip={}", i.base, skip + 10));
        }
        ok(&body)
    };
    leave(&inner, &account);
    response
}

fn partial(row: &Value) -> Value {
    json!({"@odata.etag": row["@odata.etag"], "id": row["id"], "type": row["type"], "start": row["start"], "end": row["end"],
           "seriesMasterId": row["seriesMasterId"]})
}

async fn delta(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(calendar): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let (account, delay) =
        match enter(&inner, &headers, format!("delta/{calendar}?{}", query.clone().unwrap_or_default())) {
            Ok(a) => a,
            Err(r) => return *r,
        };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let page_size: usize = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix("odata.maxpagesize=").and_then(|n| n.parse().ok()))
        .unwrap_or(10);
    let response = serve_delta(&mut inner.lock().unwrap(), &account, &calendar, query.as_deref(), page_size);
    leave(&inner, &account);
    response
}

fn serve_delta(i: &mut Inner, account: &str, calendar: &str, query: Option<&str>, page_size: usize) -> Response {
    let params = pairs(query);
    let get = |k: &str| params.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let key = (account.to_owned(), calendar.to_owned());
    let Some(cal) = i.calendars.get(&key) else { return error(404, "ErrorItemNotFound") };
    if i.stuck {
        let first: Vec<Value> = cal.rows.values().filter(|r| !r.deleted).take(1).map(|r| r.json.clone()).collect();
        let next = format!("{}/me/calendars/{calendar}/calendarView/delta?$skiptoken=stuck", i.base);
        return ok(&json!({"@odata.context": "x", "value": first, "@odata.nextLink": next}));
    }
    let (mut remaining, token, served) = if let Some(skip) = get("$skiptoken") {
        match i.sessions.remove(&skip) {
            Some(s) => s,
            None => return error(400, "invalid skiptoken"),
        }
    } else {
        let (start, end, since) = if let Some(delta) = get("$deltatoken") {
            let Some(t) = i.issued.get(&delta).cloned() else { return error(410, "resyncRequired") };
            if t.account != account || t.calendar != calendar {
                return error(400, "a token of another calendar");
            }
            if t.seq < cal.expired_before {
                if i.sync_state_not_found {
                    return error(400, "syncStateNotFound");
                }
                let (s, e) = (t.start.format("%Y-%m-%dT%H:%M:%SZ"), t.end.format("%Y-%m-%dT%H:%M:%SZ"));
                let mut response = error(410, "SyncStateInvalid");
                let base = i.foreign_links.clone().unwrap_or_else(|| i.base.clone());
                let location =
                    format!("{base}/me/calendars/{calendar}/calendarView/delta?startDateTime={s}&endDateTime={e}");
                response.headers_mut().insert(header::LOCATION, location.parse().unwrap());
                return response;
            }
            (t.start, t.end, Some(t.seq))
        } else {
            let parse =
                |k: &str| get(k).and_then(|v| DateTime::parse_from_rfc3339(&v).ok()).map(|t| t.with_timezone(&Utc));
            match (parse("startDateTime"), parse("endDateTime")) {
                (Some(s), Some(e)) => (s, e, None),
                _ => return error(400, "startDateTime and endDateTime are required"),
            }
        };
        let inside = |r: &Row| r.start >= start && r.start < end;
        let mut rows: VecDeque<Value> = VecDeque::new();
        for (id, row) in &cal.rows {
            match since {
                None if !row.deleted && inside(row) => rows.push_back(row.json.clone()),
                None => {}
                Some(s) if row.changed_at <= s => {}
                Some(_) if row.deleted || !inside(row) => {
                    rows.push_back(
                        json!({"@odata.type": "#microsoft.graph.event", "id": id, "@removed": {"reason": "deleted"}}),
                    );
                }
                Some(_) if i.partial_occurrences && row.json["type"] == json!("occurrence") => {
                    rows.push_back(partial(&row.json));
                }
                Some(_) => rows.push_back(row.json.clone()),
            }
        }
        if i.replay {
            let again: Vec<Value> = rows.iter().cloned().collect();
            rows.extend(again);
        }
        let token = Token { account: account.to_owned(), calendar: calendar.to_owned(), start, end, seq: i.seq };
        (rows, token, 0)
    };
    let empty = i.empty_page && served == 1 && !remaining.is_empty();
    let take = if empty { 0 } else { page_size.min(remaining.len()) };
    let page: Vec<Value> = remaining.drain(..take).collect();
    let mut body = json!({"@odata.context": "x", "value": page});
    i.next += 1;
    let name = format!("t{}", i.next);
    if remaining.is_empty() {
        body["@odata.deltaLink"] =
            json!(format!("{}/me/calendars/{calendar}/calendarView/delta?$deltatoken={name}", i.base));
        i.issued.insert(name, token);
    } else {
        let base = i.foreign_links.clone().unwrap_or_else(|| i.base.clone());
        body["@odata.nextLink"] = json!(format!("{base}/me/calendars/{calendar}/calendarView/delta?$skiptoken={name}"));
        i.sessions.insert(name, (remaining, token, served + 1));
    }
    ok(&body)
}

async fn event(State(inner): State<Arc<Mutex<Inner>>>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let (account, _) = match enter(&inner, &headers, format!("event/{id}")) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let response = {
        let i = inner.lock().unwrap();
        let row = i.masters.get(&(account.clone(), id.clone())).cloned().or_else(|| {
            i.calendars
                .iter()
                .filter(|((a, _), _)| *a == account)
                .find_map(|(_, c)| c.rows.get(&id).filter(|r| !r.deleted).map(|r| r.json.clone()))
        });
        match row {
            Some(row) => ok(&row),
            None => error(404, "ErrorItemNotFound"),
        }
    };
    leave(&inner, &account);
    response
}

/// An instance row: `kind` is singleInstance, occurrence or exception; times in UTC.
pub(crate) fn instance(
    id: &str,
    kind: &str,
    uid: &str,
    subject: &str,
    start: &str,
    master: Option<(&str, &str)>,
) -> Value {
    let end = (DateTime::parse_from_rfc3339(&format!("{start}Z")).unwrap() + chrono::Duration::minutes(30))
        .format("%Y-%m-%dT%H:%M:%S.0000000")
        .to_string();
    let mut row = json!({"@odata.etag": "W/\"ck1\"", "id": id, "type": kind, "iCalUId": uid, "subject": subject,
        "changeKey": "ck1", "createdDateTime": "2026-10-01T10:00:00Z", "lastModifiedDateTime": "2026-11-01T10:00:00Z",
        "bodyPreview": "Agenda", "body": {"contentType": "html", "content": "<html><body><p>Agenda</p></body></html>"},
        "webLink": "https://outlook.office365.com/owa/?itemid=1", "isReminderOn": true, "reminderMinutesBeforeStart": 15,
        "start": {"dateTime": format!("{start}.0000000"), "timeZone": "UTC"}, "end": {"dateTime": end, "timeZone": "UTC"},
        "location": {"displayName": "Room 1"}, "showAs": "busy", "isAllDay": false, "isCancelled": false, "sensitivity": "normal",
        "organizer": {"emailAddress": {"name": "Ann", "address": "ann@contoso.com"}},
        "attendees": [{"type": "required", "status": {"response": "accepted", "time": "2026-11-01T10:00:00Z"},
                       "emailAddress": {"name": "Bo", "address": "bo@contoso.com"}}]});
    if let Some((master, original)) = master {
        row["seriesMasterId"] = json!(master);
        row["originalStart"] = json!(format!("{original}Z"));
    }
    row
}
