//! A cookie whose session has ended (logout, back-channel logout, timeout) is an ordinary
//! event: the bridge's log has no "possibly suspicious activity" line for it, and
//! `login_bridge_ended_session_cookies_total` counts it. A cookie that is no session id at all
//! is still logged as suspicious. The bridge runs in this test's thread with the log filter
//! and format it uses in production, writing into a buffer the test reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use login_bridge::{settings::LogFormat, startup::Application, telemetry};
use reqwest::StatusCode;
use tokio::net::TcpListener;

use crate::{metrics::value, support::*};

/// A `MakeWriter` into a buffer the test reads.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'w self) -> Buffer {
        self.clone()
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// `GET /auth/session` with `cookie` as the session cookie.
async fn session_with(address: &str, cookie: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{address}/auth/session"))
        .header(reqwest::header::COOKIE, format!("lb_session={cookie}"))
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .send()
        .await
        .unwrap()
        .status()
}

async fn scrape(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

// One thread: the bridge's request handling runs where the test's log subscriber is set.
#[tokio::test(flavor = "current_thread")]
async fn a_cookie_of_an_ended_session_is_counted_not_logged_as_suspicious() {
    let log = Buffer::default();
    let dispatch = telemetry::subscriber(LogFormat::Text, telemetry::filter(None), log.clone());
    let _logging = tracing::dispatcher::set_default(&dispatch);
    let dir = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // No provider: the session endpoint does not need one.
    let settings = bridge_settings(
        port,
        "http://127.0.0.1:9",
        dir.path(),
        &AppOptions {
            metrics: true,
            ..AppOptions::default()
        },
    );
    let app = Application::build_with_listener(settings.compile().unwrap(), listener)
        .await
        .unwrap();
    let metrics_port = app.metrics_port().unwrap();
    let server = tokio::spawn(app.run_until_stopped());
    let address = format!("http://127.0.0.1:{port}");
    let before = scrape(metrics_port).await;

    // A well-formed session id the store does not hold: what the cookie of a session that
    // ended looks like to the bridge. Three requests with it, all anonymous.
    let ended = "AAAAAAAAAAAAAAAAAAAAAA";
    for _ in 0..3 {
        assert_eq!(
            session_with(&address, ended).await,
            StatusCode::UNAUTHORIZED
        );
    }
    // A cookie that is no session id at all still is worth a warning.
    assert_eq!(
        session_with(&address, "not-a-session-id").await,
        StatusCode::UNAUTHORIZED
    );

    let text = log.text();
    assert!(
        text.contains("malformed session id"),
        "the log is captured: {text}"
    );
    assert!(!text.contains("record not found"), "{text}");
    let after = scrape(metrics_port).await;
    let name = "login_bridge_ended_session_cookies_total";
    // Other tests' bridges share the process's recorder: at least this test's three.
    assert!(
        value(&after, name, &[]) - value(&before, name, &[]) >= 3.0,
        "{name} did not count the ended sessions:\n{after}"
    );
    server.abort();
}
