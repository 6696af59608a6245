//! DPoP on the API side (RFC 9449, issue 23, acceptance 2 and 3): a token bound to a key
//! (`cnf.jkt`) passes `/api` and an upstream prefix only as `Authorization: DPoP` with a fresh
//! proof by that key for that very request; every other way is a 401 with the `DPoP` challenge,
//! and the upstream sees nothing of it. Replicas on one store refuse a proof another one
//! accepted. The bound token is signed here with the provider's key (what the API side needs
//! is a trusted token with `cnf.jkt`); the session's binding has tests of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use login_bridge::settings::StoreKind;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::{
    support::{dpop::DpopKey, redis_ha::ClusterSet, stores::SharedStore, *},
    upstream::TestUpstream,
};

/// A token of the provider for alice, bound to `key` when given.
fn token_for(app_issuer: &str, key: Option<&DpopKey>) -> String {
    let mut claims = json!({
        "iss": app_issuer, "sub": ALICE_SUB, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 300, "preferred_username": "alice",
    });
    if let Some(key) = key {
        claims["cnf"] = json!({"jkt": key.jkt()});
    }
    sign_as_idp(&claims)
}

/// A bridge with an upstream that gets a token minted for the caller (`/pi/`) and one that
/// gets the caller's own (`/fwd/`), both on the same recording test upstream.
async fn app_with_upstreams(up: &TestUpstream, more: AppOptions) -> TestApp {
    spawn_app_with(AppOptions {
        authority: Some(json!({})),
        token_profiles: vec![json!({"name": "pi", "claims": {"username": "{username}"}})],
        upstreams: vec![
            json!({"name": "pi", "prefix": "/pi/", "url": up.url, "token": "profile:pi"}),
            json!({"name": "fwd", "prefix": "/fwd/", "url": up.url}),
        ],
        ..more
    })
    .await
}

/// `method path` at `address`, with `Authorization` and `DPoP` as given.
async fn call(
    address: &str,
    method: Method,
    path: &str,
    authorization: Option<String>,
    proof: Option<String>,
) -> reqwest::Response {
    let mut request = reqwest::Client::new().request(method, format!("{address}{path}"));
    if let Some(a) = authorization {
        request = request.header(header::AUTHORIZATION, a);
    }
    if let Some(p) = proof {
        request = request.header("dpop", p);
    }
    request.send().await.unwrap()
}

