//! The RFC 7523 grant as third-party clients use it: ZITADEL's documented PyJWT client (no
//! `jti`, used once all the same), the trust engine's JWT rules applied at `/oauth/token`
//! exactly as at `/api`, and the key's own algorithm only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use crate::authority::{KeyFile, create_service_user, good_claims, grant, the_invalid_grant};
use crate::support::*;

/// A trusted issuer with a static RSA key, for the `/api` half of each comparison.
const ISS: &str = "https://pem-rs.example";
const AUD: &str = "api-a";

fn options() -> AppOptions {
    AppOptions {
        authority: Some(json!({"leeway_secs": 2})),
        issuers: vec![
            json!({"name": "pem-rs", "issuer": ISS, "audiences": [AUD], "algorithms": ["RS256"],
                   "public_key_file": fixture("issuer-rsa-a.pub.pem")}),
        ],
        ..AppOptions::default()
    }
}

/// ZITADEL's documented client ("Use a private key JWT" with PyJWT), unchanged but for where
/// the key file and the audience come from. It prints the assertion it built.
const ZITADEL_SNIPPET: &str = r#"
import json, sys, time, jwt  # PyJWT
AUDIENCE = sys.argv[2]
with open(sys.argv[1]) as f: key = json.load(f)
payload = {"iss": key["userId"], "sub": key["userId"], "aud": AUDIENCE, "iat": int(time.time()), "exp": int(time.time()) + 3600}
header = {"alg": "RS256", "kid": key["keyId"]}
encoded = jwt.encode(payload, key["key"], algorithm="RS256", headers=header)
print(encoded)
"#;

async fn grant_with_scope(app: &TestApp, assertion: &str, scope: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/oauth/token", app.address))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("scope", scope),
            ("assertion", assertion),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn zitadels_documented_pyjwt_client_without_jti_gets_one_token_per_assertion() {
    let app = spawn_app_with(options()).await;
    // The bridge's key file is ZITADEL's format, so the snippet reads it as it is.
    create_service_user(&app, "zitadel-doc", &["--alg", "RS256"]).await;
    let key_file = app.dir.path().join("zitadel-doc.json");
    let python = repo_root().join("tools/privacyidea-venv/bin/python");
    assert!(python.exists(), "run scripts/install-deps.sh (PyJWT)");
    let out = tokio::process::Command::new(python)
        .arg("-c")
        .arg(ZITADEL_SNIPPET)
        .arg(&key_file)
        .arg(&app.authority().issuer)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let assertion = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let payload = assertion.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert!(
        claims.get("jti").is_none(),
        "the documented client sends no jti"
    );

    let first = grant_with_scope(&app, &assertion, "openid").await;
    assert_eq!(first.status(), StatusCode::OK);
    let token = first.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        app.api_get("/api/me", Some(&token)).await.status(),
        StatusCode::OK
    );

    let again = grant_with_scope(&app, &assertion, "openid").await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(again.json::<Value>().await.unwrap(), the_invalid_grant());
}

