//! Secrets never show: passwords, bearer tokens, refresh tokens and client secrets are searched
//! for in every `Debug` and `Display` of the sources, their settings, the failed syncs' reports,
//! the whole chains of their errors, and everything calscope told `tracing` meanwhile (every
//! span's and event's fields, captured by a subscriber of the test's own).

#![cfg(all(feature = "google", feature = "graph", feature = "caldav"))]

use std::fmt::Write as _;
use std::sync::Arc;

use axum::http::StatusCode;
use calscope::{
    CalDavConfig, CalDavSource, CalendarId, Engine, GoogleConfig, GoogleSource, GraphConfig, GraphSource, HttpAuth,
    HttpConfig, IcsSource, MemoryStore, OAuthRefresh, RetryPolicy, TokenProvider as _,
};

const SECRETS: [&str; 5] = ["pw-S3cr3t-basic", "tok-S3cr3t-bearer", "rt-S3cr3t-refresh", "cs-S3cr3t-client", "S3cr3t"];

/// A server answering every request with `status` and a body that quotes the secrets back, as
/// careless servers do.
async fn answering(status: u16) -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(move || async move {
        let body = r#"{"error":"invalid_grant","error_description":"refresh token rt-S3cr3t-refresh for client cs-S3cr3t-client was revoked; Bearer tok-S3cr3t-bearer"}"#;
        (StatusCode::from_u16(status).unwrap(), body)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Everything an error shows: its Display, its Debug, and every cause below it.
fn shown(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("{error} {error:?}");
    let mut cause = error.source();
    while let Some(c) = cause {
        let _ = write!(out, " | {c} {c:?}");
        cause = c.source();
    }
    out
}

/// A `tracing` subscriber writing every span's and event's name, target and fields into one
/// text.
#[derive(Clone, Default)]
struct Capture {
    text: Arc<std::sync::Mutex<String>>,
    ids: Arc<std::sync::atomic::AtomicU64>,
}

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nspan {} {}", span.metadata().target(), span.metadata().name());
        span.record(&mut Fields(&mut text));
        tracing::span::Id::from_u64(self.ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        let mut text = self.text.lock().unwrap();
        text.push_str("\nrecord");
        values.record(&mut Fields(&mut text));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = self.text.lock().unwrap();
        let _ = write!(text, "\nevent {}", event.metadata().target());
        event.record(&mut Fields(&mut text));
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

fn assert_clean(what: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
}

#[test]
fn no_secret_shows_in_debug_display_reports_error_chains_or_traces() {
    // One thread: the capture is this thread's default subscriber.
    let capture = Capture::default();
    // While one dispatcher exists, tracing computes a callsite's interest from the default of
    // the thread that first hits it: one first hit on another thread (a resolver worker,
    // another test) caches "never", and the capture misses it (CI saw the sync spans missing
    // once). A second, idle dispatcher makes tracing ask every registered one instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _traced = tracing::subscriber::set_default(capture.clone());
    tracing::callsite::rebuild_interest_cache();
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let refused = answering(401).await;
        let broken = answering(500).await;
        let quick = || {
            HttpConfig::default()
                .retry(RetryPolicy::default().min_delay(std::time::Duration::from_millis(1)).max_retries(1))
        };
        let bearer = || quick().auth(HttpAuth::Bearer("tok-S3cr3t-bearer".into()));
        let cal = CalendarId::new("c").unwrap();
        let mut seen = Vec::new();

        // Feeds: credentials in the URL, a bearer token, refused and broken answers.
        let basic = IcsSource::from_url(
            cal.clone(),
            &format!("http://ann:pw-S3cr3t-basic@{refused}/private/S3cr3t.ics"),
            quick(),
        )
        .unwrap();
        let token = IcsSource::from_url(cal.clone(), &format!("http://{broken}/feed.ics"), bearer()).unwrap();
        for source in [&basic, &token] {
            let report = Engine::new(MemoryStore::new()).sync(source, &cal).await;
            assert!(!report.is_ok());
            seen.push((format!("{source:?}"), format!("{report:?} {}", report.error.clone().unwrap_or_default())));
        }
        seen.push(("HttpConfig".into(), format!("{:?}", bearer())));

        // CalDAV discovery refused.
        let err = CalDavSource::discover(
            &format!("http://ann:pw-S3cr3t-basic@{refused}/dav/"),
            CalDavConfig::default().http(quick()),
        )
        .await
        .unwrap_err();
        seen.push(("caldav".into(), shown(&err)));

        // Google and Graph: refused, broken, and a server that is not there at all.
        let google_config = |api: String| GoogleConfig::default().api(api).http(bearer());
        let graph_config = |api: String| GraphConfig::default().api(api).http(bearer());
        for api in [
            format!("http://{refused}/calendar/v3"),
            format!("http://{broken}/calendar/v3"),
            "http://127.0.0.1:9/calendar/v3".to_owned(),
        ] {
            let source = GoogleSource::calendar(cal.clone(), "primary", google_config(api)).unwrap();
            let report = Engine::new(MemoryStore::new()).sync(&source, &cal).await;
            assert!(!report.is_ok());
            seen.push((format!("{source:?}"), format!("{report:?}")));
        }
        for api in
            [format!("http://{refused}/v1.0"), format!("http://{broken}/v1.0"), "http://127.0.0.1:9/v1.0".to_owned()]
        {
            let source = GraphSource::calendar(cal.clone(), "AAMk", graph_config(api)).unwrap();
            let report = Engine::new(MemoryStore::new()).sync(&source, &cal).await;
            assert!(!report.is_ok());
            seen.push((format!("{source:?}"), format!("{report:?}")));
        }

        // OAuth: the endpoint refuses the refresh token and quotes it back.
        let tokens =
            OAuthRefresh::new(&format!("http://{refused}/token"), "client", "cs-S3cr3t-client", "rt-S3cr3t-refresh")
                .unwrap();
        let err = tokens.token().await.unwrap_err();
        seen.push((format!("{tokens:?}"), shown(&err)));
        let provider = Arc::new(tokens);
        let source = GoogleSource::calendar(
            cal.clone(),
            "primary",
            GoogleConfig::default()
                .api(format!("http://{refused}/calendar/v3"))
                .http(quick().auth(HttpAuth::Token(provider))),
        )
        .unwrap();
        let report = Engine::new(MemoryStore::new()).sync(&source, &cal).await;
        assert!(!report.is_ok());
        seen.push((format!("{source:?}"), format!("{report:?}")));

        for (debug, failure) in &seen {
            assert_clean("a Debug", debug);
            assert_clean("a failure", failure);
        }
        assert!(seen.len() >= 12);
    });
    let traced = capture.text.lock().unwrap().clone();
    assert_clean("the tracing output", &traced);
    // The capture saw the syncs, their failures and the retries (so it could have seen a secret).
    assert!(traced.matches("span calscope::sync sync").count() >= 9, "{traced}");
    assert!(traced.contains("outcome=\"error\"") && traced.contains("retrying a request"), "{traced}");
}
