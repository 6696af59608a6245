//! The trust engine through the API: every key source with real signed tokens, the "JWT
//! bearer validation" checklist, claim mapping and policies, JWKS rotation, kid storms and a
//! JWKS endpoint that is down.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use jsonwebtoken::Algorithm;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::support::*;

const AUD: &str = "api-a";
const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-hmac";

struct TrustApp {
    app: TestApp,
    jwks: JwksServer,
    _secret_file: tempfile::NamedTempFile,
}

fn claims(iss: &str) -> Value {
    json!({
        "iss": iss, "sub": "user-1", "aud": AUD, "iat": now(), "exp": now() + 300,
        "preferred_username": "svc", "jti": format!("{}", rand_u64()),
    })
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed) ^ (now() as u64)
}

async fn spawn_trust_app() -> TrustApp {
    let jwks = JwksServer::start(jwks_of(&["issuer-rsa-a"])).await;
    let mut secret_file = tempfile::NamedTempFile::new().unwrap();
    secret_file.write_all(HMAC_SECRET).unwrap();
    let ec_pem = std::fs::read_to_string(fixture("issuer-ec.pub.pem")).unwrap();
    let issuers = vec![
        json!({"name": "rsa-url", "issuer": "https://rsa-url.example", "audiences": [AUD],
               "algorithms": ["RS256"], "jwks_url": jwks.url}),
        json!({"name": "rsa-file", "issuer": "https://rsa-file.example", "audiences": [AUD],
               "algorithms": ["RS256"], "jwks_file": fixture("issuer-rsa-b.jwks.json")}),
        json!({"name": "pem-rs", "issuer": "https://pem-rs.example", "audiences": [AUD],
               "algorithms": ["RS256"], "public_key_file": fixture("issuer-rsa-a.pub.pem")}),
        json!({"name": "traefik", "issuer": "https://pem-es.example", "audiences": [AUD],
               "algorithms": ["ES256"], "public_key": ec_pem,
               "policy": {"group_levels": {"viewers": 1, "editors": 2, "admins": 3}}}),
        json!({"name": "vault", "issuer": "https://pem-ed.example", "audiences": [AUD],
               "algorithms": ["EdDSA"], "public_key_file": fixture("issuer-ed25519.pub.pem"),
               "claims": {"roles": "role"},
               "policy": {"exactly_one_role_of": ["reader", "writer"]}}),
        json!({"name": "pi", "issuer": "https://hmac.example", "audiences": [AUD],
               "algorithms": ["HS256"], "hmac_secret_file": secret_file.path(),
               "claims": {"username": "username"},
               "policy": {"username_pattern": "[a-z]+"}}),
    ];
    let app = spawn_app_with(AppOptions {
        issuers,
        route_policies: vec![
            json!({"prefix": "/api/calls", "issuer": "traefik", "min_group_level": 3}),
        ],
        ..AppOptions::default()
    })
    .await;
    jwks.wait_for_fetches(1).await;
    TrustApp {
        app,
        jwks,
        _secret_file: secret_file,
    }
}

impl TrustApp {
    async fn status(&self, token: &str) -> StatusCode {
        self.app.api_get("/api/me", Some(token)).await.status()
    }

    async fn assert_invalid(&self, token: &str, why: &str) {
        let r = self.app.api_get("/api/me", Some(token)).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{why}");
        let challenge = r.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{why}: {challenge}"
        );
        assert!(!challenge.contains(token), "the token is never echoed");
    }
}

