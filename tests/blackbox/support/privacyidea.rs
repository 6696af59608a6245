//! A real privacyIDEA 3.14 (PyPI, `tools/privacyidea-venv`) per test, to judge the JWTs the
//! bridge mints the way a real upstream does: privacyIDEA accepts externally signed tokens only
//! through `PI_TRUSTED_JWT` in its `pi.cfg`, so each server is started with the trust list its
//! test needs.
//!
//! Setting privacyIDEA up costs seconds (`tests/privacyidea/make_template.py`), so it happens
//! once: the template instance is cached under the target directory, keyed by the script and the
//! installed privacyIDEA, and each test runs a copy of it in its own temporary directory.
//! The template has the realm [`REALM`] (the default realm) with the passwd resolver
//! [`RESOLVER`] holding [`USERS`]; a test that changes a user's state should take a user of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::OnceLock,
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, ChildStdin, Command},
};

use super::repo_root;

/// The default realm of every instance.
pub const REALM: &str = "defrealm";
/// The passwd resolver of [`REALM`].
pub const RESOLVER: &str = "deflocal";
/// The users of [`RESOLVER`]; alice and bob for the common cases, the others for tests that need
/// a user of their own.
pub const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];

/// How long a server may take from spawn to answering `GET /healthz/` (~2.5 s on 2 cores).
const START_DEADLINE: Duration = Duration::from_secs(30);

/// One `PI_TRUSTED_JWT` entry: privacyIDEA accepts a JWT signed by `public_key_pem` with
/// `algorithm` whose claims `role`, `realm` and `resolver` equal these (a missing claim is not
/// `""`) and whose `username` matches the regex `username`. privacyIDEA anchors it with
/// `re.match(username + "$")`: `alice|bob` therefore also admits `alice-anything`; write
/// `(alice|bob)`. An entry with the same role, realm and resolver whose regex does not match
/// refuses the token even when a later entry would accept it.
#[derive(Clone, Debug)]
pub struct TrustedJwt {
    pub public_key_pem: String,
    /// `RS256`, `PS256`, `ES256`... (privacyIDEA trusts no HMAC or EdDSA algorithm here).
    pub algorithm: String,
    /// `user` or `admin`.
    pub role: String,
    pub realm: String,
    pub resolver: String,
    /// A regex the `username` claim must match.
    pub username: String,
}

impl TrustedJwt {
    /// Any user of [`REALM`] / [`RESOLVER`], role `user`.
    pub fn users(public_key_pem: &str, algorithm: &str) -> TrustedJwt {
        TrustedJwt {
            public_key_pem: public_key_pem.to_owned(),
            algorithm: algorithm.to_owned(),
            role: "user".into(),
            realm: REALM.into(),
            resolver: RESOLVER.into(),
            username: ".*".into(),
        }
    }

