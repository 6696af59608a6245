//! `bench/RESULTS.md` keeps the latest figure of every benchmark: a bench script added without
//! its row, or a row without its date or command, fails here, so the figures cannot quietly fall
//! behind the scripts (its links are checked with the docs', in `docs.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    fs,
    path::{Path, PathBuf},
};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn results() -> String {
    fs::read_to_string(repo().join("bench/RESULTS.md")).expect("bench/RESULTS.md")
}

/// The rows of the figures table, split into trimmed cells (header and separator left out).
fn rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells[0] != "benchmark" && !cells[0].starts_with("---"))
        .collect()
}

#[test]
fn every_bench_script_has_a_row_with_its_latest_figure_date_and_command() {
    let text = results();
    let rows = rows(&text);
    assert!(!rows.is_empty(), "bench/RESULTS.md has no figures table");
    for row in &rows {
        assert_eq!(
            row.len(),
            5,
            "a row needs benchmark | figure | target | date | command: {row:?}"
        );
        let date = &row[3];
        let well_formed = date.len() == 10
            && date.char_indices().all(|(i, c)| match i {
                4 | 7 => c == '-',
                _ => c.is_ascii_digit(),
            });
        assert!(
            well_formed,
            "{:?}: the date {date:?} is not YYYY-MM-DD",
            row[0]
        );
        assert!(!row[4].is_empty(), "{:?}: no command", row[0]);
    }
    let commands: Vec<&str> = rows.iter().map(|r| r[4].as_str()).collect();
    let mut scripts: Vec<String> = fs::read_dir(repo().join("bench"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sh") && name != "lib.sh")
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    let missing: Vec<&String> = scripts
        .iter()
        .filter(|s| !commands.iter().any(|c| c.contains(&format!("bench/{s}"))))
        .collect();
    assert!(
        missing.is_empty(),
        "bench scripts without a row (its command) in bench/RESULTS.md: {missing:?}"
    );
}
