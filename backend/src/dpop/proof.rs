//! One DPoP proof (RFC 9449 section 4): a JWT with `typ: dpop+jwt`, an asymmetric `alg`, the
//! public `jwk` that signed it, and `jti`, `htm`, `htu`, `iat` (and `ath` with a token).
//! Verified with `jsonwebtoken` (its `aws_lc_rs` backend, as every other signature here); the
//! key's RFC 7638 thumbprint (`jsonwebtoken`'s `Jwk::thumbprint`) is what a bound token names.
//!
//! The checks follow RFC 9449 section 4.3 in order; each refusal says which one failed, never
//! echoing what the client sent.

use std::sync::Arc;

use axum::http::HeaderMap;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{AlgorithmParameters, EllipticCurve, Jwk, ThumbprintHash},
};

use crate::trust::signature::{self, ParsedKeys};
use serde::Deserialize;

/// The algorithms a proof may use (asymmetric only), in the order the challenge lists them.
pub const ALGORITHMS: &[Algorithm] = &[
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
];

/// A proof longer than this is refused before it is decoded (an RSA-4096 `jwk` and every
/// claim fit in well under half of it).
const MAX_PROOF_LEN: usize = 8 * 1024;
/// `jti` and `nonce` at most this long: they are stored (replay records) or compared.
const MAX_ID_LEN: usize = 256;
/// Private-key and symmetric members of a JWK (RFC 7518 section 6): a proof's `jwk` is the
/// public key only.
const PRIVATE_MEMBERS: &[&str] = &["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof is not acceptable. The texts go to the client (`error_description`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("missing DPoP proof")]
    Missing,
    #[error("more than one DPoP header")]
    Repeated,
    #[error("{0}")]
    Invalid(String),
}

fn invalid(why: &str) -> ProofError {
    ProofError::Invalid(why.to_owned())
}

/// What a verified proof says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 SHA-256 thumbprint of the proof's `jwk`, base64url.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The server nonce it carries, if any.
    pub nonce: Option<String>,
}

/// What the request says the proof must match.
pub struct Expected<'a> {
    pub method: &'a str,
    /// `scheme://host[:port]/path` as the browser made the request (no query or fragment).
    pub htu: &'a str,
    /// Whether `htu` is `public_url`'s origin followed by a path starting with `/` (what
    /// [`crate::dpop::Dpop::check_request`] builds): then it is a URL `url` parses, so a claim
    /// of exactly that text names the same URL and neither is parsed (any other text is
    /// compared normalised, as always).
    pub htu_from_origin: bool,
    /// The SHA-256 of the token sent with the proof ([`crate::trust::principal::token_digest`],
    /// kept with a verified token): its base64url must be the proof's `ath`.
    pub token_sha256: Option<[u8; 32]>,
    pub now: i64,
    pub max_age_secs: i64,
    pub leeway_secs: i64,
}

/// The request's single `DPoP` header: `Ok(None)` without one.
pub fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    let mut values = headers.get_all("dpop").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ProofError::Repeated);
    }
    let value = value
        .to_str()
        .map_err(|_| invalid("the DPoP header is not a JWT"))?
        .trim();
    if value.is_empty() {
        return Err(ProofError::Missing);
    }
    Ok(Some(value))
}

/// The protected header of a proof. `jwk` is read twice: as JSON, to refuse private members
/// (`Jwk` would ignore them), and as a `Jwk`.
#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: String,
    jwk: Option<serde_json::Map<String, serde_json::Value>>,
    crit: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<i64>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// A proof header's key, read once: its algorithm, the key parsed for it, its thumbprint.
pub struct ProofKey {
    alg: Algorithm,
    key: DecodingKey,
    parsed: ParsedKeys,
    jkt: String,
}

/// Keys of proof headers already seen, by the header's exact base64url text (what the
/// signature covers): a browser signs every proof with one key and the same header, so its
/// calls skip decoding the header, parsing the key and hashing the thumbprint. Only headers
/// whose proof verified are kept; bounded.
pub struct ProofKeys(quick_cache::sync::Cache<String, Arc<ProofKey>>);

/// Headers remembered at most (each a few hundred bytes with its parsed key).
const KEYS_KEPT: usize = 4096;

impl Default for ProofKeys {
    fn default() -> Self {
        Self(quick_cache::sync::Cache::new(KEYS_KEPT))
    }
}

/// Verifies `proof` against `expected` (everything but replay).
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<VerifiedProof, ProofError> {
    verify_with(proof, expected, None)
}

