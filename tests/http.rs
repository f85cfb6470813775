//! `IcsSource` over http against a real HTTP server on loopback (axum on hyper), plus an
//! in-process fake for a connection that drops mid-body.

#![cfg(feature = "http")]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use calscope::{
    CalendarId, Engine, ErrorKind, HttpAuth, HttpConfig, IcsSource, MemoryStore, Result, RetryPolicy, Secret,
    TokenProvider,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::{cal, feed};

#[derive(Default)]
struct Feed {
    body: String,
    full: usize,
    not_modified: usize,
}

type Shared = Arc<Mutex<Feed>>;

fn etag_of(body: &str) -> String {
    format!("\"{:x}\"", body.len() * 31 + body.bytes().map(usize::from).sum::<usize>())
}

async fn serve_feed(State(state): State<Shared>, headers: HeaderMap) -> Response {
    let mut f = state.lock().unwrap();
    let etag = etag_of(&f.body);
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        f.not_modified += 1;
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    f.full += 1;
    ([(header::ETAG, etag)], f.body.clone()).into_response()
}

async fn serve_gzip(State(state): State<Shared>) -> Response {
    let body = state.lock().unwrap().body.clone();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    ([(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))], gz.finish().unwrap()).into_response()
}

async fn serve_private(State(state): State<Shared>, headers: HeaderMap) -> Response {
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some("Bearer tok-123") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    state.lock().unwrap().body.clone().into_response()
}

async fn start() -> (SocketAddr, Shared) {
    let state: Shared = Arc::new(Mutex::new(Feed {
        body: feed(&[("0@http", "a"), ("1@http", "b")], "20260101T000000Z"),
        ..Feed::default()
    }));
    let app = Router::new()
        .route("/feed.ics", get(serve_feed))
        .route("/gzip.ics", get(serve_gzip))
        .route("/private/secret-path/basic.ics", get(serve_private))
        .route("/error", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route("/loop", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/loop")]) }))
        .route("/big", get(|| async { "X".repeat(2 << 20) }))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state)
}

/// A fake server that promises 5000 bytes, sends 100, and hangs up.
async fn start_truncating() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = socket.read(&mut buf).await;
            let body = feed(&[("x@http", "x")], "20260101T000000Z");
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n{}", &body[..100]);
            let _ = socket.write_all(head.as_bytes()).await;
            let _ = socket.shutdown().await;
        }
    });
    addr
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

#[test]
fn conditional_gets_make_an_unchanged_feed_a_zero_work_sync() {
    runtime().block_on(async {
        let (addr, state) = start().await;
        let c = cal("http");
        let source = IcsSource::from_url(c.clone(), &format!("http://{addr}/feed.ics"), HttpConfig::default()).unwrap();
        let engine = Engine::new(MemoryStore::new());
        assert_eq!(engine.sync(&source, &c).await.inserted, 2);
        let again = engine.sync(&source, &c).await;
        assert!(again.is_ok(), "{again:?}");
        assert_eq!((again.writes(), again.unchanged), (0, 0), "a 304 reads nothing");
        {
            let f = state.lock().unwrap();
            assert_eq!((f.full, f.not_modified), (1, 1));
        }
        // New DTSTAMPs: a new ETag, a full body, zero writes; a real change: one write.
        state.lock().unwrap().body = feed(&[("0@http", "a"), ("1@http", "b")], "20260102T000000Z");
        let stamped = engine.sync(&source, &c).await;
        assert_eq!((stamped.writes(), stamped.unchanged), (0, 2));
        state.lock().unwrap().body = feed(&[("0@http", "a"), ("1@http", "B!")], "20260103T000000Z");
        assert_eq!(engine.sync(&source, &c).await.updated, 1);
        assert_eq!(engine.store().stats().rows(), 3);
    });
}

#[test]
fn gzip_and_bearer_auth_are_supported_and_secrets_never_show() {
    runtime().block_on(async {
        let (addr, _) = start().await;
        let c = cal("gz");
        let gz = IcsSource::from_url(c.clone(), &format!("http://{addr}/gzip.ics"), HttpConfig::default()).unwrap();
        assert_eq!(Engine::new(MemoryStore::new()).sync(&gz, &c).await.inserted, 2);

        let url = format!("http://{addr}/private/secret-path/basic.ics");
        let denied = IcsSource::from_url(c.clone(), &url, HttpConfig::default()).unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&denied, &c).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Unauthorized));
        let shown = format!("{denied:?} {r:?}");
        assert!(!shown.contains("secret-path"), "{shown}");

        let config = HttpConfig::default().auth(HttpAuth::Bearer("tok-123".into()));
        assert!(!format!("{config:?}").contains("tok-123"));
        let allowed = IcsSource::from_url(c.clone(), &url, config).unwrap();
        assert_eq!(Engine::new(MemoryStore::new()).sync(&allowed, &c).await.inserted, 2);
    });
}

