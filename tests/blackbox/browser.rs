//! End-to-end flows in a real headless Chromium (Debian's chromium + chromedriver) against
//! the built SPA (`dist/`), the bridge and the real provider. What the user sees is checked
//! in the page; what happened is checked on the servers (the bridge's record of API calls,
//! the provider's own counters).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{process::Stdio, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{
    privacyidea::documented_profile,
    support::{
        privacyidea::{PrivacyIdea, TrustedJwt},
        *,
    },
    test_gateway::*,
};

const WAIT: Duration = Duration::from_secs(30);

/// Issue 23 (DPoP) in a real browser.
mod with_dpop;

/// Issue 24: the SPA as the run command builds it, without Trunk.
mod without_trunk;

/// A headless Chromium session; ChromeDriver and the browser are killed on drop.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // ChromeDriver runs in its own process group with Chromium under it: end them all.
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", "--", &format!("-{pid}")])
                .status();
        }
    }
}

impl Browser {
    async fn start() -> Browser {
        Self::start_logging(json!({"browser": "ALL"})).await
    }

    /// A browser whose network log (ChromeDriver's `performance` log: Chromium's DevTools
    /// `Network.*` events, the requests with their headers) is readable with
    /// [`Self::network_log`].
    async fn start_with_network_log() -> Browser {
        Self::start_logging(json!({"browser": "ALL", "performance": "ALL"})).await
    }