/// [`verify`], with the header's key from `keys` when it was seen before.
pub fn verify_with(
    proof: &str,
    expected: &Expected<'_>,
    keys: Option<&ProofKeys>,
) -> Result<VerifiedProof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(invalid("the DPoP proof is too long"));
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid("the DPoP proof is not a signed JWT"));
    };
    let (key, known) = match keys.and_then(|k| k.0.get(header_b64)) {
        Some(key) => (key, true),
        None => (Arc::new(header_key(header_b64)?), false),
    };
    let message_len = header_b64.len() + 1 + claims_b64.len();
    let verified = signature::verify(
        &key.key,
        &key.parsed,
        key.alg,
        &proof.as_bytes()[..message_len],
        signature,
    );
    if !verified {
        return Err(invalid(
            "the DPoP proof's signature does not verify with its jwk",
        ));
    }
    if let Some(keys) = keys
        && !known
    {
        keys.0.insert(header_b64.to_owned(), key.clone());
    }
    check_claims(claims_b64, expected, &key.jkt)
}

/// The key a proof's header names, after every header check.
fn header_key(header_b64: &str) -> Result<ProofKey, ProofError> {
    let header: ProofHeader = decode_part(header_b64)
        .ok_or_else(|| invalid("the DPoP proof's header is not valid JSON"))?;
    if !header
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(invalid("the DPoP proof's typ is not dpop+jwt"));
    }
    if header.crit.is_some() {
        return Err(invalid("the DPoP proof has critical header parameters"));
    }
    let alg = header
        .alg
        .parse::<Algorithm>()
        .ok()
        .filter(|a| ALGORITHMS.contains(a))
        .ok_or_else(|| invalid("the DPoP proof's alg is not one the bridge accepts"))?;
    let jwk_json = header
        .jwk
        .ok_or_else(|| invalid("the DPoP proof has no jwk"))?;
    if PRIVATE_MEMBERS.iter().any(|m| jwk_json.contains_key(*m)) {
        return Err(invalid("the DPoP proof's jwk is not a public key"));
    }
    let jwk: Jwk = serde_json::from_value(serde_json::Value::Object(jwk_json))
        .map_err(|_| invalid("the DPoP proof's jwk is not a public key the bridge reads"))?;
    if !key_fits(&jwk, alg) {
        return Err(invalid("the DPoP proof's jwk does not fit its alg"));
    }
    let key = DecodingKey::from_jwk(&jwk)
        .map_err(|_| invalid("the DPoP proof's jwk is not a public key the bridge reads"))?;
    Ok(ProofKey {
        alg,
        key,
        parsed: ParsedKeys::default(),
        jkt: jwk.thumbprint(ThumbprintHash::SHA256),
    })
}

/// The claims' checks (RFC 9449 section 4.3, steps 9 to 12).
fn check_claims(
    claims_b64: &str,
    expected: &Expected<'_>,
    jkt: &str,
) -> Result<VerifiedProof, ProofError> {
    let claims: ProofClaims = decode_part(claims_b64)
        .ok_or_else(|| invalid("the DPoP proof's claims are not valid JSON"))?;
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_ID_LEN)
        .ok_or_else(|| invalid("the DPoP proof has no usable jti"))?;
    if claims.htm.as_deref() != Some(expected.method) {
        return Err(invalid("the DPoP proof's htm is not this request's method"));
    }
    let same_url = claims.htu.as_deref().is_some_and(|got| {
        (expected.htu_from_origin && got == expected.htu)
            || normalised_htu(got)
                .zip(normalised_htu(expected.htu))
                .is_some_and(|(got, want)| got == want)
    });
    if !same_url {
        return Err(invalid("the DPoP proof's htu is not this request's URL"));
    }
    let iat = claims
        .iat
        .ok_or_else(|| invalid("the DPoP proof has no iat"))?;
    if iat < expected.now - expected.max_age_secs - expected.leeway_secs {
        return Err(invalid("the DPoP proof is too old (iat)"));
    }
    if iat > expected.now + expected.leeway_secs {
        return Err(invalid("the DPoP proof is issued in the future (iat)"));
    }
    if let Some(digest) = &expected.token_sha256 {
        // The digest's base64url, written on the stack (43 characters), compared as text.
        let mut want = [0u8; 44];
        let want = URL_SAFE_NO_PAD
            .encode_slice(digest, &mut want)
            .map(|n| &want[..n]);
        match claims.ath.as_deref() {
            None => return Err(invalid("the DPoP proof has no ath for the token sent")),
            Some(got) if Ok(got.as_bytes()) != want => {
                return Err(invalid("the DPoP proof's ath is not the token sent"));
            }
            Some(_) => {}
        }
    }
    let nonce = claims.nonce.filter(|n| n.len() <= MAX_ID_LEN);
    Ok(VerifiedProof {
        jkt: jkt.to_owned(),
        jti,
        iat,
        nonce,
    })
}

