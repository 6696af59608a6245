//! The authorization-code flow against the real provider: PKCE, state, nonce, code replay,
//! open redirects, provider errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test]
async fn the_login_redirect_carries_pkce_s256_state_and_nonce() {
    let app = spawn_app().await;
    let client = browser();

    let authorize = app.start_login(&client, "/api-demo").await;

    assert!(
        authorize.starts_with(&format!("{}/auth?", app.idp.issuer)),
        "{authorize}"
    );
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    let challenge = query_param(&authorize, "code_challenge").unwrap();
    assert_eq!(challenge.len(), 43, "base64url SHA-256");
    assert!(query_param(&authorize, "state").unwrap().len() >= 43);
    assert!(query_param(&authorize, "nonce").unwrap().len() >= 43);
    assert_eq!(
        query_param(&authorize, "response_type").as_deref(),
        Some("code")
    );
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(format!("{}/auth/callback", app.address))
    );
    assert_eq!(query_param(&authorize, "prompt"), None);
}

#[tokio::test]
async fn a_full_code_flow_signs_in_and_hands_out_a_validated_access_token() {
    let app = spawn_app().await;
    let client = browser();

    let authorize = app.start_login(&client, "/api-demo?x=1").await;
    let callback = app
        .authorize_at_idp(&client, &authorize, "alice", "wonderland")
        .await;
    assert_eq!(
        query_param(&callback, "iss"),
        Some(app.idp.issuer.clone()),
        "RFC 9207 iss"
    );
    let r = client.get(&callback).send().await.unwrap();

    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/api-demo?x=1", "return_to kept");
    let info = app.session_info(&client).await;
    assert_eq!(info.user.id, ALICE_SUB);
    assert_eq!(info.user.username.as_deref(), Some("alice"));
    assert_eq!(info.user.roles, vec!["admin", "user"]);
    assert!(info.expires_at > now());
    // The handed-out token is what the API accepts.
    let me = app.api_get("/api/me", Some(&info.auth_token)).await;
    assert_eq!(me.status(), StatusCode::OK);
    let me: shared::api::Me = me.json().await.unwrap();
    assert_eq!(me.user.email.as_deref(), Some("alice@example.org"));
    assert_eq!(me.issuer, app.idp.issuer);
}

#[tokio::test]
async fn a_wrong_state_is_rejected_with_400_and_no_session() {
    let app = spawn_app().await;
    let client = browser();
    let callback = app.callback_for(&client, "alice", "wonderland").await;
    let tampered = with_param(&callback, "state", "forged-state");

    let r = client.get(&tampered).send().await.unwrap();

    app.assert_refused_without_session(&client, r).await;
}

#[tokio::test]
async fn a_reused_state_is_rejected_with_400() {
    let app = spawn_app().await;
    let client = browser();
    let callback = app.callback_for(&client, "alice", "wonderland").await;
    assert!(
        client
            .get(&callback)
            .send()
            .await
            .unwrap()
            .status()
            .is_redirection()
    );

    let again = client.get(&callback).send().await.unwrap();

    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    // The bridge refused it itself, its `state` being spent: the provider was asked to exchange
    // the code once, not a second time (which it would refuse, and the answer be the same 400).
    assert_eq!(code_exchanges(&app).await, 1);
}

/// How many authorization codes the provider was asked to exchange (its own count).
async fn code_exchanges(app: &TestApp) -> u64 {
    app.idp.stat("token_requests.authorization_code").await
}