/// A JWT with exactly this header and payload text, signed by `key` with `alg` (the payload is
/// text so that a claim name can occur twice).
fn sign_raw(header: &Value, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// One malformed shape: what it does to a good token's header and claims, and optionally to
/// the payload's text.
struct Shape {
    name: &'static str,
    header: fn(&mut Map<String, Value>),
    claims: fn(&mut Map<String, Value>),
    text: fn(String) -> String,
}

fn keep(_: &mut Map<String, Value>) {}
fn same(text: String) -> String {
    text
}

fn shapes() -> Vec<Shape> {
    let shape = |name, header, claims| Shape {
        name,
        header,
        claims,
        text: same,
    };
    vec![
        shape("iss as an array", keep, |c| {
            let iss = c["iss"].clone();
            c.insert("iss".into(), json!([iss]));
        }),
        shape("iss as an array with another", keep, |c| {
            let iss = c["iss"].clone();
            c.insert("iss".into(), json!(["https://evil.example", iss]));
        }),
        shape("exp as a string", keep, |c| {
            let exp = c["exp"].to_string();
            c.insert("exp".into(), json!(exp));
        }),
        shape("nbf as a string", keep, |c| {
            c.insert("nbf".into(), json!((now() - 10).to_string()));
        }),
        shape("iat as a string", keep, |c| {
            let iat = c["iat"].to_string();
            c.insert("iat".into(), json!(iat));
        }),
        shape("iat as a boolean", keep, |c| {
            c.insert("iat".into(), json!(true));
        }),
        shape("sub as a number", keep, |c| {
            c.insert("sub".into(), json!(42));
        }),
        shape("sub as an array", keep, |c| {
            let sub = c["sub"].clone();
            c.insert("sub".into(), json!([sub]));
        }),
        shape("aud as a number", keep, |c| {
            c.insert("aud".into(), json!(7));
        }),
        shape("aud as an object", keep, |c| {
            let aud = c["aud"].clone();
            c.insert("aud".into(), json!({"aud": aud}));
        }),
        shape("aud as an array holding a number", keep, |c| {
            let aud = c["aud"].clone();
            c.insert("aud".into(), json!([aud, 7]));
        }),
        shape(
            "a crit header",
            |h| {
                h.insert("crit".into(), json!(["exp"]));
            },
            keep,
        ),
        shape(
            "a jku header",
            |h| {
                h.insert("jku".into(), json!("https://evil.example/jwks"));
            },
            keep,
        ),
        shape(
            "an x5u header",
            |h| {
                h.insert("x5u".into(), json!("https://evil.example/cert"));
            },
            keep,
        ),
        shape(
            "an embedded jwk",
            |h| {
                h.insert("jwk".into(), json!({"kty": "oct", "k": "AAAA"}));
            },
            keep,
        ),
        shape(
            "an x5c header",
            |h| {
                h.insert("x5c".into(), json!(["MIIB"]));
            },
            keep,
        ),
        shape(
            "a kid that is not a string",
            |h| {
                h.insert("kid".into(), json!(["k"]));
            },
            keep,
        ),
        Shape {
            name: "sub twice, the last one right",
            header: keep,
            claims: keep,
            // The good `sub` stays last; a reader taking the first sees another subject.
            text: |t| t.replacen('{', "{\"sub\":\"someone-else\",", 1),
        },
        Shape {
            name: "iss twice, the last one right",
            header: keep,
            claims: keep,
            text: |t| t.replacen('{', "{\"iss\":\"someone-else\",", 1),
        },
    ]
}

fn apply(shape: &Shape, header: &Value, claims: &Value, key: &EncodingKey) -> String {
    let mut header = header.as_object().unwrap().clone();
    let mut claims = claims.as_object().unwrap().clone();
    (shape.header)(&mut header);
    (shape.claims)(&mut claims);
    let text = (shape.text)(Value::Object(claims).to_string());
    sign_raw(&Value::Object(header), &text, key, Algorithm::RS256)
}

#[tokio::test]
async fn every_malformed_shape_the_engine_refuses_at_the_api_the_token_endpoint_refuses_too() {
    let app = spawn_app_with(options()).await;
    let user: KeyFile = create_service_user(&app, "shapes", &["--alg", "RS256"]).await;
    let user_key = EncodingKey::from_rsa_pem(user.pem.as_bytes()).unwrap();
    let issuer_key =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("issuer-rsa-a.pem")).unwrap()).unwrap();
    let api_header = json!({"alg": "RS256", "typ": "JWT"});
    let api_claims = || {
        json!({"iss": ISS, "sub": "user-1", "aud": AUD, "iat": now(), "exp": now() + 300,
               "preferred_username": "svc"})
    };
    let grant_header = json!({"alg": "RS256", "kid": user.key_id});

    // Unchanged, both are accepted: each refusal below is the shape's doing.
    let untouched = Shape {
        name: "untouched",
        header: keep,
        claims: keep,
        text: same,
    };
    let api = app
        .api_get(
            "/api/me",
            Some(&apply(&untouched, &api_header, &api_claims(), &issuer_key)),
        )
        .await;
    assert_eq!(api.status(), StatusCode::OK);
    let good = apply(
        &untouched,
        &grant_header,
        &good_claims(&app, &user),
        &user_key,
    );
    assert_eq!(grant(&app, &good).await.status(), StatusCode::OK);

    for shape in shapes() {
        let why = shape.name;
        let token = apply(&shape, &api_header, &api_claims(), &issuer_key);
        let api = app.api_get("/api/me", Some(&token)).await;
        assert!(
            matches!(
                api.status(),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
            ),
            "/api accepted {why}: {}",
            api.status()
        );
        // A fresh jti each time: a refusal is never a replay's.
        let assertion = apply(&shape, &grant_header, &good_claims(&app, &user), &user_key);
        let r = grant(&app, &assertion).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "/oauth/token: {why}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            the_invalid_grant(),
            "{why}"
        );
    }
}

