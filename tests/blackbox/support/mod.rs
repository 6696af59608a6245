//! Test support: the real OIDC provider (npm `oidc-provider`, in `tests/idp`) as a child
//! process, the bridge in-process on port 0, and an HTTP "browser" with a cookie jar that
//! walks the real login form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

pub mod dpop;
pub mod privacyidea;
pub mod redis_ha;
pub mod stores;

use clap::Parser;
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use login_bridge::{
    demo_api::ApiCallLog,
    settings::{Secret, Settings, StoreKind},
    startup::Application,
    state::AppState,
};
use reqwest::{StatusCode, header};
use serde_json::Value;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    net::TcpListener,
    process::{Child, Command},
    task::JoinHandle,
};

pub const CLIENT_ID: &str = "login-bridge";
pub const CLIENT_SECRET: &str = "test-client-secret";
pub const AUDIENCE: &str = "login-bridge-api";
pub const ALICE_SUB: &str = "7f6a8a52-0b7e-4d1c-9a55-a11ce0000001";
pub const IDP_KID: &str = "65U4wvPutuuTCoLh7ctwp12BrPjWmy6p0WWLXte8rs8";

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The test OIDC provider, a child process killed on drop.
pub struct TestIdp {
    pub issuer: String,
    child: Child,
}

pub struct IdpOptions {
    pub redirect_uri: String,
    pub post_logout_redirect_uri: String,
    pub access_token_ttl: u64,
    /// Whether the provider posts logout tokens to the bridge when a session ends there.
    pub backchannel_logout: bool,
    /// Lifetime of its refresh tokens (also its `refresh_expires_in`); its default if absent.
    pub refresh_token_ttl: Option<u64>,
    /// More options of `tests/idp/server.js` (`--id-token-audience`...).
    pub extra_args: Vec<String>,
}

