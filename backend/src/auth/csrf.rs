//! CSRF defence for `/auth/session` and state-changing `/auth` endpoints: the custom header
//! must be present (a cross-site page cannot add it without a CORS preflight, which the
//! bridge never grants), and when the browser says where the request comes from, it must be
//! this origin.

use axum::http::{HeaderMap, header};
use shared::session::{CSRF_HEADER, CSRF_HEADER_VALUE};

use crate::error::AppError;

/// Refuses a request that may come from another site. `origin` is the bridge's own.
pub fn require_same_origin(headers: &HeaderMap, origin: &str) -> Result<(), AppError> {
    let has_header = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == CSRF_HEADER_VALUE);
    if !has_header {
        return Err(AppError::BadRequest(format!(
            "missing the {CSRF_HEADER} request header"
        )));
    }
    if let Some(value) = headers.get(header::ORIGIN)
        && value.to_str().ok() != Some(origin)
    {
        return Err(AppError::BadRequest("cross-origin request refused".into()));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(AppError::BadRequest("cross-site request refused".into()));
    }
    Ok(())
}
