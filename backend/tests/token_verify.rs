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
    verify_with(token, &[])
}

/// `token verify` with more arguments after the token (`--proof`, `--method`, `--url`).
fn verify_with(token: &str, extra: &[&str]) -> (i32, String) {
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
        .args(extra)
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

/// A browser's DPoP key (P-256), as the SPA's non-extractable WebCrypto key signs.
struct DpopKey(aws_lc_rs::signature::EcdsaKeyPair);

impl DpopKey {
    fn generate() -> Self {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        Self(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }

    fn coordinates(&self) -> (String, String) {
        use aws_lc_rs::signature::KeyPair;
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let point = self.0.public_key().as_ref();
        (b64(&point[1..33]), b64(&point[33..65]))
    }

    /// RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
    fn jkt(&self) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let (x, y) = self.coordinates();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(canonical.as_bytes()))
    }

    /// A fresh proof for `GET url` carrying `ath` of `token`.
    fn proof(&self, url: &str, token: &str) -> String {
        use base64::Engine as _;
        use sha2::Digest as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let (x, y) = self.coordinates();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256",
            "jwk": {"kty": "EC", "crv": "P-256", "x": x, "y": y}});
        let claims = json!({"jti": format!("j-{}", now()), "htm": "GET", "htu": url,
            "iat": now(), "ath": b64(&sha2::Sha256::digest(token.as_bytes()))});
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .0
            .sign(&aws_lc_rs::rand::SystemRandom::new(), message.as_bytes())
            .unwrap();
        format!("{message}.{}", b64(signature.as_ref()))
    }
}

const API_URL: &str = "https://app.example/api/me";

fn bound_token(key: &DpopKey) -> String {
    let mut c = good_claims();
    c["cnf"] = json!({"jkt": key.jkt()});
    sign("issuer-rsa-a.pem", &c)
}

#[test]
fn a_bound_token_is_explained_with_its_keys_thumbprint_and_how_it_must_be_sent() {
    let key = DpopKey::generate();
    let (code, out) = verify(&bound_token(&key));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("binding (cnf):"), "{out}");
    assert!(out.contains(&format!("jkt:      {}", key.jkt())), "{out}");
    assert!(out.contains("RFC 7638 thumbprint"), "{out}");
    assert!(out.contains("`Authorization: DPoP <token>`"), "{out}");
    // An unbound token says nothing about a binding.
    let (_, out) = verify(&sign("issuer-rsa-a.pem", &good_claims()));
    assert!(!out.contains("binding"), "{out}");
}

#[test]
fn a_proof_of_the_tokens_key_is_checked_point_by_point() {
    let key = DpopKey::generate();
    let token = bound_token(&key);
    let proof = key.proof(API_URL, &token);
    let (code, out) = verify_with(
        &token,
        &["--proof", &proof, "--method", "GET", "--url", API_URL],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok    proof: typ, alg, signature"), "{out}");
    assert!(
        out.contains("ok    ath: the SHA-256 of this token"),
        "{out}"
    );
    assert!(out.contains("ok    iat:"), "{out}");
    assert!(
        out.contains(&format!(
            "ok    key: the proof's key {} is the token's cnf.jkt",
            key.jkt()
        )),
        "{out}"
    );
    assert!(out.contains("result: ACCEPTED"), "{out}");

    // The same proof for another request is named as such.
    let (code, out) = verify_with(
        &token,
        &["--proof", &proof, "--url", "https://app.example/api/other"],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("FAIL  proof: the DPoP proof's htu is not this request's URL"),
        "{out}"
    );
    assert!(out.contains("result: REJECTED"), "{out}");
}

#[test]
fn a_proof_of_another_key_is_refused_with_both_thumbprints() {
    let (holder, thief) = (DpopKey::generate(), DpopKey::generate());
    let token = bound_token(&holder);
    let proof = thief.proof(API_URL, &token);
    let (code, out) = verify_with(&token, &["--proof", &proof, "--url", API_URL]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("ok    proof:"),
        "the proof itself verifies with its own jwk: {out}"
    );
    assert!(
        out.contains(&format!(
            "FAIL  key: the proof's key {} is not the token's cnf.jkt {}",
            thief.jkt(),
            holder.jkt()
        )),
        "{out}"
    );
    assert!(out.contains("result: REJECTED"), "{out}");
}
