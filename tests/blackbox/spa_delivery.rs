//! How the bridge sends the SPA's files: the `.br`/`.gz` the UI build wrote beside each file
//! (by `tools/precompress.mjs`, the build's own script) when the browser accepts that encoding,
//! the plain file otherwise, always with `Vary: Accept-Encoding`; Trunk's content-hashed files
//! cached for a year, `index.html` and the pages revalidated on every use. The dist is a small
//! one made here (Trunk's file names, the real precompress script), so no UI build is needed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{io::Read, path::Path, process::Command};

use reqwest::{
    StatusCode,
    header::{self, HeaderMap},
};

use crate::support::*;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

const INDEX: &str = r#"<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>login-bridge</title>
    <link rel="stylesheet" href="/style-4b8e554530820ce2.css" />
    <meta id="app-loader" name="app-bundle" content="wasm-bindgen" data-js="/frontend-8134409bd22fe094.js" data-wasm="/frontend-8134409bd22fe094_bg.wasm">
    <script type="module" src="/loader-0a1b2c3d4e5f6071.js"></script>
  </head>
  <body>
    <noscript>This app needs JavaScript and WebAssembly.</noscript>
  </body>
</html>
"#;

/// A dist/ as Trunk and `scripts/build-ui.sh` leave it: hashed bundle, hashed loader and style,
/// an unhashed file, one too small to be worth compressing, and the variants beside them.
fn make_dist(dir: &Path) {
    let repeat = |line: &str, times: usize| line.repeat(times).into_bytes();
    let mut wasm = b"\0asm\x01\0\0\0".to_vec();
    wasm.extend((0..4000u32).flat_map(|i| (i % 251).to_le_bytes()));
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("index.html", INDEX.as_bytes().to_vec()),
        (
            "frontend-8134409bd22fe094.js",
            repeat("export function f(a) { return a + 1; }\n", 200),
        ),
        ("frontend-8134409bd22fe094_bg.wasm", wasm),
        (
            "style-4b8e554530820ce2.css",
            repeat("body { margin: 0 auto; max-width: 40rem; }\n", 20),
        ),
        (
            "loader-0a1b2c3d4e5f6071.js",
            repeat("const tag = document.getElementById('app-loader');\n", 5),
        ),
        (
            "favicon.svg",
            repeat("<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>\n", 10),
        ),
        ("tiny.txt", b"x".to_vec()),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let status = Command::new("node")
        .arg(repo_root().join("tools/precompress.mjs"))
        .arg(dir)
        .status()
        .expect("node must be installed");
    assert!(status.success(), "tools/precompress.mjs failed");
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        None => out.extend_from_slice(body),
        Some("br") => {
            brotli_decompressor::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

/// GET `path` with `accept` as `Accept-Encoding` (none when `None`); asserts the encoding
/// (the variant when the browser accepts it and the build wrote it), `Vary`, `Cache-Control`,
/// the security headers, and that the decoded body is `file`. Returns the answer's headers.
async fn assert_delivery(
    app: &TestApp,
    dist: &Path,
    path: &str,
    file: &str,
    accept: Option<&str>,
    cache: &str,
) -> HeaderMap {
    let http = reqwest::Client::new();
    let mut request = http.get(format!("{}{path}", app.address));
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT_ENCODING, accept);
    }
    let r = request.send().await.unwrap();
    let what = format!("{path} with Accept-Encoding {accept:?}");
    assert_eq!(r.status(), StatusCode::OK, "{what}");
    let h = r.headers().clone();
    let variant = accept.and_then(|a| {
        let ext = if a == "br" { "br" } else { "gz" };
        dist.join(format!("{file}.{ext}")).is_file().then_some(a)
    });
    assert_eq!(header(&h, header::CONTENT_ENCODING), variant, "{what}");
    assert_eq!(header(&h, header::VARY), Some("accept-encoding"), "{what}");
    assert_eq!(header(&h, header::CACHE_CONTROL), Some(cache), "{what}");
    assert_eq!(
        header(&h, header::X_CONTENT_TYPE_OPTIONS),
        Some("nosniff"),
        "{what}"
    );
    let csp = header(&h, header::CONTENT_SECURITY_POLICY).unwrap();
    if file.ends_with(".html") {
        assert!(
            csp.contains("script-src 'self'"),
            "{what}: the SPA's CSP: {csp}"
        );
    } else {
        assert_eq!(csp, "default-src 'none'; frame-ancestors 'none'", "{what}");
    }
    let body = r.bytes().await.unwrap();
    assert_eq!(
        decode(header(&h, header::CONTENT_ENCODING), &body),
        std::fs::read(dist.join(file)).unwrap(),
        "{what}: the decoded body is the file"
    );
    h
}

