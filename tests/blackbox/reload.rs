//! Reload without restart, in-process (issue 24, acceptance 3; the SIGHUP tests on the real
//! binary are in `backend/tests/reload.rs`): a session signed in at the real provider survives
//! a reload, an issuer whose JWKS URL did not change keeps its fetched keys, a new issuer is
//! trusted at once, and a setting the running server cannot change is reported and kept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jsonwebtoken::Algorithm;
use login_bridge::reload::ReloadOutcome;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": AUDIENCE, "sub": "svc-1", "preferred_username": "svc",
           "iat": now(), "exp": now() + 300})
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
    let after = app.session_info(&client).await;
    assert_eq!(after.user.id, before.user.id, "the same session");
}
