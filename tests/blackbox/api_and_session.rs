//! The demo API's bearer checks, the token-mediating session endpoint, logout, refresh,
//! restart, readiness and the silent-SSO redirect, all against the real provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use login_bridge::startup::Application;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::support::*;

async fn assert_401_json(r: reqwest::Response, expected_error: &str) {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("401 carries WWW-Authenticate")
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(
        r.headers().get(header::LOCATION).is_none(),
        "never a redirect"
    );
    let body: shared::error::ApiError = r.json().await.unwrap();
    assert_eq!(body.error, expected_error);
}

fn access_claims(app: &TestApp) -> serde_json::Value {
    json!({
        "iss": app.idp.issuer, "sub": ALICE_SUB, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 300, "preferred_username": "alice",
    })
}

#[tokio::test]
async fn api_me_without_a_token_is_401_json_with_a_bearer_challenge() {
    let app = spawn_app().await;
    assert_401_json(app.api_get("/api/me", None).await, "unauthenticated").await;
}

#[tokio::test]
async fn api_me_authenticates_by_the_bearer_token_never_by_the_session_cookie() {
    let app = spawn_app().await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);

    let r = client
        .get(format!("{}/api/me", app.address))
        .send()
        .await
        .unwrap();

    assert_401_json(r, "unauthenticated").await;
}