#[test]
fn failures_are_typed_and_delete_nothing() {
    runtime().block_on(async {
        let (addr, _) = start().await;
        let truncating = start_truncating().await;
        let c: CalendarId = cal("fail");
        let store = Arc::new(MemoryStore::new());
        let engine = Engine::new(Arc::clone(&store));
        let good = IcsSource::from_url(c.clone(), &format!("http://{addr}/feed.ics"), HttpConfig::default()).unwrap();
        assert_eq!(engine.sync(&good, &c).await.inserted, 2);

        let quick = HttpConfig::default()
            .timeout(Duration::from_millis(300))
            .max_bytes(1 << 20)
            .max_redirects(3)
            .retry(fast_retries());
        let cases = [
            (format!("http://{addr}/missing.ics"), ErrorKind::NotFound),
            (format!("http://{addr}/error"), ErrorKind::Transport),
            (format!("http://{addr}/slow"), ErrorKind::Timeout),
            (format!("http://{addr}/loop"), ErrorKind::Transport),
            (format!("http://{addr}/big"), ErrorKind::LimitExceeded),
            (format!("http://{truncating}/feed.ics"), ErrorKind::Transport),
        ];
        for (url, kind) in cases {
            let source = IcsSource::from_url(c.clone(), &url, quick.clone()).unwrap();
            let r = engine.sync(&source, &c).await;
            assert_eq!(r.error_kind, Some(kind), "{url}: {r:?}");
            assert_eq!(store.events(&c).len(), 2, "{url} must delete nothing");
        }
    });
}

/// Retries as the default policy makes them, with short waits.
fn fast_retries() -> RetryPolicy {
    RetryPolicy::default().min_delay(Duration::from_millis(5)).max_delay(Duration::from_millis(50))
}