#[tokio::test]
async fn an_assertion_is_checked_with_the_algorithm_its_key_was_registered_for_and_no_other() {
    let app = spawn_app_with(options()).await;
    let rs = create_service_user(&app, "rs-only", &["--alg", "RS256"]).await;
    let ps = create_service_user(&app, "ps-only", &["--alg", "PS256"]).await;
    for (user, right, wrong) in [
        (&rs, Algorithm::RS256, Algorithm::PS256),
        (&ps, Algorithm::PS256, Algorithm::RS256),
    ] {
        let sign = |alg| {
            crate::authority::sign_assertion(
                user,
                alg,
                Some(&user.key_id),
                &good_claims(&app, user),
            )
        };
        let r = grant(&app, &sign(wrong)).await;
        assert_eq!(
            r.status(),
            StatusCode::BAD_REQUEST,
            "{wrong:?} by a {right:?} key"
        );
        assert_eq!(r.json::<Value>().await.unwrap(), the_invalid_grant());
        let r = grant(&app, &sign(right)).await;
        assert_eq!(r.status(), StatusCode::OK, "{right:?} by a {right:?} key");
    }
}

/// The other valid ECDSA signature of the same message: `(r, n - s)` for P-256's order `n`.
fn ecdsa_twin(signature_b64: &str) -> String {
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut sig = URL_SAFE_NO_PAD.decode(signature_b64).unwrap();
    assert_eq!(sig.len(), 64);
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = i16::from(N[i]) - i16::from(sig[32 + i]) - borrow;
        borrow = i16::from(d < 0);
        sig[32 + i] = d.rem_euclid(256) as u8;
    }
    URL_SAFE_NO_PAD.encode(sig)
}

/// Without `jti`, an assertion counts as used by its signed part: a copy with the other valid
/// ECDSA signature of the same header and payload is the same assertion, not a new one.
#[tokio::test]
async fn an_assertion_without_jti_cannot_be_replayed_with_its_ecdsa_twin_signature() {
    let app = spawn_app_with(options()).await;
    let user = create_service_user(&app, "es-no-jti", &[]).await;
    let mut claims = good_claims(&app, &user);
    claims.as_object_mut().unwrap().remove("jti");
    let assertion =
        crate::authority::sign_assertion(&user, Algorithm::ES256, Some(&user.key_id), &claims);
    let twin_of = |a: &str| {
        let (message, signature) = a.rsplit_once('.').unwrap();
        format!("{message}.{}", ecdsa_twin(signature))
    };
    let twin = twin_of(&assertion);
    assert_ne!(twin, assertion);
    // A twin verifies on its own (so the refusal below is the replay record's doing).
    claims["exp"] = json!(claims["exp"].as_i64().unwrap() + 1);
    let other =
        crate::authority::sign_assertion(&user, Algorithm::ES256, Some(&user.key_id), &claims);
    assert_eq!(grant(&app, &twin_of(&other)).await.status(), StatusCode::OK);

    assert_eq!(grant(&app, &assertion).await.status(), StatusCode::OK);
    let r = grant(&app, &twin).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.json::<Value>().await.unwrap(), the_invalid_grant());
}
