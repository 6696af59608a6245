//! SIGTERM finishes the requests in flight: the real `login-bridge` binary proxies a request to
//! an upstream that holds its answer; SIGTERM arrives meanwhile; the bridge stops accepting new
//! connections, still delivers the held answer, and exits cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use axum::{Router, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokio::sync::{Mutex, Notify};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    // The upstream tells the test when the request arrived, and answers when the test says.
    let arrived = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let held = Arc::new(Mutex::new(()));
    let app = Router::new().route(
        "/slow",
        get({
            let (arrived, release, held) = (arrived.clone(), release.clone(), held.clone());
            move || async move {
                let _one_at_a_time = held.lock().await;
                arrived.notify_one();
                release.notified().await;
                "finished after SIGTERM"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"
listen = "127.0.0.1:{port}"
public_url = "http://localhost:{port}"
[oidc]
issuer = "http://127.0.0.1:9"
client_id = "ui"
client_secret = "not-used-here"
api_audience = "my-api"
[session]
sqlite_path = "{db}"
[[issuers]]
name = "gateway"
issuer = "https://gateway.example"
audiences = ["my-api"]
algorithms = ["RS256"]
public_key_file = "{key}"
[[upstreams]]
prefix = "/files/"
url = "http://{upstream}"
timeout_secs = 60
"#,
            db = dir.path().join("s.sqlite").display(),
            key = fixture("issuer-rsa-a.pub.pem").display(),
        ),
    )
    .unwrap();
    let mut bridge = tokio::process::Command::new(env!("CARGO_BIN_EXE_login-bridge"))
        .arg("--config")
        .arg(&config)
        .env_clear()
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = bridge.id().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bridge did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let pem = std::fs::read(fixture("issuer-rsa-a.pem")).unwrap();
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"iss": "https://gateway.example", "sub": "u-1", "aud": "my-api",
                "iat": now, "exp": now + 600}),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap();

    let in_flight = tokio::spawn({
        let (http, url) = (http.clone(), format!("{base}/files/slow"));
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    });
    arrived.notified().await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // It stops accepting connections (a fresh client: no pooled connection to reuse)...
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let fresh = reqwest::Client::new();
            if fresh.get(format!("{base}/healthz")).send().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "still accepting connections after SIGTERM");
    // ...while the request in flight is still waiting, and it is not dropped.
    assert!(!in_flight.is_finished());
    assert!(
        bridge.try_wait().unwrap().is_none(),
        "exited before finishing"
    );

    release.notify_one();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the request in flight was answered")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "finished after SIGTERM");
    let exit = tokio::time::timeout(Duration::from_secs(10), bridge.wait())
        .await
        .expect("the bridge exits once the request is done")
        .unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
}
