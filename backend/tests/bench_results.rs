//! `bench/RESULTS.md` keeps the latest figure of every benchmark: a bench script added without
//! its row, a row without its date or command, or a link that leads nowhere fails here, so the
//! figures cannot quietly fall behind the scripts.
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

/// GitHub's heading anchors: lowercase, spaces to `-`, punctuation but `-` and `_` dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
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

#[test]
fn every_link_in_the_bench_results_leads_to_a_file_and_heading_that_exist() {
    let text = results();
    let bench = repo().join("bench");
    let mut broken = Vec::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = &rest[..end];
        if target.starts_with("http://") || target.starts_with("https://") {
            continue;
        }
        let (path, fragment) = target.split_once('#').unwrap_or((target, ""));
        let file = bench.join(path);
        if !file.exists() {
            broken.push(format!("{target}: no such file"));
            continue;
        }
        if !fragment.is_empty() {
            let page = fs::read_to_string(&file).unwrap();
            if !page
                .lines()
                .filter(|l| l.starts_with('#'))
                .any(|l| slug(l.trim_start_matches('#')) == fragment)
            {
                broken.push(format!("{target}: no such heading"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken links in bench/RESULTS.md: {broken:?}"
    );
}
