//! Serving the built SPA: static files come from `dist/`; every other GET is a client route
//! and gets `index.html`, under a CSP built from that file.

use std::path::Path;

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
/// The SPA's entry page, loaded once at startup, and the CSP that fits it.
pub struct SpaIndex {
    html: Option<String>,
    pub csp: HeaderValue,
}

const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>login-bridge</title></head>\
<body><h1>login-bridge</h1><p>The web UI has not been built. Run <code>scripts/build-ui.sh</code> \
(or <code>trunk build --release</code>) and restart, or set <code>dist_dir</code>.</p></body></html>";

impl SpaIndex {
    /// Reads `dist/index.html` and puts `title` (`ui.title`) into its `<title>`, where the SPA
    /// reads the product's name from (so `trunk serve`, with no bridge in front of the page,
    /// shows the name the file carries).
    pub fn load(dist: &Path, title: &str) -> Self {
        let html = std::fs::read_to_string(dist.join("index.html"))
            .ok()
            .map(|html| with_title(&html, title));
        if html.is_none() {
            tracing::warn!(dist = %dist.display(), "no index.html in dist_dir: the UI is not built");
        }
        let csp = content_security_policy(html.as_deref().unwrap_or(NOT_BUILT));
        Self { html, csp }
    }

    fn page(&self) -> &str {
        self.html.as_deref().unwrap_or(NOT_BUILT)
    }

    /// `index.html`, for any client route.
    pub fn page_response(&self) -> Response {
        let mut response = Response::new(Body::from(self.page().to_owned()));
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }
}

/// `html` with the text of its first `<title>` element replaced by `title`, HTML-escaped;
/// unchanged when it has none.
fn with_title(html: &str, title: &str) -> String {
    let Some(open) = html.find("<title>") else {
        return html.to_owned();
    };
    let start = open + "<title>".len();
    let Some(len) = html[start..].find("</title>") else {
        return html.to_owned();
    };
    let mut escaped = String::with_capacity(title.len());
    for c in title.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            _ => escaped.push(c),
        }
    }
    [&html[..start], &escaped, &html[start + len..]].concat()
}

/// `script-src` allows the bundle from this origin, WASM compilation, and exactly the inline
/// bootstrap scripts Trunk wrote into `index.html` (by hash), nothing else.
fn content_security_policy(html: &str) -> HeaderValue {
    let mut hashes = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        rest = &rest[start..];
        let Some(tag_end) = rest.find('>') else { break };
        let tag = &rest[..tag_end];
        let body_start = tag_end + 1;
        let Some(close) = rest[body_start..].find("</script>") else {
            break;
        };
        let body = &rest[body_start..body_start + close];
        if !tag.contains(" src=") && !body.trim().is_empty() {
            let digest = STANDARD.encode(Sha256::digest(body.as_bytes()));
            hashes.push_str(&format!(" 'sha256-{digest}'"));
        }
        rest = &rest[body_start + close..];
    }
    let policy = format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// Whether this request is a browser opening a page (as opposed to fetch/XHR or a tool).
pub fn is_navigation(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        Some(mode) => mode == "navigate",
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

/// The answer for a request that reached the SPA fallback but is not a page: an unknown API
/// or auth route (404 JSON), a method other than GET/HEAD (405), or a missing asset (404).
/// `None` for a client route, which gets `index.html`.
pub fn not_a_page(method: &Method, path: &str) -> Option<Response> {
    if path.starts_with("/api/") || path.starts_with("/auth/") || path == "/api" || path == "/auth"
    {
        return Some(
            (
                StatusCode::NOT_FOUND,
                axum::Json(shared::error::ApiError::new("not_found", "no such route")),
            )
                .into_response(),
        );
    }
    if method != Method::GET && method != Method::HEAD {
        return Some(StatusCode::METHOD_NOT_ALLOWED.into_response());
    }
    // A path whose last segment looks like a file name is a missing asset, not a route.
    if path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
    {
        return Some(StatusCode::NOT_FOUND.into_response());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_title_replaces_the_page_title_escaped() {
        let html = "<head><title>login-bridge</title></head><body><title>x</title></body>";
        assert_eq!(
            with_title(html, "Acme <SSO> & more"),
            "<head><title>Acme &lt;SSO&gt; &amp; more</title></head><body><title>x</title></body>"
        );
        assert_eq!(with_title("<p>no title</p>", "Acme"), "<p>no title</p>");
        assert_eq!(with_title("<title>open", "Acme"), "<title>open");
    }

    #[test]
    fn csp_allows_exactly_the_inline_bootstrap_script() {
        let html = r#"<html><head><script type="module">import init from '/app.js'; init();</script>
            <script src="/other.js"></script></head></html>"#;
        let csp = content_security_policy(html);
        let csp = csp.to_str().unwrap_or_default();
        let expected = STANDARD.encode(Sha256::digest(b"import init from '/app.js'; init();"));
        assert!(csp.contains(&format!("'sha256-{expected}'")), "{csp}");
        assert_eq!(csp.matches("'sha256-").count(), 1, "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe-eval'") || csp.contains("wasm-unsafe-eval"));
    }
}
