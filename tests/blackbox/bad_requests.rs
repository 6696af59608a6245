//! Every malformed request to a bridge endpoint gets the bridge's own JSON error (`400
//! invalid_request`, `413` for a body over the limit) with `Cache-Control: no-store`, never
//! axum's plain-text rejection, and changes nothing: endpoint by endpoint, body by body.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::authority::{create_service_user, token_for};
use crate::backchannel_logout::logout_claims;
use crate::local_accounts::local_options;
use crate::support::*;

/// What a malformed request must get: `status`, JSON, `no-store`, the error code.
async fn assert_bridge_error(r: reqwest::Response, status: StatusCode, why: &str) {
    assert_eq!(r.status(), status, "{why}");
    let content_type = r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{why}: {content_type}"
    );
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store", "{why}");
    let text = r.text().await.unwrap();
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{why}: {text}"));
    assert_eq!(body["error"], "invalid_request", "{why}: {body}");
    assert!(body["error_description"].is_string(), "{why}: {body}");
}

#[tokio::test]
async fn every_malformed_request_gets_the_bridges_json_error_and_changes_nothing() {
    let app = spawn_app_with(local_options(json!({}))).await;
    app.admin_with_password(&["user", "add", "carol"], "correct horse battery")
        .await
        .unwrap();
    let auditor = create_service_user(&app, "auditor", &["--permission", "introspect"]).await;
    let caller = token_for(&app, &auditor).await;
    // A session a valid logout token would end: it must survive every malformed one.
    let alice = browser();
    app.sign_in(&alice, "alice", "wonderland").await;
    let logout_token = sign_as_idp(&logout_claims(&app));
    let origin = app.settings.origin();

    let post = |path: &str, content_type: &str, body: reqwest::Body| {
        reqwest::Client::new()
            .post(format!("{}{path}", app.address))
            .header(header::CONTENT_TYPE, content_type)
            .header(header::ORIGIN, origin.as_str())
            .header("sec-fetch-site", "same-origin")
            .bearer_auth(&caller)
            .body(body)
            .send()
    };
    let jwt_bearer = "urn:ietf:params:oauth:grant-type:jwt-bearer";
    // Each endpoint with a form that names one of its parameters twice.
    let twice = [
        (
            "/oauth/token",
            format!("grant_type={jwt_bearer}&grant_type={jwt_bearer}&assertion=a.b.c"),
        ),
        ("/oauth/introspect", "token=a.b.c&token=d.e.f".to_string()),
        (
            "/auth/local/login",
            "username=carol&username=mallory&password=x".to_string(),
        ),
        (
            "/auth/backchannel-logout",
            format!("logout_token={logout_token}&logout_token={logout_token}"),
        ),
    ];
    let form = "application/x-www-form-urlencoded";
    for (path, repeated) in &twice {
        let r = post(path, form, repeated.clone().into()).await.unwrap();
        assert_bridge_error(
            r,
            StatusCode::BAD_REQUEST,
            &format!("{path}: a parameter twice"),
        )
        .await;

        let as_json = json!({"logout_token": logout_token, "token": "a.b.c",
                             "grant_type": jwt_bearer, "username": "carol", "password": "x"});
        let r = post(path, "application/json", as_json.to_string().into())
            .await
            .unwrap();
        assert_bridge_error(
            r,
            StatusCode::BAD_REQUEST,
            &format!("{path}: JSON, not a form"),
        )
        .await;

        let large = format!("{repeated}&pad={}", "a".repeat(70 * 1024));
        let r = post(path, form, large.clone().into()).await.unwrap();
        assert_bridge_error(
            r,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{path}: declared too large"),
        )
        .await;
        // Without a length, the body is cut at the limit while the extractor reads it.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> = large
            .into_bytes()
            .chunks(8 * 1024)
            .map(|c| Ok(c.to_vec()))
            .collect();
        let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let r = post(path, form, streamed).await.unwrap();
        assert_bridge_error(
            r,
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("{path}: streamed too large"),
        )
        .await;
    }

    // Query strings that do not parse, on the endpoints that read one: JSON where the bridge
    // answers JSON, the sign-in failure page on the callbacks (the browser is navigating there,
    // and every other refusal of theirs is that page).
    let client = browser();
    for url in [
        "/auth/login?prompt=none&prompt=login",
        "/auth/login?return_to=/a&return_to=/b",
    ] {
        let r = client
            .get(format!("{}{url}", app.address))
            .send()
            .await
            .unwrap();
        assert_bridge_error(r, StatusCode::BAD_REQUEST, url).await;
    }
    for url in [
        "/auth/callback?state=a&state=b&code=c",
        "/auth/jwt/callback?state=a&state=b",
        "/auth/jwt/callback?state=a&expires=soon",
    ] {
        let r = client
            .get(format!("{}{url}", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store", "{url}");
        let content_type = r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("text/html"),
            "{url}: {content_type}"
        );
        let page = r.text().await.unwrap();
        assert!(page.contains("Sign-in failed"), "{url}: {page}");
    }

    // Nothing changed: alice is still signed in, and the logout token still works once.
    assert_eq!(app.session(&alice).await.status(), StatusCode::OK);
    let r = crate::backchannel_logout::post_logout(&app, &logout_token).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.session(&alice).await.status(), StatusCode::UNAUTHORIZED);
}
