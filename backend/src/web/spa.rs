//! Serving the built SPA: static files come from `dist/`; every other GET is a client route
//! and gets `index.html`, under a CSP built from that file.
//!
//! What a browser transfers is what counts: every file is sent as the `.br` or `.gz` the UI
//! build wrote beside it when the browser accepts that encoding (tower-http's precompressed
//! variants; the plain file otherwise), with `Vary: Accept-Encoding`. Trunk's content-hashed
//! files never change under their name, so browsers keep them for a year without asking again;
//! anything else (`index.html`, the pages, an unhashed file) is revalidated on every use.

use std::path::Path;

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use tower_http::services::ServeFile;

/// `Cache-Control` of Trunk's content-hashed files: a new build gives them new names.
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");
/// `Cache-Control` of everything whose name stays across builds: kept, but revalidated on use.
const NO_CACHE: HeaderValue = HeaderValue::from_static("no-cache");
const VARY_ENCODING: HeaderValue = HeaderValue::from_static("accept-encoding");

/// The SPA's entry page, loaded once at startup, and the CSP that fits it.
pub struct SpaIndex {
    html: Option<String>,
    /// `dist/index.html` with its precompressed variants, read on each page open so a rebuilt
    /// UI's page names the rebuilt files; the copy loaded at startup serves when it is gone.
    /// `None` when `ui.title` changed the page: the files on disk carry the build's title, so
    /// the page is served from memory (small: about 1.5 KB) with an `ETag` instead.
    file: Option<ServeFile>,
    /// The in-memory page's `ETag` (a digest of the page), for `304`s to current copies.
    etag: HeaderValue,
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
        let raw = std::fs::read_to_string(dist.join("index.html")).ok();
        let html = raw.as_deref().map(|html| with_title(html, title));
        if html.is_none() {
            tracing::warn!(dist = %dist.display(), "no index.html in dist_dir: the UI is not built");
        }
        let csp = content_security_policy(html.as_deref().unwrap_or(NOT_BUILT));
        let file = (raw.is_some() && raw == html).then(|| {
            ServeFile::new(dist.join("index.html"))
                .precompressed_br()
                .precompressed_gzip()
        });
        let digest = Sha256::digest(html.as_deref().unwrap_or(NOT_BUILT).as_bytes());
        let etag = HeaderValue::from_str(&format!("\"{}\"", STANDARD.encode(&digest[..18])))
            .unwrap_or(HeaderValue::from_static("\"page\""));
        Self {
            html,
            file,
            etag,
            csp,
        }
    }

    fn page(&self) -> &str {
        self.html.as_deref().unwrap_or(NOT_BUILT)
    }

    /// `index.html`, for any client route: compressed as the browser accepts, `304` to a
    /// browser whose copy is current, never kept without revalidation.
    pub async fn page_response(&self, method: &Method, headers: &HeaderMap) -> Response {
        if let (Some(_), Some(file)) = (&self.html, &self.file) {
            // Only what negotiates the encoding and revalidates: the file is the same for
            // every route, so nothing else of the request matters to it.
            let mut request = Request::new(Body::empty());
            *request.method_mut() = if method == Method::HEAD {
                Method::HEAD
            } else {
                Method::GET
            };
            for name in [header::ACCEPT_ENCODING, header::IF_MODIFIED_SINCE] {
                if let Some(value) = headers.get(&name) {
                    request.headers_mut().insert(name, value.clone());
                }
            }
            if let Ok(response) = file.clone().oneshot(request).await
                && (response.status() == StatusCode::OK
                    || response.status() == StatusCode::NOT_MODIFIED)
            {
                let mut response = response.map(Body::new);
                let h = response.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/html; charset=utf-8"),
                );
                h.insert(header::CACHE_CONTROL, NO_CACHE);
                h.insert(header::VARY, VARY_ENCODING);
                return response;
            }
        }
        let current = headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|tags| tags.as_bytes() == self.etag.as_bytes());
        let mut response = if current {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            Response::new(Body::from(self.page().to_owned()))
        };
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, NO_CACHE);
        h.insert(header::ETAG, self.etag.clone());
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

/// Middleware around the `dist/` file service: `Cache-Control` by the kind of file and `Vary:
/// Accept-Encoding` on every file it serves. Answers of the page fallback (which set their own
/// headers), redirects and errors pass unchanged. Only requests no route matched come here,
/// never the API.
pub async fn file_cache_headers(request: Request, next: Next) -> Response {
    let Some(name) = file_name(request.uri().path()) else {
        return next.run(request).await;
    };
    let cache = if is_content_hashed(name) {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    let mut response = next.run(request).await;
    let status = response.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        let h = response.headers_mut();
        if !h.contains_key(header::CACHE_CONTROL) {
            h.insert(header::CACHE_CONTROL, cache);
        }
        h.insert(header::VARY, VARY_ENCODING);
    }
    response
}

/// The last segment of a path that names a file (it has an extension), as [`not_a_page`]
/// tells files from client routes.
fn file_name(path: &str) -> Option<&str> {
    path.rsplit('/').next().filter(|last| last.contains('.'))
}

/// Whether a file name carries Trunk's content hash: `NAME-HASH.EXT`, or `NAME-HASH_bg.wasm`
/// for the WASM, where HASH is the hex of a 64-bit seahash (`{:x}`, so leading zeros are
/// dropped: 12 to 16 digits, 12 or fewer once in 65 536 builds, which then only costs a
/// revalidation).
fn is_content_hashed(name: &str) -> bool {
    let Some((stem, _ext)) = name.split_once('.') else {
        return false;
    };
    let stem = stem.strip_suffix("_bg").unwrap_or(stem);
    let Some((_, hash)) = stem.rsplit_once('-') else {
        return false;
    };
    (12..=16).contains(&hash.len())
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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

    #[test]
    fn only_names_with_trunks_content_hash_count_as_hashed() {
        for hashed in [
            "frontend-8134409bd22fe094.js",
            "frontend-8134409bd22fe094_bg.wasm",
            "style-4b8e554530820ce2.css",
            "loader-34409bd22fe094.js",
        ] {
            assert!(is_content_hashed(hashed), "{hashed}");
        }
        for plain in [
            "index.html",
            "loader.js",
            "favicon.svg",
            "my-app.js",
            "x-8134409bd22fe09g.js",
            "x-8134409BD22FE094.js",
            "x-8134409bd22fe0945.js",
            "x-8134409bd22.js",
            "frontend-8134409bd22fe094",
        ] {
            assert!(!is_content_hashed(plain), "{plain}");
        }
    }
}
