//! `login-bridge token verify`, run as the operator runs it: the real binary, a config file,
//! a token; the report must name the issuer, every check and its reason, and never the token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{path::PathBuf, process::Command};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn sign(key: &str, claims: &Value) -> String {
    let pem = std::fs::read(fixture(key)).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
}

fn good_claims() -> Value {
    json!({
        "iss": "https://gateway.example", "sub": "u-42", "aud": "my-api",
        "iat": now(), "exp": now() + 600, "preferred_username": "carol",
        "realm_access": {"roles": ["auditor"]}, "azp": "gateway",
    })
}

/// Runs `token verify` with a config trusting one PEM-keyed issuer; returns (exit code, stdout).
fn verify(token: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[oidc]
issuer = "http://127.0.0.1:9"
client_id = "ui"
client_secret = "not-used-here"
api_audience = "my-api"

[[issuers]]
name = "gateway"
issuer = "https://gateway.example"
audiences = ["my-api"]
algorithms = ["RS256"]
public_key_file = "{}"
"#,
            fixture("issuer-rsa-a.pub.pem").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
        .args(["token", "verify", "--config"])
        .arg(&config)
        .arg(token)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains(token), "the token is never printed");
    (out.status.code().unwrap_or(-1), stdout)
}

#[test]
fn a_valid_token_is_accepted_with_its_checks_and_principal() {
    let token = sign("issuer-rsa-a.pem", &good_claims());
    let (code, out) = verify(&token);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("issuer: gateway (https://gateway.example"),
        "{out}"
    );
    for check in [
        "size",
        "header",
        "key",
        "signature",
        "exp",
        "iss",
        "aud",
        "typ",
    ] {
        assert!(out.contains(&format!("ok    {check}:")), "{check} in {out}");
    }
    assert!(out.contains("username: carol"), "{out}");
    assert!(out.contains("roles:    [\"auditor\"]"), "{out}");
    assert!(out.contains("token:    gateway"), "{out}");
    assert!(out.contains("result: ACCEPTED"), "{out}");
}

#[test]
fn an_expired_token_names_the_expiry() {
    let mut c = good_claims();
    c["exp"] = json!(now() - 3600);
    let (code, out) = verify(&sign("issuer-rsa-a.pem", &c));
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  exp: token has expired"), "{out}");
    assert!(
        out.contains("ok    signature"),
        "the other checks still show: {out}"
    );
    assert!(out.contains("result: REJECTED"), "{out}");
}

#[test]
fn a_wrong_audience_and_a_foreign_signature_are_named() {
    let mut c = good_claims();
    c["aud"] = json!("account");
    let (code, out) = verify(&sign("issuer-rsa-a.pem", &c));
    assert_eq!(code, 1);
    assert!(out.contains("FAIL  aud: audience does not match"), "{out}");

    let (code, out) = verify(&sign("issuer-rsa-b.pem", &good_claims()));
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL  signature: signature does not verify"),
        "{out}"
    );
}

#[test]
fn an_untrusted_issuer_and_garbage_are_named() {
    let mut c = good_claims();
    c["iss"] = json!("https://stranger.example");
    let (code, out) = verify(&sign("issuer-rsa-a.pem", &c));
    assert_eq!(code, 1);
    assert!(
        out.contains("https://stranger.example (not configured)"),
        "{out}"
    );
    assert!(out.contains("FAIL  issuer: issuer is not trusted"), "{out}");

    let (code, out) = verify("not-a-jwt");
    assert_eq!(code, 1);
    assert!(out.contains("FAIL  iss: token is malformed"), "{out}");
    assert!(
        out.contains("OIDC provider could not be discovered"),
        "{out}"
    );
}

/// A payload that names a claim twice: the bridge refuses it (RFC 7519 section 4 allows
/// refusing or taking the last one) so that it and an upstream API cannot read two users.
#[test]
fn a_claim_named_twice_is_refused() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let good = good_claims().to_string();
    let twice = good.replacen("\"sub\":\"u-42\"", "\"sub\":\"u-42\",\"sub\":\"admin\"", 1);
    assert_ne!(good, twice, "the payload names sub twice");
    let pem = std::fs::read(fixture("issuer-rsa-a.pem")).unwrap();
    let key = EncodingKey::from_rsa_pem(&pem).unwrap();
    let signed = |payload: &str| {
        let message = format!("{}.{}", b64(r#"{"alg":"RS256","typ":"JWT"}"#), b64(payload));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &key, Algorithm::RS256);
        format!("{message}.{}", signature.unwrap())
    };
    let (code, out) = verify(&signed(&good));
    assert_eq!(code, 0, "the same payload with sub once is accepted: {out}");
    let (code, out) = verify(&signed(&twice));
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  iss: token is malformed: a claim name occurs twice in one object"),
        "{out}"
    );
    assert!(out.contains("result: REJECTED"), "{out}");
}
