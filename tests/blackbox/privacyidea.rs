//! The privacyIDEA harness against the real server: tokens signed here with the fixture keys are
//! judged by privacyIDEA 3.14 exactly as a JWT the bridge mints will be, so these tests pin down
//! the behaviour the bridge's privacyIDEA profile must produce (raw token in `PI-Authorization`,
//! no `aud`, `role`/`realm`/`resolver` equal to the trusted entry's).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{
    fixture, now,
    privacyidea::{PrivacyIdea, REALM, RESOLVER, TrustedJwt},
    sign_with,
};

fn public_key(name: &str) -> String {
    std::fs::read_to_string(fixture(&format!("{name}.pub.pem"))).unwrap()
}

fn user_claims(username: &str) -> Value {
    json!({
        "username": username, "role": "user", "realm": REALM, "resolver": RESOLVER,
        "iat": now(), "exp": now() + 300,
    })
}

fn admin_claims(username: &str) -> Value {
    json!({
        "username": username, "role": "admin", "realm": "", "resolver": "",
        "iat": now(), "exp": now() + 300,
    })
}

/// privacyIDEA's answer: its HTTP status and its JSON body (`result.status`, `result.value`...).
async fn judged(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body)
}

#[tokio::test]
async fn privacyidea_accepts_a_trusted_user_jwt_only_verbatim_and_without_aud() {
    // Arrange
    let pi = PrivacyIdea::start(&[TrustedJwt::users(&public_key("issuer-ec"), "ES256")]).await;
    let token = sign_with("issuer-ec", Algorithm::ES256, None, &user_claims("alice"));

    // Act + Assert: raw in PI-Authorization, the user lists (and may enroll) its own tokens.
    let (status, body) = judged(pi.get("token/", &token).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["status"], true, "{body}");
    assert_eq!(body["result"]["value"]["count"], 0, "{body}");

    let (status, body) = judged(
        pi.post_form("token/init", &token, &[("type", "hotp"), ("genkey", "1")])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial = body["detail"]["serial"].as_str().unwrap().to_owned();
    let (_, body) = judged(pi.get("token/", &token).await).await;
    assert_eq!(body["result"]["value"]["tokens"][0]["serial"], serial);
    assert_eq!(body["result"]["value"]["tokens"][0]["username"], "alice");

    // The plain Authorization header is read too, but verbatim: a scheme makes it no JWT.
    let raw = pi
        .request(Method::GET, "token/")
        .header(header::AUTHORIZATION, &token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::OK);
    let (status, body) = judged(
        pi.request(Method::GET, "token/")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["result"]["status"], false, "{body}");

    // Any audience makes PyJWT refuse the token (privacyIDEA names none to expect).
    let mut with_aud = user_claims("alice");
    with_aud["aud"] = json!("privacyidea");
    let token_with_aud = sign_with("issuer-ec", Algorithm::ES256, None, &with_aud);
    let (status, body) = judged(pi.get("token/", &token_with_aud).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["result"]["status"], false, "{body}");

    // A key privacyIDEA does not trust, and an expired token, are refused as well.
    let untrusted = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        None,
        &user_claims("alice"),
    );
    assert_eq!(
        pi.get("token/", &untrusted).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut expired = user_claims("alice");
    expired["exp"] = json!(now() - 60);
    let expired = sign_with("issuer-ec", Algorithm::ES256, None, &expired);
    assert_eq!(
        pi.get("token/", &expired).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_admin_jwt_reaches_admin_endpoints_and_a_user_jwt_does_not() {
    // Arrange: admins sign with RS256, users with ES256.
    let pi = PrivacyIdea::start(&[
        TrustedJwt::admins(&public_key("issuer-rsa-a"), "RS256"),
        TrustedJwt::users(&public_key("issuer-ec"), "ES256"),
    ])
    .await;
    // The admin need not exist in privacyIDEA.
    let admin = sign_with("issuer-rsa-a", Algorithm::RS256, None, &admin_claims("ops"));
    let user = sign_with("issuer-ec", Algorithm::ES256, None, &user_claims("bob"));

    // Act
    let (admin_status, admin_body) = judged(pi.get("realm/", &admin).await).await;
    let (user_status, user_body) = judged(pi.get("realm/", &user).await).await;

    // Assert
    assert_eq!(admin_status, StatusCode::OK, "{admin_body}");
    assert_eq!(admin_body["result"]["status"], true, "{admin_body}");
    assert_eq!(
        admin_body["result"]["value"][REALM]["default"], true,
        "{admin_body}"
    );
    assert_eq!(user_status, StatusCode::UNAUTHORIZED, "{user_body}");
    assert_eq!(user_body["result"]["status"], false, "{user_body}");

    // The user token is fine where users belong.
    assert_eq!(pi.get("token/", &user).await.status(), StatusCode::OK);
}

/// The documented `privacyidea` profile (`config/privacyidea.toml`), as the tests' options.
pub(crate) fn documented_profile() -> (Vec<Value>, Option<String>) {
    let text = std::fs::read_to_string(crate::support::repo_root().join("config/privacyidea.toml"))
        .unwrap();
    let doc: Value = serde_json::to_value(toml::from_str::<toml::Value>(&text).unwrap()).unwrap();
    let profiles = doc["token_profiles"].as_array().unwrap().clone();
    let chosen = doc["session"]["token_profile"].as_str().map(str::to_owned);
    (profiles, chosen)
}

/// Acceptance: the real privacyIDEA is the judge of the bridge's `privacyidea` profile. The
/// token the SPA gets from `/auth/session` works there (an admin-group member reaches an admin
/// endpoint, a plain user does not), and the provider's raw access token is refused.
#[tokio::test]
async fn privacyidea_accepts_the_token_the_spa_gets_and_refuses_the_providers() {
    use crate::support::{AppOptions, browser, spawn_app_with};
    let (token_profiles, token_profile) = documented_profile();
    let app = spawn_app_with(AppOptions {
        authority: Some(json!({})),
        token_profiles,
        token_profile,
        ..AppOptions::default()
    })
    .await;
    // PI_TRUSTED_JWT from `login-bridge keys export --pem`, as docs/privacyidea.md tells operators.
    let pem = app.admin(&["keys", "export", "--pem"]).await.unwrap();
    let pi = PrivacyIdea::start(&[
        TrustedJwt::users(&pem, "ES256"),
        TrustedJwt::admins(&pem, "ES256"),
    ])
    .await;
    let token_of = |user: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let client = browser();
            app.sign_in(&client, user, password).await;
            app.session_info(&client).await.auth_token
        }
    };
    let bob = token_of("bob", "builder").await;
    let alice = token_of("alice", "wonderland").await;

    // bob, a plain user: his own tokens, yes; the realm list (admin only), no.
    let (status, body) = judged(pi.get("/token/", &bob).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["status"], true);
    // privacyIDEA's own refusal (not any non-200, which a 500 would be too).
    let (status, body) = judged(pi.get("/realm/", &bob).await).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a plain user's token must not reach /realm/: {body}"
    );
    assert_eq!(body["result"]["status"], false, "{body}");
    // 4306: the token is accepted as bob's, but bob lacks the admin role.
    assert_eq!(body["result"]["error"]["code"], 4306, "{body}");
    assert!(
        body["result"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("necessary role"),
        "{body}"
    );

    // alice is in pi-admins: an admin token, which reaches /realm/.
    let (status, body) = judged(pi.get("/realm/", &alice).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["result"]["value"].get(REALM).is_some(), "{body}");

    // The provider's own access token (what the SPA got before the profile) is refused.
    let plain = spawn_app_with(AppOptions::default()).await;
    let client = browser();
    plain.sign_in(&client, "alice", "wonderland").await;
    let provider_token = plain.session_info(&client).await.auth_token;
    assert_eq!(
        jsonwebtoken::decode_header(&provider_token).unwrap().alg,
        Algorithm::RS256
    );
    let (status, _) = judged(pi.get("/token/", &provider_token).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// privacyIDEA behind the bridge: the SPA's own token (the provider's access token) goes to
/// `/pi/…`, and privacyIDEA gets a `privacyidea` profile token minted for it, bare in
/// `Authorization`. Real reads and writes, checked at privacyIDEA directly.
#[tokio::test]
async fn privacyidea_behind_the_bridge_answers_the_spa_s_calls_with_a_minted_token() {
    use crate::support::{AppOptions, browser, spawn_app_with};
    let (token_profiles, _) = documented_profile();
    let pi_placeholder = format!("http://127.0.0.1:{}", crate::support::free_port());
    // The bridge's key must be in PI_TRUSTED_JWT before privacyIDEA starts, and the upstream
    // URL is only known after: start the bridge on a key-encryption key and store that stay,
    // read its key, start privacyIDEA, then start the bridge that proxies to it.
    let first = spawn_app_with(AppOptions {
        authority: Some(json!({})),
        token_profiles: token_profiles.clone(),
        upstreams: vec![
            json!({"name": "privacyidea", "prefix": "/pi/", "url": pi_placeholder,
                               "token": "profile:privacyidea", "ui": "privacyidea"}),
        ],
        ..AppOptions::default()
    })
    .await;
    let pem = first.admin(&["keys", "export", "--pem"]).await.unwrap();
    let pi = PrivacyIdea::start(&[
        TrustedJwt::users(&pem, "ES256"),
        TrustedJwt::admins(&pem, "ES256"),
        TrustedJwt::users(&public_key("issuer-ec"), "ES256"),
    ])
    .await;
    let kek = first.dir.path().join("kek");
    // One SQLite file serves one bridge: the first lets go of it.
    first.stop().await;
    let app = spawn_app_with(AppOptions {
        authority: Some(json!({"key_encryption_key_file": kek})),
        sqlite_path: Some(first.settings.session.sqlite_path.clone()),
        token_profiles,
        upstreams: vec![
            json!({"name": "privacyidea", "prefix": "/pi/", "url": pi.url.as_str(),
                               "token": "profile:privacyidea", "ui": "privacyidea"}),
        ],
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "bob", "builder").await;
    let spa_token = app.session_info(&client).await.auth_token;
    assert_eq!(
        jsonwebtoken::decode_header(&spa_token).unwrap().alg,
        Algorithm::RS256,
        "the SPA holds the provider's token"
    );
    let call = |method: Method, path: &str| {
        client
            .request(method, format!("{}/pi{path}", app.address))
            .bearer_auth(&spa_token)
    };
    let (status, body) = judged(call(Method::GET, "/token/").send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["value"]["count"], 0);
    let (status, body) = judged(
        call(Method::POST, "/token/init")
            .form(&[("type", "hotp"), ("genkey", "1")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serial = body["detail"]["serial"].as_str().unwrap().to_string();
    // Checked at privacyIDEA itself, with a token of the test's own for bob.
    let own = sign_with(
        "issuer-ec",
        Algorithm::ES256,
        None,
        &json!({"username": "bob", "role": "user", "realm": REALM, "resolver": RESOLVER,
                "iat": now(), "exp": now() + 300}),
    );
    let (status, body) = judged(pi.get("/token/", &own).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let serials: Vec<&str> = body["result"]["value"]["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["serial"].as_str().unwrap())
        .collect();
    assert_eq!(serials, vec![serial.as_str()]);
    // The caller's own header never reaches privacyIDEA as such: a Bearer header would be
    // refused there (401), and a bad token never leaves the bridge. privacyIDEA's log of the
    // requests it answered shows it: a good call through the bridge is in it (the control),
    // the bad one is not, and its 401 is the bridge's own.
    let seen = pi.requests_answered().len();
    assert_eq!(
        call(Method::GET, "/token/").send().await.unwrap().status(),
        StatusCode::OK
    );
    let seen_after_good = pi.requests_answered();
    assert_eq!(seen_after_good.len(), seen + 1, "{seen_after_good:?}");
    let r = client
        .get(format!("{}/pi/token/", app.address))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with(r#"Bearer realm="login-bridge", error="invalid_token""#),
        "{challenge}"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{body}");
    assert!(
        body.get("result").is_none(),
        "not privacyIDEA's answer: {body}"
    );
    assert_eq!(
        pi.requests_answered(),
        seen_after_good,
        "privacyIDEA saw no request"
    );
}
