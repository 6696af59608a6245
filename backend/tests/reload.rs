//! Reload without restart (issue 24, acceptance 3), on the real `login-bridge` binary with the
//! real test OIDC provider (`tests/idp`): SIGHUP re-reads the configuration file under steady
//! load without a failed request and without losing a session; a broken file is refused with
//! every problem logged while the old configuration keeps serving; a change the running server
//! cannot make (the listen address) is logged as kept.
//!
//! The reload's end is awaited on the bridge's own log (JSON lines on its stderr), never with a
//! sleep.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::Router;
use common::fixture;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpListener,
    process::{Child, Command},
    sync::mpsc,
};

const PASSWORD: &str = "correct horse battery";
const AUDIENCE: &str = "my-api";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test OIDC provider (`tests/idp`): the bridge discovers it, so a token of an issuer it
/// does not trust is refused as such (401), not as "not ready yet".
struct Provider {
    issuer: String,
    _child: Child,
}

impl Provider {
    async fn start(bridge_port: u16) -> Provider {
        let root = repo_root();
        assert!(
            root.join("tests/idp/node_modules/oidc-provider").exists(),
            "tests/idp/node_modules is missing: run scripts/install-deps.sh"
        );
        let mut child = Command::new("node")
            .arg(root.join("tests/idp/server.js"))
            .args(["--port", "0", "--exit-on-stdin-close"])
            .args(["--client-id", "login-bridge", "--client-secret", "secret"])
            .args([
                "--redirect-uri",
                &format!("http://127.0.0.1:{bridge_port}/auth/callback"),
            ])
            .args([
                "--post-logout-redirect-uri",
                &format!("http://127.0.0.1:{bridge_port}/login"),
            ])
            .args(["--backchannel-logout-uri", "none", "--audience", AUDIENCE])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the provider did not start within 30 s")
            .unwrap()
            .expect("the provider exited before listening");
        let issuer = first
            .strip_prefix("LISTENING ")
            .expect("first line is LISTENING <issuer>")
            .trim()
            .to_string();
        Provider {
            issuer,
            _child: child,
        }
    }
}

/// An API behind the bridge that answers every request with its own name.
async fn upstream(name: &'static str) -> String {
    let app = Router::new().fallback(move || async move { name });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

/// What the configuration file says; each test writes one, then another.
#[derive(Clone)]
struct Conf {
    listen_port: u16,
    public_port: u16,
    metrics_port: u16,
    issuer: String,
    dir: PathBuf,
    upstream: String,
    /// Issuers besides the gateway one, as TOML.
    more_issuers: String,
    /// Route policies besides the one on `/api/me`, as TOML.
    more_policies: String,
    /// Anything else, appended at the end.
    tail: String,
    /// `log.level`.
    log_level: &'static str,
}

impl Conf {
    fn toml(&self) -> String {
        format!(
            r#"
listen = "127.0.0.1:{listen}"
public_url = "http://127.0.0.1:{public}"
dist_dir = "{dist}"
[oidc]
issuer = "{issuer}"
client_id = "login-bridge"
client_secret = "secret"
api_audience = "{AUDIENCE}"
[session]
sqlite_path = "{db}"
[authority]
key_encryption_key_file = "{kek}"
[[token_profiles]]
name = "spa"
lifetime_secs = 300
claims = {{ preferred_username = "{{username}}", realm_access = {{ roles = "{{roles}}" }} }}
[local_accounts]
token_profile = "spa"
[metrics]
listen = "127.0.0.1:{metrics}"
[log]
format = "json"
level = "{log_level}"
[[issuers]]
name = "gateway"
issuer = "https://gateway.example"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256"]
public_key_file = "{gateway_key}"
{more_issuers}
[[route_policies]]
prefix = "/api/me"
any_role = ["operator"]
{more_policies}
[[upstreams]]
prefix = "/files/"
url = "{upstream}"
{tail}
"#,
            listen = self.listen_port,
            public = self.public_port,
            dist = repo_root().join("dist").display(),
            issuer = self.issuer,
            db = self.dir.join("sessions.sqlite").display(),
            kek = self.dir.join("kek").display(),
            metrics = self.metrics_port,
            gateway_key = fixture("issuer-rsa-a.pub.pem").display(),
            more_issuers = self.more_issuers,
            more_policies = self.more_policies,
            upstream = self.upstream,
            tail = self.tail,
            log_level = self.log_level,
        )
    }

    fn path(&self) -> PathBuf {
        self.dir.join("bridge.toml")
    }

    fn write(&self) {
        std::fs::write(self.path(), self.toml()).unwrap();
    }
}

/// The issuer a reload adds, keyed with the second fixture key.
fn partner_issuer() -> String {
    format!(
        r#"
[[issuers]]
name = "partner"
issuer = "https://partner.example"
audiences = ["{AUDIENCE}"]
algorithms = ["RS256"]
public_key_file = "{}"
"#,
        fixture("issuer-rsa-b.pub.pem").display()
    )
}

/// A token of `iss`, signed with the fixture key `key`, for a user with the role `operator`.
fn token(key: &str, iss: &str, user: &str) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let pem = std::fs::read(fixture(&format!("{key}.pem"))).unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"iss": iss, "sub": user, "aud": AUDIENCE, "iat": now, "exp": now + 600,
                "preferred_username": user, "realm_access": {"roles": ["operator"]}}),
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap()
}

