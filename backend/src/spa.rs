//! Serving the built SPA, and the silent-SSO decision made when a browser opens it.
//!
//! Static files come from `dist/`; every other GET is a client route and gets `index.html`.
//! But before that page is served to a browser without a bridge session, the bridge starts
//! the `prompt=none` attempt itself, by top-level redirect, so a user with an active SSO
//! session is signed in before any WASM loads and never sees a form.

use std::path::Path;

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use crate::{
    auth::{SIGNED_IN_KEY, SignedIn, flow::start_login, routes::silent_sso_tried_recently},
    state::AppState,
};

/// The SPA's entry page, loaded once at startup, and the CSP that fits it.
pub struct SpaIndex {
    html: Option<String>,
    pub csp: HeaderValue,
}

const NOT_BUILT: &str = "<!doctype html><html><head><meta charset=\"utf-8\"><title>login-bridge</title></head>\
<body><h1>login-bridge</h1><p>The web UI has not been built. Run <code>scripts/build-ui.sh</code> \
(or <code>trunk build --release</code>) and restart, or set <code>dist_dir</code>.</p></body></html>";

impl SpaIndex {
    pub fn load(dist: &Path) -> Self {
        let html = std::fs::read_to_string(dist.join("index.html")).ok();
        if html.is_none() {
            tracing::warn!(dist = %dist.display(), "no index.html in dist_dir: the UI is not built");
        }
        let csp = content_security_policy(html.as_deref().unwrap_or(NOT_BUILT));
        Self { html, csp }
    }

    fn page(&self) -> &str {
        self.html.as_deref().unwrap_or(NOT_BUILT)
    }
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
fn is_navigation(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        Some(mode) => mode == "navigate",
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

/// Fallback for everything that is not an API route or a file in `dist/`.
pub async fn spa_entry(
    State(state): State<AppState>,
    session: Session,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path.starts_with("/auth/") || path == "/api" || path == "/auth"
    {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(shared::error::ApiError::new("not_found", "no such route")),
        )
            .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    // A path whose last segment looks like a file name is a missing asset, not a route.
    if path
        .rsplit('/')
        .next()
        .is_some_and(|last| last.contains('.'))
    {
        return StatusCode::NOT_FOUND.into_response();
    }

    if method == Method::GET
        && state.settings.oidc.silent_sso
        && is_navigation(&headers)
        && path != "/login"
        && state.provider.ready().is_some()
    {
        let signed_in = matches!(session.get::<SignedIn>(SIGNED_IN_KEY).await, Ok(Some(_)));
        if !signed_in && !silent_sso_tried_recently(&state, &session).await {
            let return_to = uri
                .path_and_query()
                .map(|pq| pq.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            // The URI came from the request line: still checked like any other return_to.
            let return_to =
                crate::auth::return_to::validate(&return_to).unwrap_or_else(|_| "/".into());
            match start_login(&state, &session, return_to, true).await {
                Ok(url) => return Redirect::to(&url).into_response(),
                Err(e) => tracing::warn!(error = %e, "silent SSO could not start; serving the UI"),
            }
        }
    }

    let mut response = Response::new(Body::from(state.spa.page().to_owned()));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

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
