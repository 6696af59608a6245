//! Reload without restart, in-process (issue 24, acceptance 3; the SIGHUP tests on the real
//! binary are in `backend/tests/reload.rs`): a session signed in at the real provider survives
//! a reload, an issuer whose JWKS URL did not change keeps its fetched keys, a new issuer and
//! `[cors]` apply at once, a setting the running server cannot change is reported and kept, and
//! a new token profile (with a key of a new algorithm) serves a new upstream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use jsonwebtoken::Algorithm;
use login_bridge::reload::ReloadOutcome;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": AUDIENCE, "sub": "svc-1", "preferred_username": "svc",
           "iat": now(), "exp": now() + 300})
}

const SPA_ORIGIN: &str = "https://spa.example";

/// The `Access-Control-Allow-Origin` of an API call from [`SPA_ORIGIN`].
async fn cors_origin(app: &TestApp, token: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .get(format!("{}/api/me", app.address))
        .header("origin", SPA_ORIGIN)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn a_reload_keeps_the_providers_session_and_the_fetched_keys_and_trusts_a_new_issuer() {
    let jwks = JwksServer::start(jwks_of(&["issuer-rsa-a"])).await;
    let app = spawn_app_with(AppOptions {
        issuers: vec![
            json!({"name": "rsa-url", "issuer": "https://rsa-url.example", "audiences": [AUDIENCE],
                   "algorithms": ["RS256"], "jwks_url": jwks.url}),
        ],
        ..AppOptions::default()
    })
    .await;
    jwks.wait_for_fetches(1).await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let before = app.session_info(&client).await;
    let remote = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        Some("rsa-a"),
        &claims("https://rsa-url.example"),
    );
    let added = sign_with(
        "issuer-ec",
        Algorithm::ES256,
        None,
        &claims("https://ec.example"),
    );
    assert_eq!(
        app.api_get("/api/me", Some(&added)).await.status(),
        StatusCode::UNAUTHORIZED
    );

    let mut settings = app.settings.clone();
    settings.issuers.push(
        serde_json::from_value(json!({"name": "ec", "issuer": "https://ec.example",
            "audiences": [AUDIENCE], "algorithms": ["ES256"],
            "public_key_file": fixture("issuer-ec.pub.pem")}))
        .unwrap(),
    );
    settings.oidc.client_id = "another-client".into();
    settings.cors.allowed_origins = vec![SPA_ORIGIN.into()];
    assert_eq!(cors_origin(&app, &remote).await, None);
    let outcome = app.reloader.apply(settings.compile()).await;

    let ReloadOutcome::Applied { kept } = outcome else {
        panic!("refused: {outcome:?}");
    };
    assert_eq!(kept, ["oidc"], "the provider's client is kept");
    for (token, what) in [
        (&added, "the new issuer's token"),
        (&remote, "the unchanged issuer's token"),
        (&before.auth_token, "the provider's token of the session"),
    ] {
        let r = app.api_get("/api/me", Some(token)).await;
        assert_eq!(r.status(), StatusCode::OK, "{what}");
    }
    assert_eq!(jwks.fetches(), 1, "the fetched keys were kept");
    assert_eq!(
        cors_origin(&app, &remote).await.as_deref(),
        Some(SPA_ORIGIN),
        "[cors] applies"
    );
    let after = app.session_info(&client).await;
    assert_eq!(after.user.id, before.user.id, "the same session");
}

/// The JSON of a JWT's header and payload (not verified).
fn parts(jwt: &str) -> (Value, Value) {
    let decode = |part: &str| -> Value {
        serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(part)
                .unwrap(),
        )
        .unwrap()
    };
    let mut it = jwt.split('.');
    (decode(it.next().unwrap()), decode(it.next().unwrap()))
}

/// A token profile with an algorithm the bridge has no key for yet, and an upstream whose
/// token is minted from it, both added by a reload: the key is made before the profile is used,
/// published, and the upstream gets its token at once.
#[tokio::test]
async fn a_reload_adds_a_token_profile_with_a_new_algorithm_and_an_upstream_minting_from_it() {
    // The API behind the bridge answers with the Authorization header it got.
    let echo = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, echo).await });
    let app = spawn_app_with(AppOptions {
        authority: Some(json!({})),
        issuers: vec![
            json!({"name": "pem-rs", "issuer": "https://pem-rs.example", "audiences": [AUDIENCE],
                   "algorithms": ["RS256"], "public_key_file": fixture("issuer-rsa-a.pub.pem")}),
        ],
        ..AppOptions::default()
    })
    .await;
    let caller = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        None,
        &claims("https://pem-rs.example"),
    );

    let mut settings = app.settings.clone();
    settings.token_profiles.push(
        serde_json::from_value(json!({"name": "echo", "algorithm": "EdDSA",
            "audience": ["echo-api"], "claims": {"preferred_username": "{username}"}}))
        .unwrap(),
    );
    settings.upstreams.push(
        serde_json::from_value(json!({"prefix": "/echo/", "url": echo_url,
            "token": "profile:echo"}))
        .unwrap(),
    );
    let outcome = app.reloader.apply(settings.compile()).await;
    assert!(outcome.applied(), "{outcome:?}");

    let r = app.api_get("/echo/anything", Some(&caller)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let sent = r.text().await.unwrap();
    let minted = sent
        .strip_prefix("Bearer ")
        .expect("a bearer token upstream");
    let (header, payload) = parts(minted);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(payload["aud"], json!("echo-api"));
    assert_eq!(payload["preferred_username"], "svc");
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", app.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == header["kid"]),
        "the new key is published: {jwks}"
    );
}