impl TestIdp {
    pub async fn start(opts: &IdpOptions) -> TestIdp {
        let root = repo_root();
        let server = root.join("tests/idp/server.js");
        assert!(
            root.join("tests/idp/node_modules/oidc-provider").exists(),
            "tests/idp/node_modules is missing: run scripts/install-deps.sh"
        );
        let mut child = Command::new("node")
            .arg(server)
            .args(["--port", "0", "--exit-on-stdin-close"])
            .args(["--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET])
            .args(["--redirect-uri", &opts.redirect_uri])
            .args(["--post-logout-redirect-uri", &opts.post_logout_redirect_uri])
            .args(if opts.backchannel_logout {
                &[][..]
            } else {
                &["--backchannel-logout-uri", "none"][..]
            })
            .args(["--audience", AUDIENCE])
            .args(["--access-token-ttl", &opts.access_token_ttl.to_string()])
            .args(
                opts.refresh_token_ttl
                    .map(|ttl| vec!["--refresh-token-ttl".to_string(), ttl.to_string()])
                    .unwrap_or_default(),
            )
            .args(&opts.extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the IdP did not start within 30 s")
            .unwrap()
            .expect("the IdP exited before listening");
        let issuer = first
            .strip_prefix("LISTENING ")
            .expect("first IdP line is LISTENING <issuer>")
            .trim()
            .to_string();
        TestIdp { issuer, child }
    }

    /// The provider's own counters (authorization requests, login forms shown, ...).
    /// Stops the provider (an outage: connections refused).
    pub async fn stop(&mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/test/stats", self.issuer))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn stat(&self, name: &str) -> u64 {
        let stats = self.stats().await;
        let mut v = &stats;
        for part in name.split('.') {
            v = &v[part];
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("no stat {name} in {stats}"))
    }
}

/// What a test may change about the bridge.
pub struct AppOptions {
    pub access_token_ttl: u64,
    pub refresh_before_expiry_secs: u64,
    pub silent_sso: bool,
    /// Reuse this session database (restart tests).
    pub sqlite_path: Option<PathBuf>,
    /// `[[issuers]]` entries, as JSON.
    pub issuers: Vec<Value>,
    /// `[[route_policies]]` entries, as JSON.
    pub route_policies: Vec<Value>,
    /// The address the browser uses for the bridge, when not the bridge itself: e.g. a
    /// `trunk serve` dev server that proxies to it. The provider registers its callback.
    pub public_url: Option<String>,
    /// `[gateway]`, as JSON.
    pub gateway: Option<Value>,
    /// `[authority]`, as JSON; a key-encryption key file is made in the test's directory
    /// unless it names one.
    pub authority: Option<Value>,
    /// `[[token_profiles]]`, as JSON.
    pub token_profiles: Vec<Value>,
    /// `session.token_profile`.
    pub token_profile: Option<String>,
    /// `[[upstreams]]`, as JSON.
    pub upstreams: Vec<Value>,
    /// `[cors]`, as JSON.
    pub cors: Option<Value>,
    /// `session.store` and `session.url` (a test's own Redis or PostgreSQL); SQLite if absent.
    pub store: Option<(StoreKind, String)>,
    /// `[metrics]` with `listen` on a free loopback port.
    pub metrics: bool,
    /// `session.absolute_timeout_secs`, when not the default.
    pub absolute_timeout_secs: Option<i64>,
    /// `session.idle_timeout_secs`, when not the default.
    pub idle_timeout_secs: Option<i64>,
    /// `session.same_site = "strict"`.
    pub same_site_strict: bool,
    /// Whether the provider tells the bridge of sessions ended there (back-channel logout).
    pub provider_backchannel_logout: bool,
    /// The provider's refresh-token lifetime (its `refresh_expires_in`), when not its default.
    pub refresh_token_ttl: Option<u64>,
    /// `[local_accounts]`, as JSON.
    pub local_accounts: Option<Value>,
    /// More options of the provider (`tests/idp/server.js`).
    pub provider_args: Vec<String>,
    /// `oidc.trusted_id_token_audiences`.
    pub trusted_id_token_audiences: Vec<String>,
    /// `ui.title`, when not the default.
    pub ui_title: Option<String>,
    /// `dist_dir`, when not the project's `dist/`.
    pub dist_dir: Option<PathBuf>,
    /// `session.dpop_nonce`: DPoP proofs must carry a server nonce.
    pub dpop_nonce: bool,
    /// `session.dpop`.
    pub dpop: login_bridge::settings::DpopMode,
    /// `session.redis_wait_replicas`.
    pub redis_wait_replicas: u32,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: 300,
            refresh_before_expiry_secs: 60,
            silent_sso: true,
            sqlite_path: None,
            issuers: Vec::new(),
            route_policies: Vec::new(),
            public_url: None,
            gateway: None,
            authority: None,
            token_profiles: Vec::new(),
            token_profile: None,
            upstreams: Vec::new(),
            cors: None,
            store: None,
            metrics: false,
            absolute_timeout_secs: None,
            idle_timeout_secs: None,
            same_site_strict: false,
            provider_backchannel_logout: true,
            refresh_token_ttl: None,
            local_accounts: None,
            provider_args: Vec::new(),
            trusted_id_token_audiences: Vec::new(),
            ui_title: None,
            dist_dir: None,
            dpop_nonce: false,
            dpop: login_bridge::settings::DpopMode::Off,
            redis_wait_replicas: 0,
        }
    }
}

/// A running bridge and its provider.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub idp: TestIdp,
    pub state: AppState,
    /// What the demo API recorded of each call (method, path, token fingerprint).
    pub api_calls: Arc<ApiCallLog>,
    pub settings: Settings,
    /// The metrics listener's port, when `metrics` was asked for.
    pub metrics_port: Option<u16>,
    /// Reloads the running bridge's configuration, as SIGHUP does.
    pub reloader: login_bridge::reload::Reloader,
    /// The server's task, until [`TestApp::stop`] ends it.
    server: std::sync::Mutex<Option<JoinHandle<()>>>,
    pub dir: Arc<tempfile::TempDir>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.get_mut().ok().and_then(Option::take) {
            server.abort();
        }
    }
}