/// A 401 with `WWW-Authenticate: DPoP error="<error>", …, algs="ES256 …"` and the same error in
/// the bridge's JSON.
async fn assert_refused(r: reqwest::Response, error: &str, case: &str) {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{case}");
    let challenge = r
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .unwrap_or_else(|| panic!("{case}: no challenge"))
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("DPoP "), "{case}: {challenge}");
    assert!(
        challenge.contains(&format!(r#"error="{error}""#)),
        "{case}: {challenge}"
    );
    assert!(challenge.contains(r#"algs="ES256"#), "{case}: {challenge}");
    let body: shared::error::ApiError = r.json().await.unwrap();
    assert_eq!(body.error, error, "{case}");
}

/// `header` and `claims` with an HMAC (HS256) instead of a signature.
fn hs256(header: &Value, claims: &Value) -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"a shared secret");
    let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// Every way a bound token's call to `url` (`GET`) can be wrong, with the error it must get:
/// (what, Authorization, DPoP, error).
fn wrong_calls(
    key: &DpopKey,
    token: &str,
    url: &str,
    other_url: &str,
) -> Vec<(&'static str, String, Option<String>, &'static str)> {
    let dpop = format!("DPoP {token}");
    let other = DpopKey::generate();
    let mut old = key.claims("GET", url, Some(token));
    old["iat"] = json!(now() - 120);
    let mut no_ath = key.claims("GET", url, Some(token));
    no_ath.as_object_mut().unwrap().remove("ath");
    let mut none = key.header();
    none["alg"] = json!("none");
    let mut hs = key.header();
    hs["alg"] = json!("HS256");
    let mut private = key.header();
    private["jwk"]["d"] = json!("oqX0GSdiVKjKlrHdUkWvwmF3V4chKeB1N1-0v6XjYmM");
    vec![
        (
            "the token as Bearer (with a good proof)",
            format!("Bearer {token}"),
            Some(key.proof("GET", url, Some(token))),
            "invalid_token",
        ),
        ("no proof", dpop.clone(), None, "invalid_dpop_proof"),
        (
            "a proof of another key",
            dpop.clone(),
            Some(other.proof("GET", url, Some(token))),
            "invalid_dpop_proof",
        ),
        (
            "a proof for another method",
            dpop.clone(),
            Some(key.proof("POST", url, Some(token))),
            "invalid_dpop_proof",
        ),
        (
            "a proof for another URL",
            dpop.clone(),
            Some(key.proof("GET", other_url, Some(token))),
            "invalid_dpop_proof",
        ),
        (
            "a proof two minutes old",
            dpop.clone(),
            Some(key.sign(key.header(), old)),
            "invalid_dpop_proof",
        ),
        (
            "a proof without ath",
            dpop.clone(),
            Some(key.sign(key.header(), no_ath)),
            "invalid_dpop_proof",
        ),
        (
            "a proof with the ath of another token",
            dpop.clone(),
            Some(key.proof("GET", url, Some("another.token.entirely"))),
            "invalid_dpop_proof",
        ),
        (
            "alg none, unsigned",
            dpop.clone(),
            Some(raw_jwt(&none, &key.claims("GET", url, Some(token)), b"")),
            "invalid_dpop_proof",
        ),
        (
            "HS256",
            dpop.clone(),
            Some(hs256(&hs, &key.claims("GET", url, Some(token)))),
            "invalid_dpop_proof",
        ),
        (
            "a private key in jwk",
            dpop.clone(),
            Some(key.sign(private, key.claims("GET", url, Some(token)))),
            "invalid_dpop_proof",
        ),
    ]
}

#[tokio::test]
async fn a_bound_token_without_a_valid_proof_of_its_key_is_refused_on_the_api_and_an_upstream_that_sees_nothing()
 {
    let up = TestUpstream::start().await;
    let app = app_with_upstreams(&up, AppOptions::default()).await;
    let key = DpopKey::generate();
    let token = token_for(&app.idp.issuer, Some(&key));
    for (path, other) in [("/api/me", "/api/calls"), ("/pi/items", "/pi/other")] {
        let url = format!("{}{path}", app.address);
        let other_url = format!("{}{other}", app.address);
        for (case, authorization, proof, error) in wrong_calls(&key, &token, &url, &other_url) {
            let r = call(&app.address, Method::GET, path, Some(authorization), proof).await;
            assert_refused(r, error, &format!("{path}: {case}")).await;
        }
        // A good proof passes once; the same proof again is refused.
        let proof = key.proof("GET", &url, Some(&token));
        let dpop = || Some(format!("DPoP {token}"));
        let r = call(&app.address, Method::GET, path, dpop(), Some(proof.clone())).await;
        assert_eq!(r.status(), StatusCode::OK, "{path}: a good proof");
        let before = up.count();
        let r = call(&app.address, Method::GET, path, dpop(), Some(proof)).await;
        assert_refused(
            r,
            "invalid_dpop_proof",
            &format!("{path}: a replayed proof"),
        )
        .await;
        assert_eq!(
            up.count(),
            before,
            "{path}: the replay reached the upstream"
        );
    }
    assert_eq!(up.count(), 1, "only the one good call reached the upstream");
}

#[tokio::test]
async fn a_bound_token_with_a_fresh_proof_passes_and_only_a_forwarding_upstream_sees_the_proof() {
    let up = TestUpstream::start().await;
    let app = app_with_upstreams(&up, AppOptions::default()).await;
    let key = DpopKey::generate();
    let token = token_for(&app.idp.issuer, Some(&key));
    let dpop = || Some(format!("DPoP {token}"));
    let proof = |method: &str, path: &str| {
        Some(key.proof(method, &format!("{}{path}", app.address), Some(&token)))
    };

    let r = call(
        &app.address,
        Method::GET,
        "/api/me",
        dpop(),
        proof("GET", "/api/me"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["user"]["username"],
        "alice"
    );

    // The profile upstream gets the bridge's token, and no proof (it would mean nothing there).
    let r = call(
        &app.address,
        Method::POST,
        "/pi/token/init",
        dpop(),
        proof("POST", "/pi/token/init"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen = up.last();
    let authorization = seen.headers.get("authorization").unwrap().to_str().unwrap();
    assert!(!authorization.contains(&token), "{authorization}");
    assert!(seen.headers.get("dpop").is_none(), "{seen:?}");

    // A forwarding upstream gets the caller's Authorization and proof as sent.
    let sent = proof("GET", "/fwd/items").unwrap();
    let r = call(
        &app.address,
        Method::GET,
        "/fwd/items",
        dpop(),
        Some(sent.clone()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        seen.headers.get("authorization").unwrap().to_str().unwrap(),
        format!("DPoP {token}")
    );
    assert_eq!(seen.headers.get("dpop").unwrap().to_str().unwrap(), sent);
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn with_dpop_off_an_unbound_token_stays_bearer_and_is_refused_as_dpop() {
    let up = TestUpstream::start().await;
    let app = app_with_upstreams(&up, AppOptions::default()).await;
    let token = token_for(&app.idp.issuer, None);
    let stray = DpopKey::generate().proof("GET", &format!("{}/api/me", app.address), None);
    // Bearer as before; a DPoP header beside it is ignored.
    let r = call(
        &app.address,
        Method::GET,
        "/api/me",
        Some(format!("Bearer {token}")),
        Some(stray),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    for path in ["/api/me", "/pi/items"] {
        let key = DpopKey::generate();
        let proof = key.proof("GET", &format!("{}{path}", app.address), Some(&token));
        let r = call(
            &app.address,
            Method::GET,
            path,
            Some(format!("DPoP {token}")),
            Some(proof),
        )
        .await;
        assert_refused(
            r,
            "invalid_token",
            &format!("{path}: an unbound token as DPoP"),
        )
        .await;
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn with_server_nonces_a_proof_needs_the_nonce_the_refusal_hands_out() {
    let up = TestUpstream::start().await;
    let app = app_with_upstreams(
        &up,
        AppOptions {
            dpop_nonce: true,
            ..AppOptions::default()
        },
    )
    .await;
    let key = DpopKey::generate();
    let token = token_for(&app.idp.issuer, Some(&key));
    for path in ["/api/me", "/pi/items"] {
        let url = format!("{}{path}", app.address);
        let dpop = || Some(format!("DPoP {token}"));
        let r = call(
            &app.address,
            Method::GET,
            path,
            dpop(),
            Some(key.proof("GET", &url, Some(&token))),
        )
        .await;
        let nonce = r
            .headers()
            .get("dpop-nonce")
            .unwrap_or_else(|| panic!("{path}: no DPoP-Nonce"))
            .to_str()
            .unwrap()
            .to_string();
        assert_refused(r, "use_dpop_nonce", path).await;
        let mut claims = key.claims("GET", &url, Some(&token));
        claims["nonce"] = json!("bm90IG91ciBub25jZQ");
        let r = call(
            &app.address,
            Method::GET,
            path,
            dpop(),
            Some(key.sign(key.header(), claims)),
        )
        .await;
        assert_refused(r, "use_dpop_nonce", &format!("{path}: a nonce not ours")).await;
        assert_eq!(up.count(), 0, "{path}");

        let mut claims = key.claims("GET", &url, Some(&token));
        claims["nonce"] = json!(nonce);
        let r = call(
            &app.address,
            Method::GET,
            path,
            dpop(),
            Some(key.sign(key.header(), claims)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(
            r.headers().get("dpop-nonce").is_some(),
            "{path}: the next nonce"
        );
    }
}

/// A proof bridge `a` accepted is refused by the bridge `second` starts once `a` has answered
/// (both answer for `a`'s public URL), where a fresh proof of the same key passes. Returns the
/// second bridge and a maker of fresh `Authorization` and `DPoP` values, for more checks.
async fn a_proof_accepted_by_a_is_refused_by(
    a: &TestApp,
    second: impl AsyncFnOnce() -> Replica,
) -> (Replica, impl Fn() -> (Option<String>, Option<String>)) {
    let key = DpopKey::generate();
    let token = token_for(&a.idp.issuer, Some(&key));
    let url = format!("{}/api/me", a.address);
    let proof = key.proof("GET", &url, Some(&token));
    let dpop = Some(format!("DPoP {token}"));
    let r = call(
        &a.address,
        Method::GET,
        "/api/me",
        dpop.clone(),
        Some(proof.clone()),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let b = second().await;
    let r = call(
        &b.address,
        Method::GET,
        "/api/me",
        dpop.clone(),
        Some(proof),
    )
    .await;
    assert_refused(r, "invalid_dpop_proof", "the proof A accepted, at B").await;
    let fresh = move || (dpop.clone(), Some(key.proof("GET", &url, Some(&token))));
    let (authorization, proof) = fresh();
    let r = call(&b.address, Method::GET, "/api/me", authorization, proof).await;
    assert_eq!(r.status(), StatusCode::OK, "a fresh proof at B");
    (b, fresh)
}

async fn a_proof_replayed_to_another_replica_is_refused(kind: StoreKind) {
    let mut store = SharedStore::start(kind).await;
    let a = spawn_app_with(AppOptions {
        store: store.option(),
        ..AppOptions::default()
    })
    .await;
    // B runs beside A.
    let b = a.replica().await;
    let (b, fresh) = a_proof_accepted_by_a_is_refused_by(&a, async || b).await;

    // Without its replay records the bridge accepts no proof: 503, and nothing of the cause.
    store.stop().await;
    let (authorization, proof) = fresh();
    let r = call(&b.address, Method::GET, "/api/me", authorization, proof).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = r.text().await.unwrap();
    assert!(
        !body.contains("127.0.0.1")
            && !body.to_lowercase().contains("redis")
            && !body.to_lowercase().contains("postgres"),
        "{body}"
    );
}

#[tokio::test]
async fn redis_replicas_refuse_a_proof_another_replica_accepted() {
    a_proof_replayed_to_another_replica_is_refused(StoreKind::Redis).await;
}

#[tokio::test]
async fn postgres_replicas_refuse_a_proof_another_replica_accepted() {
    a_proof_replayed_to_another_replica_is_refused(StoreKind::Postgres).await;
}

/// On a Redis cluster each second's set of records goes to its own slot's primary, and with
/// `session.redis_wait_replicas` a proof is accepted only once a replica has its record: with
/// the replicas stalled a fresh proof answers 503 (not accepted unconfirmed), and passes again
/// once they are back.
#[tokio::test]
async fn on_a_redis_cluster_replicas_refuse_a_proof_another_accepted_once_a_replica_has_it() {
    let set = ClusterSet::start().await;
    let a = spawn_app_with(AppOptions {
        store: Some((StoreKind::Redis, set.url())),
        redis_wait_replicas: 1,
        ..AppOptions::default()
    })
    .await;
    let b = a.replica().await;
    let (b, fresh) = a_proof_accepted_by_a_is_refused_by(&a, async || b).await;

    let replicas = set.replicas().await;
    for &r in &replicas {
        set.signal(r, "-STOP");
    }
    let (authorization, proof) = fresh();
    let r = call(&b.address, Method::GET, "/api/me", authorization, proof).await;
    for &r in &replicas {
        set.signal(r, "-CONT");
    }
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "no replica confirmed the record"
    );
    let (authorization, proof) = fresh();
    let r = call(&b.address, Method::GET, "/api/me", authorization, proof).await;
    assert_eq!(r.status(), StatusCode::OK, "the replicas back");
}

/// On SQLite the bridge checks proofs against records it holds in memory, each written to the
/// file before its proof is accepted: a bridge started afresh on the file (same public URL, so
/// the proof's `htu` still matches) refuses a proof the first one accepted.
#[tokio::test]
async fn on_sqlite_a_proof_accepted_before_a_restart_is_refused_after_it() {
    let a = spawn_app().await;
    // B starts on A's file once A has stopped.
    let _restarted = a_proof_accepted_by_a_is_refused_by(&a, async || {
        a.stop().await;
        a.replica().await
    })
    .await;
}

#[tokio::test]
async fn the_token_a_bound_session_hands_out_passes_the_api_only_as_dpop_with_a_proof() {
    let app = spawn_app_with(AppOptions {
        authority: Some(json!({})),
        token_profiles: vec![json!({"name": "spa", "lifetime_secs": 300,
            "claims": {"preferred_username": "{username}"}})],
        token_profile: Some("spa".into()),
        dpop: login_bridge::settings::DpopMode::Required,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let key = DpopKey::generate();
    let info: shared::session::SessionInfo = client
        .get(format!("{}/auth/session", app.address))
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .header(
            "dpop",
            key.proof("GET", &format!("{}/auth/session", app.address), None),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info.token_type, "DPoP");
    let token = info.auth_token;
    let url = format!("{}/api/me", app.address);

    let r = call(
        &app.address,
        Method::GET,
        "/api/me",
        Some(format!("Bearer {token}")),
        None,
    )
    .await;
    assert_refused(r, "invalid_token", "the session's token as Bearer").await;
    let proof = key.proof("GET", &url, Some(&token));
    let r = call(
        &app.address,
        Method::GET,
        "/api/me",
        Some(format!("DPoP {token}")),
        Some(proof),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.json::<Value>().await.unwrap()["user"]["username"],
        "alice"
    );

    // No credentials at all: both schemes are offered (RFC 9449 section 7.1).
    let r = call(&app.address, Method::GET, "/api/me", None, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenges: Vec<&str> = r
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(challenges[0].starts_with("Bearer "), "{challenges:?}");
    assert!(
        challenges[1].starts_with(r#"DPoP algs="ES256"#),
        "{challenges:?}"
    );
}

#[tokio::test]
async fn an_spa_of_another_allowed_origin_may_send_a_proof_and_read_the_challenge_and_nonce() {
    let up = TestUpstream::start().await;
    let app = app_with_upstreams(
        &up,
        AppOptions {
            cors: Some(json!({"allowed_origins": ["https://ui.example.org"]})),
            dpop_nonce: true,
            ..AppOptions::default()
        },
    )
    .await;
    let http = reqwest::Client::new();
    for path in ["/api/me", "/pi/items"] {
        let r = http
            .request(Method::OPTIONS, format!("{}{path}", app.address))
            .header("Origin", "https://ui.example.org")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "authorization, dpop")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let allowed = r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap();
        assert!(allowed.contains("dpop"), "{path}: {allowed}");

        let key = DpopKey::generate();
        let token = token_for(&app.idp.issuer, Some(&key));
        let url = format!("{}{path}", app.address);
        let r = http
            .get(&url)
            .header("Origin", "https://ui.example.org")
            .header(header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", key.proof("GET", &url, Some(&token)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}: no nonce yet");
        let exposed = r.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .to_lowercase();
        assert!(
            exposed.contains("www-authenticate") && exposed.contains("dpop-nonce"),
            "{path}: {exposed}"
        );
    }
    assert_eq!(up.count(), 0);
}
