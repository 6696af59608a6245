//! The token authority across replicas: two bridges on one Redis, then on one PostgreSQL,
//! share their signing keys, service users and replay records. An assertion one replica
//! accepted is refused at the other, a user disabled through the CLI is refused everywhere
//! (its tokens too, at `/api` and the upstreams, within seconds), and a key rotated through
//! the CLI reaches every replica at its next reload.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use jsonwebtoken::Algorithm;
use login_bridge::settings::StoreKind;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    authority::{
        KeyFile, create_service_user, good_claims, grant, jwks_kids, sign_assertion,
        the_invalid_grant,
    },
    support::{
        stores::{PostgresServer, RedisServer},
        *,
    },
};

/// The issuer both replicas share (behind one load balancer they have one public name).
const SHARED_ISSUER: &str = "https://bridge.replicas.test";

/// The test's own store server, kept (running) while the replicas use it.
enum StoreServer {
    Redis { _server: RedisServer },
    Postgres { _server: PostgresServer },
}

/// Two bridges on one shared store, with one key-encryption key and one issuer.
struct Replicas {
    a: TestApp,
    b: TestApp,
    _store: StoreServer,
    _kek: tempfile::TempDir,
}

async fn two_replicas(kind: StoreKind) -> Replicas {
    two_replicas_with(kind, Vec::new()).await
}

async fn two_replicas_with(kind: StoreKind, upstreams: Vec<Value>) -> Replicas {
    let (store, url) = match kind {
        StoreKind::Redis => {
            let server = RedisServer::start().await;
            let url = server.url();
            (StoreServer::Redis { _server: server }, url)
        }
        StoreKind::Postgres => {
            let server = PostgresServer::start().await;
            let url = server.url();
            (StoreServer::Postgres { _server: server }, url)
        }
        StoreKind::Sqlite => panic!("SQLite is not shared between replicas"),
    };
    let kek_dir = tempfile::tempdir().unwrap();
    let kek = kek_dir.path().join("kek");
    login_bridge::authority::keyring::write_new_kek(&kek).unwrap();
    let options = || AppOptions {
        authority: Some(json!({
            "key_reload_secs": 1,
            "leeway_secs": 2,
            "issuer": SHARED_ISSUER,
            "key_encryption_key_file": kek.display().to_string(),
        })),
        store: Some((kind, url.clone())),
        upstreams: upstreams.clone(),
        ..AppOptions::default()
    };
    let a = spawn_app_with(options()).await;
    let b = spawn_app_with(options()).await;
    Replicas {
        a,
        b,
        _store: store,
        _kek: kek_dir,
    }
}

fn fresh_assertion(app: &TestApp, key: &KeyFile) -> String {
    sign_assertion(
        key,
        Algorithm::ES256,
        Some(&key.key_id),
        &good_claims(app, key),
    )
}

async fn access_token(r: reqwest::Response) -> String {
    assert_eq!(r.status(), StatusCode::OK);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn assert_invalid_grant(r: reqwest::Response, why: &str) {
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{why}");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        the_invalid_grant(),
        "{why}"
    );
}

async fn a_replica_refuses_what_another_accepted(kind: StoreKind) {
    // Bound whole: the store server and the key file must outlive both replicas.
    let replicas = two_replicas(kind).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let key = create_service_user(a, "ci-job", &["--role", "deployer"]).await;

    // Accepted once at A, the same assertion is a replay at B.
    let assertion = fresh_assertion(a, &key);
    let token = access_token(grant(a, &assertion).await).await;
    assert_invalid_grant(grant(b, &assertion).await, "replayed at the other replica").await;

    // A fresh assertion works at B: it knows the user A's CLI created.
    let from_b = access_token(grant(b, &fresh_assertion(b, &key)).await).await;

    // Both sign with the same keys, so each accepts the other's tokens.
    for (app, token, what) in [
        (b, &token, "A's token at B"),
        (a, &from_b, "B's token at A"),
    ] {
        let me = app.api_get("/api/me", Some(token)).await;
        assert_eq!(me.status(), StatusCode::OK, "{what}");
        let me: Value = me.json().await.unwrap();
        assert_eq!(me["user"]["id"], key.user_id.as_str(), "{what}");
        assert_eq!(me["user"]["roles"], json!(["deployer"]), "{what}");
    }

    // Disabled through the CLI: B refuses the next assertion, though it looked the key up
    // (and cached it) while the user was enabled.
    let out = a
        .admin(&["service-user", "disable", "ci-job"])
        .await
        .unwrap();
    assert!(out.contains("disabled"), "{out}");
    assert_invalid_grant(
        grant(b, &fresh_assertion(b, &key)).await,
        "a disabled user at the other replica",
    )
    .await;
    // And enabled again, B accepts it again.
    a.admin(&["service-user", "enable", "ci-job"])
        .await
        .unwrap();
    access_token(grant(b, &fresh_assertion(b, &key)).await).await;
}