#[tokio::test]
async fn each_key_source_accepts_a_real_signed_token() {
    let t = spawn_trust_app().await;
    let cases = [
        (
            "https://rsa-url.example",
            sign_with(
                "issuer-rsa-a",
                Algorithm::RS256,
                Some("rsa-a"),
                &claims("https://rsa-url.example"),
            ),
        ),
        (
            "https://rsa-file.example",
            sign_with(
                "issuer-rsa-b",
                Algorithm::RS256,
                Some("rsa-b"),
                &claims("https://rsa-file.example"),
            ),
        ),
        (
            "https://pem-rs.example",
            sign_with(
                "issuer-rsa-a",
                Algorithm::RS256,
                None,
                &claims("https://pem-rs.example"),
            ),
        ),
        (
            "https://pem-es.example",
            sign_with(
                "issuer-ec",
                Algorithm::ES256,
                None,
                &claims("https://pem-es.example"),
            ),
        ),
        ("https://pem-ed.example", {
            let mut c = claims("https://pem-ed.example");
            c["role"] = json!("reader");
            sign_with("issuer-ed25519", Algorithm::EdDSA, None, &c)
        }),
        ("https://hmac.example", {
            let mut c = claims("https://hmac.example");
            c["username"] = json!("alice");
            sign_hmac(HMAC_SECRET, &c)
        }),
    ];
    for (iss, token) in cases {
        let r = t.app.api_get("/api/me", Some(&token)).await;
        assert_eq!(r.status(), StatusCode::OK, "{iss}");
        let me: shared::api::Me = r.json().await.unwrap();
        assert_eq!(me.issuer, iss);
        assert_eq!(me.user.id, "user-1");
    }
}

#[tokio::test]
async fn alg_none_and_empty_or_truncated_signatures_are_rejected() {
    let t = spawn_trust_app().await;
    let c = claims("https://pem-rs.example");
    for alg in ["none", "None", "NONE", "nOnE"] {
        t.assert_invalid(&raw_jwt(&json!({"alg": alg, "typ": "JWT"}), &c, b""), alg)
            .await;
        t.assert_invalid(&raw_jwt(&json!({"alg": alg}), &c, b"x"), alg)
            .await;
    }
    let good = sign_with("issuer-rsa-a", Algorithm::RS256, None, &c);
    let (head, sig) = good.rsplit_once('.').unwrap();
    t.assert_invalid(&format!("{head}."), "empty signature")
        .await;
    t.assert_invalid(
        &format!("{head}.{}", &sig[..sig.len() / 2]),
        "truncated signature",
    )
    .await;
    assert_eq!(
        t.status(&good).await,
        StatusCode::OK,
        "the untouched token passes"
    );
}

#[tokio::test]
async fn a_public_key_used_as_an_hmac_secret_is_rejected() {
    let t = spawn_trust_app().await;
    let public_pem = std::fs::read(fixture("issuer-rsa-a.pub.pem")).unwrap();
    for iss in ["https://pem-rs.example", "https://rsa-url.example"] {
        let forged = sign_hmac(&public_pem, &claims(iss));
        t.assert_invalid(&forged, iss).await;
    }
}

#[tokio::test]
async fn an_ecdsa_signature_of_zeros_is_rejected() {
    // CVE-2022-21449, "psychic signatures": r = s = 0.
    let t = spawn_trust_app().await;
    let token = raw_jwt(
        &json!({"alg": "ES256"}),
        &claims("https://pem-es.example"),
        &[0u8; 64],
    );
    t.assert_invalid(&token, "r=s=0").await;
}

#[tokio::test]
async fn embedded_jwk_jku_and_x5u_are_rejected_and_nothing_is_fetched() {
    let t = spawn_trust_app().await;
    let attacker_jwk: Value =
        serde_json::from_str::<Value>(&jwks_of(&["issuer-rsa-b"])).unwrap()["keys"][0].clone();
    let c = claims("https://pem-rs.example");
    // Signed by the attacker's key, which the header offers (or points to) as the one to use.
    let signed_by_attacker = |extra: Value| {
        let mut header = json!({"alg": "RS256", "kid": "rsa-b"});
        for (k, v) in extra.as_object().unwrap() {
            header[k] = v.clone();
        }
        let pem = std::fs::read(fixture("issuer-rsa-b.pem")).unwrap();
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap();
        use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(c.to_string())
        );
        let sig =
            jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::RS256).unwrap();
        format!("{signing_input}.{sig}")
    };
    for (what, extra) in [
        ("jwk", json!({"jwk": attacker_jwk})),
        (
            "jku",
            json!({"jku": format!("{}/attacker-jwks", t.jwks.base)}),
        ),
        (
            "x5u",
            json!({"x5u": format!("{}/attacker-cert", t.jwks.base)}),
        ),
    ] {
        t.assert_invalid(&signed_by_attacker(extra), what).await;
    }
    assert_eq!(
        t.jwks.other_fetches(),
        0,
        "no outbound fetch to the attacker's URLs"
    );
}

