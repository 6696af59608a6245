//! Several replicas on one shared store (Redis, then PostgreSQL), each test with its own server:
//! sessions served by any replica, logout seen by all, one provider refresh for concurrent
//! calls spread over replicas, store outages survived, replicas stopped and restarted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use login_bridge::settings::StoreKind;
use reqwest::{StatusCode, cookie::CookieStore};

use crate::support::{stores::SharedStore, *};

/// A browser whose cookie jar the test can read.
fn browser_with_jar() -> (reqwest::Client, Arc<reqwest::cookie::Jar>) {
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    (client, jar)
}

/// The `Cookie` header the jar sends to `address`.
fn cookie_header(jar: &reqwest::cookie::Jar, address: &str) -> String {
    jar.cookies(&address.parse().unwrap())
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn session_with_cookie(address: &str, cookie: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{address}/auth/session"))
        .header(reqwest::header::COOKIE, cookie)
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .send()
        .await
        .unwrap()
        .status()
}

async fn sessions_and_logout_are_shared(kind: StoreKind) {
    let store = SharedStore::start(kind).await;
    let a = spawn_app_with(AppOptions {
        store: store.option(),
        ..AppOptions::default()
    })
    .await;
    let b = a.replica().await;
    let (client, jar) = browser_with_jar();
    a.sign_in(&client, "alice", "wonderland").await;
    let cookie = cookie_header(&jar, &a.address);
    assert!(cookie.contains("lb_session="), "{cookie}");

    // Replica B serves the session A opened, and its token works at B's API.
    let info = b.session_info(&client).await;
    assert_eq!(info.user.username.as_deref(), Some("alice"));
    assert_eq!(
        b.api_get("/api/me", Some(&info.auth_token)).await.status(),
        StatusCode::OK
    );
    // Logout through B...
    let r = client
        .post(format!("{}/auth/logout", b.address))
        .header(shared::session::CSRF_HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // ...and A no longer knows the session, even when shown its old cookie.
    assert_eq!(
        session_with_cookie(&a.address, &cookie).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        session_with_cookie(&b.address, &cookie).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn redis_replicas_share_sessions_and_logout() {
    sessions_and_logout_are_shared(StoreKind::Redis).await;
}

#[tokio::test]
async fn postgres_replicas_share_sessions_and_logout() {
    sessions_and_logout_are_shared(StoreKind::Postgres).await;
}

/// Waits (for the clock: token lifetimes are whole seconds) until a token expiring at
/// `expires_at` is due for refresh (2 s before expiry, inside the last half of its life).
async fn wait_until_refresh_is_due(expires_at: i64) {
    let due = (expires_at - 2 - now()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(due * 1000 + 200)).await;
}

async fn one_refresh_across_replicas(kind: StoreKind) {
    let store = SharedStore::start(kind).await;
    let a = spawn_app_with(AppOptions {
        store: store.option(),
        access_token_ttl: 6,
        refresh_before_expiry_secs: 60,
        ..AppOptions::default()
    })
    .await;
    let b = a.replica().await;
    let client = browser();
    a.sign_in(&client, "alice", "wonderland").await;
    let first = a.session_info(&client).await;
    assert_eq!(a.idp.stat("token_requests.refresh_token").await, 0);
    wait_until_refresh_is_due(first.expires_at).await;

    // Twenty calls at once, every other one through the other replica.
    let calls = (0..20).map(|i| {
        let client = client.clone();
        let (a, b) = (&a, &b);
        async move {
            if i % 2 == 0 {
                a.session(&client).await
            } else {
                b.session(&client).await
            }
        }
    });
    let answers = futures::future::join_all(calls).await;
    let mut tokens = Vec::new();
    for r in answers {
        assert_eq!(r.status(), StatusCode::OK);
        tokens.push(
            r.json::<shared::session::SessionInfo>()
                .await
                .unwrap()
                .auth_token,
        );
    }
    // The provider rotates refresh tokens: a second refresh with the same one would have been
    // refused and ended the session. It saw exactly one.
    assert_eq!(
        a.idp.stat("token_requests.refresh_token").await,
        1,
        "one refresh at the provider for twenty calls over two replicas"
    );
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "every call answered with the new token"
    );
    assert_ne!(tokens[0], first.auth_token);
    assert_eq!(
        b.api_get("/api/me", Some(&tokens[0])).await.status(),
        StatusCode::OK
    );
    assert_eq!(b.session_info(&client).await.auth_token, tokens[0]);
    assert_eq!(a.idp.stat("token_requests.refresh_token").await, 1);
}

#[tokio::test]
async fn redis_replicas_refresh_once_for_concurrent_calls() {
    one_refresh_across_replicas(StoreKind::Redis).await;
}

#[tokio::test]
async fn postgres_replicas_refresh_once_for_concurrent_calls() {
    one_refresh_across_replicas(StoreKind::Postgres).await;
}

async fn readyz(address: &str) -> (StatusCode, serde_json::Value) {
    let r = reqwest::get(format!("{address}/readyz")).await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or_default())
}

/// Waits until `/readyz` answers 200 (an event the bridge reports), at most 30 s.
async fn wait_until_ready(address: &str) {
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if readyz(address).await.0 == StatusCode::OK {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        ready.is_ok(),
        "not ready again within 30 s: {:?}",
        readyz(address).await
    );
}

async fn a_store_outage_is_survived(kind: StoreKind) {
    let mut store = SharedStore::start(kind).await;
    let app = spawn_app_with(AppOptions {
        store: store.option(),
        metrics: true,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let token = app.session_info(&client).await.auth_token;
    assert_eq!(readyz(&app.address).await.0, StatusCode::OK);
    let before = crate::metrics::scrape(&app).await;

    store.stop().await;

    // Not ready, and says why (never the store's address).
    let (status, body) = readyz(&app.address).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let reason = body["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("session store"), "{body}");
    assert!(!reason.contains("127.0.0.1"), "{body}");
    // Bearer calls need no store.
    assert_eq!(
        app.api_get("/api/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    // A new login gets a readable 503 page, with nothing of the cause.
    let r = browser()
        .get(format!("{}/auth/login?return_to=%2F", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = r.text().await.unwrap();
    assert!(page.contains("not possible right now"), "{page}");
    assert!(!page.contains("127.0.0.1") && !page.to_lowercase().contains("redis"));
    // The session endpoint answers a clean 503 too.
    let r = app.session(&client).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: shared::error::ApiError = r.json().await.unwrap();
    assert_eq!(body.error, "temporarily_unavailable");
    // ...and the operator sees it counted.
    let after = crate::metrics::scrape(&app).await;
    crate::metrics::assert_moved(&before, &after, "login_bridge_store_errors_total", &[]);

    // The store returns: the bridge recovers without a restart.
    store.restart().await;
    wait_until_ready(&app.address).await;
    let fresh = browser();
    app.sign_in(&fresh, "alice", "wonderland").await;
    assert_eq!(app.session(&fresh).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn redis_outage_is_survived_and_recovered_without_restart() {
    a_store_outage_is_survived(StoreKind::Redis).await;
}

#[tokio::test]
async fn postgres_outage_is_survived_and_recovered_without_restart() {
    a_store_outage_is_survived(StoreKind::Postgres).await;
}

async fn sessions_outlive_replicas(kind: StoreKind) {
    let store = SharedStore::start(kind).await;
    let a = spawn_app_with(AppOptions {
        store: store.option(),
        ..AppOptions::default()
    })
    .await;
    let b = a.replica().await;
    let client = browser();
    a.sign_in(&client, "alice", "wonderland").await;
    let token = a.session_info(&client).await.auth_token;

    // A goes away: B serves the same session, no new login.
    a.stop().await;
    assert_eq!(b.session_info(&client).await.auth_token, token);
    // A replica started afresh (a restart) knows it too.
    let restarted = a.replica().await;
    assert_eq!(restarted.session_info(&client).await.auth_token, token);
}

#[tokio::test]
async fn redis_sessions_outlive_a_stopped_replica_and_a_restart() {
    sessions_outlive_replicas(StoreKind::Redis).await;
}

#[tokio::test]
async fn postgres_sessions_outlive_a_stopped_replica_and_a_restart() {
    sessions_outlive_replicas(StoreKind::Postgres).await;
}

async fn a_provider_outage_keeps_sessions(kind: StoreKind) {
    let store = SharedStore::start(kind).await;
    let mut a = spawn_app_with(AppOptions {
        store: store.option(),
        ..AppOptions::default()
    })
    .await;
    let b = a.replica().await;
    let client = browser();
    a.sign_in(&client, "alice", "wonderland").await;
    let token = a.session_info(&client).await.auth_token;

    a.idp.stop().await;

    // Existing sessions keep working on every replica until their tokens expire.
    assert_eq!(b.session_info(&client).await.auth_token, token);
    assert_eq!(a.session_info(&client).await.auth_token, token);
    assert_eq!(
        b.api_get("/api/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    // A new sign-in gets a readable page, not a redirect to a provider that does not answer.
    let r = browser()
        .get(format!("{}/auth/login?return_to=%2F", b.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get(reqwest::header::LOCATION).is_none());
    let page = r.text().await.unwrap();
    assert!(page.contains("not possible right now"), "{page}");
}

#[tokio::test]
async fn redis_replicas_keep_sessions_while_the_provider_is_down() {
    a_provider_outage_keeps_sessions(StoreKind::Redis).await;
}

#[tokio::test]
async fn postgres_replicas_keep_sessions_while_the_provider_is_down() {
    a_provider_outage_keeps_sessions(StoreKind::Postgres).await;
}
