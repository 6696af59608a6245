//! OIDC Back-Channel Logout 1.0 at `POST /auth/backchannel-logout`: a logout token signed with
//! the provider's key ends the sessions of its `sub` (or `sid`); every malformed one is refused
//! with 400 and ends nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A valid logout token's claims for alice, from `app`'s provider, with a fresh `jti`.
pub(crate) fn logout_claims(app: &TestApp) -> Value {
    json!({
        "iss": app.idp.issuer,
        "aud": "login-bridge",
        "iat": now(),
        "exp": now() + 120,
        "jti": uuid_like(),
        "sub": ALICE_SUB,
        "events": { EVENT: {} },
    })
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("jti-{}-{}", now(), N.fetch_add(1, Ordering::Relaxed))
}

pub(crate) async fn post_logout(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/auth/backchannel-logout", app.address))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

async fn signed_in(app: &TestApp, user: &str, password: &str) -> reqwest::Client {
    let client = browser();
    app.sign_in(&client, user, password).await;
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);
    client
}

#[tokio::test]
async fn a_valid_logout_token_ends_every_session_of_its_subject_and_no_other() {
    let app = spawn_app().await;
    let alice_one = signed_in(&app, "alice", "wonderland").await;
    let alice_two = signed_in(&app, "alice", "wonderland").await;
    let bob = signed_in(&app, "bob", "builder").await;

    let r = post_logout(&app, &sign_as_idp(&logout_claims(&app))).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");

    for client in [&alice_one, &alice_two] {
        assert_eq!(app.session(client).await.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        app.session(&bob).await.status(),
        StatusCode::OK,
        "bob stays"
    );
}

#[tokio::test]
async fn malformed_or_replayed_logout_tokens_are_refused_and_end_nothing() {
    let app = spawn_app().await;
    let alice = signed_in(&app, "alice", "wonderland").await;
    let base = logout_claims(&app);
    let with = |f: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut c = base.as_object().unwrap().clone();
        c.insert("jti".into(), json!(uuid_like()));
        f(&mut c);
        sign_as_idp(&Value::Object(c))
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "a nonce",
            with(&|c| {
                c.insert("nonce".into(), json!("n-1"));
            }),
        ),
        (
            "another audience",
            with(&|c| {
                c.insert("aud".into(), json!("someone-else"));
            }),
        ),
        (
            "another issuer",
            with(&|c| {
                c.insert("iss".into(), json!("https://evil.example"));
            }),
        ),
        (
            "no events",
            with(&|c| {
                c.remove("events");
            }),
        ),
        (
            "events without the logout member",
            with(&|c| {
                c.insert("events".into(), json!({"http://example.org/other": {}}));
            }),
        ),
        (
            "neither sid nor sub",
            with(&|c| {
                c.remove("sub");
            }),
        ),
        (
            "no jti",
            with(&|c| {
                c.remove("jti");
            }),
        ),
        (
            "no iat",
            with(&|c| {
                c.remove("iat");
            }),
        ),
        (
            "expired",
            with(&|c| {
                c.insert("exp".into(), json!(now() - 3600));
            }),
        ),
        ("not signed by the provider", {
            let mut t = with(&|_| {});
            t.push_str("AA");
            t
        }),
        ("empty", String::new()),
    ];
    for (what, token) in cases {
        let r = post_logout(&app, &token).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{what}");
        assert_eq!(
            app.session(&alice).await.status(),
            StatusCode::OK,
            "{what} ended a session"
        );
    }

    // Replay: the first use ends alice's session; the same token again, after she signed in
    // anew, is refused and her new session stays.
    let token = sign_as_idp(&logout_claims(&app));
    assert_eq!(post_logout(&app, &token).await.status(), StatusCode::OK);
    assert_eq!(app.session(&alice).await.status(), StatusCode::UNAUTHORIZED);
    let again = signed_in(&app, "alice", "wonderland").await;
    assert_eq!(
        post_logout(&app, &token).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.session(&again).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn signing_out_at_the_provider_ends_the_bridge_session_through_the_back_channel() {
    let app = spawn_app().await;
    // The same jar signed in at the provider (its session cookie) and at the bridge.
    let alice = signed_in(&app, "alice", "wonderland").await;
    let bob = signed_in(&app, "bob", "builder").await;

    // Alice signs out at the provider itself (another app's logout, say): its end-session
    // page, then the confirmation it posts.
    crate::api_and_session::end_the_provider_session(&app, &alice).await;

    // The provider posts the logout token before it answers; allow it up to 5 s anyway.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while app.session(&alice).await.status() != StatusCode::UNAUTHORIZED {
        assert!(std::time::Instant::now() < deadline, "session still alive");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let stats = app.idp.stats().await;
    assert_eq!(stats["backchannel_logouts"]["sent"], 1, "{stats}");
    assert_eq!(stats["backchannel_logouts"]["failed"], 0, "{stats}");
    assert_eq!(
        app.session(&bob).await.status(),
        StatusCode::OK,
        "bob stays"
    );
}

/// A logout token is sent when the session ends: one issued longer ago than
/// `oidc.logout_token_max_age_secs` (300 s by default) plus the leeway (5 s here) is refused
/// like a stale ID token, and ends nothing; one just within the bound is accepted.
#[tokio::test]
async fn a_logout_token_issued_longer_ago_than_the_bound_is_refused_and_ends_nothing() {
    let app = spawn_app().await;
    assert_eq!(app.settings.oidc.logout_token_max_age_secs, 300);
    let alice = signed_in(&app, "alice", "wonderland").await;
    let issued = |ago: i64| {
        let mut c = logout_claims(&app);
        c["iat"] = json!(now() - ago);
        sign_as_idp(&c)
    };

    let r = post_logout(&app, &issued(300 + 5 + 10)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(
        body["error_description"].as_str().unwrap().contains("iat"),
        "{body}"
    );
    assert_eq!(app.session(&alice).await.status(), StatusCode::OK);

    let r = post_logout(&app, &issued(300 - 10)).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.session(&alice).await.status(), StatusCode::UNAUTHORIZED);
}
