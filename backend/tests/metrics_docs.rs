//! docs/operations.md lists every metric: a name recorded anywhere in `backend/src` (a string
//! literal `"login_bridge_…"`) that the page does not name fails this test, so a new metric
//! cannot ship undocumented and a renamed one cannot leave the old name behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::BTreeSet, fs, path::Path};

/// Every `"login_bridge_…"` string literal under `dir`.
fn metric_names(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            metric_names(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("\"login_bridge_") {
                let rest = &text[at + 1..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if rest[name.len()..].starts_with('"') {
                    out.insert(name);
                }
            }
        }
    }
}

/// The metric names in the page's table: the first cell of each row, in backticks.
fn documented(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|l| l.strip_prefix("| `login_bridge_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|name| format!("login_bridge_{name}"))
        .collect()
}

#[test]
fn every_metric_the_bridge_records_is_listed_in_docs_operations() {
    let backend = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut recorded = BTreeSet::new();
    metric_names(&backend.join("src"), &mut recorded);
    assert!(
        recorded.len() >= 13,
        "found only {recorded:?}: did the metric names move out of string literals?"
    );
    let page = fs::read_to_string(backend.join("../docs/operations.md")).unwrap();
    let listed = documented(&page);
    let missing: Vec<_> = recorded.difference(&listed).collect();
    let stale: Vec<_> = listed.difference(&recorded).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/operations.md's metrics table: missing {missing:?}, no longer recorded {stale:?}"
    );
}
