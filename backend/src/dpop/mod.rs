//! DPoP (RFC 9449): the SPA's token bound to the browser's non-extractable key.
//!
//! The bridge mints the SPA's token itself (`session.token_profile`, local accounts), so it can
//! put the thumbprint of the browser's key in the token (`cnf.jkt`) and then accept that token
//! only with a fresh proof signed by the key. Script injected into the page can still sign
//! proofs while the page is open; it can take neither the token nor the key elsewhere.
//!
//! - [`proof`]: reading and verifying one proof (RFC 9449 section 4.3);
//! - [`replay`]: proofs already used, by `jti`, in the configured store (shared by replicas);
//! - [`nonce`]: server nonces (`session.dpop_nonce`), stateless, accepted by every replica;
//! - [`Dpop`]: what handlers call: the mode, the checks in order, the refusal's challenge.

pub mod nonce;
pub mod proof;
pub mod replay;

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method},
    middleware::Next,
    response::Response,
};

use crate::settings::DpopMode;
pub use proof::{ProofError, VerifiedProof};

/// The DPoP checks of one bridge: shared by `/auth/session`, `/api` and the upstreams.
pub struct Dpop {
    pub mode: DpopMode,
    /// `scheme://host[:port]` of `public_url`: the origin the browser's `htu` names.
    pub origin: String,
    pub max_age_secs: i64,
    pub leeway_secs: i64,
    pub replay: replay::ProofReplay,
    /// With `session.dpop_nonce`: every proof must carry a recent nonce of these.
    pub nonces: Option<nonce::ServerNonces>,
    /// Keys of the proof headers seen lately, parsed once.
    pub keys: proof::ProofKeys,
}

/// Why a request's proof is refused: 401 with `WWW-Authenticate: DPoP error="…"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpopRefusal {
    /// The proof is missing, malformed, or does not match the request or the token
    /// (`invalid_dpop_proof`).
    #[error("invalid DPoP proof: {0}")]
    InvalidProof(ProofError),
    /// The proof was used before.
    #[error("invalid DPoP proof: replayed")]
    Replayed,
    /// The token is bound and was sent as Bearer, or is unbound and was sent as DPoP
    /// (`invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
    /// The proof carries no nonce, or one no longer (or never) valid: 401
    /// `error="use_dpop_nonce"` with this fresh nonce in `DPoP-Nonce` (RFC 9449 section 8).
    #[error("use the DPoP-Nonce this answer carries")]
    UseNonce(String),
    /// The replay records cannot be written (503); nothing is accepted unrecorded.
    #[error("replay records unavailable: {0}")]
    Unavailable(String),
}

impl DpopRefusal {
    /// The `error` of the challenge and of the JSON body (RFC 9449 sections 7.1 and 8).
    pub fn error_code(&self) -> &'static str {
        match self {
            Self::InvalidProof(_) | Self::Replayed => "invalid_dpop_proof",
            Self::InvalidToken(_) => "invalid_token",
            Self::UseNonce(_) => "use_dpop_nonce",
            Self::Unavailable(_) => "temporarily_unavailable",
        }
    }
}

impl Dpop {
    /// Verifies the request's `DPoP` header, if any: `Ok(None)` when it carries none.
    /// `path` is the path the browser asked for (before any prefix was stripped);
    /// `token_sha256` is the SHA-256 of the token sent ([`crate::trust::principal::token_digest`]),
    /// `Some` where the proof must carry `ath` (every call but `/auth/session`). A verified
    /// proof's `jti` has been recorded (a second use is refused).
    pub async fn check_request(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        token_sha256: Option<[u8; 32]>,
        now: i64,
    ) -> Result<Option<VerifiedProof>, DpopRefusal> {
        let Some(proof) = proof::proof_header(headers).map_err(DpopRefusal::InvalidProof)? else {
            return Ok(None);
        };
        let htu = format!("{}{}", self.origin, path);
        let verified = proof::verify_with(
            proof,
            &proof::Expected {
                method: method.as_str(),
                htu: &htu,
                // `origin` is `public_url`'s, serialised by `url` (http or https: settings
                // refuse any other scheme, checked again here as it costs nothing).
                htu_from_origin: path.starts_with('/')
                    && (self.origin.starts_with("https://") || self.origin.starts_with("http://")),
                token_sha256,
                now,
                max_age_secs: self.max_age_secs,
                leeway_secs: self.leeway_secs,
            },
            Some(&self.keys),
        )
        .map_err(DpopRefusal::InvalidProof)?;
        // Before the replay record: a proof refused for its nonce costs the store nothing (the
        // client signs a new one, with a new `jti`, anyway).
        if let Some(nonces) = &self.nonces
            && !verified
                .nonce
                .as_deref()
                .is_some_and(|n| nonces.accepts(n, now))
        {
            return Err(DpopRefusal::UseNonce(nonces.current(now)));
        }
        // Past this moment the proof's `iat` is refused anyway: the record may go.
        let until = verified
            .iat
            .saturating_add(record_lives_secs(self.max_age_secs, self.leeway_secs));
        match self
            .replay
            .first_use(&verified.jkt, &verified.jti, verified.iat, until, now)
            .await
        {
            Ok(true) => Ok(Some(verified)),
            Ok(false) => Err(DpopRefusal::Replayed),
            Err(e) => Err(DpopRefusal::Unavailable(e.to_string())),
        }
    }
}