impl TestApp {
    /// Runs `login-bridge <args>` (a `keys` or `service-user` command) on this bridge's
    /// configuration and store, as an operator would beside the running server.
    pub async fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        let cli = login_bridge::cli::Cli::try_parse_from(
            std::iter::once("login-bridge").chain(args.iter().copied()),
        )?;
        let command = cli.command.ok_or_else(|| anyhow::anyhow!("no command"))?;
        login_bridge::cli::admin(self.settings.clone().compile()?, command).await
    }

    /// [`Self::admin`] for `user add` and `user passwd`, with `password` as if typed.
    pub async fn admin_with_password(
        &self,
        args: &[&str],
        password: &str,
    ) -> anyhow::Result<String> {
        let cli = login_bridge::cli::Cli::try_parse_from(
            std::iter::once("login-bridge").chain(args.iter().copied()),
        )?;
        let command = cli.command.ok_or_else(|| anyhow::anyhow!("no command"))?;
        login_bridge::cli::admin_with(
            self.settings.clone().compile()?,
            command,
            login_bridge::cli::PasswordInput::Given(password.into()),
        )
        .await
    }

    /// The bridge's authority (panics when `[authority]` is not configured).
    pub fn authority(&self) -> Arc<login_bridge::authority::keyring::Authority> {
        self.state
            .authority
            .clone()
            .expect("no [authority] configured")
    }

    /// Stops the bridge and waits until it has let go of its connections and its SQLite
    /// file's lock, as when the process ends; the provider keeps running.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            server.abort();
            let _ = server.await;
        }
    }
}

pub fn bridge_settings(port: u16, issuer: &str, dir: &Path, opts: &AppOptions) -> Settings {
    let mut s = Settings {
        listen: ([127, 0, 0, 1], port).into(),
        public_url: opts
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://localhost:{port}"))
            .parse()
            .unwrap(),
        dist_dir: opts
            .dist_dir
            .clone()
            .unwrap_or_else(|| repo_root().join("dist")),
        ..Settings::default()
    };
    s.oidc.issuer = issuer.to_string();
    s.oidc.client_id = CLIENT_ID.into();
    s.oidc.client_secret = Secret::new(CLIENT_SECRET);
    s.oidc.api_audience = AUDIENCE.into();
    s.oidc.silent_sso = opts.silent_sso;
    s.oidc.refresh_before_expiry_secs = opts.refresh_before_expiry_secs;
    s.oidc.leeway_secs = 5;
    s.oidc.trusted_id_token_audiences = opts.trusted_id_token_audiences.clone();
    s.session.redis_wait_replicas = opts.redis_wait_replicas;
    s.session.sqlite_path = opts
        .sqlite_path
        .clone()
        .unwrap_or_else(|| dir.join("sessions.sqlite"));
    s.issuers = opts
        .issuers
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    s.route_policies = opts
        .route_policies
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    s.gateway = opts
        .gateway
        .as_ref()
        .map(|v| serde_json::from_value(v.clone()).unwrap());
    if let Some(authority) = &opts.authority {
        let mut authority = authority.clone();
        if authority.get("key_encryption_key_file").is_none()
            && authority.get("key_encryption_key_env").is_none()
        {
            let kek = dir.join("kek");
            if !kek.exists() {
                login_bridge::authority::keyring::write_new_kek(&kek).unwrap();
            }
            authority["key_encryption_key_file"] = Value::String(kek.display().to_string());
        }
        s.authority = Some(serde_json::from_value(authority).unwrap());
    }
    s.token_profiles = opts
        .token_profiles
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    s.session.token_profile = opts.token_profile.clone();
    s.session.dpop = opts.dpop;
    if let Some(secs) = opts.absolute_timeout_secs {
        s.session.absolute_timeout_secs = secs;
    }
    if let Some(secs) = opts.idle_timeout_secs {
        s.session.idle_timeout_secs = secs;
    }
    if opts.same_site_strict {
        s.session.same_site = login_bridge::settings::SameSiteMode::Strict;
    }
    s.upstreams = opts
        .upstreams
        .iter()
        .map(|v| serde_json::from_value(v.clone()).unwrap())
        .collect();
    if let Some(cors) = &opts.cors {
        s.cors = serde_json::from_value(cors.clone()).unwrap();
    }
    if let Some((kind, url)) = &opts.store {
        s.session.store = *kind;
        s.session.url = Secret::new(url.clone());
    }
    s.local_accounts = opts
        .local_accounts
        .as_ref()
        .map(|v| serde_json::from_value(v.clone()).unwrap());
    if opts.metrics {
        s.metrics.listen = Some(([127, 0, 0, 1], 0).into());
    }
    if let Some(title) = &opts.ui_title {
        s.ui.title = title.clone();
    }
    s.session.dpop_nonce = opts.dpop_nonce;
    s.validate().unwrap();
    s
}

