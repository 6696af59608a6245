//! Issue 22, acceptance 1, read from the SPA's sources (what a browser test cannot see): the
//! SPA and its reusable `auth`/`api` library speak HTTP through gloo-net, from `api.rs` only,
//! and read JSON with serde (derived on the `shared` types), with no JSON parser or decoder of
//! their own. The browser tests (`browser.rs`) prove the behaviour that goes with it: the
//! Bearer token on every `/api` call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use crate::support::repo_root;

/// Every Rust file of the SPA's crate (library, app, pages, examples).
fn frontend_sources() -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&repo_root().join("frontend"), &mut found);
    assert!(found.len() > 5, "the SPA's sources are found: {found:?}");
    found
}

#[test]
fn the_spa_has_no_json_parser_or_decoder_of_its_own_only_serde() {
    // What the hand-written JSON reading was made of: the browser's `JSON.parse` into a value
    // tree, a `Decode` trait per bridge type, and a serde `Deserializer` over that tree.
    let hand_written = [
        "JSON::parse",
        "JSON.parse",
        "trait Decode",
        "impl Decode",
        "Deserializer for",
        "forward_to_deserialize_any",
        "MapDeserializer",
        "SeqDeserializer",
        "fn from_js(",
        "enum Json",
    ];
    assert!(
        !repo_root().join("frontend/src/json.rs").exists(),
        "frontend/src/json.rs is gone"
    );
    for file in frontend_sources() {
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in hand_written {
            assert!(
                !text.contains(needle),
                "{} still reads JSON by hand: `{needle}`",
                file.display()
            );
        }
    }
}

#[test]
fn gloo_net_is_the_spas_http_client_and_api_rs_the_only_module_that_uses_it() {
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(repo_root().join("frontend/Cargo.toml")).unwrap())
            .unwrap();
    let dependencies = manifest["dependencies"].as_table().unwrap();
    assert!(
        dependencies.contains_key("gloo-net"),
        "gloo-net is a dependency of frontend: {dependencies:?}"
    );
    assert!(
        dependencies.contains_key("serde_json"),
        "serde_json reads and writes the bodies: {dependencies:?}"
    );
    // The browser's `fetch` by hand (web-sys), or gloo-net's request builder, anywhere but in
    // api.rs: a request that could skip the Bearer token or the CSRF header.
    let http_by_hand = [
        "fetch_with_",
        "RequestInit",
        "JsFuture",
        "XmlHttpRequest",
        "gloo_net::http",
        "RequestBuilder",
    ];
    let api = repo_root().join("frontend/src/api.rs");
    let api_text = std::fs::read_to_string(&api).unwrap();
    assert!(
        api_text.contains("use gloo_net::http::"),
        "api.rs sends with gloo-net"
    );
    // dpop.rs awaits the promises of WebCrypto and IndexedDB (`JsFuture`), never a fetch: every
    // other needle still holds for it.
    let dpop = repo_root().join("frontend/src/dpop.rs");
    for file in frontend_sources() {
        if file == api {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for needle in http_by_hand {
            if file == dpop && needle == "JsFuture" {
                continue;
            }
            assert!(
                !text.contains(needle),
                "{} sends HTTP itself: `{needle}`",
                file.display()
            );
        }
    }
    for needle in ["fetch_with_", "RequestInit", "JsFuture"] {
        assert!(
            !api_text.contains(needle),
            "api.rs calls fetch by hand: `{needle}`"
        );
    }
}
