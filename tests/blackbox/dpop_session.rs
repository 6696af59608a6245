//! DPoP at `GET /auth/session` (issue 23, acceptance 4, and the binding): `session.dpop = "off"`
//! keeps Bearer tokens; a proof binds the session to its key (trust on first use) and the SPA's
//! token names the key's thumbprint (`cnf.jkt`); afterwards another key's proof, no proof, or a
//! replayed proof is refused with the DPoP challenge and changes nothing, in `optional` mode too;
//! a refresh keeps the binding; DPoP without a token the bridge mints is a configuration error;
//! and the demo's configuration uses all of it. Signed in through the real demo provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use login_bridge::settings::{DpopMode, Settings, SettingsError};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use shared::session::SessionInfo;

use crate::support::{dpop::DpopKey, *};

/// The profile the SPA's token is minted from (`session.token_profile`).
fn spa_profile() -> Value {
    json!({"name": "spa", "lifetime_secs": 300,
           "claims": {"preferred_username": "{username}", "roles": "{roles}", "groups": "{groups}"}})
}

/// A bridge that mints the SPA's token, with `session.dpop = mode`.
fn options(mode: DpopMode) -> AppOptions {
    AppOptions {
        authority: Some(json!({})),
        token_profiles: vec![spa_profile()],
        token_profile: Some("spa".into()),
        dpop: mode,
        ..AppOptions::default()
    }
}

/// A bridge in `mode` and a browser signed in there as alice.
async fn signed_in(mode: DpopMode) -> (TestApp, reqwest::Client) {
    let app = spawn_app_with(options(mode)).await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    (app, client)
}

/// The URL a proof for the session endpoint names (`htu`).
fn session_url(app: &TestApp) -> String {
    format!("{}/auth/session", app.address)
}

/// `GET /auth/session` as the SPA sends it, with `proof` in the `DPoP` header if given.
async fn session_with(
    app: &TestApp,
    client: &reqwest::Client,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut request = client.get(session_url(app)).header(
        shared::session::CSRF_HEADER,
        shared::session::CSRF_HEADER_VALUE,
    );
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    request.send().await.unwrap()
}

/// A session call with a fresh proof of `key`; it must succeed.
async fn session_info_with(app: &TestApp, client: &reqwest::Client, key: &DpopKey) -> SessionInfo {
    let proof = key.proof("GET", &session_url(app), None);
    let r = session_with(app, client, Some(&proof)).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    r.json().await.unwrap()
}