#[tokio::test]
async fn a_replica_refuses_an_assertion_another_accepted_on_redis() {
    a_replica_refuses_what_another_accepted(StoreKind::Redis).await;
}

#[tokio::test]
async fn a_replica_refuses_an_assertion_another_accepted_on_postgres() {
    a_replica_refuses_what_another_accepted(StoreKind::Postgres).await;
}

/// Polls `app`'s JWKS (re-read from the store every second here) until `kid` is published.
async fn wait_for_kid(app: &TestApp, kid: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let kids = jwks_kids(app).await;
        if kids.iter().any(|k| k == kid) {
            return kids;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{kid} never appeared in {}'s JWKS: {kids:?}",
            app.address
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn a_rotation_reaches_the_other_replica(kind: StoreKind) {
    // Bound whole: the store server and the key file must outlive both replicas.
    let replicas = two_replicas(kind).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let before = jwks_kids(b).await;
    assert_eq!(before.len(), 1);
    assert_eq!(
        jwks_kids(a).await,
        before,
        "both replicas publish the same key"
    );
    let key = create_service_user(a, "ci-job", &[]).await;
    let old_token = access_token(grant(b, &fresh_assertion(b, &key)).await).await;

    // Rotated by the CLI beside replica A.
    let out = a.admin(&["keys", "rotate"]).await.unwrap();
    let new_kid = out
        .lines()
        .find_map(|l| l.strip_prefix("new current key "))
        .unwrap_or_else(|| panic!("no new kid in {out:?}"))
        .trim()
        .to_string();
    assert!(!before.contains(&new_kid));

    // B picks it up at its reload: it publishes both, signs with the new one, and still
    // accepts the token of the old one.
    let kids = wait_for_kid(b, &new_kid).await;
    assert!(kids.contains(&before[0]), "{kids:?}");
    wait_for_kid(a, &new_kid).await;
    let new_token = access_token(grant(b, &fresh_assertion(b, &key)).await).await;
    let header = jsonwebtoken::decode_header(&new_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
    for (app, token) in [(a, &new_token), (b, &old_token), (a, &old_token)] {
        assert_eq!(
            app.api_get("/api/me", Some(token)).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn a_key_rotated_on_one_replica_reaches_the_other_on_redis() {
    a_rotation_reaches_the_other_replica(StoreKind::Redis).await;
}

#[tokio::test]
async fn a_key_rotated_on_one_replica_reaches_the_other_on_postgres() {
    a_rotation_reaches_the_other_replica(StoreKind::Postgres).await;
}

/// Polls `what` until it gives `want`, for at most `within`: the time the CLI promises.
async fn eventually(
    within: Duration,
    what: &str,
    want: StatusCode,
    mut status: impl AsyncFnMut() -> StatusCode,
) {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let now = status().await;
        if now == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: still {now} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_disabled_users_tokens_stop_on_every_replica(kind: StoreKind) {
    let (upstream, reached) = crate::gateway::counting_upstream().await;
    let replicas = two_replicas_with(kind, vec![json!({"prefix": "/up/", "url": upstream})]).await;
    let (a, b) = (&replicas.a, &replicas.b);
    let key = create_service_user(a, "ci-job", &[]).await;
    let token = access_token(grant(a, &fresh_assertion(a, &key)).await).await;
    // Accepted everywhere, and so in each replica's verified-token cache.
    for app in [a, b] {
        assert_eq!(
            app.api_get("/api/me", Some(&token)).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            app.api_get("/up/x", Some(&token)).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 2);

    // Disabled through the CLI beside A: both replicas refuse the token within seconds (they
    // re-read the store every 2 s by default), at /api and before any upstream.
    a.admin(&["service-user", "disable", "ci-job"])
        .await
        .unwrap();
    let within = Duration::from_secs(10);
    for app in [a, b] {
        eventually(
            within,
            "/api after disable",
            StatusCode::UNAUTHORIZED,
            async || app.api_get("/api/me", Some(&token)).await.status(),
        )
        .await;
        let r = app.api_get("/up/x", Some(&token)).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "upstream after disable"
        );
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_token");
    }
    assert_eq!(
        reached.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "no call reached the upstream"
    );

    // Enabled again, the same token works again (it was not expired, only stopped).
    a.admin(&["service-user", "enable", "ci-job"])
        .await
        .unwrap();
    for app in [a, b] {
        eventually(within, "/api after enable", StatusCode::OK, async || {
            app.api_get("/api/me", Some(&token)).await.status()
        })
        .await;
    }
}

#[tokio::test]
async fn a_disabled_service_users_tokens_stop_on_every_replica_within_seconds_on_redis() {
    a_disabled_users_tokens_stop_on_every_replica(StoreKind::Redis).await;
}

#[tokio::test]
async fn a_disabled_service_users_tokens_stop_on_every_replica_within_seconds_on_postgres() {
    a_disabled_users_tokens_stop_on_every_replica(StoreKind::Postgres).await;
}
