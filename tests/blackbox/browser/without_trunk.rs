//! Issue 24: the run command builds the SPA without Trunk (`scripts/build-ui.sh`: cargo, the
//! wasm-bindgen CLI, `tools/assemble-dist.mjs`); the tests' `dist/` is Trunk's
//! (`scripts/build-ui.sh --trunk`, scripts/test.sh). Built from the same compiled crates, both
//! carry the same WASM, glue, loader and icon bytes, name every file with a content hash and an
//! `integrity` that fits it, and a user signs in on the one built without Trunk.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha384};

use super::Browser;
use crate::support::*;

/// One element of a built `index.html`: its tag and attributes (quoted or not, as Trunk's HTML
/// minifier leaves them unquoted).
#[derive(Debug)]
struct Element {
    tag: String,
    attrs: BTreeMap<String, String>,
}

fn elements(html: &str) -> Vec<Element> {
    let mut found = Vec::new();
    for chunk in html.split('<').skip(1) {
        let Some(body) = chunk.split('>').next() else {
            continue;
        };
        let body = body.trim_end_matches('/').trim();
        if body.starts_with('/') || body.starts_with('!') {
            continue;
        }
        let (tag, mut rest) = body.split_once(' ').unwrap_or((body, ""));
        let mut attrs = BTreeMap::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let name_end = rest.find(['=', ' ']).unwrap_or(rest.len());
            let name = rest[..name_end].to_owned();
            rest = &rest[name_end..];
            let value = if let Some(after) = rest.strip_prefix('=') {
                let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                    let end = quoted.find('"').unwrap();
                    (&quoted[..end], &quoted[end + 1..])
                } else {
                    let end = after.find(' ').unwrap_or(after.len());
                    (&after[..end], &after[end..])
                };
                rest = tail;
                value.to_owned()
            } else {
                String::new()
            };
            attrs.insert(name, value);
        }
        found.push(Element {
            tag: tag.to_lowercase(),
            attrs,
        });
    }
    found
}

/// The files a built page loads, by role: `(role, file in dist, integrity)`.
fn loaded_files(dist: &Path) -> BTreeMap<String, (PathBuf, Option<String>)> {
    let html = std::fs::read_to_string(dist.join("index.html")).unwrap();
    let mut files = BTreeMap::new();
    for el in elements(&html) {
        let (role, href) = match (el.tag.as_str(), el.attrs.get("rel").map(String::as_str)) {
            ("link", Some(rel)) => (rel.to_owned(), el.attrs.get("href")),
            ("script", _) => ("script".to_owned(), el.attrs.get("src")),
            ("meta", _) if el.attrs.get("id").map(String::as_str) == Some("app-loader") => {
                for key in ["data-js", "data-wasm"] {
                    let name = el.attrs[key].trim_start_matches('/');
                    files.insert(format!("app-loader {key}"), (dist.join(name), None));
                }
                continue;
            }
            _ => continue,
        };
        let name = href.unwrap().trim_start_matches('/');
        let previous = files.insert(
            role.clone(),
            (dist.join(name), el.attrs.get("integrity").cloned()),
        );
        assert!(previous.is_none(), "one {role} in {}", dist.display());
    }
    files
}

/// `NAME-HEX.EXT` or `NAME-HEX_bg.wasm` with 12 to 16 hex digits: what the bridge serves as
/// immutable.
fn content_hashed(file: &Path) -> bool {
    let name = file.file_name().unwrap().to_str().unwrap();
    let stem = name.split('.').next().unwrap().trim_end_matches("_bg");
    stem.rsplit_once('-').is_some_and(|(_, hash)| {
        (12..=16).contains(&hash.len()) && hash.chars().all(|c| c.is_ascii_hexdigit())
    })
}

#[tokio::test]
async fn the_spa_built_without_trunk_is_trunks_and_signs_in_in_a_real_browser() {
    let root = repo_root();
    let dir = tempfile::tempdir().unwrap();
    let lean = dir.path().join("dist");
    // A `trunk` first on PATH that fails: the build must not call it.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::write(
        bin.join("trunk"),
        "#!/bin/sh\necho 'trunk was called' >&2\nexit 1\n",
    )
    .unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(bin.join("trunk"))
        .status()
        .unwrap();
    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    // Cargo finds the crates compiled by scripts/test.sh's Trunk build: wasm-bindgen, wasm-opt,
    // terser and the compression are what takes time here (~20 s).
    let building = crate::support::WASM_BUILD.lock().await;
    let out = tokio::process::Command::new("bash")
        .arg(root.join("scripts/build-ui.sh"))
        .arg("--dist")
        .arg(&lean)
        .env("PATH", path)
        .current_dir(&root)
        .output()
        .await
        .unwrap();
    drop(building);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "scripts/build-ui.sh failed: {log}");
    assert!(
        log.contains("assemble-dist: ") && !log.contains("trunk was called"),
        "scripts/build-ui.sh built without Trunk: {log}"
    );

    let trunks = loaded_files(&root.join("dist"));
    let built = loaded_files(&lean);
    assert_eq!(
        trunks.keys().collect::<Vec<_>>(),
        built.keys().collect::<Vec<_>>(),
        "the same kinds of files are loaded"
    );
    for (role, (file, integrity)) in &built {
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{role}: {file:?}: {e}"));
        assert!(
            content_hashed(file),
            "{role}: {file:?} carries a content hash"
        );
        if let Some(integrity) = integrity {
            let digest = format!("sha384-{}", STANDARD.encode(Sha384::digest(&bytes)));
            assert_eq!(integrity, &digest, "{role}: the integrity of {file:?}");
        }
        for ext in ["br", "gz"] {
            let variant = PathBuf::from(format!("{}.{ext}", file.display()));
            let trunk_variant = PathBuf::from(format!("{}.{ext}", trunks[role].0.display()));
            assert_eq!(
                variant.exists(),
                trunk_variant.exists(),
                "{role}: {variant:?}"
            );
        }
        // The stylesheet is minified by lightningcss either way (Trunk's copy of it is another
        // version); everything else is byte for byte Trunk's.
        if role != "stylesheet" {
            assert!(
                bytes == std::fs::read(&trunks[role].0).unwrap(),
                "{role}: {file:?} is not Trunk's {:?}",
                trunks[role].0
            );
        }
    }

    // A user signs in on it: the page loads, the WASM app starts and shows who signed in.
    let app = spawn_app_with(AppOptions {
        dist_dir: Some(lean.clone()),
        ..Default::default()
    })
    .await;
    let browser = Browser::start().await;
    browser.sign_in_with_sso(&app, "alice", "wonderland").await;
    browser.wait_for_text("#user-username", "alice").await;
    let page = reqwest::get(&app.address)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let wasm = built["app-loader data-wasm"]
        .0
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        page.contains(wasm),
        "the bridge serves the dist built without Trunk"
    );
    browser.close().await;
}
