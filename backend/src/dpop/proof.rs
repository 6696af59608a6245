//! One DPoP proof (RFC 9449 section 4): a JWT with `typ: dpop+jwt`, an asymmetric `alg`, the
//! public `jwk` that signed it, and `jti`, `htm`, `htu`, `iat` (and `ath` with a token).
//! Verified with `jsonwebtoken`; the key's RFC 7638 thumbprint is what a bound token names.

use axum::http::HeaderMap;

/// The algorithms a proof may use (asymmetric only), in the order the challenge lists them.
pub const ALGORITHMS: &[jsonwebtoken::Algorithm] = &[jsonwebtoken::Algorithm::ES256];

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
    /// The token sent with the proof: its SHA-256 must be the proof's `ath`.
    pub access_token: Option<&'a str>,
    pub now: i64,
    pub max_age_secs: i64,
    pub leeway_secs: i64,
}

/// The request's single `DPoP` header: `Ok(None)` without one.
pub fn proof_header(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    let _ = headers;
    todo!("dpop: proof_header")
}

/// Verifies `proof` against `expected` (everything but replay).
pub fn verify(proof: &str, expected: &Expected<'_>) -> Result<VerifiedProof, ProofError> {
    let _ = (proof, expected);
    todo!("dpop: verify")
}

/// `ath`: base64url of the SHA-256 of the token's ASCII text.
pub fn ath(access_token: &str) -> String {
    let _ = access_token;
    todo!("dpop: ath")
}

/// The `algs` value of a challenge: `ES256 …`.
pub fn algs() -> String {
    ALGORITHMS
        .iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}