#[tokio::test]
async fn api_me_with_a_token_signed_by_the_provider_key_is_accepted() {
    let app = spawn_app().await;
    let token = sign_as_idp(&access_claims(&app));
    let r = app.api_get("/api/me", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn api_me_with_a_bad_token_is_401_invalid_token() {
    let app = spawn_app().await;
    let good = sign_as_idp(&access_claims(&app));
    let tampered = with_tampered_signature(&good);
    for bad in ["garbage", "a.b.c", tampered.as_str()] {
        assert_401_json(app.api_get("/api/me", Some(bad)).await, "invalid_token").await;
    }
    // The tampered token is refused by the signature check, not as undecodable.
    let r = app.api_get("/api/me", Some(&tampered)).await;
    let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.contains("signature"), "{challenge}");
}

#[tokio::test]
async fn api_me_with_an_expired_token_is_401() {
    let app = spawn_app().await;
    let mut claims = access_claims(&app);
    claims["exp"] = json!(now() - 60);
    let r = app.api_get("/api/me", Some(&sign_as_idp(&claims))).await;
    let description = r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(description.contains("expired"), "{description}");
    assert_401_json(r, "invalid_token").await;
}

#[tokio::test]
async fn api_me_with_a_wrong_audience_is_401_including_keycloaks_account() {
    let app = spawn_app().await;
    for aud in [
        json!("account"),
        json!("other-api"),
        json!(["account", "other"]),
    ] {
        let mut claims = access_claims(&app);
        claims["aud"] = aud.clone();
        assert_401_json(
            app.api_get("/api/me", Some(&sign_as_idp(&claims))).await,
            "invalid_token",
        )
        .await;
    }
}

#[tokio::test]
async fn api_me_ignores_access_token_in_the_query_and_refuses_two_authorization_headers() {
    let app = spawn_app().await;
    let token = sign_as_idp(&access_claims(&app));
    let r = reqwest::get(format!("{}/api/me?access_token={token}", app.address))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = reqwest::Client::new()
        .get(format!("{}/api/me", app.address))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_session_endpoint_requires_the_custom_header_and_same_origin() {
    let app = spawn_app().await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;

    let without = client
        .get(format!("{}/auth/session", app.address))
        .send()
        .await
        .unwrap();
    let cross_origin = client
        .get(format!("{}/auth/session", app.address))
        .header(shared::session::CSRF_HEADER, "1")
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    let with = app.session(&client).await;

    assert_eq!(without.status(), StatusCode::BAD_REQUEST);
    assert!(
        !without.text().await.unwrap().contains("eyJ"),
        "no token without the header"
    );
    assert_eq!(cross_origin.status(), StatusCode::BAD_REQUEST);
    assert_eq!(with.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_session_endpoint_without_a_session_is_401_json() {
    let app = spawn_app().await;
    let r = app.session(&browser()).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: shared::error::ApiError = r.json().await.unwrap();
    assert_eq!(body.error, "unauthenticated");
    assert_eq!(body.silent_sso_tried, Some(false));
}

#[tokio::test]
async fn the_session_id_changes_at_login() {
    let app = spawn_app().await;
    let client = browser();
    // The anonymous session created for the pending login...
    let r = client
        .get(format!("{}/auth/login", app.address))
        .send()
        .await
        .unwrap();
    let before = session_cookie(&r);
    let authorize = location(&r);
    let callback = app
        .authorize_at_idp(&client, &authorize, "alice", "wonderland")
        .await;
    let r = client.get(&callback).send().await.unwrap();
    let after = r.cookies().find(|c| c.name() == "lb_session").unwrap();

    assert_ne!(before, after.value(), "session id rotated");
    assert!(after.http_only());
    assert_eq!(after.path(), Some("/"));
    let raw = r
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join(";");
    assert!(raw.contains("SameSite=Lax"), "{raw}");
}

#[tokio::test]
async fn logout_ends_the_session_and_returns_a_working_end_session_url() {
    let app = spawn_app().await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);

    let without_header = client
        .post(format!("{}/auth/logout", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        without_header.status(),
        StatusCode::BAD_REQUEST,
        "CSRF-protected"
    );
    let r = client
        .post(format!("{}/auth/logout", app.address))
        .header(shared::session::CSRF_HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: shared::session::LogoutResponse = r.json().await.unwrap();

    // The old cookie no longer works.
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // The end-session URL is the provider's, with the hint and our registered target...
    let url = body.end_session_url.expect("an end-session URL");
    assert!(
        url.starts_with(&format!("{}/session/end", app.idp.issuer)),
        "{url}"
    );
    assert!(query_param(&url, "id_token_hint").is_some());
    assert_eq!(
        query_param(&url, "post_logout_redirect_uri"),
        Some(format!("{}/login?signed_out=1", app.address))
    );
    // ...and the provider accepts it: it answers with its logout page, not an error.
    let page = client.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text().await.unwrap().contains("logout"),
        "provider's logout form"
    );
}

#[tokio::test]
async fn a_bridge_restart_keeps_sessions() {
    let app = spawn_app().await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let before = app.session_info(&client).await;
    let db = app.settings.session.sqlite_path.clone();

    // A second bridge on the same database file, with nothing in memory from the first.
    // Cookies are per host, not per port, so the browser's cookie goes to the new one too.
    app.stop().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let opts = AppOptions {
        sqlite_path: Some(db),
        ..AppOptions::default()
    };
    let settings = bridge_settings(port, &app.idp.issuer, app.dir.path(), &opts);
    let restarted = Application::build_with_listener(settings.compile().unwrap(), listener)
        .await
        .unwrap();
    let state = restarted.state().clone();
    let server = tokio::spawn(restarted.run_until_stopped());
    state.provider.wait_until_ready().await;

    let r = client
        .get(format!("http://localhost:{port}/auth/session"))
        .header(shared::session::CSRF_HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "session survived the restart");
    let after: shared::session::SessionInfo = r.json().await.unwrap();
    assert_eq!(after.user, before.user);
    assert_eq!(after.auth_token, before.auth_token);
    server.abort();
}

/// Tokens of the refresh tests live this long; the bridge refreshes in the second half.
pub(crate) const SHORT_TTL: u64 = 6;

/// Waits (for the clock, not for an event: token lifetimes are in whole seconds) until the
/// bridge considers a token expiring at `expires_at` due for refresh: 2 s before expiry, well
/// inside the last half of its life, with a fresh token's whole first half as slack.
pub(crate) async fn wait_until_refresh_is_due(expires_at: i64) {
    let due = (expires_at - 2 - now()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(due * 1000 + 200)).await;
}

#[tokio::test]
async fn concurrent_session_calls_near_expiry_refresh_exactly_once() {
    // Short-lived tokens; the bridge refreshes in the last half of their life.
    let app = spawn_app_with(AppOptions {
        access_token_ttl: SHORT_TTL,
        refresh_before_expiry_secs: 60,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let first = app.session_info(&client).await;
    assert_eq!(
        app.idp.stat("token_requests.refresh_token").await,
        0,
        "fresh token, no refresh"
    );
    wait_until_refresh_is_due(first.expires_at).await;

    let calls = (0..10).map(|_| app.session(&client));
    let answers = futures::future::join_all(calls).await;

    let mut tokens = Vec::new();
    for a in answers {
        assert_eq!(a.status(), StatusCode::OK);
        tokens.push(
            a.json::<shared::session::SessionInfo>()
                .await
                .unwrap()
                .auth_token,
        );
    }
    assert_eq!(
        app.idp.stat("token_requests.refresh_token").await,
        1,
        "one refresh for ten calls"
    );
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "all got the same refreshed token"
    );
    assert_ne!(tokens[0], first.auth_token);
    assert_eq!(
        app.api_get("/api/me", Some(&tokens[0])).await.status(),
        StatusCode::OK
    );
    // The refreshed session is saved: the next call uses the new token without refreshing.
    assert_eq!(app.session_info(&client).await.auth_token, tokens[0]);
    assert_eq!(app.idp.stat("token_requests.refresh_token").await, 1);
}

/// Ends the browser's session at the provider (its end-session page and confirmation): its
/// refresh tokens die with it, and the provider posts a logout token to the bridge unless the
/// test started it without back-channel logout.
pub(crate) async fn end_the_provider_session(app: &TestApp, client: &reqwest::Client) {
    let url = format!("{}/session/end?client_id={}", app.idp.issuer, CLIENT_ID);
    let page = client.get(&url).send().await.unwrap().text().await.unwrap();
    let xsrf_at = page.find("name=\"xsrf\" value=\"").unwrap() + "name=\"xsrf\" value=\"".len();
    let xsrf = &page[xsrf_at..xsrf_at + page[xsrf_at..].find('"').unwrap()];
    let r = client
        .post(format!("{}/session/end/confirm", app.idp.issuer))
        .form(&[("xsrf", xsrf), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection());
}

#[tokio::test]
async fn a_refused_refresh_ends_the_session_cleanly() {
    let app = spawn_app_with(AppOptions {
        // The provider ends its session without telling the bridge: the refresh finds out.
        provider_backchannel_logout: false,
        access_token_ttl: SHORT_TTL,
        refresh_before_expiry_secs: 60,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let info = app.session_info(&client).await;
    end_the_provider_session(&app, &client).await;
    wait_until_refresh_is_due(info.expires_at).await;

    let r = app.session(&client).await;

    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "refresh refused -> signed out"
    );
    assert_eq!(app.idp.stat("token_requests.refresh_token").await, 1);
    // Cleanly: the next call does not try again.
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.idp.stat("token_requests.refresh_token").await, 1);
}

#[tokio::test]
async fn readyz_reports_not_ready_until_discovery_succeeds_and_healthz_is_up() {
    // A provider address where nothing listens yet.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let idp_port = parked.local_addr().unwrap().port();
    drop(parked);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let settings = bridge_settings(
        port,
        &format!("http://127.0.0.1:{idp_port}"),
        dir.path(),
        &AppOptions::default(),
    );
    let app = Application::build_with_listener(settings.compile().unwrap(), listener)
        .await
        .unwrap();
    let server = tokio::spawn(app.run_until_stopped());

    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    let login = browser()
        .get(format!("http://127.0.0.1:{port}/auth/login"))
        .send()
        .await
        .unwrap();

    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("cannot reach the OIDC issuer"),
        "{body}"
    );
    assert_eq!(
        login.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a clear 503, not a 500"
    );
    server.abort();
}

#[tokio::test]
async fn a_navigation_without_a_session_starts_a_silent_login_and_login_required_lands_on_the_login_page_once()
 {
    let app = spawn_app().await;
    let client = browser();
    let navigate = |path: &str| {
        client
            .get(format!("{}{}", app.address, path))
            .header("sec-fetch-mode", "navigate")
            .header(header::ACCEPT, "text/html")
            .send()
    };

    // 1. Opening a deep link goes straight to the provider with prompt=none.
    let r = navigate("/api-demo?tab=2").await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let authorize = location(&r);
    assert!(authorize.starts_with(&app.idp.issuer), "{authorize}");
    assert_eq!(query_param(&authorize, "prompt").as_deref(), Some("none"));
    // 2. No provider session: login_required comes back to the UI's login page, deep link kept.
    let r = client.get(&authorize).send().await.unwrap();
    let callback = resolve(&authorize, &location(&r));
    assert_eq!(
        query_param(&callback, "error").as_deref(),
        Some("login_required")
    );
    let r = client.get(&callback).send().await.unwrap();
    let to = location(&r);
    assert!(to.starts_with("/login?error=login_required"), "{to}");
    assert!(to.contains("return_to=%2Fapi-demo%3Ftab%3D2"), "{to}");
    // 3. The next navigation serves the UI instead of trying again: no loop.
    let r = navigate("/api-demo?tab=2").await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.session(&client).await;
    let body: shared::error::ApiError = r.json().await.unwrap();
    assert_eq!(body.silent_sso_tried, Some(true));
    assert_eq!(app.idp.stat("authorization_requests").await, 1);
    assert_eq!(app.idp.stat("login_forms_shown").await, 0);
}

#[tokio::test]
async fn xhr_and_asset_requests_never_redirect_to_the_provider() {
    let app = spawn_app().await;
    let client = browser();
    let r = client
        .get(format!("{}/api-demo", app.address))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .get(format!("{}/missing.js", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = client
        .get(format!("{}/api/nope", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.idp.stat("authorization_requests").await, 0);
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    let r = reqwest::get(format!("{}/login", app.address))
        .await
        .unwrap();
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    // Anything but an HTML document (JSON here) gets the strict API policy.
    for path in ["/api/me", "/auth/session", "/healthz"] {
        let r = reqwest::get(format!("{}{path}", app.address))
            .await
            .unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            h["content-security-policy"], "default-src 'none'; frame-ancestors 'none'",
            "{path}"
        );
    }
}

#[tokio::test]
async fn oversized_headers_and_cookies_get_a_quick_4xx() {
    let app = spawn_app().await;
    let huge = "a".repeat(512 * 1024);
    let started = std::time::Instant::now();
    let header = reqwest::Client::new()
        .get(format!("{}/api/me", app.address))
        .header(header::AUTHORIZATION, format!("Bearer {huge}"))
        .send()
        .await;
    let cookie = reqwest::Client::new()
        .get(format!("{}/auth/session", app.address))
        .header(shared::session::CSRF_HEADER, "1")
        .header(header::COOKIE, format!("lb_session={}", &huge[..60 * 1024]))
        .send()
        .await
        .unwrap();

    // hyper refuses the half-megabyte header outright (431) or closes the connection.
    if let Ok(r) = header {
        assert!(r.status().is_client_error(), "{}", r.status());
    }
    assert_eq!(
        cookie.status(),
        StatusCode::UNAUTHORIZED,
        "a foreign cookie is no session"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The bridge is still fine afterwards.
    assert_eq!(
        app.api_get("/api/me", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// The bridge's own routes take at most 64 KiB of request body: a declared larger body is
/// refused before it is read, a streamed one (no length) once it passes the limit. Both
/// answers carry the security headers; a body within the limit gets through.
#[tokio::test]
async fn request_bodies_over_64_kib_are_refused_with_413() {
    let app = spawn_app().await;
    let url = format!("{}/auth/backchannel-logout", app.address);
    let form = |bytes: usize| format!("logout_token={}", "a".repeat(bytes));
    let post = |body: reqwest::Body| {
        reqwest::Client::new()
            .post(&url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };

    let declared = post(form(70 * 1024).into()).await.unwrap();
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = form(70 * 1024)
        .into_bytes()
        .chunks(8 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let streamed = post(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .await
        .unwrap();
    for (how, r) in [("declared", declared), ("streamed", streamed)] {
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE, "{how}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{how}");
        assert!(
            r.headers().contains_key(header::CONTENT_SECURITY_POLICY),
            "{how}"
        );
    }
    // Within the limit the route itself answers: not a logout token.
    let small = post(form(60 * 1024).into()).await.unwrap();
    assert_eq!(small.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_code_flow_checks_the_providers_access_token_through_the_trust_engine() {
    let app = spawn_app().await;
    let client = browser();
    assert_eq!(app.state.trust.cached_tokens(), 0);
    app.sign_in(&client, "alice", "wonderland").await;

    // The sign-in verified the access token on the same path as `/api` does: the engine
    // remembers it, so the SPA's first API call with it costs no second signature check.
    assert_eq!(app.state.trust.cached_tokens(), 1);
    let info = app.session_info(&client).await;
    let r = reqwest::Client::new()
        .get(format!("{}/api/me", app.address))
        .bearer_auth(&info.auth_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.state.trust.cached_tokens(), 1, "served from that entry");
}

#[tokio::test]
async fn a_sign_in_is_indexed_by_the_provider_subject_until_logout() {
    use login_bridge::session::index::IndexKey;
    let app = spawn_app().await;
    let client = browser();
    let r = client
        .get(format!("{}/auth/login", app.address))
        .send()
        .await
        .unwrap();
    let authorize = location(&r);
    let callback = app
        .authorize_at_idp(&client, &authorize, "alice", "wonderland")
        .await;
    let r = client.get(&callback).send().await.unwrap();
    let session_id = session_cookie(&r);

    let index = &app.state.sessions.0;
    let by_sub = index.sessions(&IndexKey::sub(ALICE_SUB)).await.unwrap();
    assert_eq!(
        by_sub,
        vec![session_id.clone()],
        "the new session id, indexed"
    );

    let r = client
        .post(format!("{}/auth/logout", app.address))
        .header(shared::session::CSRF_HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let by_sub = index.sessions(&IndexKey::sub(ALICE_SUB)).await.unwrap();
    assert!(
        by_sub.is_empty(),
        "logout removes the index entry: {by_sub:?}"
    );
}
