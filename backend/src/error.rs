//! The one error type handlers return, and how it becomes an HTTP answer.
//!
//! Every error is JSON [`shared::error::ApiError`]. A 401 carries `WWW-Authenticate: Bearer`
//! (RFC 6750) and is never a redirect, so an XHR client sees it. A 5xx says nothing about the
//! cause, which goes to the log instead.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No credentials at all (no session, no bearer token).
    #[error("authentication required: {0}")]
    Unauthenticated(String),
    /// No credentials at an API that takes DPoP-bound tokens too (`session.dpop` on): the
    /// `Bearer` challenge and a `DPoP` one naming the algorithms (RFC 9449 section 7.1).
    #[error("authentication required: {0}")]
    UnauthenticatedOfferingDpop(String),
    /// Credentials were presented and are not acceptable (RFC 6750 `invalid_token`).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Authenticated, but the policy does not allow this (RFC 6750 `insufficient_scope`).
    #[error("insufficient scope: {0}")]
    Forbidden(String),
    /// The request itself is malformed or refused (bad `return_to`, missing CSRF header...).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request body is larger than the bridge accepts (413 `invalid_request`).
    #[error("request body too large: {0}")]
    PayloadTooLarge(String),
    /// The identity provider cannot be used right now (discovery pending, provider down).
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The session store cannot be used right now (503). The reason is logged, never sent.
    #[error("session store unavailable: {0}")]
    StoreUnavailable(String),
    /// An API behind the bridge cannot be reached (502). The reason is logged, never sent.
    #[error("upstream unavailable: {0}")]
    UpstreamUnavailable(String),
    /// An API behind the bridge refused the token the bridge sent it (502). Logged, never sent.
    #[error("upstream refused the bridge's token: {0}")]
    UpstreamRefused(String),
    /// An API behind the bridge did not answer in time (504). Logged, never sent.
    #[error("upstream timeout: {0}")]
    UpstreamTimeout(String),
    /// A DPoP proof (or the token's binding to one) refused: 401 with a `DPoP` challenge, or
    /// 503 when the replay records cannot be written.
    #[error("{0}")]
    Dpop(#[from] crate::dpop::DpopRefusal),
    /// Anything else. The message is logged, never sent.
    #[error("internal error: {0}")]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::Internal(anyhow::anyhow!("{e}"))
    }
}

/// A request without one usable bearer token: missing is "unauthenticated", two headers a
/// bad request, anything else an invalid token.
impl From<crate::trust::bearer::BearerError> for AppError {
    fn from(e: crate::trust::bearer::BearerError) -> Self {
        use crate::trust::bearer::BearerError::*;
        match e {
            Missing => Self::Unauthenticated(e.to_string()),
            Repeated => Self::BadRequest(e.to_string()),
            Malformed => Self::InvalidToken(e.to_string()),
        }
    }
}

/// Every rejection of an axum extractor (see [`crate::extract`]): a body over the limit is
/// 413, anything else the client sent wrong 400 `invalid_request`. axum's text says what did
/// not parse (a parameter twice, a missing field, the content type); it never holds a value.
fn rejected(status: StatusCode, text: String) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge(text)
    } else {
        AppError::BadRequest(text)
    }
}

