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
    /// A DPoP proof (RFC 9449) is missing or not acceptable, or a token is used against its
    /// binding: 401 with a `DPoP` challenge (section 7.1). Replay records that cannot be
    /// written are 503.
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

/// A DPoP refusal's status, body and challenge (RFC 9449 section 7.1: `DPoP` with `error` and
/// the accepted `algs`).
fn dpop_refusal(refusal: &crate::dpop::DpopRefusal) -> (StatusCode, ApiError, Option<String>) {
    use crate::dpop::DpopRefusal::*;
    let (error, description) = match refusal {
        InvalidProof(e) => ("invalid_dpop_proof", e.to_string()),
        Replayed => (
            "invalid_dpop_proof",
            "the DPoP proof was used before".to_string(),
        ),
        InvalidToken(d) => ("invalid_token", (*d).to_string()),
        Unavailable(reason) => {
            tracing::error!(%reason, "DPoP replay records unavailable");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                ApiError::new(
                    "temporarily_unavailable",
                    "DPoP proofs cannot be checked right now; try again shortly",
                ),
                None,
            );
        }
    };
    let challenge = format!(
        r#"DPoP error="{error}", error_description="{}", algs="{}""#,
        auth_param(&description),
        crate::dpop::proof::algs()
    );
    (
        StatusCode::UNAUTHORIZED,
        ApiError::new(error, description.as_str()),
        Some(challenge),
    )
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body, challenge) = match &self {
            AppError::Unauthenticated(d) => (
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
            AppError::Dpop(refusal) => dpop_refusal(refusal),
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
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

pub type AppResult<T> = Result<T, AppError>;