#[tokio::test]
async fn every_spa_file_is_sent_precompressed_as_accepted_with_its_caching_headers() {
    let dist = tempfile::tempdir().unwrap();
    make_dist(dist.path());
    for compressed in [
        "frontend-8134409bd22fe094.js.br",
        "frontend-8134409bd22fe094_bg.wasm.gz",
        "index.html.br",
        "favicon.svg.gz",
    ] {
        assert!(
            dist.path().join(compressed).is_file(),
            "{compressed} written"
        );
    }
    assert!(
        !dist.path().join("tiny.txt.br").exists(),
        "no variant larger than its file"
    );
    let app = spawn_app_with(AppOptions {
        dist_dir: Some(dist.path().to_path_buf()),
        ..AppOptions::default()
    })
    .await;

    let files = [
        ("frontend-8134409bd22fe094.js", IMMUTABLE),
        ("frontend-8134409bd22fe094_bg.wasm", IMMUTABLE),
        ("style-4b8e554530820ce2.css", IMMUTABLE),
        ("loader-0a1b2c3d4e5f6071.js", IMMUTABLE),
        ("favicon.svg", NO_CACHE),
        ("tiny.txt", NO_CACHE),
        ("index.html", NO_CACHE),
    ];
    for accept in [Some("br"), Some("gzip"), None] {
        for (file, cache) in files {
            assert_delivery(&app, dist.path(), &format!("/{file}"), file, accept, cache).await;
        }
        // The SPA's pages are index.html, delivered the same way.
        for page in ["/", "/api-demo", "/login?x=1"] {
            assert_delivery(&app, dist.path(), page, "index.html", accept, NO_CACHE).await;
        }
    }
}

#[tokio::test]
async fn a_browser_with_a_current_copy_of_the_page_gets_304() {
    let dist = tempfile::tempdir().unwrap();
    make_dist(dist.path());
    let app = spawn_app_with(AppOptions {
        dist_dir: Some(dist.path().to_path_buf()),
        ..AppOptions::default()
    })
    .await;
    let first = assert_delivery(&app, dist.path(), "/", "index.html", Some("br"), NO_CACHE).await;
    let modified = header(&first, header::LAST_MODIFIED)
        .expect("Last-Modified on the page")
        .to_owned();

    let again = reqwest::Client::new()
        .get(format!("{}/api-demo", app.address))
        .header(header::ACCEPT_ENCODING, "br")
        .header(header::IF_MODIFIED_SINCE, &modified)
        .send()
        .await
        .unwrap();

    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        header(again.headers(), header::CACHE_CONTROL),
        Some(NO_CACHE)
    );
    assert!(again.bytes().await.unwrap().is_empty());
}

/// With `ui.title` the page differs from the build's files: it is served from memory with the
/// configured name (never the precompressed file's), and a current copy still gets a `304`.
#[tokio::test]
async fn a_configured_title_is_in_every_page_and_a_current_copy_gets_304() {
    let dist = tempfile::tempdir().unwrap();
    make_dist(dist.path());
    let app = spawn_app_with(AppOptions {
        dist_dir: Some(dist.path().to_path_buf()),
        ui_title: Some("Acme & Co".into()),
        ..AppOptions::default()
    })
    .await;
    let client = reqwest::Client::new();
    let first = client
        .get(format!("{}/api-demo", app.address))
        .header(header::ACCEPT_ENCODING, "br, gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(header(first.headers(), header::CONTENT_ENCODING), None);
    assert_eq!(
        header(first.headers(), header::CACHE_CONTROL),
        Some(NO_CACHE)
    );
    let etag = header(first.headers(), header::ETAG)
        .expect("an ETag on the page served from memory")
        .to_owned();
    let body = first.text().await.unwrap();
    assert!(body.contains("<title>Acme &amp; Co</title>"), "{body}");

    let again = client
        .get(format!("{}/", app.address))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());
}