#[tokio::test]
async fn injected_kids_are_rejected() {
    let t = spawn_trust_app().await;
    // Signed with the issuer's own key (kid "rsa-a" in its JWKS), so the signature would pass:
    // only the kid can be what is refused.
    let signed_with_kid = |kid: &str| {
        sign_with(
            "issuer-rsa-a",
            Algorithm::RS256,
            Some(kid),
            &claims("https://rsa-url.example"),
        )
    };
    assert_eq!(t.status(&signed_with_kid("rsa-a")).await, StatusCode::OK);
    for kid in [
        "",
        "../../dev/null",
        "' OR '1'='1",
        "$(touch /tmp/pwned)",
        "rsa-a\0",
    ] {
        let r = t.app.api_get("/api/me", Some(&signed_with_kid(kid))).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{kid:?}");
        let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{kid:?}: {challenge}"
        );
        // Refused for its kid (no key of the issuer has it), not for its signature.
        assert!(challenge.contains("kid"), "{kid:?}: {challenge}");
        assert!(!challenge.contains("signature"), "{kid:?}: {challenge}");
    }
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    assert!(t.jwks.fetches() <= 2, "at most one refetch for all of them");
}

#[tokio::test]
async fn a_token_claiming_issuer_a_signed_with_issuer_bs_key_is_rejected() {
    let t = spawn_trust_app().await;
    // rsa-b is the key of "rsa-file"; the token says it is from "pem-rs".
    let token = sign_with(
        "issuer-rsa-b",
        Algorithm::RS256,
        Some("rsa-b"),
        &claims("https://pem-rs.example"),
    );
    t.assert_invalid(&token, "key of another issuer").await;
    let token = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        Some("rsa-a"),
        &claims("https://rsa-file.example"),
    );
    t.assert_invalid(&token, "key of another issuer").await;
}

#[tokio::test]
async fn missing_or_wrong_audience_issuer_arrays_and_untrusted_issuers_are_rejected() {
    let t = spawn_trust_app().await;
    let sign = |c: &Value| sign_with("issuer-rsa-a", Algorithm::RS256, None, c);
    let mut c = claims("https://pem-rs.example");
    c.as_object_mut().unwrap().remove("aud");
    t.assert_invalid(&sign(&c), "missing aud").await;
    c["aud"] = json!("another-api");
    t.assert_invalid(&sign(&c), "wrong aud").await;
    c["aud"] = json!("account");
    t.assert_invalid(&sign(&c), "Keycloak's account").await;
    let mut c = claims("https://pem-rs.example");
    c["iss"] = json!(["https://evil.example", "https://pem-rs.example"]);
    t.assert_invalid(&sign(&c), "iss array").await;
    let c = claims("https://not-configured.example");
    t.assert_invalid(&sign(&c), "untrusted issuer").await;
}

#[tokio::test]
async fn string_times_future_nbf_and_the_leeway_boundary_are_enforced() {
    let t = spawn_trust_app().await;
    let sign = |c: &Value| sign_with("issuer-rsa-a", Algorithm::RS256, None, c);
    let mut c = claims("https://pem-rs.example");
    c["exp"] = json!((now() + 300).to_string());
    t.assert_invalid(&sign(&c), "string exp").await;
    let mut c = claims("https://pem-rs.example");
    c["nbf"] = json!(now() + 120);
    t.assert_invalid(&sign(&c), "nbf in the future").await;
    let mut c = claims("https://pem-rs.example");
    c["nbf"] = json!((now() - 10).to_string());
    t.assert_invalid(&sign(&c), "string nbf").await;
    // Leeway is 30 s: 25 s past exp still passes, 35 s past does not.
    let mut c = claims("https://pem-rs.example");
    c["exp"] = json!(now() - 25);
    assert_eq!(t.status(&sign(&c)).await, StatusCode::OK, "within leeway");
    c["exp"] = json!(now() - 35);
    t.assert_invalid(&sign(&c), "beyond leeway").await;
}