/// How long past its proof's `iat` a replay record lives: past the proof's window and leeway
/// (and the second it was signed in) the proof is refused as too old anyway.
pub fn record_lives_secs(max_age_secs: i64, leeway_secs: i64) -> i64 {
    max_age_secs.saturating_add(leeway_secs).saturating_add(1)
}

/// `DPoP-Nonce` on every answer to a request that carried a proof, when nonces are on
/// (RFC 9449 section 8.2: a fresh nonce may come with any answer; the same one all through its
/// step, so always sending it is the simplest correct choice). An answer that already names
/// one (a `use_dpop_nonce` refusal) keeps it.
pub async fn advertise_nonce(
    State(dpop): State<Arc<Dpop>>,
    request: Request,
    next: Next,
) -> Response {
    let with_proof = request.headers().contains_key("dpop");
    let mut response = next.run(request).await;
    if let Some(nonces) = dpop.nonces.as_ref().filter(|_| with_proof)
        && !response.headers().contains_key(NONCE_HEADER)
        && let Ok(value) = HeaderValue::from_str(&nonces.current(crate::clock::now()))
    {
        response.headers_mut().insert(NONCE_HEADER, value);
    }
    response
}

/// RFC 9449 section 8's response header.
pub const NONCE_HEADER: &str = "dpop-nonce";

#[cfg(test)]
mod tests {
    use aws_lc_rs::{
        rand::SystemRandom,
        signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair},
    };
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use serde_json::json;

    use super::*;

    fn proof(key: &EcdsaKeyPair, jti: &str, htu: &str, now: i64) -> String {
        signed(
            key,
            json!({"jti": jti, "htm": "GET", "htu": htu, "iat": now}),
        )
    }

    fn signed(key: &EcdsaKeyPair, claims: serde_json::Value) -> String {
        let point = key.public_key().as_ref();
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {
            "kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }});
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = key.sign(&SystemRandom::new(), message.as_bytes()).unwrap();
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn dpop() -> Dpop {
        Dpop {
            mode: DpopMode::Required,
            origin: "https://app.example".into(),
            max_age_secs: 60,
            leeway_secs: 5,
            replay: replay::ProofReplay::default(),
            nonces: None,
            keys: proof::ProofKeys::default(),
        }
    }

    fn headers(proof: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("dpop", proof.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn a_proof_is_checked_against_the_public_origin_and_accepted_once() {
        let (dpop, key) = (
            dpop(),
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        );
        let now = 1_800_000_000;
        let good = headers(&proof(&key, "a", "https://app.example/auth/session", now));
        let first = dpop
            .check_request(&good, &Method::GET, "/auth/session", None, now)
            .await;
        assert!(matches!(first, Ok(Some(_))), "{first:?}");
        let again = dpop
            .check_request(&good, &Method::GET, "/auth/session", None, now + 1)
            .await;
        assert_eq!(again, Err(DpopRefusal::Replayed));
        // The origin is public_url's, not whatever Host the request came with.
        let foreign = headers(&proof(&key, "b", "https://other.example/auth/session", now));
        let refused = dpop
            .check_request(&foreign, &Method::GET, "/auth/session", None, now)
            .await;
        assert!(
            matches!(refused, Err(DpopRefusal::InvalidProof(_))),
            "{refused:?}"
        );
        let none = dpop
            .check_request(&HeaderMap::new(), &Method::GET, "/auth/session", None, now)
            .await;
        assert_eq!(none, Ok(None));
    }

    #[tokio::test]
    async fn with_nonces_a_proof_needs_a_recent_one_and_the_refusal_hands_it_out() {
        let mut dpop = dpop();
        dpop.nonces = Some(nonce::ServerNonces::new(
            b"a shared secret of 32 bytes ....",
            5,
        ));
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let (now, htu) = (1_800_000_000, "https://app.example/api/me");
        let check = |proof: String| {
            let dpop = &dpop;
            async move {
                dpop.check_request(&headers(&proof), &Method::GET, "/api/me", None, now)
                    .await
            }
        };
        let Err(DpopRefusal::UseNonce(nonce)) = check(proof(&key, "a", htu, now)).await else {
            panic!("a proof without a nonce is refused with one to use")
        };
        let claims = |jti: &str, nonce: &str| json!({"jti": jti, "htm": "GET", "htu": htu, "iat": now, "nonce": nonce});
        let wrong = check(signed(&key, claims("b", "bm90LWEtbm9uY2U"))).await;
        assert_eq!(wrong, Err(DpopRefusal::UseNonce(nonce.clone())));
        let good = check(signed(&key, claims("c", &nonce))).await;
        assert!(matches!(good, Ok(Some(_))), "{good:?}");
    }
}
