//! Headers every answer carries: no sniffing, no referrer, no framing, a CSP, and HSTS when
//! served over https. The CSP is the SPA's for HTML documents (the SPA's pages, the bridge's
//! own small pages); anything else (JSON, the SPA's files) gets `default-src 'none';
//! frame-ancestors 'none'`, the OWASP REST cheat sheet's policy for API answers: nothing a
//! browser might render from it may load or frame anything, and the answer stays small.
//! Set by [`super::shell::Shell`] on every answer of the bridge's own routes, by the upstream
//! proxy on the answers it writes itself, and by the CORS gate on preflights.

use axum::http::{HeaderMap, HeaderValue, header};

/// The CSP of every answer that is not an HTML document.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The headers every answer carries: no sniffing, no referrer, no framing, a CSP, and HSTS when
/// served over https. The CSP is `csp` (the SPA's) for HTML documents; anything else gets
/// [`API_CSP`].
#[derive(Clone)]
pub struct SecurityHeaders {
    pub csp: HeaderValue,
    pub hsts: bool,
}

impl SecurityHeaders {
    /// Sets the headers, replacing any a handler set.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        let html = headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
        headers.reserve(5);
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            if html {
                self.csp.clone()
            } else {
                HeaderValue::from_static(API_CSP)
            },
        );
        if self.hsts {
            headers.insert(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            );
        }
    }
}
