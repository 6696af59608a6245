//! CSRF defence for `/auth/session` and state-changing `/auth` endpoints: the custom header
//! must be present (a cross-site page cannot add it without a CORS preflight, which the
//! bridge never grants), and when the browser says where the request comes from, it must be
//! this origin.
//!
//! A plain HTML form post (the local accounts' sign-in) cannot add a header; for it the
//! browser's own word is required instead: an `Origin` equal to this origin (browsers send it
//! on every POST), and `Sec-Fetch-Site: same-origin` when the browser sends fetch metadata.
//! That is the check Go's `http.CrossOriginProtection` makes, without tokens.

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

/// Refuses a form post that may come from another site: see the module's documentation.
pub fn require_same_origin_form(headers: &HeaderMap, origin: &str) -> Result<(), AppError> {
    if headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) != Some(origin) {
        return Err(AppError::BadRequest(
            "cross-origin or origin-less form post refused".into(),
        ));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && site != "same-origin"
    {
        return Err(AppError::BadRequest("cross-site form post refused".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(*name, value.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_form_post_needs_this_origin_and_same_origin_fetch_metadata() {
        let me = "https://bridge.example";
        let ok =
            |h: &[(&'static str, &'static str)]| require_same_origin_form(&headers(h), me).is_ok();
        assert!(ok(&[("origin", me), ("sec-fetch-site", "same-origin")]));
        assert!(ok(&[("origin", me)]), "a browser without fetch metadata");
        assert!(!ok(&[]), "no Origin");
        assert!(!ok(&[("origin", "null")]));
        assert!(!ok(&[("origin", "https://evil.example")]));
        assert!(!ok(&[("origin", me), ("sec-fetch-site", "same-site")]));
        assert!(!ok(&[("origin", me), ("sec-fetch-site", "cross-site")]));
    }
}