    /// Any administrator, role `admin` with empty realm and resolver (the admin need not exist).
    pub fn admins(public_key_pem: &str, algorithm: &str) -> TrustedJwt {
        TrustedJwt {
            public_key_pem: public_key_pem.to_owned(),
            algorithm: algorithm.to_owned(),
            role: "admin".into(),
            realm: String::new(),
            resolver: String::new(),
            username: ".*".into(),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        json!({
            "public_key": self.public_key_pem,
            "algorithm": self.algorithm,
            "role": self.role,
            "realm": self.realm,
            "resolver": self.resolver,
            "username": self.username,
        })
    }
}

/// A running privacyIDEA on 127.0.0.1, killed (and its directory removed) on drop.
pub struct PrivacyIdea {
    /// `http://127.0.0.1:<port>/`
    pub url: url::Url,
    http: reqwest::Client,
    // Field order is drop order: the server dies before its directory goes.
    child: Child,
    _stdin: ChildStdin,
    dir: tempfile::TempDir,
}

impl PrivacyIdea {
    /// Starts a fresh instance (a copy of the template) that trusts `trusted`, and waits until it
    /// answers `GET /healthz/`.
    pub async fn start(trusted: &[TrustedJwt]) -> PrivacyIdea {
        let python = venv_python();
        let template = template_dir();
        let dir = tempfile::Builder::new()
            .prefix("privacyidea-")
            .tempdir()
            .unwrap();
        copy_files(template, dir.path());
        let trusted: Vec<_> = trusted.iter().map(TrustedJwt::to_json).collect();
        std::fs::write(
            dir.path().join("trusted_jwt.json"),
            serde_json::to_vec_pretty(&trusted).unwrap(),
        )
        .unwrap();

        let started = Instant::now();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut child = Command::new(python)
            .arg(repo_root().join("tests/privacyidea/serve.py"))
            .current_dir(dir.path())
            .env("PRIVACYIDEA_CONFIGFILE", dir.path().join("pi.cfg"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("could not start tests/privacyidea/serve.py");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();

        let port = match tokio::time::timeout(START_DEADLINE, stdout.next_line()).await {
            Ok(Ok(Some(line))) => line
                .strip_prefix("PORT ")
                .and_then(|p| p.parse::<u16>().ok())
                .unwrap_or_else(|| panic!("privacyIDEA printed {line:?} instead of its port")),
            _ => panic!(
                "privacyIDEA did not report its port within {START_DEADLINE:?}; its stderr:\n{}",
                log_tail(dir.path())
            ),
        };
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut server = PrivacyIdea {
            url,
            http,
            child,
            _stdin: stdin,
            dir,
        };
        server.wait_until_healthy(started).await;
        eprintln!(
            "privacyIDEA on {} answered /healthz/ {} ms after spawn",
            server.url,
            started.elapsed().as_millis()
        );
        server
    }

    async fn wait_until_healthy(&mut self, started: Instant) {
        let healthz = self.url.join("healthz/").unwrap();
        loop {
            if let Ok(response) = self.http.get(healthz.clone()).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "privacyIDEA exited ({status}) before answering /healthz/; its stderr:\n{}",
                    log_tail(self.dir.path())
                );
            }
            if started.elapsed() > START_DEADLINE {
                panic!(
                    "privacyIDEA did not answer /healthz/ within {START_DEADLINE:?}; its stderr:\n{}",
                    log_tail(self.dir.path())
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A request to `path` (relative to the server's root, e.g. `token/` or `/token/`), without
    /// credentials: add the header under test yourself.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = self.url.join(path.trim_start_matches('/')).unwrap();
        self.http.request(method, url)
    }

    /// `GET path` with `raw_token` verbatim in `PI-Authorization` (no `Bearer `: privacyIDEA
    /// refuses a scheme).
    pub async fn get(&self, path: &str, raw_token: &str) -> reqwest::Response {
        self.request(Method::GET, path)
            .header("PI-Authorization", raw_token)
            .send()
            .await
            .unwrap()
    }

    /// `POST path` with a form body and `raw_token` verbatim in `PI-Authorization`.
    pub async fn post_form(
        &self,
        path: &str,
        raw_token: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        self.request(Method::POST, path)
            .header("PI-Authorization", raw_token)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// The instance's directory (pi.cfg, SQLite database, `privacyidea.log`, `server.log`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The requests this instance answered, in order, as its server logs them
    /// (`GET /token/ HTTP/1.1`). werkzeug writes each line before the first byte of its answer,
    /// so every request whose answer has arrived is listed.
    pub fn requests_answered(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir().join("server.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split('"').nth(1).map(str::to_owned))
            .collect()
    }
}

fn venv_dir() -> PathBuf {
    repo_root().join("tools/privacyidea-venv")
}

fn venv_python() -> PathBuf {
    let python = venv_dir().join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (it installs privacyIDEA 3.14 from PyPI)",
        python.display()
    );
    python
}

/// The template instance, made at most once per process and reused across runs while the
/// script and the installed privacyIDEA stay the same.
fn template_dir() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(make_template)
}

fn make_template() -> PathBuf {
    let python = venv_python();
    let script = repo_root().join("tests/privacyidea/make_template.py");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let target = cache.join(format!("privacyidea-template-{}", template_key(&script)));
    if target.join("pi.cfg").exists() {
        return target;
    }
    // Made aside, then renamed into place: concurrent test runs sharing the target directory
    // never see a half-made template (the loser of the race discards its own).
    let staging = tempfile::Builder::new()
        .prefix("privacyidea-template-staging-")
        .tempdir_in(cache)
        .unwrap();
    let started = Instant::now();
    let output = std::process::Command::new(&python)
        .arg(&script)
        .arg(staging.path())
        .output()
        .expect("could not run tests/privacyidea/make_template.py");
    assert!(
        output.status.success(),
        "make_template.py failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "privacyIDEA template made in {} ms",
        started.elapsed().as_millis()
    );
    let staging = staging.keep();
    if std::fs::rename(&staging, &target).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        assert!(target.join("pi.cfg").exists(), "no template at {target:?}");
    }
    target
}

/// What the template depends on: the script's text and the installed privacyIDEA (its
/// `dist-info` directory names the version).
fn template_key(script: &Path) -> String {
    let mut hash = Sha256::new();
    hash.update(std::fs::read(script).unwrap());
    let lib = venv_dir().join("lib");
    for python in std::fs::read_dir(&lib).unwrap().flatten() {
        let site = python.path().join("site-packages");
        for entry in std::fs::read_dir(site).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("privacyidea-") && name.ends_with(".dist-info") {
                hash.update(name.as_bytes());
            }
        }
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The template is flat: plain files only.
fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