/// Starts a provider and a bridge on free ports and waits until discovery is done.
pub async fn spawn_app_with(opts: AppOptions) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = format!("http://localhost:{port}");
    let public_url = opts.public_url.clone().unwrap_or_else(|| address.clone());
    let idp = TestIdp::start(&IdpOptions {
        redirect_uri: format!("{public_url}/auth/callback"),
        post_logout_redirect_uri: format!("{public_url}/login?signed_out=1"),
        access_token_ttl: opts.access_token_ttl,
        backchannel_logout: opts.provider_backchannel_logout,
        refresh_token_ttl: opts.refresh_token_ttl,
        extra_args: opts.provider_args.clone(),
    })
    .await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = bridge_settings(port, &idp.issuer, dir.path(), &opts);
    let app = Application::build_with_listener(settings.clone().compile().unwrap(), listener)
        .await
        .unwrap();
    let state = app.state().clone();
    let api_calls = app.api_calls();
    let metrics_port = app.metrics_port();
    let reloader = app.reloader();
    let server = tokio::spawn(async move {
        let _ = app.run_until_stopped().await;
    });
    tokio::time::timeout(Duration::from_secs(30), state.provider.wait_until_ready())
        .await
        .expect("discovery did not succeed within 30 s");
    TestApp {
        address,
        port,
        idp,
        state,
        api_calls,
        settings,
        metrics_port,
        reloader,
        server: std::sync::Mutex::new(Some(server)),
        dir,
    }
}

/// Another replica of a running bridge: the same settings (and so the same shared store and
/// provider) on a port of its own. Browsers reach it with the same cookies: a cookie is per
/// host, not per port, as behind a load balancer.
pub struct Replica {
    pub address: String,
    pub port: u16,
    pub state: AppState,
    server: JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    pub async fn replica(&self) -> Replica {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut settings = self.settings.clone();
        settings.listen = ([127, 0, 0, 1], port).into();
        let app = Application::build_with_listener(settings.compile().unwrap(), listener)
            .await
            .unwrap();
        let state = app.state().clone();
        let server = tokio::spawn(async move {
            let _ = app.run_until_stopped().await;
        });
        tokio::time::timeout(Duration::from_secs(30), state.provider.wait_until_ready())
            .await
            .expect("discovery did not succeed within 30 s");
        Replica {
            address: format!("http://localhost:{port}"),
            port,
            state,
            server,
        }
    }
}

impl Replica {
    pub async fn session(&self, client: &reqwest::Client) -> reqwest::Response {
        session_at(client, &self.address).await
    }

    pub async fn session_info(&self, client: &reqwest::Client) -> shared::session::SessionInfo {
        session_info_at(client, &self.address).await
    }

    pub async fn api_get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        api_get_at(&self.address, path, token).await
    }
}

/// `GET /auth/session` at a bridge (or replica) with the SPA's CSRF header.
pub async fn session_at(client: &reqwest::Client, address: &str) -> reqwest::Response {
    client
        .get(format!("{address}/auth/session"))
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .send()
        .await
        .unwrap()
}

