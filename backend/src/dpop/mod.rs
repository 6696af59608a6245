//! DPoP (RFC 9449): the SPA's token bound to the browser's non-extractable key.
//!
//! The bridge mints the SPA's token itself (`session.token_profile`, local accounts), so it can
//! put the thumbprint of the browser's key in the token (`cnf.jkt`) and then accept that token
//! only with a fresh proof signed by the key. Script injected into the page can still sign
//! proofs while the page is open; it can take neither the token nor the key elsewhere.
//!
//! - [`proof`]: reading and verifying one proof (RFC 9449 section 4.3);
//! - [`replay`]: proofs already used, by `jti`, in the configured store (shared by replicas);
//! - [`Dpop`]: what handlers call: the mode, the checks in order, the refusal's challenge.

pub mod proof;
pub mod replay;

use axum::http::{HeaderMap, Method};

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
    /// The replay records cannot be written (503); nothing is accepted unrecorded.
    #[error("replay records unavailable: {0}")]
    Unavailable(String),
}

impl Dpop {
    /// Verifies the request's `DPoP` header, if any: `Ok(None)` when it carries none.
    /// `path` is the path the browser asked for (before any prefix was stripped);
    /// `access_token` is `Some` where the proof must carry `ath` (every call but
    /// `/auth/session`). A verified proof's `jti` has been recorded (a second use is refused).
    pub async fn check_request(
        &self,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<Option<VerifiedProof>, DpopRefusal> {
        let _ = (headers, method, path, access_token, now);
        todo!("dpop: check_request")
    }
}