    async fn start_logging(logging_prefs: serde_json::Value) -> Browser {
        // fantoccini's TLS stack and reqwest's bring two rustls crypto providers; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let root = repo_root();
        assert!(
            root.join("dist/index.html").exists(),
            "dist/index.html is missing: build the UI first (scripts/build-ui.sh)"
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver must be installed (scripts/install-deps.sh)");
        let mut lines = BufReader::new(driver.stdout.take().unwrap()).lines();
        tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited before it was ready");
        })
        .await
        .expect("chromedriver did not start");
        // Keep draining its stdout so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--disable-quic",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }),
        );
        // Chromium's console, failed loads included, readable through `se/log`.
        caps.insert("goog:loggingPrefs".into(), logging_prefs);
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("cannot start a Chromium session");
        Browser {
            client,
            driver,
            _profile: profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    /// Waits until the element exists and its text contains `expected`.
    async fn wait_for_text(&self, css: &str, expected: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Ok(el) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = el.text().await
                && text.contains(expected)
            {
                return text;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "{css} never showed {expected:?}; {}",
                    self.what_it_shows().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// For a failed wait: the page's URL and HTML, each request the page made that has
    /// finished (status, start and duration in ms: a call still pending is not listed), and
    /// the console.
    async fn what_it_shows(&self) -> String {
        let url = self
            .client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let src = self.client.source().await.unwrap_or_default();
        let requests = self
            .client
            .execute(
                "return performance.getEntriesByType('navigation')
                   .concat(performance.getEntriesByType('resource'))
                   .map(e => `${e.responseStatus} ${e.name} at ${Math.round(e.startTime)} \
                              took ${Math.round(e.duration)}`)
                   .join('\\n')",
                vec![],
            )
            .await
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .unwrap_or_else(|e| format!("(no timings: {e})"));
        // The console (a panic of the SPA's WebAssembly shows here), what is left of it.
        let console = self
            .client
            .issue_cmd(RawCommand {
                method: axum::http::Method::POST,
                path: "se/log".into(),
                body: Some(json!({"type": "browser"})),
            })
            .await
            .map(|log| {
                log.as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| format!("{} {}", e["level"], e["message"]))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_else(|e| format!("(no console: {e})"));
        format!(
            "at {url}\n{src}\nfinished requests (status, URL, ms):\n{requests}\nconsole:\n{console}"
        )
    }

    async fn wait_for(&self, css: &str) {
        if let Err(e) = self
            .client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            panic!("{css} never appeared: {e}; {}", self.what_it_shows().await);
        }
    }

    async fn click(&self, css: &str) {
        self.wait_for(css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    async fn fill(&self, css: &str, value: &str) {
        self.wait_for(css).await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }

    async fn url(&self) -> url::Url {
        self.client.current_url().await.unwrap()
    }

    /// Types the credentials into the provider's own login form.
    async fn log_in_at_provider(&self, idp: &TestIdp, username: &str, password: &str) {
        self.wait_for("#password").await;
        assert!(self.url().await.as_str().starts_with(&idp.issuer));
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
    }

    /// Opens the UI's login page, clicks "Sign in with SSO" and signs in at the provider.
    async fn sign_in_with_sso(&self, app: &TestApp, username: &str, password: &str) {
        self.goto(&format!("{}/login", app.address)).await;
        self.click("#sso-login").await;
        self.log_in_at_provider(&app.idp, username, password).await;
    }

    /// The token the SPA gets, asked the way the SPA asks (same cookies, same header).
    async fn token_from_session_endpoint(&self) -> String {
        self.session_token().await.expect("a signed-in session")
    }

    /// The token `/auth/session` hands this browser, or `None` without a session.
    async fn session_token(&self) -> Option<String> {
        let value = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   fetch('/auth/session', {headers: {'x-login-bridge': '1'}})
                     .then(r => r.json()).then(j => done(j.auth_token || null));"#,
                vec![],
            )
            .await
            .unwrap();
        value.as_str().map(str::to_owned)
    }

    async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

#[tokio::test]
async fn a_first_login_goes_through_the_provider_form_and_every_api_call_carries_the_session_token()
{
    let app = spawn_app().await;
    let browser = Browser::start().await;

    // No session anywhere: the silent attempt fails, the UI's login page offers SSO.
    browser.goto(&format!("{}/", app.address)).await;
    browser.click("#sso-login").await;
    browser
        .log_in_at_provider(&app.idp, "alice", "wonderland")
        .await;

    // The UI shows alice, from the demo API.
    browser.wait_for_text("#user-username", "alice").await;
    browser
        .wait_for_text("#user-email", "alice@example.org")
        .await;
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for_text("#api-demo-user", "alice").await;

    // Server side: the API saw bearer tokens for alice, and each was the token that
    // /auth/session hands out.
    let token = browser.token_from_session_endpoint().await;
    let calls = app.api_calls.recent(ALICE_SUB);
    assert!(calls.iter().any(|c| c.path == "/api/me"), "{calls:?}");
    assert!(calls.iter().any(|c| c.path == "/api/calls"), "{calls:?}");
    let expected = login_bridge::trust::fingerprint(&token);
    assert!(
        calls.iter().all(|c| c.token_fingerprint == expected),
        "every API call carried the session's token: {calls:?} vs {expected}"
    );
    assert_eq!(app.idp.stat("login_forms_shown").await, 1);
    assert_eq!(app.idp.stat("logins_succeeded").await, 1);
    browser.close().await;
}

#[tokio::test]
async fn with_an_active_sso_session_a_deep_link_signs_in_without_any_password_form() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    let forms_before = app.idp.stat("login_forms_shown").await;
    let silent_before = app.idp.stat("silent_authorization_requests").await;

    // Remove the bridge's cookies only (the current page is on the bridge's host); the
    // provider's session cookie, on another host, stays.
    browser.client.delete_all_cookies().await.unwrap();
    browser
        .goto(&format!("{}/api-demo?tab=calls", app.address))
        .await;

    browser.wait_for_text("#api-demo-user", "alice").await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/api-demo");
    assert_eq!(url.query(), Some("tab=calls"), "deep link kept");
    assert_eq!(
        app.idp.stat("login_forms_shown").await,
        forms_before,
        "no login form was shown"
    );
    assert_eq!(
        app.idp.stat("silent_authorization_requests").await,
        silent_before + 1
    );
    assert_eq!(
        app.idp.stat("logins_succeeded").await,
        1,
        "no second password login"
    );
    browser.close().await;
}

/// `session.same_site = "strict"`: the provider's redirect back is cross-site, so Chromium
/// sends no session cookie with it; the bridge's one same-site hop completes the sign-in, and
/// silent SSO keeps working.
#[tokio::test]
async fn with_strict_same_site_cookies_sign_in_and_silent_sso_still_work_in_a_real_browser() {
    let app = spawn_app_with(AppOptions {
        same_site_strict: true,
        ..Default::default()
    })
    .await;
    let browser = Browser::start().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    let forms = app.idp.stat("login_forms_shown").await;
    let silent = app.idp.stat("silent_authorization_requests").await;

    browser.client.delete_all_cookies().await.unwrap();
    browser
        .goto(&format!("{}/api-demo?tab=calls", app.address))
        .await;
    browser.wait_for_text("#api-demo-user", "alice").await;
    assert_eq!(app.idp.stat("login_forms_shown").await, forms, "no form");
    assert_eq!(
        app.idp.stat("silent_authorization_requests").await,
        silent + 1
    );
    assert_eq!(app.idp.stat("logins_succeeded").await, 1);
    browser.close().await;
}

#[tokio::test]
async fn without_a_provider_session_the_ui_login_page_shows_without_a_loop_and_keeps_the_deep_link()
{
    let app = spawn_app().await;
    let browser = Browser::start().await;

    browser
        .goto(&format!("{}/api-demo?tab=calls", app.address))
        .await;

    browser.wait_for("#sso-login").await;
    browser.wait_for_text("#login-message", "not active").await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/login");
    assert_eq!(
        query_param(url.as_str(), "return_to").as_deref(),
        Some("/api-demo?tab=calls")
    );
    // The SPA has loaded and settled on the login page: exactly one (silent) trip to the
    // provider, no form, no loop.
    assert_eq!(app.idp.stat("authorization_requests").await, 1);
    assert_eq!(app.idp.stat("silent_authorization_requests").await, 1);
    assert_eq!(app.idp.stat("login_forms_shown").await, 0);

    browser.click("#sso-login").await;
    browser
        .log_in_at_provider(&app.idp, "alice", "wonderland")
        .await;

    browser.wait_for_text("#api-demo-user", "alice").await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/api-demo");
    assert_eq!(url.query(), Some("tab=calls"), "deep link kept after login");
    assert_eq!(app.idp.stat("authorization_requests").await, 2);
    browser.close().await;
}

#[tokio::test]
async fn signing_out_in_the_ui_ends_both_the_bridge_and_the_provider_session() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#whoami", "alice").await;

    browser.click("#sign-out").await;

    browser.wait_for_text("#login-message", "signed out").await;
    assert_eq!(app.idp.stat("end_session_requests").await, 1);
    // Opening the UI again finds neither session: the login page, not alice.
    browser.goto(&format!("{}/", app.address)).await;
    browser.wait_for("#sso-login").await;
    assert_eq!(browser.url().await.path(), "/login");
    browser.close().await;
}

/// The provider ends alice's session elsewhere and tells the bridge (back-channel logout): her
/// open tab drops its token and shows the login page within 5 s, on its own.
#[tokio::test]
async fn after_a_back_channel_logout_an_open_tab_shows_the_login_page_within_five_seconds() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;

    let token = sign_as_idp(&crate::backchannel_logout::logout_claims(&app));
    let posted = std::time::Instant::now();
    let r = crate::backchannel_logout::post_logout(&app, &token).await;
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    browser.wait_for("#sso-login").await;
    let noticed = posted.elapsed();
    assert!(
        noticed < Duration::from_secs(5),
        "noticed after {noticed:?}"
    );
    assert_eq!(browser.url().await.path(), "/login");
    assert!(
        browser.session_token().await.is_none(),
        "no session at the bridge"
    );
    browser.close().await;
}

#[tokio::test]
async fn signing_in_through_trunk_serve_reaches_the_bridge_through_its_proxies() {
    // docs/ui-development.md's developer loop: the bridge's public URL is the dev server's, which serves
    // the SPA itself and proxies the bridge's paths (`Trunk.toml`) to the bridge's real port.
    let trunk_port = free_port();
    let app = spawn_app_with(AppOptions {
        public_url: Some(format!("http://localhost:{trunk_port}")),
        ..AppOptions::default()
    })
    .await;
    let trunk = TrunkServe::start(trunk_port, app.port).await;
    let browser = Browser::start().await;

    // A deep link on the dev server, no session anywhere: the SPA's own silent attempt, then
    // its login page, then the provider's form.
    browser
        .goto(&format!("{}/api-demo?tab=calls", trunk.url))
        .await;
    browser.click("#sso-login").await;
    browser
        .log_in_at_provider(&app.idp, "alice", "wonderland")
        .await;

    // Signed in, back on the dev server at the deep link, the API answered through its proxy.
    browser.wait_for_text("#whoami", "alice").await;
    browser.wait_for_text("#api-demo-user", "alice").await;
    browser.wait_for_text("#api-calls", "/api/me").await;
    let url = browser.url().await;
    assert_eq!(
        (url.host_str(), url.port()),
        (Some("localhost"), Some(trunk.port)),
        "on the dev server"
    );
    assert_eq!(url.path(), "/api-demo");
    assert_eq!(url.query(), Some("tab=calls"), "deep link kept");

    // The page is Trunk's (its autoreload script, its build), not the bridge's dist/.
    let page = browser.client.source().await.unwrap();
    assert!(page.contains(".well-known/trunk/ws"), "served by trunk");
    let wasm = browser
        .client
        .execute(
            "return document.getElementById('app-loader').dataset.wasm",
            vec![],
        )
        .await
        .unwrap();
    let wasm = wasm.as_str().unwrap().trim_start_matches('/');
    assert!(trunk.dist.join(wasm).is_file(), "{wasm} from trunk's dist");

    // Server side: every API call reached the bridge with the session's token as Bearer.
    let token = browser.token_from_session_endpoint().await;
    let calls = app.api_calls.recent(ALICE_SUB);
    assert!(calls.iter().any(|c| c.path == "/api/me"), "{calls:?}");
    assert!(calls.iter().any(|c| c.path == "/api/calls"), "{calls:?}");
    let expected = login_bridge::trust::fingerprint(&token);
    assert!(
        calls.iter().all(|c| c.token_fingerprint == expected),
        "every API call carried the session's token: {calls:?} vs {expected}"
    );
    assert_eq!(app.idp.stat("silent_authorization_requests").await, 1);
    assert_eq!(app.idp.stat("login_forms_shown").await, 1);
    assert_eq!(app.idp.stat("logins_succeeded").await, 1);
    browser.close().await;
}

/// The user the test gateway has authenticated.
const GATEWAY_SUB: &str = "gateway-user-0001";
const GATEWAY_USERNAME: &str = "gwen";

/// A bridge whose public address is a test gateway that puts `token` in `header` and connects
/// from 127.0.0.2; the bridge trusts gateway JWTs from `trusted_proxy` only.
async fn spawn_behind_gateway(
    header: &str,
    trusted_proxy: &str,
    token: String,
) -> (TestApp, TestGateway) {
    let mut gateway = TestGateway::bind(header, token).await;
    let app = spawn_app_with(AppOptions {
        public_url: Some(gateway.url.clone()),
        issuers: vec![gateway_issuer()],
        gateway: Some(gateway_settings(header, &[trusted_proxy])),
        ..AppOptions::default()
    })
    .await;
    gateway.start(app.port);
    (app, gateway)
}

/// Acceptance 1 of issue 7, with the JWT in `header`.
async fn a_deep_link_through_the_gateway_opens_signed_in(header: &str) {
    let jwt = gateway_jwt(GATEWAY_SUB, GATEWAY_USERNAME, now() + 600);
    let (app, gateway) = spawn_behind_gateway(header, "127.0.0.2/32", jwt.clone()).await;
    let browser = Browser::start().await;

    browser
        .goto(&format!("{}/api-demo?tab=calls", gateway.url))
        .await;

    // Signed in on the deep link itself, the demo API answered.
    browser.wait_for_text("#whoami", GATEWAY_USERNAME).await;
    browser
        .wait_for_text("#api-demo-user", GATEWAY_USERNAME)
        .await;
    browser.wait_for_text("#api-calls", "/api/me").await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/api-demo");
    assert_eq!(url.query(), Some("tab=calls"), "deep link kept");
    // No form and no trip to the provider at any point, not even a silent one.
    assert_eq!(app.idp.stat("authorization_requests").await, 0);
    assert_eq!(app.idp.stat("silent_authorization_requests").await, 0);
    assert_eq!(app.idp.stat("login_forms_shown").await, 0);
    assert!(
        !gateway.seen().iter().any(|r| r.path == "/login"),
        "the UI's login page was never opened: {:?}",
        gateway.seen()
    );

    // The SPA's token is the gateway's JWT, and every REST call carried it as Bearer: as the
    // bridge's API recorded them, and as the browser itself sent them to the gateway.
    assert_eq!(browser.token_from_session_endpoint().await, jwt);
    let calls = app.api_calls.recent(GATEWAY_SUB);
    assert!(calls.iter().any(|c| c.path == "/api/me"), "{calls:?}");
    assert!(calls.iter().any(|c| c.path == "/api/calls"), "{calls:?}");
    let expected = login_bridge::trust::fingerprint(&jwt);
    assert!(
        calls.iter().all(|c| c.token_fingerprint == expected),
        "every API call carried the gateway's JWT: {calls:?} vs {expected}"
    );
    let api_requests: Vec<SeenRequest> = gateway
        .seen()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/"))
        .collect();
    let bearer = format!("Bearer {jwt}");
    assert!(
        !api_requests.is_empty()
            && api_requests
                .iter()
                .all(|r| r.authorization.as_deref() == Some(bearer.as_str())),
        "the SPA itself sent Bearer <gateway JWT> on every REST call: {api_requests:?}"
    );
    browser.close().await;
}

#[tokio::test]
async fn behind_a_gateway_a_deep_link_opens_signed_in_without_any_form() {
    a_deep_link_through_the_gateway_opens_signed_in("authorization").await;
}

#[tokio::test]
async fn behind_a_gateway_with_a_custom_header_a_deep_link_opens_signed_in_without_any_form() {
    a_deep_link_through_the_gateway_opens_signed_in("x-custom-tkn").await;
}

#[tokio::test]
async fn the_jwt_endpoint_round_trip_signs_in_through_the_existing_app_without_any_form() {
    // The gateway protects only the bridge's JWT-endpoint callback (ZITADEL's JWT IdP setup);
    // the test gateway also plays the existing app at its JWT endpoint.
    let jwt = gateway_jwt(GATEWAY_SUB, GATEWAY_USERNAME, now() + 600);
    let mut gateway = TestGateway::bind("x-custom-tkn", jwt.clone()).await;
    gateway.inject_only_under("/auth/jwt/callback");
    let mut settings = gateway_settings("x-custom-tkn", &["127.0.0.2/32"]);
    settings["jwt_endpoint"] = json!(format!("{}{JWT_ENDPOINT_PATH}", gateway.url));
    let app = spawn_app_with(AppOptions {
        public_url: Some(gateway.url.clone()),
        issuers: vec![gateway_issuer()],
        gateway: Some(settings),
        ..AppOptions::default()
    })
    .await;
    gateway.start(app.port);
    let browser = Browser::start().await;

    // No provider session: the silent attempt ends on the UI's login page, deep link kept.
    browser
        .goto(&format!("{}/api-demo?tab=calls", gateway.url))
        .await;
    browser.click("#sso-login").await;

    // Sign in: bridge -> the app's JWT endpoint -> back through the gateway with the JWT.
    browser.wait_for_text("#whoami", GATEWAY_USERNAME).await;
    browser
        .wait_for_text("#api-demo-user", GATEWAY_USERNAME)
        .await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/api-demo");
    assert_eq!(url.query(), Some("tab=calls"), "deep link kept");
    assert!(
        gateway.seen().iter().any(|r| r.path == JWT_ENDPOINT_PATH),
        "the browser went through the existing app"
    );
    assert_eq!(browser.session_token().await.as_deref(), Some(jwt.as_str()));
    assert_eq!(app.idp.stat("login_forms_shown").await, 0, "no form");
    assert_eq!(app.idp.stat("logins_succeeded").await, 0);
    browser.close().await;
}

#[tokio::test]
async fn a_gateway_connecting_from_an_untrusted_address_signs_no_one_in() {
    // The same gateway and JWT, but the bridge trusts 127.0.0.3 only: the gateway's
    // connections come from 127.0.0.2, so its header counts for nothing.
    let jwt = gateway_jwt(GATEWAY_SUB, GATEWAY_USERNAME, now() + 600);
    let (app, gateway) = spawn_behind_gateway("authorization", "127.0.0.3/32", jwt).await;
    let browser = Browser::start().await;

    browser
        .goto(&format!("{}/api-demo?tab=calls", gateway.url))
        .await;

    // What a browser without any session gets: the silent attempt, then the UI's login page.
    browser.wait_for("#sso-login").await;
    browser.wait_for_text("#login-message", "not active").await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/login");
    assert_eq!(
        query_param(url.as_str(), "return_to").as_deref(),
        Some("/api-demo?tab=calls")
    );
    assert_eq!(browser.session_token().await, None, "no session");
    assert!(
        browser.client.find(Locator::Css("#whoami")).await.is_err(),
        "not shown as signed in"
    );
    assert!(app.api_calls.recent(GATEWAY_SUB).is_empty());
    assert_eq!(app.idp.stat("silent_authorization_requests").await, 1);
    assert_eq!(app.idp.stat("login_forms_shown").await, 0);
    browser.close().await;
}

#[tokio::test]
async fn behind_a_gateway_an_expired_jwt_lands_on_the_login_page_which_says_so_and_a_fresh_one_signs_in()
 {
    let expired = gateway_jwt(GATEWAY_SUB, GATEWAY_USERNAME, now() - 600);
    let (app, gateway) = spawn_behind_gateway("authorization", "127.0.0.2/32", expired).await;
    let browser = Browser::start().await;

    browser
        .goto(&format!("{}/api-demo?tab=calls", gateway.url))
        .await;

    // The UI's login page, saying why in plain words; no session, no provider detour.
    browser.wait_for_text("#login-message", "expired").await;
    let url = browser.url().await;
    assert_eq!(url.path(), "/login");
    assert_eq!(
        query_param(url.as_str(), "reason").as_deref(),
        Some("expired")
    );
    assert_eq!(
        query_param(url.as_str(), "return_to").as_deref(),
        Some("/api-demo?tab=calls")
    );
    assert_eq!(browser.session_token().await, None, "no session");
    assert_eq!(app.idp.stat("authorization_requests").await, 0);

    // As the message says: once the gateway has a fresh JWT, opening the page signs in.
    let fresh = gateway_jwt(GATEWAY_SUB, GATEWAY_USERNAME, now() + 600);
    gateway.set_token(fresh.clone());
    browser
        .goto(&format!("{}/api-demo?tab=calls", gateway.url))
        .await;
    browser
        .wait_for_text("#api-demo-user", GATEWAY_USERNAME)
        .await;
    assert_eq!(browser.token_from_session_endpoint().await, fresh);
    assert_eq!(app.idp.stat("login_forms_shown").await, 0);
    browser.close().await;
}

/// privacyIDEA's tokens of `user` (`GET token/?user=`), asked with `raw_token` (an admin's).
async fn privacyidea_tokens(
    pi: &PrivacyIdea,
    raw_token: &str,
    user: &str,
) -> Vec<serde_json::Value> {
    let response = pi.get(&format!("token/?user={user}"), raw_token).await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["result"]["status"], true, "{body}");
    body["result"]["value"]["tokens"]
        .as_array()
        .unwrap()
        .clone()
}