fn gateway_token() -> String {
    token("issuer-rsa-a", "https://gateway.example", "gw-user")
}

fn partner_token() -> String {
    token("issuer-rsa-b", "https://partner.example", "partner-user")
}

/// The bridge binary, its log lines (JSON, from stderr) as they come, and its addresses.
struct Bridge {
    process: Child,
    base: String,
    metrics: String,
    log: mpsc::UnboundedReceiver<Value>,
    conf: Conf,
    _provider: Provider,
    _dir: tempfile::TempDir,
}

impl Bridge {
    /// A provider, a local account `alice` (role `operator`), and the bridge on `upstream`,
    /// ready (its `/readyz` answers 200: discovery done, keys loaded).
    async fn start(upstream: String) -> Bridge {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let provider = Provider::start(port).await;
        login_bridge::authority::keyring::write_new_kek(&dir.path().join("kek")).unwrap();
        let conf = Conf {
            listen_port: port,
            public_port: port,
            metrics_port: free_port(),
            issuer: provider.issuer.clone(),
            dir: dir.path().to_path_buf(),
            upstream,
            more_issuers: String::new(),
            more_policies: String::new(),
            tail: String::new(),
            log_level: "info",
        };
        conf.write();
        let mut add = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
            .args(["user", "add", "alice", "--role", "operator", "--config"])
            .arg(conf.path())
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdin = add.stdin.take().unwrap();
        stdin
            .write_all(format!("{PASSWORD}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        assert!(add.wait().await.unwrap().success(), "user add failed");

        let mut process = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
            .arg("--config")
            .arg(conf.path())
            // No RUST_LOG: `log.level` decides.
            .env_clear()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::unbounded_channel();
        let mut lines = BufReader::new(process.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(json!({"raw": line}));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match http.get(format!("{base}/readyz")).send().await {
                Ok(r) if r.status() == 200 => break,
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the bridge did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Bridge {
            process,
            base,
            metrics: format!("http://127.0.0.1:{}/metrics", conf.metrics_port),
            log,
            conf,
            _provider: provider,
            _dir: dir,
        }
    }

    /// Writes `conf` as the configuration file and sends SIGHUP, as `systemctl reload` does.
    fn reload_with(&mut self, conf: &Conf) {
        conf.write();
        self.conf = conf.clone();
        let pid = self.process.id().unwrap();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// The log lines up to and including the first whose message is `message`.
    async fn log_until(&mut self, message: &str) -> Vec<Value> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = self.log.recv().await {
                let done = line["fields"]["message"] == message;
                seen.push(line);
                if done {
                    return true;
                }
            }
            false
        })
        .await;
        assert!(
            matches!(found, Ok(true)),
            "no log line {message:?}; saw {seen:#?}"
        );
        seen
    }

    async fn get(&self, path: &str, token: &str) -> (u16, String) {
        let r = reqwest::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// `login_bridge_config_reloads_total` of `result`, 0 when not counted yet.
    async fn reloads(&self, result: &str) -> u64 {
        let text = reqwest::get(&self.metrics)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let prefix = format!("login_bridge_config_reloads_total{{result=\"{result}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |n| n.trim().parse().unwrap())
    }

    /// Alice signs in with the login form: a browser-like client holding her session cookie,
    /// and her token from `/auth/session`.
    async fn sign_in(&self) -> (reqwest::Client, String) {
        let client = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = client
            .post(format!("{}/auth/local/login", self.base))
            .header("origin", &self.base)
            .header("sec-fetch-site", "same-origin")
            .form(&[
                ("username", "alice"),
                ("password", PASSWORD),
                ("return_to", "/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
        let info = session(&client, &self.base).await.unwrap();
        let token = info["auth_token"].as_str().unwrap().to_string();
        (client, token)
    }
}

/// `GET /auth/session` as the SPA sends it; the answer when it is 200.
async fn session(client: &reqwest::Client, base: &str) -> Result<Value, String> {
    let r = client
        .get(format!("{base}/auth/session"))
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match r.status().as_u16() {
        200 => r.json().await.map_err(|e| e.to_string()),
        other => Err(format!("{other}: {}", r.text().await.unwrap_or_default())),
    }
}

/// Requests sent without pause by a few tasks, each counting its requests and noting every
/// failure (an error answer or a failed connection).
struct Load {
    stop: Arc<AtomicBool>,
    counts: Vec<Arc<AtomicU64>>,
    failures: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(bridge: &Bridge, alice: &reqwest::Client, alice_token: &str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let mut counts = Vec::new();
        let mut tasks = Vec::new();
        // (what, client, path, bearer token): the session endpoint with the cookie, the
        // policy-protected API with a session's token and a gateway token, the upstream.
        let plain = reqwest::Client::new();
        let work: Vec<(&str, reqwest::Client, &str, Option<String>)> = vec![
            ("session", alice.clone(), "/auth/session", None),
            (
                "api with the session's token",
                plain.clone(),
                "/api/me",
                Some(alice_token.into()),
            ),
            (
                "api with a gateway token",
                plain.clone(),
                "/api/me",
                Some(gateway_token()),
            ),
            ("upstream", plain, "/files/ping", Some(gateway_token())),
        ];
        for (what, client, path, token) in work {
            let count = Arc::new(AtomicU64::new(0));
            counts.push(count.clone());
            let (stop, failures) = (stop.clone(), failures.clone());
            let url = format!("{}{path}", bridge.base);
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let mut request = client.get(&url).header(
                        shared::session::CSRF_HEADER,
                        shared::session::CSRF_HEADER_VALUE,
                    );
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let failure = match request.send().await {
                        Ok(r) if r.status() == 200 => match r.bytes().await {
                            Ok(_) => None,
                            Err(e) => Some(format!("{what}: body: {e}")),
                        },
                        Ok(r) => Some(format!("{what}: {}", r.status())),
                        Err(e) => Some(format!("{what}: {e}")),
                    };
                    if let Some(failure) = failure {
                        failures.lock().unwrap().push(failure);
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        Load {
            stop,
            counts,
            failures,
            tasks,
        }
    }

    fn counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .collect()
    }

    /// Waits until every task has sent `more` requests past `since`.
    async fn wait_for(&self, since: &[u64], more: u64) {
        let reached = tokio::time::timeout(Duration::from_secs(30), async {
            while self
                .counts()
                .iter()
                .zip(since)
                .any(|(now, then)| *now < then + more)
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        assert!(reached.is_ok(), "the load stalled: {:?}", self.counts());
    }

    /// Stops the load; every failure noted and the number of requests.
    async fn stop(self) -> (Vec<String>, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        let total = self.counts.iter().map(|c| c.load(Ordering::SeqCst)).sum();
        let failures = self.failures.lock().unwrap().clone();
        (failures, total)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_under_load_adds_an_issuer_changes_an_upstream_and_a_policy_and_no_request_fails()
{
    let (first, second) = (
        upstream("first upstream").await,
        upstream("second upstream").await,
    );
    let mut bridge = Bridge::start(first).await;
    let (alice, alice_token) = bridge.sign_in().await;
    let session_before = session(&alice, &bridge.base).await.unwrap();
    // Before: the partner's tokens are foreign, the upstream is the first, and the call log
    // is open to an operator.
    assert_eq!(bridge.get("/api/me", &partner_token()).await.0, 401);
    assert_eq!(
        bridge.get("/files/ping", &gateway_token()).await,
        (200, "first upstream".into())
    );
    assert_eq!(bridge.get("/api/calls", &alice_token).await.0, 200);

    let load = Load::start(&bridge, &alice, &alice_token);
    load.wait_for(&[0, 0, 0, 0], 20).await;
    let mut next = bridge.conf.clone();
    next.more_issuers = partner_issuer();
    next.upstream = second;
    next.more_policies =
        "[[route_policies]]\nprefix = \"/api/calls\"\nany_role = [\"auditor\"]\n".into();
    bridge.reload_with(&next);
    let log = bridge.log_until("configuration reloaded").await;

    // Right after: the new issuer's tokens are accepted, the upstream and the policy changed.
    let (status, body) = bridge.get("/api/me", &partner_token()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        bridge.get("/files/ping", &gateway_token()).await,
        (200, "second upstream".into())
    );
    assert_eq!(bridge.get("/api/calls", &alice_token).await.0, 403);
    // The load goes on a while on the new configuration, through three more reloads of the
    // same file, then: not one request failed.
    let at_reload = load.counts();
    load.wait_for(&at_reload, 20).await;
    for _ in 0..3 {
        bridge.reload_with(&next);
        bridge.log_until("configuration reloaded").await;
        let at_reload = load.counts();
        load.wait_for(&at_reload, 10).await;
    }
    let (failures, total) = load.stop().await;
    eprintln!(
        "reload under load: {total} requests, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} failed: {failures:?}",
        failures.len()
    );
    assert!(total >= 160, "{total} requests");
    // The session made before is the same session.
    let session_after = session(&alice, &bridge.base).await.unwrap();
    assert_eq!(session_after["user"], session_before["user"]);
    assert_eq!(bridge.get("/api/me", &alice_token).await.0, 200);
    // Counted, and what changed is in the log line.
    assert_eq!(bridge.reloads("applied").await, 4);
    assert_eq!(bridge.reloads("refused").await, 0);
    let done = log.last().unwrap();
    assert_eq!(done["fields"]["issuers_added"], "[\"partner\"]", "{done}");
    assert!(
        !log.iter().any(|l| l["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("restart to apply"))),
        "nothing kept: {log:#?}"
    );
}

#[tokio::test]
async fn a_broken_file_on_sighup_is_refused_with_every_problem_logged_and_the_old_configuration_keeps_serving()
 {
    let (first, second) = (
        upstream("first upstream").await,
        upstream("second upstream").await,
    );
    let mut bridge = Bridge::start(first).await;
    let (alice, _) = bridge.sign_in().await;
    // A new issuer and upstream, and three mistakes.
    let mut broken = bridge.conf.clone();
    broken.more_issuers = format!(
        "{}\n[[issuers]]\nname = \"typo\"\nissuer = \"https://typo.example\"\naudiences = [\"{AUDIENCE}\"]\nalgorithms = []\npublic_key_file = \"{}\"\n",
        partner_issuer(),
        fixture("issuer-rsa-a.pub.pem").display()
    );
    broken.upstream = second;
    broken.tail =
        "[[upstreams]]\nprefix = \"nested\"\nurl = \"http://127.0.0.1:9\"\n[ui]\ntitle = \"\"\n"
            .into();
    broken.write();
    // What `check-config` says of the file.
    let check = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
        .args(["check-config", "--config"])
        .arg(broken.path())
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let listed: Vec<String> = String::from_utf8_lossy(&check.stderr)
        .lines()
        .filter_map(|l| l.strip_prefix("  - "))
        .map(str::to_owned)
        .collect();
    assert_eq!(listed.len(), 3, "{listed:?}");

    bridge.reload_with(&broken);
    let log = bridge
        .log_until("configuration reload refused; the running configuration stays")
        .await;

    let logged: Vec<&str> = log
        .iter()
        .filter_map(|l| l["fields"]["problem"].as_str())
        .collect();
    assert_eq!(logged, listed, "every problem, as check-config lists them");
    assert_eq!(
        bridge.get("/api/me", &gateway_token()).await.0,
        200,
        "the old issuer"
    );
    assert_eq!(
        bridge.get("/api/me", &partner_token()).await.0,
        401,
        "not the new one"
    );
    assert_eq!(
        bridge.get("/files/ping", &gateway_token()).await,
        (200, "first upstream".into())
    );
    assert!(session(&alice, &bridge.base).await.is_ok());
    assert_eq!(bridge.reloads("refused").await, 1);

    // A file that is not even TOML: refused too.
    std::fs::write(broken.path(), "[[issuers]\nname = ").unwrap();
    let pid = bridge.process.id().unwrap();
    std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    bridge
        .log_until("configuration reload refused; the running configuration stays")
        .await;
    assert_eq!(bridge.reloads("refused").await, 2);
    assert_eq!(bridge.reloads("applied").await, 0);
    assert_eq!(bridge.get("/api/me", &gateway_token()).await.0, 200);
}

#[tokio::test]
async fn a_changed_listen_address_is_logged_as_kept_and_the_old_listener_keeps_serving() {
    let mut bridge = Bridge::start(upstream("first upstream").await).await;
    let mut next = bridge.conf.clone();
    next.listen_port = free_port();
    next.more_issuers = partner_issuer();
    bridge.reload_with(&next);
    let log = bridge.log_until("configuration reloaded").await;

    let kept: Vec<&Value> = log
        .iter()
        .filter(|l| l["fields"]["setting"] == "listen")
        .collect();
    assert_eq!(kept.len(), 1, "{log:#?}");
    assert_eq!(kept[0]["level"], "WARN");
    assert!(
        kept[0]["fields"]["message"]
            .as_str()
            .unwrap()
            .contains("kept; restart to apply")
    );
    // The old listener serves, with what could change changed; the new address is not bound.
    assert_eq!(bridge.get("/api/me", &partner_token()).await.0, 200);
    let fresh = reqwest::Client::new();
    assert!(
        fresh
            .get(format!("http://127.0.0.1:{}/healthz", next.listen_port))
            .send()
            .await
            .is_err()
    );
    assert_eq!(bridge.reloads("applied").await, 1);
}

#[tokio::test]
async fn a_new_log_level_applies_on_sighup() {
    let mut bridge = Bridge::start(upstream("first upstream").await).await;
    // Every reload of a file with another listen address logs a WARN line (kept), a reload
    // an INFO line before and after.
    let mut quiet = bridge.conf.clone();
    quiet.listen_port = free_port();
    quiet.log_level = "warn";
    quiet.write();
    let pid = bridge.process.id().unwrap().to_string();
    let hup = || {
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
    };
    hup();
    let first = bridge.log_until("reloading the configuration").await;
    assert_eq!(first.last().unwrap()["level"], "INFO");
    let kept = bridge
        .log_until("configuration reload: listen changed; kept; restart to apply")
        .await;
    assert!(kept.len() == 1, "nothing between: {kept:#?}");

    // Back to `info`: this reload's first line is still filtered out, its last one is not.
    let mut loud = quiet.clone();
    loud.log_level = "info";
    loud.write();
    hup();
    let lines = bridge.log_until("configuration reloaded").await;
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["fields"]["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        [
            "configuration reload: listen changed; kept; restart to apply",
            "configuration reloaded"
        ],
        "the warn level filtered the INFO lines of the first reload's end and the second's \
         start"
    );
    assert_eq!(bridge.reloads("applied").await, 2);
}
