//! The real `login-bridge` binary in a process of its own, for the tests that need one (memory,
//! signals): a configuration trusting the fixture gateway issuer, with one upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

pub fn fixture(name: &str) -> PathBuf {
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

/// A running bridge process and its base URL.
pub struct Bridge {
    pub process: tokio::process::Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Bridge {
    /// Starts the binary with `/files/` proxied to `upstream` (plus `upstream_extra` lines in
    /// that `[[upstreams]]` entry) and waits until it answers `/healthz`.
    pub async fn start(upstream: SocketAddr, upstream_extra: &str) -> Bridge {
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
{upstream_extra}
"#,
                db = dir.path().join("s.sqlite").display(),
                key = fixture("issuer-rsa-a.pub.pem").display(),
            ),
        )
        .unwrap();
        let process = tokio::process::Command::new(env!("CARGO_BIN_EXE_login-bridge"))
            .arg("--config")
            .arg(&config)
            .env_clear()
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
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
        Bridge {
            process,
            base,
            _dir: dir,
        }
    }

    /// The configuration file it runs with.
    pub fn config(&self) -> PathBuf {
        self._dir.path().join("bridge.toml")
    }

    pub fn pid(&self) -> u32 {
        self.process.id().unwrap()
    }
}

/// A token of the fixture gateway issuer the bridge trusts, valid for 10 minutes.
pub fn gateway_token() -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let pem = std::fs::read(fixture("issuer-rsa-a.pem")).unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"iss": "https://gateway.example", "sub": "u-1", "aud": "my-api",
                "iat": now, "exp": now + 600, "preferred_username": "user-1"}),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}
