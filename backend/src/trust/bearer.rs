//! Reading a bearer token off a request (RFC 6750 section 2.1): exactly one
//! `Authorization: Bearer` header; never a cookie, never `?access_token=`.

use axum::http::{HeaderMap, header};

/// Why a request carries no usable bearer token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BearerError {
    #[error("missing bearer token")]
    Missing,
    #[error("more than one Authorization header")]
    Repeated,
    #[error("Authorization must be \"Bearer <token>\"")]
    Malformed,
}

/// The single bearer token of a request.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, BearerError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(BearerError::Missing);
    };
    if values.next().is_some() {
        return Err(BearerError::Repeated);
    }
    let value = value.to_str().map_err(|_| BearerError::Malformed)?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(BearerError::Malformed),
    }
}
