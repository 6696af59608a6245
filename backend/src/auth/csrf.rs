//! CSRF defence for `/auth/session` and state-changing `/auth` endpoints: the custom header
//! must be present (a cross-site page cannot add it without a CORS preflight, which the
//! bridge never grants), and when the browser says where the request comes from, it must be
//! this origin.
//!
//! A plain HTML form post (the local accounts' sign-in) cannot add a header; for it the
//! browser's own word is required instead, as Go's `http.CrossOriginProtection` takes it
//! (no tokens): `Sec-Fetch-Site: same-origin`, which no page can forge; from a browser that
//! sends no fetch metadata, an `Origin` equal to this origin. The `Origin` of a form post is
//! `null` under the bridge's `Referrer-Policy: no-referrer`, so with fetch metadata it only
//! must not name another origin.

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
    let sent_origin = headers
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("?"));
    let site = headers
        .get("sec-fetch-site")
        .map(|v| v.to_str().unwrap_or("?"));
    let allowed = match site {
        Some("same-origin") => sent_origin.is_none_or(|o| o == origin || o == "null"),
        Some(_) => false,
        None => sent_origin == Some(origin),
    };
    if allowed {
        Ok(())
    } else {
        Err(AppError::BadRequest("cross-site form post refused".into()))
    }
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
        assert!(
            ok(&[("origin", "null"), ("sec-fetch-site", "same-origin")]),
            "Referrer-Policy: no-referrer"
        );
        assert!(!ok(&[]), "no Origin");
        assert!(!ok(&[("origin", "null")]), "null without fetch metadata");
        assert!(!ok(&[
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "same-origin")
        ]));
        assert!(!ok(&[("origin", "https://evil.example")]));
        assert!(!ok(&[("origin", me), ("sec-fetch-site", "same-site")]));
        assert!(!ok(&[("origin", me), ("sec-fetch-site", "cross-site")]));
    }
}