#[tokio::test]
async fn id_tokens_assertions_and_refresh_tokens_are_not_api_bearer_tokens() {
    let t = spawn_trust_app().await;
    let app = &t.app;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let access = app.session_info(&client).await.auth_token;
    assert_eq!(
        t.status(&access).await,
        StatusCode::OK,
        "the access token itself passes"
    );
    // An ID token of the provider: same issuer and key, but aud = the client, typ ID.
    let id_token = sign_as_idp(&json!({
        "iss": app.idp.issuer, "sub": ALICE_SUB, "aud": CLIENT_ID, "iat": now(),
        "exp": now() + 300, "nonce": "n", "typ": "ID"
    }));
    t.assert_invalid(&id_token, "ID token").await;
    // A jwt-bearer client assertion: aud = the token endpoint.
    let assertion = sign_as_idp(&json!({
        "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": format!("{}/token", app.idp.issuer),
        "iat": now(), "exp": now() + 60, "jti": "a1"
    }));
    t.assert_invalid(&assertion, "client assertion").await;
    // A Keycloak-style refresh token (JWT, typ Refresh) for the API audience.
    let refresh = sign_as_idp(&json!({
        "iss": app.idp.issuer, "sub": ALICE_SUB, "aud": AUDIENCE, "iat": now(),
        "exp": now() + 300, "typ": "Refresh"
    }));
    t.assert_invalid(&refresh, "refresh token").await;
    t.assert_invalid("an-opaque-refresh-token", "opaque refresh token")
        .await;
}

#[tokio::test]
async fn keycloak_shaped_tokens_map_roles_from_realm_access() {
    let t = spawn_trust_app().await;
    let mut c = claims("https://pem-rs.example");
    c["realm_access"] = json!({"roles": ["admin", "user"]});
    c["groups"] = json!(["ops"]);
    c["email"] = json!("svc@example.org");
    c["azp"] = json!("gateway-client");
    let r = t
        .app
        .api_get(
            "/api/me",
            Some(&sign_with("issuer-rsa-a", Algorithm::RS256, None, &c)),
        )
        .await;
    let me: shared::api::Me = r.json().await.unwrap();
    assert_eq!(me.user.roles, vec!["admin", "user"]);
    assert_eq!(me.user.groups, vec!["ops"]);
    assert_eq!(me.user.email.as_deref(), Some("svc@example.org"));
}

