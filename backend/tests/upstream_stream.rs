//! A large download through an upstream streams: the real `login-bridge` binary in its own
//! process proxies 50 MB from a local upstream, and its resident memory (VmRSS, sampled while
//! the body flows) must stay flat.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, process::Stdio, time::Duration};

use axum::{Router, body::Body, routing::get};
use futures::StreamExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const TOTAL: usize = 50 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_50_mb_download_streams_through_the_bridge_with_flat_memory() {
    // The upstream: 50 MB made on the fly, in 64 KiB chunks.
    let app = Router::new().route(
        "/data",
        get(|| async {
            let chunks = futures::stream::iter(0..TOTAL / CHUNK)
                .map(|i| Ok::<_, std::io::Error>(vec![(i % 251) as u8; CHUNK]));
            Body::from_stream(chunks)
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

    // Warm up (connection pools, allocator), then take the baseline.
    let warm = http
        .get(format!("{base}/files/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    let mut body = warm.bytes_stream();
    let mut n = 0;
    while let Some(chunk) = body.next().await {
        n += chunk.unwrap().len();
        if n > 4 * 1024 * 1024 {
            break;
        }
    }
    drop(body);
    let baseline = rss_kib(pid);

    let r = http
        .get(format!("{base}/files/data"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let (mut received, mut peak, mut chunks) = (0usize, baseline, 0u64);
    while let Some(chunk) = body.next().await {
        received += chunk.unwrap().len();
        chunks += 1;
        if chunks % 16 == 0 {
            peak = peak.max(rss_kib(pid));
        }
    }
    peak = peak.max(rss_kib(pid));
    assert_eq!(received, TOTAL, "the whole body arrived");
    let growth_mib = (peak.saturating_sub(baseline)) as f64 / 1024.0;
    println!("bridge RSS: baseline {baseline} KiB, peak {peak} KiB, growth {growth_mib:.1} MiB");
    assert!(
        growth_mib < 20.0,
        "the bridge buffered the body: RSS grew by {growth_mib:.1} MiB"
    );
    bridge.kill().await.unwrap();
}