#[tokio::test]
async fn a_missing_or_duplicated_state_is_rejected_with_400() {
    let app = spawn_app().await;
    let client = browser();
    // The provider's real answer to a pending login: a valid `state` and a valid code, so only
    // the missing or repeated `state` can be what is refused.
    let callback = app.callback_for(&client, "alice", "wonderland").await;
    let state = query_param(&callback, "state").unwrap();
    let mut missing = url::Url::parse(&callback).unwrap();
    let kept: Vec<(String, String)> = missing
        .query_pairs()
        .filter(|(k, _)| k != "state")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    missing.query_pairs_mut().clear().extend_pairs(kept);
    let duplicated = format!("{callback}&state={}", urlencoding::encode(&state));
    for (what, url) in [("missing", missing.to_string()), ("duplicated", duplicated)] {
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{what}");
        assert_eq!(
            app.session(&client).await.status(),
            StatusCode::UNAUTHORIZED,
            "{what}"
        );
    }
    assert_eq!(code_exchanges(&app).await, 0, "no code was exchanged");
    // Neither refusal spent the login: the provider's answer as sent still signs in.
    let r = client.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_replayed_code_is_rejected() {
    let app = spawn_app().await;
    let client = browser();
    let first = app.start_login(&client, "/").await;
    let callback = app
        .authorize_at_idp(&client, &first, "alice", "wonderland")
        .await;
    let code = query_param(&callback, "code").unwrap();
    assert!(
        client
            .get(&callback)
            .send()
            .await
            .unwrap()
            .status()
            .is_redirection()
    );

    // A second login in a fresh browser, answered with the first login's code.
    let attacker = browser();
    let second = app.start_login(&attacker, "/").await;
    let state = query_param(&second, "state").unwrap();
    let replay = format!(
        "{}/auth/callback?code={}&state={}&iss={}",
        app.address,
        urlencoding::encode(&code),
        urlencoding::encode(&state),
        urlencoding::encode(&app.idp.issuer)
    );
    let r = attacker.get(&replay).send().await.unwrap();

    app.assert_refused_without_session(&attacker, r).await;
    // The bridge's part: it took the attacker's own pending login (its `state`, its PKCE
    // verifier) and asked the provider, which refused the used code: a second exchange, no
    // session. That login is spent now: the same answer again is refused by the bridge itself.
    assert_eq!(code_exchanges(&app).await, 2);
    let again = attacker.get(&replay).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code_exchanges(&app).await, 2, "no third exchange");
    // The victim's session is untouched.
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);

    // A code intercepted before its use, injected into the attacker's login: the bridge
    // exchanges it with the attacker's login's PKCE verifier, which is not the one the code
    // was issued for, and the provider refuses it.
    let victim = browser();
    let intercepted = app.callback_for(&victim, "alice", "wonderland").await;
    let code = query_param(&intercepted, "code").unwrap();
    let third = app.start_login(&attacker, "/").await;
    let injected = format!(
        "{}/auth/callback?code={}&state={}&iss={}",
        app.address,
        urlencoding::encode(&code),
        urlencoding::encode(&query_param(&third, "state").unwrap()),
        urlencoding::encode(&app.idp.issuer)
    );
    let r = attacker.get(&injected).send().await.unwrap();
    app.assert_refused_without_session(&attacker, r).await;
    assert_eq!(code_exchanges(&app).await, 3);
}

#[tokio::test]
async fn an_id_token_with_a_bad_nonce_is_rejected() {
    let app = spawn_app().await;
    let client = browser();
    let authorize = app.start_login(&client, "/").await;
    // Same login (state, PKCE challenge), but the provider is asked for another nonce, so
    // the ID token it signs carries a nonce this login never sent.
    let forged = with_param(&authorize, "nonce", "attacker-chosen-nonce");
    let callback = app
        .authorize_at_idp(&client, &forged, "alice", "wonderland")
        .await;

    let r = client.get(&callback).send().await.unwrap();

    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.idp.stat("token_requests.authorization_code").await,
        1,
        "the code was exchanged"
    );
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_callback_with_a_foreign_iss_is_rejected() {
    let app = spawn_app().await;
    let client = browser();
    let callback = app.callback_for(&client, "alice", "wonderland").await;
    let mixed = with_param(&callback, "iss", "https://evil.example");

    let r = client.get(&mixed).send().await.unwrap();

    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.idp.stat("token_requests.authorization_code").await,
        0,
        "code never exchanged"
    );
}

#[tokio::test]
async fn open_redirect_attempts_in_return_to_are_refused() {
    let app = spawn_app().await;
    let client = browser();
    for evil in [
        "//evil.example",
        "/\\evil.example",
        "https://x@evil.example",
        "https://evil.example/",
        "/%2F/evil.example",
        "/%5Cevil.example",
        "/%09/evil.example",
        "%2F%2Fevil.example",
        "/%0d%0aLocation:%20https://evil.example",
    ] {
        let r = client
            .get(format!(
                "{}/auth/login?return_to={}",
                app.address,
                urlencoding::encode(evil)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{evil} must be refused"
        );
        let body: shared::error::ApiError = r.json().await.unwrap();
        assert_eq!(body.error, "invalid_request");
    }
    assert_eq!(app.idp.stat("authorization_requests").await, 0);
}

#[tokio::test]
async fn a_provider_error_ends_on_the_login_page_not_a_500() {
    let app = spawn_app().await;
    let client = browser();
    let authorize = app.start_login(&client, "/deep/link").await;
    let state = query_param(&authorize, "state").unwrap();

    let r = client
        .get(format!(
            "{}/auth/callback?error=access_denied&error_description=User%20said%20no&state={}&iss={}",
            app.address,
            state,
            urlencoding::encode(&app.idp.issuer)
        ))
        .send()
        .await
        .unwrap();

    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = location(&r);
    assert!(to.starts_with("/login?error=access_denied"), "{to}");
    assert!(to.contains("return_to=%2Fdeep%2Flink"), "{to}");
    assert!(to.contains("User%20said%20no"), "{to}");
}

#[tokio::test]
async fn pending_logins_per_browser_are_bounded_and_the_oldest_is_dropped() {
    let app = spawn_app().await;
    let client = browser();
    let first = app.start_login(&client, "/").await;
    for _ in 0..5 {
        app.start_login(&client, "/").await;
    }
    let newest = app.start_login(&client, "/").await;

    // Six more logins were started after the first: it no longer exists, the newest does.
    let old_callback = app
        .authorize_at_idp(&client, &first, "alice", "wonderland")
        .await;
    let r = client.get(&old_callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let new_callback = app
        .authorize_at_idp(&client, &newest, "alice", "wonderland")
        .await;
    let r = client.get(&new_callback).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