/// Acceptance 1 of issue 10: privacyIDEA end to end in the browser. The bridge proxies a real
/// privacyIDEA at `/pi/` with its `privacyidea` profile token; with alice's provider session
/// active, a deep link to the SPA's privacyIDEA page signs in silently (no form), lists her
/// tokens and enrolls a new HOTP token, which privacyIDEA's own API then shows.
#[tokio::test]
async fn with_an_active_sso_session_the_privacyidea_page_lists_and_enrolls_tokens_without_any_form()
{
    // privacyIDEA must trust the bridge's key before the bridge can name privacyIDEA's address:
    // a first bridge makes the key in a store that the real one then opens.
    let (token_profiles, token_profile) = documented_profile();
    let store = tempfile::tempdir().unwrap();
    let kek = store.path().join("kek");
    login_bridge::authority::keyring::write_new_kek(&kek).unwrap();
    let options = |upstreams: Vec<serde_json::Value>| AppOptions {
        authority: Some(json!({"key_encryption_key_file": kek})),
        sqlite_path: Some(store.path().join("sessions.sqlite")),
        token_profiles: token_profiles.clone(),
        token_profile: token_profile.clone(),
        upstreams,
        ..AppOptions::default()
    };
    let keymaker = spawn_app_with(options(Vec::new())).await;
    let pem = keymaker.admin(&["keys", "export", "--pem"]).await.unwrap();
    keymaker.stop().await;
    let pi = PrivacyIdea::start(&[
        TrustedJwt::users(&pem, "ES256"),
        TrustedJwt::admins(&pem, "ES256"),
    ])
    .await;
    let app = spawn_app_with(options(vec![json!({
        "name": "privacyidea", "prefix": "/pi/", "url": pi.url.as_str(),
        "token": "profile:privacyidea", "header": "authorization", "scheme": "",
        "ui": "privacyidea",
    })]))
    .await;

    // Seed one token for alice through privacyIDEA's API, with a token it trusts: the one the
    // bridge hands alice (she is in pi-admins, so it is an admin token).
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let admin = app.session_info(&client).await.auth_token;
    let seeded: serde_json::Value = pi
        .post_form(
            "token/init",
            &admin,
            &[
                ("type", "hotp"),
                ("genkey", "1"),
                ("user", "alice"),
                ("description", "seeded"),
            ],
        )
        .await
        .json()
        .await
        .unwrap();
    let seeded = seeded["detail"]["serial"].as_str().unwrap().to_owned();
    assert_eq!(privacyidea_tokens(&pi, &admin, "alice").await.len(), 1);

    // alice signs in once in the browser (the provider's form), then the bridge forgets her.
    let browser = Browser::start().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    let forms_before = app.idp.stat("login_forms_shown").await;
    let silent_before = app.idp.stat("silent_authorization_requests").await;
    browser.client.delete_all_cookies().await.unwrap();

    // Act 1: the deep link.
    browser.goto(&format!("{}/privacyidea", app.address)).await;

    // The page lists alice's token, read from privacyIDEA through the bridge; no form shown.
    browser.wait_for_text("#pi-tokens", &seeded).await;
    browser.wait_for("nav a[href='/privacyidea']").await;
    assert_eq!(browser.url().await.path(), "/privacyidea", "deep link kept");
    assert_eq!(
        app.idp.stat("login_forms_shown").await,
        forms_before,
        "no login form"
    );
    assert_eq!(
        app.idp.stat("silent_authorization_requests").await,
        silent_before + 1
    );

    // Act 2: enroll.
    browser.click("#pi-enroll").await;

    // privacyIDEA itself now holds a second HOTP token for alice, the one the page names.
    let deadline = tokio::time::Instant::now() + WAIT;
    let new = loop {
        let tokens = privacyidea_tokens(&pi, &admin, "alice").await;
        if let Some(new) = tokens.iter().find(|t| t["serial"] != seeded.as_str()) {
            assert_eq!(tokens.len(), 2, "{tokens:?}");
            break new.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no new token: {tokens:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(new["tokentype"], "hotp", "{new}");
    assert_eq!(new["username"], "alice", "{new}");
    let serial = new["serial"].as_str().unwrap();
    browser.wait_for_text("#pi-enrolled", serial).await;
    browser.wait_for_text("#pi-tokens", serial).await;
    assert_eq!(
        app.idp.stat("login_forms_shown").await,
        forms_before,
        "still no form"
    );
    assert_eq!(browser.url().await.path(), "/privacyidea");
    browser.close().await;
}

impl Browser {
    /// Submits the login page's local-account form and waits for the page it leads to.
    async fn submit_local_form(&self, username: &str, password: &str) {
        self.fill("#local-username", username).await;
        self.fill("#local-password", password).await;
        self.click("#local-submit").await;
        // The post answers with a redirect, so a new page loads: wait until the filled-in
        // form is gone (a fresh one is empty, or none at all once signed in).
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let value = match self.client.find(Locator::Css("#local-username")).await {
                Ok(el) => el.prop("value").await.ok().flatten().unwrap_or_default(),
                Err(_) => String::new(),
            };
            if value.is_empty() {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the form post never answered"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether the element is displayed, waiting for it to be: the login page shows the local
    /// accounts' form once `/auth/session` has answered, which (the SPA signing its DPoP proof
    /// first, with a key it may have to make) can come after the page is there.
    async fn is_displayed(&self, css: &str) -> bool {
        self.wait_for(css).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let el = self.client.find(Locator::Css(css)).await.unwrap();
            if el.is_displayed().await.unwrap() {
                return true;
            }
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Issue 12, acceptance 1 in a real browser: without SSO the login page offers the local
/// accounts' form; a wrong password and an unknown user get the same error; rapid wrong
/// attempts end in a refusal; a local user signs in and the UI's API calls carry the token
/// the bridge minted; signing out shows the form again.
#[tokio::test]
async fn a_local_user_signs_in_with_the_login_form_and_the_ui_works_with_its_minted_token() {
    let app = spawn_app_with(crate::local_accounts::local_options(json!({
        "attempts_per_account": 3, "account_recovery_secs": 3600,
        "failure_delay_ms": 50, "max_failure_delay_ms": 200
    })))
    .await;
    for name in ["olivia", "peter"] {
        app.admin_with_password(
            &["user", "add", name, "--role", "operator"],
            crate::local_accounts::PASSWORD,
        )
        .await
        .unwrap();
    }
    let browser = Browser::start().await;

    // No SSO session: the silent attempt comes back to the login page, which shows the form
    // beside the SSO button and keeps the deep link.
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for("#sso-login").await;
    assert!(browser.is_displayed("#local-login").await);

    browser
        .submit_local_form("olivia", "not her password")
        .await;
    browser
        .wait_for_text("#login-message", "Wrong username or password.")
        .await;
    let after_wrong_password = browser.url().await;
    browser
        .submit_local_form("nobody", "not his password")
        .await;
    browser
        .wait_for_text("#login-message", "Wrong username or password.")
        .await;
    assert_eq!(browser.url().await, after_wrong_password, "the same answer");
    assert_eq!(
        query_param(after_wrong_password.as_str(), "return_to").as_deref(),
        Some("/api-demo")
    );

    // Olivia's account allows three attempts in a row; the fourth is refused, even with her
    // right password.
    browser.submit_local_form("olivia", "guess two").await;
    browser.submit_local_form("olivia", "guess three").await;
    browser
        .submit_local_form("olivia", crate::local_accounts::PASSWORD)
        .await;
    browser
        .wait_for_text("#login-message", "Too many sign-in attempts")
        .await;
    assert_eq!(browser.session_token().await, None, "not signed in");

    // Peter signs in and lands on the deep link; every API call carries the minted token.
    browser
        .submit_local_form("peter", crate::local_accounts::PASSWORD)
        .await;
    browser.wait_for_text("#api-demo-user", "peter").await;
    assert_eq!(browser.url().await.path(), "/api-demo");
    let token = browser.token_from_session_endpoint().await;
    let user_id = app
        .admin(&["user", "list"])
        .await
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix("peter (")?
                .split(')')
                .next()
                .map(str::to_owned)
        })
        .unwrap();
    let calls = app.api_calls.recent(&user_id);
    assert!(calls.iter().any(|c| c.path == "/api/calls"), "{calls:?}");
    let expected = login_bridge::trust::fingerprint(&token);
    assert!(
        calls.iter().all(|c| c.token_fingerprint == expected),
        "{calls:?} vs {expected}"
    );
    assert_eq!(
        app.idp.stat("login_forms_shown").await,
        0,
        "no provider form"
    );

    // Signing out: the login page again, with the form.
    browser.click("#sign-out").await;
    browser.wait_for_text("#login-message", "signed out").await;
    assert!(browser.is_displayed("#local-login").await);
    assert_eq!(browser.session_token().await, None);
    browser.close().await;
}

/// The SPA's own navigation: a nav link changes the page without a reload, and the browser's
/// Back and Forward buttons move between the pages the same way, each showing its data.
#[tokio::test]
async fn back_and_forward_move_between_the_spas_pages_without_reloading_it() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    // A mark on this page's window: a reload or a new document would lose it.
    browser
        .client
        .execute("window.__spa_mark = 'kept'; return null", vec![])
        .await
        .unwrap();
    let mark = || async {
        browser
            .client
            .execute("return window.__spa_mark || null", vec![])
            .await
            .unwrap()
    };

    browser.click("nav a[href='/api-demo']").await;
    browser.wait_for_text("#api-demo-user", "alice").await;
    assert_eq!(browser.url().await.path(), "/api-demo");

    browser.client.back().await.unwrap();
    browser.wait_for_text("#user-username", "alice").await;
    assert_eq!(browser.url().await.path(), "/");

    browser.client.forward().await.unwrap();
    browser.wait_for_text("#api-demo-user", "alice").await;
    assert_eq!(browser.url().await.path(), "/api-demo");
    assert_eq!(mark().await, json!("kept"), "the SPA was never reloaded");
    browser.close().await;
}

/// A WebDriver command fantoccini has no method for, sent as it is (relative to the session):
/// ChromeDriver's browser log (`se/log`), an element's computed accessible name
/// (`element/{id}/computedlabel`, WebDriver's own), Chrome DevTools commands
/// (`goog/cdp/execute`).
#[derive(Debug)]
struct RawCommand {
    method: axum::http::Method,
    path: String,
    body: Option<serde_json::Value>,
}

impl fantoccini::wd::WebDriverCompatibleCommand for RawCommand {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/{}",
            session_id.unwrap_or_default(),
            self.path
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            self.method.clone(),
            self.body.as_ref().map(|b| b.to_string()),
        )
    }
}

impl Browser {
    async fn raw(
        &self,
        method: axum::http::Method,
        path: String,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        self.client
            .issue_cmd(RawCommand { method, path, body })
            .await
            .unwrap_or_else(|e| panic!("WebDriver command failed: {e}"))
    }

    /// Chrome's device metrics (a window cannot be made as narrow as a phone); `None` goes
    /// back to the window's own size. The page is laid out anew at once.
    async fn set_viewport_width(&self, width: Option<u32>) {
        let (cmd, params) = match width {
            Some(width) => (
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": 780, "deviceScaleFactor": 1, "mobile": true}),
            ),
            None => ("Emulation.clearDeviceMetricsOverride", json!({})),
        };
        self.raw(
            axum::http::Method::POST,
            "goog/cdp/execute".into(),
            Some(json!({"cmd": cmd, "params": params})),
        )
        .await;
    }

    /// The accessible name Chromium computes for the element, as a screen reader gets it.
    async fn accessible_name(&self, css: &str) -> String {
        self.wait_for(css).await;
        let el = self.client.find(Locator::Css(css)).await.unwrap();
        let name = self
            .raw(
                axum::http::Method::GET,
                format!("element/{}/computedlabel", el.element_id()),
                None,
            )
            .await;
        name.as_str().unwrap_or_default().to_owned()
    }

    /// Presses the keys of `keys` one after the other on whatever has the focus (WebDriver's
    /// key actions: what a keyboard does, no element targeted).
    async fn press(&self, keys: &str) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let mut actions = KeyActions::new("keyboard".into());
        for key in keys.chars() {
            actions = actions
                .then(KeyAction::Down { value: key })
                .then(KeyAction::Up { value: key });
        }
        self.client.perform_actions(actions).await.unwrap();
    }

    /// The `id` of the focused element (empty for none or the body).
    async fn focused_id(&self) -> String {
        let id = self
            .client
            .execute(
                "return document.activeElement ? document.activeElement.id : ''",
                vec![],
            )
            .await
            .unwrap();
        id.as_str().unwrap_or_default().to_owned()
    }

    /// What the browser logged since the last call (ChromeDriver hands each entry out once).
    async fn browser_log(&self) -> Vec<serde_json::Value> {
        self.chromedriver_log("browser").await
    }

    /// ChromeDriver's log of `kind` (`browser`, `performance`) since the last call.
    async fn chromedriver_log(&self, kind: &str) -> Vec<serde_json::Value> {
        let log = self
            .raw(
                axum::http::Method::POST,
                "se/log".into(),
                Some(json!({"type": kind})),
            )
            .await;
        log.as_array().cloned().unwrap_or_default()
    }

    /// The requests Chromium sent since the last call (ChromeDriver hands each entry out once),
    /// each as DevTools' `Network.requestWillBeSent` `request`: `url`, `method`, `headers`.
    async fn network_log(&self) -> Vec<serde_json::Value> {
        self.chromedriver_log("performance")
            .await
            .into_iter()
            .filter_map(|entry| {
                let event: serde_json::Value =
                    serde_json::from_str(entry["message"].as_str()?).ok()?;
                let event = &event["message"];
                (event["method"] == "Network.requestWillBeSent")
                    .then(|| event["params"]["request"].clone())
            })
            .collect()
    }

    /// This document's loads that got an error status, as the page's own resource timing
    /// records them (`responseStatus`), but the session check's expected `401` before
    /// sign-in.
    async fn failed_loads_of_this_page(&self) -> Vec<String> {
        let failed = self
            .client
            .execute(
                r#"return performance.getEntriesByType('navigation')
                     .concat(performance.getEntriesByType('resource'))
                     .filter(e => e.responseStatus >= 400
                       && !(e.responseStatus === 401 && new URL(e.name).pathname === '/auth/session'))
                     .map(e => e.name + ' ' + e.responseStatus);"#,
                vec![],
            )
            .await
            .unwrap();
        serde_json::from_value(failed).unwrap()
    }
}

/// Entries of Chromium's log that are errors, but the expected `401` of `/auth/session` (the
/// SPA's session check before sign-in).
fn unexpected_errors(log: &[serde_json::Value]) -> Vec<String> {
    log.iter()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .filter(|m| !(m.contains("/auth/session - ") && m.contains("status of 401")))
        .collect()
}

/// Issue 22, acceptance 4: the sign-in card shows the configured product name; its fields are
/// named for assistive technology by their labels and filled in by password managers; it fits
/// a 360 px screen without sideways scrolling; and a local user signs in with the keyboard
/// alone: Tab past the SSO button (which comes first) to the username, type, Tab, type, Enter.
#[tokio::test]
async fn a_local_user_signs_in_with_the_keyboard_alone_on_a_labelled_form_that_fits_a_phone_screen()
{
    let mut opts = crate::local_accounts::local_options(json!({}));
    opts.ui_title = Some("Acme <Staff> Portal".into());
    let app = spawn_app_with(opts).await;
    app.admin_with_password(
        &["user", "add", "olivia", "--role", "operator"],
        crate::local_accounts::PASSWORD,
    )
    .await
    .unwrap();
    let browser = Browser::start().await;

    // A phone's width: the whole card is in view, nothing scrolls sideways.
    browser.set_viewport_width(Some(360)).await;
    browser.goto(&format!("{}/login", app.address)).await;
    browser
        .wait_for_text(".signin .product", "Acme <Staff> Portal")
        .await;
    assert!(browser.is_displayed("#local-username").await);
    let fits = browser
        .client
        .execute(
            "const d = document.documentElement;
             return [window.innerWidth, d.scrollWidth, d.clientWidth, document.title];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits[0], 360, "the page is laid out at 360 px: {fits}");
    assert!(
        fits[1].as_u64() <= fits[2].as_u64(),
        "no horizontal scroll at 360 px: {fits}"
    );
    assert_eq!(fits[3], "Acme <Staff> Portal", "the tab's title");

    // What a screen reader announces for each field (from its `<label for>`, not a
    // placeholder), and what a password manager reads.
    let labels = browser
        .client
        .execute(
            "return ['local-username', 'local-password'].map(id => {
               const labels = document.getElementById(id).labels;
               return labels.length === 1 && labels[0].htmlFor === id ? labels[0].textContent : null;
             });",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(labels, json!(["Username", "Password"]), "one label each");
    assert_eq!(browser.accessible_name("#local-username").await, "Username");
    assert_eq!(browser.accessible_name("#local-password").await, "Password");
    assert_eq!(
        browser.accessible_name("#sso-login").await,
        "Sign in with SSO"
    );
    assert_eq!(browser.accessible_name("#local-submit").await, "Sign in");
    for (css, autocomplete) in [
        ("#local-username", "username"),
        ("#local-password", "current-password"),
    ] {
        let el = browser.client.find(Locator::Css(css)).await.unwrap();
        assert_eq!(
            el.attr("autocomplete").await.unwrap().as_deref(),
            Some(autocomplete),
            "{css}"
        );
    }
    let live = browser
        .client
        .find(Locator::Css("#login-message"))
        .await
        .unwrap();
    assert_eq!(
        live.attr("aria-live").await.unwrap().as_deref(),
        Some("polite")
    );

    // The keyboard alone, at a laptop's width, from a freshly loaded page (nothing focused).
    browser.set_viewport_width(None).await;
    browser.goto(&format!("{}/login", app.address)).await;
    assert!(browser.is_displayed("#local-username").await);
    assert_eq!(browser.focused_id().await, "", "nothing has the focus yet");
    let mut passed = Vec::new();
    while browser.focused_id().await != "local-username" {
        assert!(
            passed.len() < 8,
            "Tab never reached the username: {passed:?}"
        );
        browser.press("\u{E004}").await;
        passed.push(browser.focused_id().await);
    }
    assert!(
        passed.iter().any(|id| id == "sso-login"),
        "the SSO button comes before the local form: {passed:?}"
    );
    browser.press("olivia\u{E004}").await;
    assert_eq!(browser.focused_id().await, "local-password");
    browser
        .press(&format!("{}\u{E007}", crate::local_accounts::PASSWORD))
        .await;
    browser.wait_for_text("#user-username", "olivia").await;
    assert_eq!(browser.url().await.path(), "/");
    assert!(browser.session_token().await.is_some(), "signed in");
    browser.close().await;
}