/// The session's token and user; the call must succeed.
pub async fn session_info_at(
    client: &reqwest::Client,
    address: &str,
) -> shared::session::SessionInfo {
    let r = session_at(client, address).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// `GET path` at a bridge, with `token` as Bearer if given (no cookies).
pub async fn api_get_at(address: &str, path: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("{address}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

/// An HTTP client that behaves like a browser's cookie jar but follows no redirects, so tests
/// can look at (and tamper with) every hop.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The session id the bridge set on this answer (its `lb_session` cookie).
pub fn session_cookie(response: &reqwest::Response) -> String {
    response
        .cookies()
        .find(|c| c.name() == "lb_session")
        .unwrap_or_else(|| panic!("no lb_session cookie on a {} answer", response.status()))
        .value()
        .to_string()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(header::LOCATION)
        .unwrap_or_else(|| panic!("no Location on a {} answer", response.status()))
        .to_str()
        .unwrap()
        .to_string()
}

/// Absolute URL of a Location value relative to the request URL.
pub fn resolve(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// `url` with the query parameter `name` set to `value` (a tampering attacker's copy).
pub fn with_param(url: &str, name: &str, value: &str) -> String {
    let mut url = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == name {
                value.to_string()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
    url.into()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

impl TestApp {
    /// `GET /auth/login?return_to=…` and returns the provider authorization URL it redirects to.
    pub async fn start_login(&self, client: &reqwest::Client, return_to: &str) -> String {
        let r = client
            .get(format!(
                "{}/auth/login?return_to={}",
                self.address,
                urlencoding::encode(return_to)
            ))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "login answered {}", r.status());
        location(&r)
    }

    /// Follows the provider's redirects from `authorize_url`, filling its login form with
    /// these credentials when shown, until the provider sends the browser back to the
    /// bridge's callback. Returns that callback URL (not yet visited).
    pub async fn authorize_at_idp(
        &self,
        client: &reqwest::Client,
        authorize_url: &str,
        username: &str,
        password: &str,
    ) -> String {
        let mut url = authorize_url.to_string();
        for _ in 0..10 {
            if url.starts_with(&format!("{}/auth/callback", self.address)) {
                return url;
            }
            let r = client.get(&url).send().await.unwrap();
            if r.status().is_redirection() {
                url = resolve(&url, &location(&r));
                continue;
            }
            assert_eq!(r.status(), StatusCode::OK, "unexpected answer at {url}");
            // The login form: post the credentials to its action.
            let page = r.text().await.unwrap();
            assert!(
                page.contains("id=\"password\""),
                "expected the login form at {url}"
            );
            let action_start = page.find("action=\"").unwrap() + "action=\"".len();
            let action =
                &page[action_start..action_start + page[action_start..].find('"').unwrap()];
            let post_url = resolve(&url, &action.replace("&amp;", "&"));
            let r = client
                .post(&post_url)
                .form(&[("username", username), ("password", password)])
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_redirection(),
                "login form answered {}",
                r.status()
            );
            url = resolve(&post_url, &location(&r));
        }
        panic!("the provider never redirected back to the bridge");
    }

    /// Starts a login and signs in at the provider; returns the callback URL the provider
    /// sends the browser to (not yet visited, so a test can tamper with it).
    pub async fn callback_for(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> String {
        let authorize = self.start_login(client, "/").await;
        self.authorize_at_idp(client, &authorize, username, password)
            .await
    }

    /// Complete sign-in of `username` in `client`'s cookie jar; returns the final redirect
    /// target of the callback (the `return_to`).
    pub async fn sign_in(
        &self,
        client: &reqwest::Client,
        username: &str,
        password: &str,
    ) -> String {
        let callback = self.callback_for(client, username, password).await;
        let r = client.get(&callback).send().await.unwrap();
        assert!(
            r.status().is_redirection(),
            "callback answered {}: {}",
            r.status(),
            r.text().await.unwrap()
        );
        location(&r)
    }

    pub async fn session(&self, client: &reqwest::Client) -> reqwest::Response {
        session_at(client, &self.address).await
    }

    /// The callback answer was a refusal (400) and the browser has no session.
    pub async fn assert_refused_without_session(
        &self,
        client: &reqwest::Client,
        answer: reqwest::Response,
    ) {
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            self.session(client).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }

    pub async fn session_info(&self, client: &reqwest::Client) -> shared::session::SessionInfo {
        session_info_at(client, &self.address).await
    }

    pub async fn api_get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        api_get_at(&self.address, path, token).await
    }
}

/// Signs `claims` with the provider's own key (the test fixture), for tokens a real provider
/// would never issue: expired, wrong audience...
pub fn sign_as_idp(claims: &Value) -> String {
    let pem = std::fs::read(repo_root().join("tests/fixtures/idp-signing-key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(IDP_KID.into());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests/fixtures").join(name)
}

/// Signs `claims` with a fixture private key (`issuer-rsa-a`, `issuer-ec`, `issuer-ed25519`...).
pub fn sign_with(
    key: &str,
    alg: jsonwebtoken::Algorithm,
    kid: Option<&str>,
    claims: &Value,
) -> String {
    use jsonwebtoken::{Algorithm::*, EncodingKey};
    let pem = std::fs::read(fixture(&format!("{key}.pem"))).unwrap();
    let encoding = match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => EncodingKey::from_rsa_pem(&pem),
        ES256 | ES384 => EncodingKey::from_ec_pem(&pem),
        EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => panic!("use sign_hmac"),
    }
    .unwrap();
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

pub fn sign_hmac(secret: &[u8], claims: &Value) -> String {
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// Builds a JWT from raw parts (header and claims as JSON, signature as given).
pub fn raw_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// The keys of fixture JWKS files, merged into one JWKS document.
pub fn jwks_of(names: &[&str]) -> String {
    let keys: Vec<Value> = names
        .iter()
        .flat_map(|n| {
            let doc: Value =
                serde_json::from_slice(&std::fs::read(fixture(&format!("{n}.jwks.json"))).unwrap())
                    .unwrap();
            doc["keys"].as_array().unwrap().clone()
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// A JWKS endpoint under the test's control: serves a document that can be swapped, answers
/// 503 when "down", and counts every fetch (also of its other paths, e.g. a `jku` target).
pub struct JwksServer {
    pub url: String,
    pub base: String,
    state: Arc<JwksState>,
    task: JoinHandle<()>,
}

struct JwksState {
    doc: std::sync::Mutex<String>,
    down: std::sync::atomic::AtomicBool,
    fetches: std::sync::atomic::AtomicU64,
    other_fetches: std::sync::atomic::AtomicU64,
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl JwksServer {
    pub async fn start(doc: String) -> JwksServer {
        use std::sync::atomic::Ordering;
        let state = Arc::new(JwksState {
            doc: std::sync::Mutex::new(doc),
            down: false.into(),
            fetches: 0.into(),
            other_fetches: 0.into(),
        });
        let s1 = state.clone();
        let s2 = state.clone();
        let app = axum::Router::new()
            .route(
                "/jwks",
                axum::routing::get(move || {
                    let s = s1.clone();
                    async move {
                        s.fetches.fetch_add(1, Ordering::SeqCst);
                        if s.down.load(Ordering::SeqCst) {
                            return (axum::http::StatusCode::SERVICE_UNAVAILABLE, String::new());
                        }
                        (axum::http::StatusCode::OK, s.doc.lock().unwrap().clone())
                    }
                }),
            )
            .fallback(move || {
                let s = s2.clone();
                async move {
                    s.other_fetches.fetch_add(1, Ordering::SeqCst);
                    "{}"
                }
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        JwksServer {
            url: format!("{base}/jwks"),
            base,
            state,
            task,
        }
    }

    pub fn set_doc(&self, doc: String) {
        *self.state.doc.lock().unwrap() = doc;
    }

    pub fn set_down(&self, down: bool) {
        self.state
            .down
            .store(down, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn fetches(&self) -> u64 {
        self.state.fetches.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests to any path other than `/jwks` (an attacker's `jku`/`x5u` target).
    pub fn other_fetches(&self) -> u64 {
        self.state
            .other_fetches
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until the bridge has fetched the key set at least `n` times (its startup fetch
    /// runs in the background).
    pub async fn wait_for_fetches(&self, n: u64) {
        tokio::time::timeout(Duration::from_secs(10), async {
            while self.fetches() < n {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the bridge never fetched the JWKS");
    }
}

/// A free TCP port on 127.0.0.1 for a child process that takes its port as an argument.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Ends a child started with `process_group(0)` together with everything it started.
pub fn kill_process_group(child: &Child) {
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
}

/// Held by every test that builds the SPA's WASM (`trunk serve`, `scripts/build-ui.sh`): they
/// share `target/wasm32-unknown-unknown/wasm-release/frontend.wasm`, and a build must not read it
/// while another one writes it.
pub static WASM_BUILD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long `trunk serve` may take for its first build: seconds when `scripts/build-ui.sh` ran
/// before, minutes when the SPA's crates must be compiled first.
const TRUNK_FIRST_BUILD: Duration = Duration::from_secs(20 * 60);

/// `trunk serve` of the SPA in front of a running bridge: the developer loop of docs/ui-development.md.
/// It uses the project's own `Trunk.toml` with only the proxies' `localhost:8080` changed to
/// the test bridge's port, and writes its build to a temporary dist (the project's `dist/` is
/// left alone). Trunk and everything it starts (cargo, rustc, wasm-bindgen, wasm-opt) run in
/// their own process group, which is killed on drop.
pub struct TrunkServe {
    /// `http://localhost:<port>`: what the browser opens.
    pub url: String,
    pub port: u16,
    /// Where Trunk writes the SPA it serves.
    pub dist: PathBuf,
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TrunkServe {
    fn drop(&mut self) {
        kill_process_group(&self.child);
    }
}

impl TrunkServe {
    /// The backend every `[[proxy]]` of the project's `Trunk.toml` points at.
    pub const PROJECT_BACKEND: &'static str = "http://localhost:8080/";

    /// The project's `Trunk.toml` with every proxy pointed at the bridge on `bridge_port`.
    pub fn config_for(bridge_port: u16) -> String {
        let project = std::fs::read_to_string(repo_root().join("Trunk.toml")).unwrap();
        let from = format!("backend = \"{}", Self::PROJECT_BACKEND);
        let proxies = project.matches("[[proxy]]").count();
        assert!(
            proxies > 0 && project.matches(&from).count() == proxies,
            "Trunk.toml: expected every [[proxy]] to have `{from}…\"` (the test re-points them)"
        );
        project.replace(
            &from,
            &format!("backend = \"http://localhost:{bridge_port}/"),
        )
    }

    /// Starts `trunk serve --release` on `port`, proxying to the bridge on `bridge_port`, and
    /// waits until it serves the built SPA. Release, as `scripts/build-ui.sh` builds before the
    /// tests: Cargo finds the `wasm-release` crates already compiled, and Trunk only runs
    /// wasm-bindgen and wasm-opt (~20 s). A debug build compiles the SPA once more in another
    /// profile (~6 min on two cores, measured).
    pub async fn start(port: u16, bridge_port: u16) -> TrunkServe {
        let root = repo_root();
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("Trunk.toml");
        std::fs::write(&config, Self::config_for(bridge_port)).unwrap();
        let dist = dir.path().join("dist");
        let log = dir.path().join("trunk.log");
        let log_file = std::fs::File::create(&log).unwrap();
        // wasm-opt (npm binaryen, the version `[tools]` names) comes from tools/.
        let path =
            std::env::join_paths(std::iter::once(root.join("tools/node_modules/.bin")).chain(
                std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
            ))
            .unwrap();
        // The toolchain and flags of scripts/build-ui.sh: with others, Cargo would rebuild the
        // SPA's WASM and put it where a build running at the same time reads it (see
        // [`WASM_BUILD`]).
        let wasm_env = std::process::Command::new(root.join("scripts/wasm-env.sh"))
            .output()
            .unwrap();
        assert!(wasm_env.status.success(), "scripts/wasm-env.sh failed");
        let wasm_env = String::from_utf8(wasm_env.stdout).unwrap();
        let wasm_env = wasm_env.lines().filter_map(|line| line.split_once('='));
        let _building = WASM_BUILD.lock().await;
        let child = Command::new("trunk")
            .arg("--config")
            .arg(&config)
            .arg("serve")
            // The config now lives in `dir`, so name the target by its full path.
            .arg(root.join("frontend/index.html"))
            .arg("--dist")
            .arg(&dist)
            .args(["--port", &port.to_string(), "--release"])
            .env("PATH", path)
            .envs(wasm_env)
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("trunk must be installed (scripts/install-deps.sh)");
        let mut trunk = TrunkServe {
            url: format!("http://localhost:{port}"),
            port,
            dist,
            child,
            log,
            _dir: dir,
        };
        trunk.wait_until_serving().await;
        trunk
    }

    /// Trunk builds first and only then listens: the first answer of its server is the built
    /// page, or tells that the build failed.
    async fn wait_until_serving(&mut self) {
        let deadline = tokio::time::Instant::now() + TRUNK_FIRST_BUILD;
        let client = reqwest::Client::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("trunk serve exited ({status}):\n{}", self.log_tail());
            }
            if let Ok(r) = client.get(&self.url).send().await {
                let status = r.status();
                let page = r.text().await.unwrap_or_default();
                assert!(
                    status == StatusCode::OK && page.contains("app-loader"),
                    "trunk serve answered {status} instead of the SPA (did the build fail?):\n{}",
                    self.log_tail()
                );
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "trunk serve did not listen within {TRUNK_FIRST_BUILD:?}:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The end of Trunk's output (its build log), for failure messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// `text` (a base64url value) with the character in its middle changed. Every bit of that
/// character is data, whereas the last character of an unpadded base64url value may carry only
/// padding bits, which a decoder may ignore: a value tampered there can decode to the original.
pub fn with_a_middle_char_changed(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// `token` (a JWT) with one character in the middle of its signature changed, so the signature
/// check itself is what refuses it (see [`with_a_middle_char_changed`]).
pub fn with_tampered_signature(token: &str) -> String {
    let (signed, signature) = token.rsplit_once('.').unwrap();
    format!("{signed}.{}", with_a_middle_char_changed(signature))
}