/// The payload of a JWT (the bridge's own token; its signature is the API's business).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// The answer is RFC 9449's refusal: 401, `WWW-Authenticate: DPoP error="invalid_dpop_proof"`
/// with the accepted algorithms, no token, not cached. Returns its body.
async fn assert_refused_with_dpop_challenge(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("a challenge")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains(r#"error="invalid_dpop_proof""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"algs="ES256"#), "{challenge}");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    assert!(body.get("auth_token").is_none(), "{body}");
    body
}

/// The token is bound to `key`: the answer says DPoP and the token's `cnf.jkt` is its
/// thumbprint.
fn assert_bound_to(info: &SessionInfo, key: &DpopKey) {
    assert_eq!(info.token_type, "DPoP");
    assert_eq!(claims(&info.auth_token)["cnf"], json!({"jkt": key.jkt()}));
}

#[tokio::test]
async fn with_dpop_off_the_session_hands_out_bearer_tokens_and_ignores_proofs() {
    let (app, client) = signed_in(DpopMode::Off).await;
    let key = DpopKey::generate();

    let plain = app.session_info(&client).await;
    let with_proof = session_info_with(&app, &client, &key).await;
    // Not even a proof that could never be valid is looked at.
    let garbage = session_with(&app, &client, Some("not-a-proof")).await;

    assert_eq!(garbage.status(), StatusCode::OK);
    for info in [&plain, &with_proof] {
        assert_eq!(info.token_type, "Bearer");
        assert!(claims(&info.auth_token).get("cnf").is_none());
    }
    assert_eq!(with_proof.auth_token, plain.auth_token, "nothing was bound");
    assert_eq!(
        app.api_get("/api/me", Some(&plain.auth_token))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn with_dpop_required_a_session_call_without_a_proof_is_refused_with_the_dpop_challenge() {
    let (app, client) = signed_in(DpopMode::Required).await;

    assert_refused_with_dpop_challenge(session_with(&app, &client, None).await).await;
    // A proof that does not verify is no better than none.
    assert_refused_with_dpop_challenge(session_with(&app, &client, Some("not-a-proof")).await)
        .await;

    // The session itself is fine: with a proof, the call succeeds.
    let key = DpopKey::generate();
    assert_bound_to(&session_info_with(&app, &client, &key).await, &key);
}

#[tokio::test]
async fn a_proof_binds_the_session_and_every_later_token_names_the_keys_thumbprint() {
    let (app, client) = signed_in(DpopMode::Required).await;
    let key = DpopKey::generate();

    let first = session_info_with(&app, &client, &key).await;
    let second = session_info_with(&app, &client, &key).await;

    assert_bound_to(&first, &key);
    assert_bound_to(&second, &key);
    // The same bound token for every tab and reload, as with Bearer tokens.
    assert_eq!(second.auth_token, first.auth_token);
    assert_eq!(second.user.id, ALICE_SUB);
}

/// After a binding to one key, another key's proof (a script in the page with a key of its own)
/// and a call without a proof are refused and change nothing; the first key still works.
async fn a_bound_session_refuses_other_keys_and_missing_proofs(mode: DpopMode) {
    let (app, client) = signed_in(mode).await;
    let browser_key = DpopKey::generate();
    let bound = session_info_with(&app, &client, &browser_key).await;
    assert_bound_to(&bound, &browser_key);

    let other_key = DpopKey::generate();
    let other = other_key.proof("GET", &session_url(&app), None);
    let with_other = session_with(&app, &client, Some(&other)).await;
    let without = session_with(&app, &client, None).await;

    let with_other = assert_refused_with_dpop_challenge(with_other).await;
    let without = assert_refused_with_dpop_challenge(without).await;
    // Another key is what a browser that lost its key has: a silent sign-in (a new session)
    // mends that. A new session would not help a browser that sends no proof.
    assert_eq!(with_other["silent_sso_tried"], json!(false), "{with_other}");
    assert_eq!(without["silent_sso_tried"], json!(true), "{without}");

    // Nothing changed: the same key gets the same token, still bound to it.
    let after = session_info_with(&app, &client, &browser_key).await;
    assert_eq!(after.auth_token, bound.auth_token);
    assert_bound_to(&after, &browser_key);
}

#[tokio::test]
async fn after_binding_another_keys_proof_and_no_proof_are_refused_with_dpop_required() {
    a_bound_session_refuses_other_keys_and_missing_proofs(DpopMode::Required).await;
}

#[tokio::test]
async fn after_binding_another_keys_proof_and_no_proof_are_refused_with_dpop_optional_too() {
    a_bound_session_refuses_other_keys_and_missing_proofs(DpopMode::Optional).await;
}

#[tokio::test]
async fn a_browser_that_lost_its_key_signs_in_again_and_its_new_key_binds_the_new_session() {
    let (app, client) = signed_in(DpopMode::Required).await;
    let lost = DpopKey::generate();
    let old = session_info_with(&app, &client, &lost).await;
    let new_key = DpopKey::generate();
    let proof = new_key.proof("GET", &session_url(&app), None);
    assert_refused_with_dpop_challenge(session_with(&app, &client, Some(&proof)).await).await;

    // What the SPA does on `silent_sso_tried: false`: sign in again (the provider's session
    // answers without a form).
    app.sign_in(&client, "alice", "wonderland").await;
    let new = session_info_with(&app, &client, &new_key).await;

    assert_bound_to(&new, &new_key);
    assert_ne!(new.auth_token, old.auth_token);
    let old_proof = lost.proof("GET", &session_url(&app), None);
    assert_refused_with_dpop_challenge(session_with(&app, &client, Some(&old_proof)).await).await;
}

#[tokio::test]
async fn with_dpop_optional_an_unbound_session_gets_bearer_until_its_first_proof() {
    let (app, client) = signed_in(DpopMode::Optional).await;
    let key = DpopKey::generate();

    let unbound = app.session_info(&client).await;
    assert_eq!(unbound.token_type, "Bearer");
    assert!(claims(&unbound.auth_token).get("cnf").is_none());

    // The first proof binds: a new token, bound, never the unbound one again.
    let bound = session_info_with(&app, &client, &key).await;
    assert_bound_to(&bound, &key);
    assert_ne!(bound.auth_token, unbound.auth_token);
    assert_refused_with_dpop_challenge(session_with(&app, &client, None).await).await;
}

#[tokio::test]
async fn a_replayed_proof_on_the_session_endpoint_is_refused() {
    let (app, client) = signed_in(DpopMode::Required).await;
    let key = DpopKey::generate();
    let proof = key.proof("GET", &session_url(&app), None);

    let first = session_with(&app, &client, Some(&proof)).await;
    assert_eq!(first.status(), StatusCode::OK);
    let replayed = session_with(&app, &client, Some(&proof)).await;

    assert_refused_with_dpop_challenge(replayed).await;
}

#[tokio::test]
async fn a_proof_for_another_url_or_method_is_refused_and_binds_nothing() {
    let (app, client) = signed_in(DpopMode::Optional).await;
    let key = DpopKey::generate();

    let other_url = key.proof("GET", &format!("{}/api/me", app.address), None);
    let other_method = key.proof("POST", &session_url(&app), None);
    assert_refused_with_dpop_challenge(session_with(&app, &client, Some(&other_url)).await).await;
    assert_refused_with_dpop_challenge(session_with(&app, &client, Some(&other_method)).await)
        .await;

    // The session is still unbound: a call without a proof gets a Bearer token, and any key
    // (here another one) may still bind it.
    assert_eq!(app.session_info(&client).await.token_type, "Bearer");
    let later = DpopKey::generate();
    assert_bound_to(&session_info_with(&app, &client, &later).await, &later);
}

#[tokio::test]
async fn a_refresh_of_the_providers_tokens_keeps_the_sessions_key() {
    let app = spawn_app_with(AppOptions {
        access_token_ttl: crate::api_and_session::SHORT_TTL,
        refresh_before_expiry_secs: 60,
        ..options(DpopMode::Required)
    })
    .await;
    let client = browser();
    let signed_in_at = now();
    app.sign_in(&client, "alice", "wonderland").await;
    let key = DpopKey::generate();
    assert_bound_to(&session_info_with(&app, &client, &key).await, &key);

    crate::api_and_session::wait_until_refresh_is_due(
        signed_in_at + crate::api_and_session::SHORT_TTL as i64,
    )
    .await;
    let refreshed = session_info_with(&app, &client, &key).await;
    assert_eq!(app.idp.stat("token_requests.refresh_token").await, 1);

    assert_bound_to(&refreshed, &key);
    let other = DpopKey::generate();
    let proof = other.proof("GET", &session_url(&app), None);
    assert_refused_with_dpop_challenge(session_with(&app, &client, Some(&proof)).await).await;
}

#[tokio::test]
async fn a_gateway_renewing_the_session_keeps_the_sessions_key() {
    // A gateway in front signs users in with a JWT on page requests (from 127.0.0.2 only),
    // and a fresh JWT on a later page request renews the session.
    let gateway_peer = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
    let app = spawn_app_with(AppOptions {
        silent_sso: false,
        issuers: vec![json!({"name": "gateway", "issuer": "https://gateway.test",
            "audiences": [AUDIENCE], "algorithms": ["RS256"],
            "jwks_file": fixture("issuer-rsa-a.jwks.json")})],
        gateway: Some(json!({"issuers": ["gateway"], "header": "x-gateway-jwt",
                             "trusted_proxies": ["127.0.0.2/32"]})),
        ..options(DpopMode::Required)
    })
    .await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(gateway_peer)
        .build()
        .unwrap();
    let page_with = |exp: i64| {
        let jwt = sign_with(
            "issuer-rsa-a",
            jsonwebtoken::Algorithm::RS256,
            None,
            &json!({"iss": "https://gateway.test", "sub": "sub-carol", "aud": AUDIENCE,
                    "iat": now(), "exp": exp, "preferred_username": "carol"}),
        );
        client
            .get(format!("{}/", app.address))
            .header("sec-fetch-mode", "navigate")
            .header("x-gateway-jwt", jwt)
            .send()
    };
    assert_eq!(
        page_with(now() + 300).await.unwrap().status(),
        StatusCode::OK
    );
    let key = DpopKey::generate();
    let bound = session_info_with(&app, &client, &key).await;
    assert_bound_to(&bound, &key);

    // A renewal (a fresh JWT for the same user) is no new sign-in: the binding stays.
    assert_eq!(
        page_with(now() + 600).await.unwrap().status(),
        StatusCode::OK
    );
    let other = DpopKey::generate();
    let proof = other.proof("GET", &session_url(&app), None);

    assert_refused_with_dpop_challenge(session_with(&app, &client, Some(&proof)).await).await;
    assert_bound_to(&session_info_with(&app, &client, &key).await, &key);
}

#[tokio::test]
async fn a_local_account_sign_in_gets_a_token_bound_to_the_proofs_key() {
    let mut options = options(DpopMode::Required);
    options.local_accounts = Some(json!({"token_profile": "spa"}));
    let app = spawn_app_with(options).await;
    let password = crate::local_accounts::PASSWORD;
    app.admin_with_password(&["user", "add", "Alice.Local"], password)
        .await
        .unwrap();
    let client = browser();
    let r = client
        .post(format!("{}/auth/local/login", app.address))
        .header(header::ORIGIN, &app.address)
        .header("sec-fetch-site", "same-origin")
        .form(&[
            ("username", "alice.local"),
            ("password", password),
            ("return_to", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());

    assert_refused_with_dpop_challenge(session_with(&app, &client, None).await).await;
    let key = DpopKey::generate();
    let info = session_info_with(&app, &client, &key).await;

    assert_bound_to(&info, &key);
    assert_eq!(info.user.username.as_deref(), Some("alice.local"));
}

/// `login-bridge check-config` loads the file as the server does (`Settings::load`).
fn check_config(toml: &str) -> Result<(), SettingsError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, toml).unwrap();
    Settings::load(Some(&path)).map(drop)
}

#[tokio::test]
async fn with_dpop_on_and_no_token_profile_check_config_fails_naming_session_token_profile() {
    let base = r#"
public_url = "https://app.example.org"
[oidc]
issuer = "https://idp.example.org/realms/r"
client_id = "ui"
client_secret = "s3cret"
api_audience = "my-api"
[authority]
key_encryption_key_file = "kek"
[[token_profiles]]
name = "spa"
"#;

    let without = check_config(&format!("{base}[session]\ndpop = \"required\"\n"));
    let with = check_config(&format!(
        "{base}[session]\ndpop = \"required\"\ntoken_profile = \"spa\"\n"
    ));

    let Err(SettingsError::Invalid(problems)) = without else {
        panic!("dpop without a token the bridge mints must not load: {without:?}");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("session.dpop")
            && problems[0].contains("Set session.token_profile to a [[token_profiles]] entry"),
        "{problems:?}"
    );
    assert!(with.is_ok(), "{with:?}");
}

#[tokio::test]
async fn the_demo_requires_dpop_and_binds_the_spas_token_to_the_browsers_key() {
    // The demo's own file, as `scripts/demo.sh` runs it; only where the provider, the store and
    // the keys live differ here.
    let demo = Settings::load(Some(&repo_root().join("config/demo.toml")))
        .unwrap()
        .settings;
    assert_eq!(demo.session.dpop, DpopMode::Required);
    let app = spawn_app_with(AppOptions {
        authority: Some(json!({})),
        token_profiles: demo
            .token_profiles
            .iter()
            .map(|p| serde_json::to_value(p).unwrap())
            .collect(),
        token_profile: demo.session.token_profile.clone(),
        local_accounts: demo
            .local_accounts
            .as_ref()
            .map(|l| serde_json::to_value(l).unwrap()),
        dpop: demo.session.dpop,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;

    assert_refused_with_dpop_challenge(session_with(&app, &client, None).await).await;
    let key = DpopKey::generate();
    assert_bound_to(&session_info_with(&app, &client, &key).await, &key);
}

#[tokio::test]
async fn with_server_nonces_a_session_call_without_one_is_told_to_use_the_nonce_it_is_given() {
    let app = spawn_app_with(AppOptions {
        dpop_nonce: true,
        ..options(DpopMode::Required)
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let key = DpopKey::generate();

    let first = session_with(
        &app,
        &client,
        Some(&key.proof("GET", &session_url(&app), None)),
    )
    .await;

    assert_eq!(first.status(), StatusCode::UNAUTHORIZED);
    let challenge = first.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_string();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"], "use_dpop_nonce", "{body}");
    // The same key, with the nonce it was handed: bound.
    let mut claims = key.claims("GET", &session_url(&app), None);
    claims["nonce"] = Value::String(nonce);
    let again = session_with(&app, &client, Some(&key.sign(key.header(), claims))).await;
    assert_eq!(
        again.status(),
        StatusCode::OK,
        "{}",
        again.text().await.unwrap()
    );
    let info: SessionInfo = again.json().await.unwrap();
    assert_bound_to(&info, &key);
}