#[tokio::test]
async fn the_most_access_group_wins() {
    let t = spawn_trust_app().await;
    let token = |groups: Value| {
        let mut c = claims("https://pem-es.example");
        c["groups"] = groups;
        sign_with("issuer-ec", Algorithm::ES256, None, &c)
    };
    let admin_and_viewer = token(json!(["viewers", "admins"]));
    let editor_and_viewer = token(json!(["viewers", "editors"]));
    // /api/calls needs access level 3 (admins) for this issuer; /api/me needs nothing.
    assert_eq!(
        t.app
            .api_get("/api/calls", Some(&admin_and_viewer))
            .await
            .status(),
        StatusCode::OK
    );
    let r = t.app.api_get("/api/calls", Some(&editor_and_viewer)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let challenge = r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(
        t.app
            .api_get("/api/me", Some(&editor_and_viewer))
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_vault_style_issuer_requires_exactly_one_configured_role() {
    let t = spawn_trust_app().await;
    let token = |role: Value| {
        let mut c = claims("https://pem-ed.example");
        c["role"] = role;
        sign_with("issuer-ed25519", Algorithm::EdDSA, None, &c)
    };
    assert_eq!(t.status(&token(json!("reader"))).await, StatusCode::OK);
    assert_eq!(t.status(&token(json!(["writer"]))).await, StatusCode::OK);
    assert_eq!(
        t.status(&token(json!(["reader", "writer"]))).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        t.status(&token(json!("admin"))).await,
        StatusCode::FORBIDDEN
    );
    let mut c = claims("https://pem-ed.example");
    c.as_object_mut().unwrap().remove("role");
    assert_eq!(
        t.status(&sign_with("issuer-ed25519", Algorithm::EdDSA, None, &c))
            .await,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_username_pattern_rejects_a_non_matching_user() {
    let t = spawn_trust_app().await;
    let token = |name: &str| {
        let mut c = claims("https://hmac.example");
        c["username"] = json!(name);
        sign_hmac(HMAC_SECRET, &c)
    };
    assert_eq!(t.status(&token("alice")).await, StatusCode::OK);
    for bad in ["Alice!", "alice\nadmin", "admin alice", ""] {
        assert_eq!(
            t.status(&token(bad)).await,
            StatusCode::FORBIDDEN,
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch() {
    let t = spawn_trust_app().await;
    assert_eq!(t.jwks.fetches(), 1, "startup fetch");
    t.jwks.set_doc(jwks_of(&["issuer-rsa-a", "issuer-rsa-b"]));
    let token = sign_with(
        "issuer-rsa-b",
        Algorithm::RS256,
        Some("rsa-b"),
        &claims("https://rsa-url.example"),
    );

    assert_eq!(t.status(&token).await, StatusCode::OK);
    assert_eq!(t.jwks.fetches(), 2, "exactly one refetch");
    assert_eq!(t.status(&token).await, StatusCode::OK);
    assert_eq!(t.jwks.fetches(), 2);
}

#[tokio::test]
async fn a_thousand_random_kids_cause_at_most_one_fetch_per_cooldown() {
    let t = spawn_trust_app().await;
    let c = claims("https://rsa-url.example");
    // An attacker needs no valid signature to make the bridge look a kid up.
    let tokens: Vec<String> = (0..1000)
        .map(|i| {
            raw_jwt(
                &json!({"alg": "RS256", "kid": format!("random-{i}-{}", rand_u64())}),
                &c,
                &[7u8; 256],
            )
        })
        .collect();
    for batch in tokens.chunks(50) {
        let answers =
            futures::future::join_all(batch.iter().map(|tok| t.app.api_get("/api/me", Some(tok))))
                .await;
        for a in answers {
            assert_eq!(a.status(), StatusCode::UNAUTHORIZED);
        }
    }
    assert!(
        t.jwks.fetches() <= 2,
        "startup + at most one: {}",
        t.jwks.fetches()
    );
}

#[tokio::test]
async fn with_the_jwks_endpoint_down_cached_keys_keep_working_and_unknown_kids_get_401() {
    let t = spawn_trust_app().await;
    t.jwks.set_down(true);
    // A token never seen before, signed with the cached key: verified with the cached key set.
    let fresh = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        Some("rsa-a"),
        &claims("https://rsa-url.example"),
    );
    assert_eq!(t.status(&fresh).await, StatusCode::OK);
    let unknown = sign_with(
        "issuer-rsa-b",
        Algorithm::RS256,
        Some("rsa-b"),
        &claims("https://rsa-url.example"),
    );
    t.assert_invalid(&unknown, "unknown kid while the JWKS is down")
        .await;
    // The failed refetch kept the old keys.
    let another = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        Some("rsa-a"),
        &claims("https://rsa-url.example"),
    );
    assert_eq!(t.status(&another).await, StatusCode::OK);
}

#[tokio::test]
async fn verified_tokens_are_forgotten_when_the_issuers_keys_change() {
    let t = spawn_trust_app().await;
    let token = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        Some("rsa-a"),
        &claims("https://rsa-url.example"),
    );
    assert_eq!(t.status(&token).await, StatusCode::OK);
    assert_eq!(t.status(&token).await, StatusCode::OK, "now from the cache");
    // rsa-a is revoked at the issuer; a token with the new kid makes the bridge refetch.
    t.jwks.set_doc(jwks_of(&["issuer-rsa-b"]));
    let new = sign_with(
        "issuer-rsa-b",
        Algorithm::RS256,
        Some("rsa-b"),
        &claims("https://rsa-url.example"),
    );
    assert_eq!(t.status(&new).await, StatusCode::OK);

    t.assert_invalid(&token, "cached, but its key is gone")
        .await;
}

#[tokio::test]
async fn an_oversized_token_is_refused_before_any_parsing() {
    let t = spawn_trust_app().await;
    let mut c = claims("https://pem-rs.example");
    c["padding"] = json!("x".repeat(20_000));
    let big = sign_with("issuer-rsa-a", Algorithm::RS256, None, &c);
    let r = t.app.api_get("/api/me", Some(&big)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("larger than"), "{challenge}");
}