impl From<axum::extract::rejection::FormRejection> for AppError {
    fn from(e: axum::extract::rejection::FormRejection) -> Self {
        rejected(e.status(), e.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for AppError {
    fn from(e: axum::extract::rejection::QueryRejection) -> Self {
        rejected(e.status(), e.body_text())
    }
}

/// Quotes a value for an RFC 6750 auth-param: no quotes, backslashes or control characters.
fn auth_param(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect()
}

/// The `DPoP` challenge (RFC 9449 section 7.1): the error, why, and the algorithms a proof may use.
fn dpop_challenge(error: &str, description: &str) -> String {
    format!(
        r#"DPoP error="{error}", error_description="{}", algs="{}""#,
        auth_param(description),
        crate::dpop::proof::algs()
    )
}

/// A refused proof or binding as an answer.
fn dpop_refusal(refusal: &crate::dpop::DpopRefusal) -> Response {
    use crate::dpop::DpopRefusal::*;
    let error = refusal.error_code();
    let description = match refusal {
        InvalidProof(e) => e.to_string(),
        Replayed => "the DPoP proof was used before".to_string(),
        InvalidToken(why) => (*why).to_string(),
        UseNonce(_) => refusal.to_string(),
        Unavailable(reason) => {
            tracing::error!(%reason, "DPoP replay records unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(ApiError::new(
                    "temporarily_unavailable",
                    "DPoP proofs cannot be checked right now; try again shortly",
                )),
            )
                .into_response();
        }
    };
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(ApiError::new(error, description.as_str())),
    )
        .into_response();
    let headers = response.headers_mut();
    if let Ok(challenge) = HeaderValue::from_str(&dpop_challenge(error, &description)) {
        headers.insert(header::WWW_AUTHENTICATE, challenge);
    }
    if let UseNonce(nonce) = refusal
        && let Ok(nonce) = HeaderValue::from_str(nonce)
    {
        headers.insert(crate::dpop::NONCE_HEADER, nonce);
    }
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body, challenge) = match &self {
            AppError::Unauthenticated(d) | AppError::UnauthenticatedOfferingDpop(d) => (
                StatusCode::UNAUTHORIZED,
                ApiError::new("unauthenticated", d.as_str()),
                Some(r#"Bearer realm="login-bridge""#.to_string()),
            ),
            AppError::InvalidToken(d) => (
                StatusCode::UNAUTHORIZED,
                ApiError::new("invalid_token", d.as_str()),
                Some(format!(
                    r#"Bearer realm="login-bridge", error="invalid_token", error_description="{}""#,
                    auth_param(d)
                )),
            ),
            AppError::Forbidden(d) => (
                StatusCode::FORBIDDEN,
                ApiError::new("insufficient_scope", d.as_str()),
                Some(format!(
                    r#"Bearer realm="login-bridge", error="insufficient_scope", error_description="{}""#,
                    auth_param(d)
                )),
            ),
            AppError::BadRequest(d) => (
                StatusCode::BAD_REQUEST,
                ApiError::new("invalid_request", d.as_str()),
                None,
            ),
            AppError::PayloadTooLarge(d) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiError::new("invalid_request", d.as_str()),
                None,
            ),
            AppError::Unavailable(d) => {
                tracing::warn!(reason = %d, "identity provider unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ApiError::new(
                        "temporarily_unavailable",
                        "the identity provider cannot be reached right now; try again shortly",
                    ),
                    None,
                )
            }
            AppError::StoreUnavailable(reason) => {
                tracing::error!(%reason, "session store unavailable");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ApiError::new(
                        "temporarily_unavailable",
                        "sessions cannot be used right now; try again shortly",
                    ),
                    None,
                )
            }
            AppError::UpstreamUnavailable(reason) => {
                tracing::warn!(%reason, "upstream unavailable");
                (
                    StatusCode::BAD_GATEWAY,
                    ApiError::new("bad_gateway", "the API behind the bridge cannot be reached"),
                    None,
                )
            }
            AppError::UpstreamRefused(reason) => {
                tracing::warn!(%reason, "upstream refused the bridge's token; check its trust configuration");
                (
                    StatusCode::BAD_GATEWAY,
                    ApiError::new(
                        "bad_gateway",
                        "the API behind the bridge refused the bridge's credentials",
                    ),
                    None,
                )
            }
            AppError::UpstreamTimeout(reason) => {
                tracing::warn!(%reason, "upstream timeout");
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    ApiError::new(
                        "gateway_timeout",
                        "the API behind the bridge did not answer in time",
                    ),
                    None,
                )
            }
            AppError::Dpop(refusal) => {
                let mut response = dpop_refusal(refusal);
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                return response;
            }
            AppError::Internal(e) => {
                tracing::error!(error = %e, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ApiError::new("server_error", "internal error"),
                    None,
                )
            }
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(challenge) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        if let AppError::UnauthenticatedOfferingDpop(_) = &self
            && let Ok(dpop) =
                HeaderValue::from_str(&format!(r#"DPoP algs="{}""#, crate::dpop::proof::algs()))
        {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, dpop);
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dpop::{DpopRefusal, ProofError};

    fn challenges(response: &Response) -> Vec<String> {
        response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn a_refused_proof_is_a_401_with_a_dpop_challenge_naming_the_algorithms() {
        let algs = crate::dpop::proof::algs();
        for (refusal, error) in [
            (
                DpopRefusal::InvalidProof(ProofError::Missing),
                "invalid_dpop_proof",
            ),
            (DpopRefusal::Replayed, "invalid_dpop_proof"),
            (DpopRefusal::InvalidToken("bound"), "invalid_token"),
            (DpopRefusal::UseNonce("n-1".into()), "use_dpop_nonce"),
        ] {
            let r = AppError::Dpop(refusal.clone()).into_response();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{refusal:?}");
            let c = challenges(&r);
            assert_eq!(c.len(), 1, "{c:?}");
            assert!(
                c[0].starts_with(&format!(r#"DPoP error="{error}""#)),
                "{c:?}"
            );
            assert!(c[0].ends_with(&format!(r#"algs="{algs}""#)), "{c:?}");
            let nonce = r.headers().get("dpop-nonce").map(|v| v.as_bytes().to_vec());
            match refusal {
                DpopRefusal::UseNonce(_) => assert_eq!(nonce.as_deref(), Some(&b"n-1"[..])),
                _ => assert_eq!(nonce, None),
            }
        }
    }

    #[test]
    fn unavailable_replay_records_are_a_503_that_says_nothing_of_the_cause() {
        let r = AppError::Dpop(DpopRefusal::Unavailable("redis://secret@10.0.0.1".into()))
            .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(challenges(&r).is_empty());
    }

    #[test]
    fn with_dpop_on_a_call_without_credentials_is_offered_both_schemes() {
        let r =
            AppError::UnauthenticatedOfferingDpop("missing bearer token".into()).into_response();
        let c = challenges(&r);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].starts_with("Bearer "), "{c:?}");
        assert_eq!(
            c[1],
            format!(r#"DPoP algs="{}""#, crate::dpop::proof::algs())
        );
        let plain = challenges(&AppError::Unauthenticated("x".into()).into_response());
        assert_eq!(plain.len(), 1, "{plain:?}");
    }
}