/// Issue 22, acceptance 5: the sign-in page, the home page and the API demo page (each loaded
/// afresh, signed out and signed in) make no request that fails, and log no error, but the
/// session check's `401` before sign-in: no missing favicon, no `404` from `/auth/upstreams`
/// (no upstream is configured here).
#[tokio::test]
async fn no_page_of_the_ui_logs_a_failed_request_but_the_session_check_before_sign_in() {
    let app = spawn_app_with(crate::local_accounts::local_options(json!({}))).await;
    app.admin_with_password(
        &["user", "add", "olivia", "--role", "operator"],
        crate::local_accounts::PASSWORD,
    )
    .await
    .unwrap();
    let browser = Browser::start().await;
    let mut failed = Vec::new();

    browser.goto(&format!("{}/login", app.address)).await;
    assert!(browser.is_displayed("#local-username").await);
    failed.extend(browser.failed_loads_of_this_page().await);
    browser
        .submit_local_form("olivia", crate::local_accounts::PASSWORD)
        .await;
    browser.wait_for_text("#user-username", "olivia").await;
    failed.extend(browser.failed_loads_of_this_page().await);
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for("#api-calls").await;
    failed.extend(browser.failed_loads_of_this_page().await);
    browser.goto(&format!("{}/", app.address)).await;
    browser.wait_for_text("#user-username", "olivia").await;
    failed.extend(browser.failed_loads_of_this_page().await);

    // The icon the page links is there (the browser fetches it on its own schedule: ask for it
    // here rather than wait for that).
    let icon = browser
        .client
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const link = document.querySelector('link[rel~=icon]');
               if (!link) { done('no icon link'); return; }
               fetch(link.href).then(r => done(r.status + ' ' + r.headers.get('content-type')),
                                     e => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(icon, "200 image/svg+xml", "the favicon");
    // One more page load, so the log surely holds everything the pages before it logged.
    browser.goto(&format!("{}/api-demo", app.address)).await;
    browser.wait_for("#api-calls").await;
    let log = browser.browser_log().await;
    assert!(
        log.iter().any(|e| e["message"]
            .as_str()
            .is_some_and(|m| m.contains("/auth/session - ") && m.contains("401"))),
        "the log is read (it holds the expected 401): {log:?}"
    );
    failed.extend(unexpected_errors(&log));
    assert!(
        failed.is_empty(),
        "failed loads or logged errors: {failed:#?}"
    );
    browser.close().await;
}