/// Whether `jwk` is a key of `alg`'s kind. It also keeps `Jwk::thumbprint` away from the
/// curve/type pairs it does not handle.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384) => p.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => {
            p.curve == EllipticCurve::Ed25519
        }
        (
            AlgorithmParameters::RSA(_),
            Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512,
        ) => true,
        _ => false,
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Option<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// `scheme://host[:port]/path` of an absolute http(s) URL, normalised as RFC 3986 section 6
/// asks (case of scheme and host, default port, percent-encoding): the query and fragment
/// are dropped (RFC 9449 section 4.3, step 9).
fn normalised_htu(url: &str) -> Option<String> {
    let mut url = url::Url::parse(url).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    Some(url.into())
}

/// `ath`: base64url of the SHA-256 of the token's ASCII text (the digest a verified token keeps).
pub fn ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(crate::trust::principal::token_digest(access_token))
}

/// The `algs` value of a challenge: `ES256 …`.
pub fn algs() -> String {
    ALGORITHMS
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
    };
    use serde_json::{Value, json};
    use sha2::{Digest, Sha256};

    use super::*;

    const NOW: i64 = 1_800_000_000;
    const URL: &str = "https://app.example/api/me";

    struct Key(EcdsaKeyPair);

    impl Key {
        fn new() -> Self {
            Self(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
        }
        fn jwk(&self) -> Value {
            let point = self.0.public_key().as_ref();
            json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            })
        }
        fn sign(&self, header: Value, claims: Value) -> String {
            let message = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self
                .0
                .sign(&SystemRandom::new(), message.as_bytes())
                .unwrap();
            format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
        fn header(&self) -> Value {
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
        }
        fn proof(&self, claims: Value) -> String {
            self.sign(self.header(), claims)
        }
    }

    fn claims() -> Value {
        json!({"jti": "j1", "htm": "GET", "htu": URL, "iat": NOW, "ath": ath("tok")})
    }

    fn expected() -> Expected<'static> {
        Expected {
            method: "GET",
            htu: URL,
            htu_from_origin: false,
            token_sha256: Some(Sha256::digest(b"tok").into()),
            now: NOW,
            max_age_secs: 60,
            leeway_secs: 5,
        }
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        if value.is_null() {
            claims.as_object_mut().unwrap().remove(key);
        } else {
            claims[key] = value;
        }
        claims
    }

    #[test]
    fn a_good_proof_gives_its_keys_rfc_7638_thumbprint() {
        let key = Key::new();
        let proof = key.proof(claims());
        let verified = verify(&proof, &expected()).unwrap();
        // RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace.
        let jwk = key.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        assert_eq!(
            verified.jkt,
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(verified.jti, "j1");
        assert_eq!(verified.iat, NOW);
    }

    #[test]
    fn the_url_is_compared_without_query_or_fragment_and_normalised() {
        let key = Key::new();
        for htu in [
            "https://APP.example:443/api/me",
            "https://app.example/api/me?x=1#f",
        ] {
            let proof = key.proof(with(claims(), "htu", json!(htu)));
            assert!(verify(&proof, &expected()).is_ok(), "{htu}");
        }
    }

    #[test]
    fn a_url_built_from_the_origin_is_matched_by_its_exact_text_or_else_normalised() {
        let key = Key::new();
        let from_origin = Expected {
            htu_from_origin: true,
            ..expected()
        };
        for htu in [
            URL,
            "https://APP.example:443/api/me",
            "https://app.example/api/me?x=1#f",
        ] {
            let proof = key.proof(with(claims(), "htu", json!(htu)));
            assert!(verify(&proof, &from_origin).is_ok(), "{htu}");
        }
        for htu in [
            "https://app.example/api/other",
            "https://evil.example/api/me",
            "http://app.example/api/me",
            "/api/me",
            "app.example/api/me",
        ] {
            let proof = key.proof(with(claims(), "htu", json!(htu)));
            let err = verify(&proof, &from_origin).unwrap_err();
            assert!(err.to_string().contains("htu"), "{htu}: {err}");
        }
    }

    #[test]
    fn a_proof_that_does_not_match_the_request_is_refused_with_the_reason() {
        let key = Key::new();
        let cases: Vec<(Value, &str)> = vec![
            (with(claims(), "htm", json!("POST")), "htm"),
            (
                with(claims(), "htu", json!("https://app.example/api/other")),
                "htu",
            ),
            (
                with(claims(), "htu", json!("https://evil.example/api/me")),
                "htu",
            ),
            (with(claims(), "htu", json!("/api/me")), "htu"),
            (with(claims(), "iat", json!(NOW - 66)), "too old"),
            (with(claims(), "iat", json!(NOW + 6)), "future"),
            (with(claims(), "iat", Value::Null), "iat"),
            (with(claims(), "ath", Value::Null), "no ath"),
            (with(claims(), "ath", json!(ath("other"))), "ath"),
            (with(claims(), "jti", Value::Null), "jti"),
            (with(claims(), "jti", json!("")), "jti"),
            (with(claims(), "jti", json!("x".repeat(300))), "jti"),
        ];
        for (claims, why) in cases {
            let err = verify(&key.proof(claims.clone()), &expected()).unwrap_err();
            assert!(err.to_string().contains(why), "{claims}: {err}");
        }
        // Inside the window, both edges.
        for iat in [NOW - 65, NOW + 5] {
            let proof = key.proof(with(claims(), "iat", json!(iat)));
            assert!(verify(&proof, &expected()).is_ok(), "{iat}");
        }
    }

    #[test]
    fn a_proof_without_a_token_needs_no_ath() {
        let key = Key::new();
        let proof = key.proof(with(claims(), "ath", Value::Null));
        let session = Expected {
            token_sha256: None,
            ..expected()
        };
        assert!(verify(&proof, &session).is_ok());
    }

    #[test]
    fn headers_that_are_not_a_public_asymmetric_proof_are_refused() {
        let key = Key::new();
        let mut private = key.jwk();
        private["d"] = json!("AAAA");
        let cases: Vec<(Value, &str)> = vec![
            (
                json!({"typ": "JWT", "alg": "ES256", "jwk": key.jwk()}),
                "typ",
            ),
            (json!({"alg": "ES256", "jwk": key.jwk()}), "typ"),
            (
                json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()}),
                "alg",
            ),
            (
                json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.jwk()}),
                "alg",
            ),
            (json!({"typ": "dpop+jwt", "alg": "ES256"}), "no jwk"),
            (
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                "not a public key",
            ),
            (
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "oct", "k": "c2VjcmV0"}}),
                "not a public key",
            ),
            (
                json!({"typ": "dpop+jwt", "alg": "ES384", "jwk": key.jwk()}),
                "does not fit",
            ),
            (
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk(), "crit": ["x"]}),
                "critical",
            ),
        ];
        for (header, why) in cases {
            let err = verify(&key.sign(header.clone(), claims()), &expected()).unwrap_err();
            assert!(err.to_string().contains(why), "{header}: {err}");
        }
    }

    #[test]
    fn a_signature_by_another_key_or_a_changed_proof_is_refused() {
        let (key, other) = (Key::new(), Key::new());
        // Another key signed, the header names the first.
        let forged = other.sign(key.header(), claims());
        let err = verify(&forged, &expected()).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        // alg none: no signature at all.
        let header = URL_SAFE_NO_PAD
            .encode(json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()}).to_string());
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert!(verify(&format!("{header}.{body}."), &expected()).is_err());
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(verify(bad, &expected()).is_err(), "{bad}");
        }
        assert!(verify(&"a".repeat(MAX_PROOF_LEN + 1), &expected()).is_err());
    }

    #[test]
    fn a_header_seen_before_skips_its_parsing_but_never_the_signature_or_the_claims() {
        let (key, other) = (Key::new(), Key::new());
        let keys = ProofKeys::default();
        let first = key.proof(claims());
        let verified = verify_with(&first, &expected(), Some(&keys)).unwrap();
        assert_eq!(keys.0.len(), 1);
        // The same header again: from the cache, same thumbprint.
        let again = key.proof(with(claims(), "jti", json!("j2")));
        assert_eq!(
            verify_with(&again, &expected(), Some(&keys)).unwrap().jkt,
            verified.jkt
        );
        // The cached header with another key's signature, or with claims that do not match.
        let forged = other.sign(key.header(), claims());
        let err = verify_with(&forged, &expected(), Some(&keys)).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        let wrong_url = key.proof(with(claims(), "htu", json!("https://app.example/x")));
        assert!(verify_with(&wrong_url, &expected(), Some(&keys)).is_err());
        // A header whose proof does not verify is not remembered.
        let bad = Key::new();
        let _ = verify_with(
            &other.sign(bad.header(), claims()),
            &expected(),
            Some(&keys),
        );
        assert_eq!(keys.0.len(), 1);
    }

    #[test]
    fn exactly_one_dpop_header_is_read() {
        let mut headers = HeaderMap::new();
        assert_eq!(proof_header(&headers), Ok(None));
        headers.append("dpop", "a.b.c".parse().unwrap());
        assert_eq!(proof_header(&headers), Ok(Some("a.b.c")));
        headers.append("DPoP", "d.e.f".parse().unwrap());
        assert_eq!(proof_header(&headers), Err(ProofError::Repeated));
    }

    #[test]
    fn the_challenge_lists_es256_first_and_no_symmetric_algorithm() {
        let algs = algs();
        assert!(algs.starts_with("ES256 "), "{algs}");
        assert!(!algs.contains("HS"), "{algs}");
    }
}