/// One scripted answer: status, headers, body.
type Scripted = (u16, Vec<(&'static str, String)>, String);

/// A server whose answers are scripted per request (status, headers, body), recording the
/// `Authorization` header of every request it receives.
#[derive(Default)]
struct Script {
    answers: Mutex<Vec<Scripted>>,
    seen_auth: Mutex<Vec<Option<String>>>,
}

async fn start_scripted(script: Arc<Script>) -> SocketAddr {
    let app = Router::new().fallback(move |headers: HeaderMap| {
        let script = Arc::clone(&script);
        async move {
            let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
            script.seen_auth.lock().unwrap().push(auth);
            let mut answers = script.answers.lock().unwrap();
            let (status, head, body) =
                if answers.is_empty() { (404, Vec::new(), String::new()) } else { answers.remove(0) };
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (name, value) in head {
                response.headers_mut().insert(name, HeaderValue::from_str(&value).unwrap());
            }
            response
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

#[test]
fn a_503_is_retried_after_the_wait_it_asks_for_and_every_request_is_counted() {
    runtime().block_on(async {
        let script = Arc::new(Script::default());
        let body = feed(&[("r@http", "r")], "20260101T000000Z");
        *script.answers.lock().unwrap() = vec![
            (503, vec![("retry-after", "1".to_owned())], String::new()),
            (429, vec![], String::new()),
            (200, vec![], body),
        ];
        let addr = start_scripted(Arc::clone(&script)).await;
        let c = cal("retried");
        // A cap above the one second asked for; the step waits stay short.
        let config = HttpConfig::default().retry(fast_retries().max_delay(Duration::from_secs(2)));
        let source = IcsSource::from_url(c.clone(), &format!("http://{addr}/f.ics"), config).unwrap();
        let started = Instant::now();
        let r = Engine::new(MemoryStore::new()).sync(&source, &c).await;
        assert_eq!(r.inserted, 1, "{r:?}");
        assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honored");
        assert_eq!(source.requests(), 3);

        // Retries spent: the last answer's status decides the error.
        *script.answers.lock().unwrap() = vec![(429, vec![], String::new()); 4];
        let spent =
            IcsSource::from_url(c.clone(), &format!("http://{addr}/f.ics"), config_with(fast_retries())).unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&spent, &c).await;
        assert_eq!(r.error_kind, Some(ErrorKind::RateLimited), "{r:?}");
        assert_eq!(spent.requests(), 4, "one request and three retries");
    });
}

fn config_with(retry: RetryPolicy) -> HttpConfig {
    HttpConfig::default().retry(retry)
}

#[test]
fn a_feed_redirected_to_another_origin_is_followed_without_the_credentials() {
    runtime().block_on(async {
        let elsewhere = Arc::new(Script::default());
        elsewhere.answers.lock().unwrap().push((200, vec![], feed(&[("x@http", "x")], "20260101T000000Z")));
        let other = start_scripted(Arc::clone(&elsewhere)).await;
        let home = Arc::new(Script::default());
        home.answers.lock().unwrap().push((
            302,
            vec![("location", format!("http://{other}/moved.ics"))],
            String::new(),
        ));
        let addr = start_scripted(Arc::clone(&home)).await;
        let c = cal("redirected");
        let config = HttpConfig::default().auth(HttpAuth::Bearer("secret-token".into()));
        let source = IcsSource::from_url(c.clone(), &format!("http://{addr}/f.ics"), config).unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&source, &c).await;
        assert_eq!(r.inserted, 1, "{r:?}");
        assert_eq!(*home.seen_auth.lock().unwrap(), vec![Some("Bearer secret-token".to_owned())]);
        assert_eq!(*elsewhere.seen_auth.lock().unwrap(), vec![None], "the other origin saw no credentials");

        // Confined to its origin: the redirect fails the fetch before anything is sent there.
        home.answers.lock().unwrap().push((
            302,
            vec![("location", format!("http://{other}/moved.ics"))],
            String::new(),
        ));
        let confined = HttpConfig::default().auth(HttpAuth::Bearer("secret-token".into())).same_origin_redirects(true);
        let source = IcsSource::from_url(c.clone(), &format!("http://{addr}/f.ics"), confined).unwrap();
        let store = Arc::new(MemoryStore::new());
        let r = Engine::new(Arc::clone(&store)).sync(&source, &c).await;
        assert_eq!(r.error_kind, Some(ErrorKind::ScopeViolation), "{r:?}");
        assert_eq!(elsewhere.seen_auth.lock().unwrap().len(), 1, "the other origin got no second request");
        assert!(store.events(&c).is_empty());
    });
}

/// A token provider that hands out `old` until asked to refresh, then `new`.
#[derive(Debug, Default)]
struct Rotating {
    refreshes: AtomicUsize,
}

#[async_trait::async_trait]
impl TokenProvider for Rotating {
    async fn token(&self) -> Result<Secret> {
        Ok(Secret::new(if self.refreshes.load(Ordering::SeqCst) == 0 { "tok-old-7f3a" } else { "tok-new-9c1b" }))
    }
    async fn refresh(&self) -> Result<Secret> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new("tok-new-9c1b"))
    }
}

#[test]
fn a_401_refreshes_the_token_once_then_fails_as_unauthorized() {
    runtime().block_on(async {
        let script = Arc::new(Script::default());
        let body = feed(&[("t@http", "t")], "20260101T000000Z");
        *script.answers.lock().unwrap() = vec![(401, vec![], String::new()), (200, vec![], body)];
        let addr = start_scripted(Arc::clone(&script)).await;
        let c = cal("token");
        let tokens = Arc::new(Rotating::default());
        let config = HttpConfig::default().auth(HttpAuth::Token(tokens.clone()));
        assert!(!format!("{config:?}").contains("tok-old"));
        let source = IcsSource::from_url(c.clone(), &format!("http://{addr}/f.ics"), config.clone()).unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&source, &c).await;
        assert_eq!(r.inserted, 1, "{r:?}");
        assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
        let seen = script.seen_auth.lock().unwrap().clone();
        assert_eq!(seen, vec![Some("Bearer tok-old-7f3a".to_owned()), Some("Bearer tok-new-9c1b".to_owned())]);

        // Refused again after the refresh: one refresh, two requests, Unauthorized.
        *script.answers.lock().unwrap() = vec![(401, vec![], String::new()); 3];
        let fresh = Arc::new(Rotating::default());
        let source = IcsSource::from_url(
            c.clone(),
            &format!("http://{addr}/f.ics"),
            HttpConfig::default().auth(HttpAuth::Token(fresh.clone())),
        )
        .unwrap();
        let r = Engine::new(MemoryStore::new()).sync(&source, &c).await;
        assert_eq!(r.error_kind, Some(ErrorKind::Unauthorized), "{r:?}");
        assert_eq!((fresh.refreshes.load(Ordering::SeqCst), source.requests()), (1, 2));
        let shown = format!("{r:?} {source:?}");
        assert!(!shown.contains("tok-old") && !shown.contains("tok-new"), "{shown}");
    });
}

#[cfg(feature = "caldav")]
#[test]
fn a_caldav_redirect_to_another_origin_is_refused_before_it_is_sent() {
    runtime().block_on(async {
        let elsewhere = Arc::new(Script::default());
        let other = start_scripted(Arc::clone(&elsewhere)).await;
        let home = Arc::new(Script::default());
        home.answers.lock().unwrap().push((307, vec![("location", format!("http://{other}/dav/"))], String::new()));
        let addr = start_scripted(Arc::clone(&home)).await;
        let config = calscope::CalDavConfig::default()
            .http(HttpConfig::default().auth(HttpAuth::Bearer("dav-secret".into())).retry(fast_retries()));
        let err = calscope::CalDavSource::discover(&format!("http://{addr}/dav/"), config).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ScopeViolation, "{err:?}");
        assert!(elsewhere.seen_auth.lock().unwrap().is_empty(), "nothing was sent to the other origin");
        assert!(!format!("{err:?}").contains("dav-secret"));
    });
}
