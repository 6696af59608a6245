//! A DPoP key as a test's browser: ECDSA P-256 (the SPA's WebCrypto key), proofs as RFC 9449
//! section 4.2 writes them, and any header or claims signed as given for the attack cases.

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub struct DpopKey(EcdsaKeyPair);

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A fresh random `jti`.
pub fn jti() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("random bytes");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `ath` of a token: base64url(SHA-256(token)).
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

impl DpopKey {
    pub fn generate() -> Self {
        Self(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("a P-256 key"))
    }

    /// The public key as a JWK (`kty`, `crv`, `x`, `y`).
    pub fn public_jwk(&self) -> Value {
        let point = self.0.public_key().as_ref();
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    /// RFC 7638 SHA-256 thumbprint: what a bound token's `cnf.jkt` names.
    pub fn jkt(&self) -> String {
        let jwk = self.public_jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap_or_default(),
            jwk["y"].as_str().unwrap_or_default()
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The protected header of a good proof.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.public_jwk()})
    }

    /// The claims of a good proof for `method` `url` (`ath` of `token` if given).
    pub fn claims(&self, method: &str, url: &str, token: Option<&str>) -> Value {
        let mut claims = json!({"jti": jti(), "htm": method, "htu": url, "iat": now()});
        if let Some(token) = token {
            claims["ath"] = Value::String(ath(token));
        }
        claims
    }

    /// A good proof: fresh `jti`, `iat` now.
    pub fn proof(&self, method: &str, url: &str, token: Option<&str>) -> String {
        self.sign(self.header(), self.claims(method, url, token))
    }

    /// `header` and `claims` signed with this key, exactly as given.
    pub fn sign(&self, header: Value, claims: Value) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .0
            .sign(&SystemRandom::new(), message.as_bytes())
            .expect("an ECDSA signature");
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}
