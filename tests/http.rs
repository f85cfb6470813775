//! `IcsSource` over http against a real HTTP server on loopback (axum on hyper), plus an
//! in-process fake for a connection that drops mid-body.

#![cfg(feature = "http")]

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use calscope::{CalendarId, Engine, ErrorKind, HttpAuth, HttpConfig, IcsSource, MemoryStore};
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

        let quick = HttpConfig::default().timeout(Duration::from_millis(300)).max_bytes(1 << 20).max_redirects(3);
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
