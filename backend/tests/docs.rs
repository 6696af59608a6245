//! The docs cannot silently rot. The checks, the rules of which docs/README.md ("Writing a page")
//! states for authors:
//! - every relative link in README.md, CONTRIBUTING.md, bench/RESULTS.md and docs/**/*.md points to
//!   an existing file,
//!   and its `#fragment` to a heading (GitHub's slugs) or an `<a id>` of that file;
//! - every configuration under config/examples/ passes `login-bridge check-config`, with the
//!   environment its `#! env NAME=VALUE` lines ask for (`{tmp}`: keys and secrets made here),
//!   and a guide that shows one as the file (a `toml` block after "[config/examples/x.toml](…):")
//!   shows the file's own lines;
//! - every ```` ```sh ```` block of docs/ runs with `bash -euo pipefail` in a fresh directory, the
//!   built binary first on PATH, unless the line before its fence is `<!-- not run: reason -->`.
//!
//! A small hand parser reads the Markdown: it only has to understand our own pages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    fs,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use aws_lc_rs::{
    encoding::AsDer as _,
    rand::{SecureRandom as _, SystemRandom},
    rsa::KeySize,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _},
};
use base64::Engine as _;

/// How long one `sh` block may take (the contract every page is written to).
const BLOCK_TIMEOUT: Duration = Duration::from_secs(60);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// README.md, CONTRIBUTING.md, bench/RESULTS.md (when present) and every page under docs/, sorted.
fn markdown_files() -> Vec<PathBuf> {
    let root = repo();
    let mut files: Vec<PathBuf> = ["README.md", "CONTRIBUTING.md", "bench/RESULTS.md"]
        .iter()
        .map(|f| root.join(f))
        .filter(|p| p.is_file())
        .collect();
    files.extend(docs_pages());
    files
}

/// Every `.md` under docs/, recursively, sorted.
fn docs_pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("docs"), &mut out);
    out.sort();
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Markdown, the little of it our pages use
// ---------------------------------------------------------------------------------------------

/// A fenced code block.
struct Block {
    /// The first word of the info string (`sh`, `toml`, ...), may be empty.
    info: String,
    body: String,
    /// 1-based line of the opening fence.
    line: usize,
    /// The line right before the opening fence, trimmed.
    before: String,
    /// The last non-blank line before the opening fence, trimmed.
    context: String,
}

/// Splits a page into its fenced blocks and the lines outside them (with their 1-based numbers).
fn parse(text: &str) -> (Vec<Block>, Vec<(usize, &str)>) {
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        let fence_len = fence_char.map_or(0, |c| trimmed.chars().take_while(|x| *x == c).count());
        if let (Some(c), true) = (fence_char, fence_len >= 3) {
            let info = trimmed[fence_len..]
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_string();
            let mut body = String::new();
            let mut j = i + 1;
            while j < lines.len() {
                let t = lines[j].trim_start();
                let n = t.chars().take_while(|x| *x == c).count();
                if n >= fence_len && t[n..].trim().is_empty() {
                    break;
                }
                // Blocks inside list items are indented like their fence: drop that indent.
                let l = lines[j];
                let strip = l.len() - l.trim_start().len();
                body.push_str(&l[strip.min(indent)..]);
                body.push('\n');
                j += 1;
            }
            blocks.push(Block {
                info,
                body,
                line: i + 1,
                before: if i > 0 {
                    lines[i - 1].trim().to_string()
                } else {
                    String::new()
                },
                context: lines[..i]
                    .iter()
                    .rev()
                    .map(|l| l.trim())
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_string(),
            });
            i = j + 1;
        } else {
            prose.push((i + 1, line));
            i += 1;
        }
    }
    (blocks, prose)
}

/// A line with its inline code spans (`` `...` ``) blanked, so `[x](y)` inside code is no link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let marker = &rest[start..start + ticks];
        out.push_str(&rest[..start]);
        match rest[start + ticks..].find(marker) {
            Some(end) => rest = &rest[start + ticks + end + ticks..],
            None => {
                out.push_str(&rest[start..]);
                return out;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Link targets on one line of prose: `[t](x)`, `![t](x)`, `[ref]: x`, `href="x"`, `src="x"`.
fn link_targets(line: &str) -> Vec<String> {
    let line = without_code_spans(line);
    let mut out = Vec::new();
    let mut rest = line.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let mut depth = 0usize;
        let mut end = after.len();
        for (k, c) in after.char_indices() {
            match c {
                '(' => depth += 1,
                ')' if depth == 0 => {
                    end = k;
                    break;
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        let inner = after[..end].trim();
        let target = if let Some(stripped) = inner.strip_prefix('<') {
            stripped.split('>').next().unwrap_or("")
        } else {
            inner.split_whitespace().next().unwrap_or("")
        };
        out.push(target.to_string());
        rest = &after[end.min(after.len())..];
    }
    let t = line.trim_start();
    if t.starts_with('[')
        && let Some(close) = t.find("]:")
        && !t[1..close].contains('[')
        && let Some(target) = t[close + 2..].split_whitespace().next()
    {
        out.push(target.trim_matches(['<', '>']).to_string());
    }
    for attr in ["href=\"", "src=\""] {
        let mut rest = line.as_str();
        while let Some(at) = rest.find(attr) {
            let after = &rest[at + attr.len()..];
            let end = after.find('"').unwrap_or(after.len());
            out.push(after[..end].to_string());
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's heading anchor: lowercase, punctuation other than `-` and `_` removed, spaces to `-`.
fn slug(heading: &str) -> String {
    // Inline markup first: `[text](url)` keeps its text, HTML tags go.
    let mut text = String::new();
    let mut rest = heading;
    while let Some(at) = rest.find("](") {
        text.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        rest = after.find(')').map_or("", |e| &after[e + 1..]);
    }
    text.push_str(rest);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    plain
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a page offers: its headings' slugs (GitHub numbers repeats `-1`, `-2`) and
/// explicit `id="..."`/`name="..."` attributes.
fn anchors(text: &str) -> BTreeSet<String> {
    let (_, prose) = parse(text);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut previous = "";
    for (_, line) in &prose {
        let t = line.trim();
        let heading = if let Some(h) = t.strip_prefix('#') {
            let h = h.trim_start_matches('#');
            (h.starts_with(' ') || h.is_empty()).then(|| h.trim().trim_end_matches('#').trim())
        } else if !previous.is_empty()
            && !t.is_empty()
            && (t.chars().all(|c| c == '=') || t.chars().all(|c| c == '-'))
            && !previous.starts_with('|')
            && !previous.starts_with('-')
            && !previous.starts_with('*')
        {
            Some(previous)
        } else {
            None
        };
        if let Some(h) = heading {
            let base = slug(h);
            let n = seen.entry(base.clone()).or_insert(0);
            out.insert(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = *line;
            while let Some(at) = rest.find(attr) {
                let after = &rest[at + attr.len()..];
                let end = after.find('"').unwrap_or(after.len());
                out.insert(after[..end].to_string());
                rest = &after[end..];
            }
        }
        previous = t;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// 1. Links
// ---------------------------------------------------------------------------------------------

#[test]
fn every_link_in_the_readme_and_docs_resolves() {
    let root = repo();
    let mut checked = 0;
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = fs::read_to_string(&file).unwrap();
        let (_, prose) = parse(&text);
        for (number, line) in prose {
            for target in link_targets(line) {
                if target.is_empty()
                    || target.contains("://")
                    || target.starts_with("mailto:")
                    || target.starts_with("tel:")
                {
                    continue;
                }
                checked += 1;
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target.as_str(), None),
                };
                let path = path.replace("%20", " ");
                let resolved = if path.is_empty() {
                    file.clone()
                } else if let Some(from_root) = path.strip_prefix('/') {
                    root.join(from_root)
                } else {
                    file.parent().unwrap().join(&path)
                };
                let at = format!("{}:{number}: ({target})", rel(&file));
                if !resolved.exists() {
                    broken.push(format!("{at}: no such file {}", resolved.display()));
                    continue;
                }
                let Some(fragment) = fragment.filter(|f| !f.is_empty()) else {
                    continue;
                };
                if resolved.extension().is_some_and(|e| e == "md") {
                    let target_text = fs::read_to_string(&resolved).unwrap();
                    if !anchors(&target_text).contains(fragment) {
                        broken.push(format!(
                            "{at}: no heading or <a id> \"{fragment}\" in {}",
                            rel(&resolved)
                        ));
                    }
                } else if !is_line_anchor(fragment) {
                    broken.push(format!(
                        "{at}: #{fragment} in a file that is not Markdown (only #L12 or #L12-L20 there)"
                    ));
                }
            }
        }
    }
    assert!(checked > 0, "no relative link found: is the parser broken?");
    assert!(
        broken.is_empty(),
        "{} broken link(s) of {checked}:\n{}",
        broken.len(),
        broken.join("\n")
    );
}

/// GitHub's line anchors in source files: `L12`, `L12-L20`.
fn is_line_anchor(fragment: &str) -> bool {
    fragment.split('-').all(|part| {
        part.strip_prefix('L')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
    })
}

// ---------------------------------------------------------------------------------------------
// 2. Example configurations
// ---------------------------------------------------------------------------------------------

/// Fills `dir` with the files an example's `#! env` lines may name as `{tmp}/...`.
fn write_key_material(dir: &Path) {
    let rng = SystemRandom::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;

    let mut kek = [0u8; 32];
    rng.fill(&mut kek).unwrap();
    fs::write(dir.join("kek"), format!("{}\n", b64.encode(kek))).unwrap();

    let mut secret = [0u8; 24];
    rng.fill(&mut secret).unwrap();
    fs::write(dir.join("secret"), b64url.encode(secret)).unwrap();

    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let spki = ec.public_key().as_der().unwrap();
    let pem_text = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()));
    fs::write(dir.join("es256-public.pem"), pem_text).unwrap();
    // The uncompressed point: 0x04 || x || y.
    let point = ec.public_key().as_ref();
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "docs-test",
        "x": b64url.encode(&point[1..33]), "y": b64url.encode(&point[33..65]),
    }]});
    fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();

    let rsa = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap();
    let spki = rsa.public_key().as_der().unwrap();
    let pem_text = pem::encode(&pem::Pem::new("PUBLIC KEY", spki.as_ref().to_vec()));
    fs::write(dir.join("rs256-public.pem"), pem_text).unwrap();
}

/// The `#! env NAME=VALUE` lines of an example, `{tmp}` replaced.
fn example_env(text: &str, tmp: &Path) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("#! env "))
        .map(|kv| {
            let (k, v) = kv
                .trim()
                .split_once('=')
                .unwrap_or_else(|| panic!("`#! env {kv}`: expected NAME=VALUE"));
            (
                k.trim().to_string(),
                v.trim().replace("{tmp}", &tmp.display().to_string()),
            )
        })
        .collect()
}

#[test]
fn every_example_configuration_passes_check_config() {
    let root = repo();
    let tmp = tempfile::tempdir().unwrap();
    write_key_material(tmp.path());
    let mut examples: Vec<PathBuf> = fs::read_dir(root.join("config/examples"))
        .expect("config/examples/ holds one configuration per guide")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    assert!(!examples.is_empty(), "config/examples/ has no .toml file");
    let mut failures = Vec::new();
    for example in &examples {
        let text = fs::read_to_string(example).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
            .args(["check-config", "--config"])
            .arg(example)
            .current_dir(&root)
            .env_clear()
            .envs(example_env(&text, tmp.path()))
            .output()
            .unwrap();
        if !out.status.success() {
            failures.push(format!(
                "--- {} (exit {:?}):\n{}{}",
                rel(example),
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} example(s) refused by check-config:\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n")
    );
}

/// A guide that shows an example "as the file" (a ```` ```toml ```` block right after a line that
/// links `config/examples/NAME.toml` and ends with `:`) shows the file's own lines, in order:
/// the copy on the page cannot drift from the file the test checks.
#[test]
fn every_example_a_guide_shows_is_the_file_itself() {
    let root = repo();
    let mut shown = 0;
    let mut drifted = Vec::new();
    for page in docs_pages() {
        let text = fs::read_to_string(&page).unwrap();
        let (blocks, _) = parse(&text);
        for block in blocks.iter().filter(|b| b.info == "toml") {
            let Some(name) = block
                .context
                .strip_suffix(':')
                .and_then(|c| c.split("config/examples/").nth(1))
                .and_then(|rest| rest.split(".toml").next())
            else {
                continue;
            };
            shown += 1;
            let file = root.join(format!("config/examples/{name}.toml"));
            let Ok(example) = fs::read_to_string(&file) else {
                drifted.push(format!(
                    "{}:{}: no file {}",
                    rel(&page),
                    block.line,
                    rel(&file)
                ));
                continue;
            };
            let mut lines = example.lines().map(str::trim_end);
            for wanted in block
                .body
                .lines()
                .map(str::trim_end)
                .filter(|l| !l.trim().is_empty())
            {
                if !lines.any(|l| l == wanted) {
                    drifted.push(format!(
                        "{}:{}: `{wanted}` is not (in this order) in {}",
                        rel(&page),
                        block.line,
                        rel(&file)
                    ));
                    break;
                }
            }
        }
    }
    assert!(
        shown > 0,
        "no guide shows an example file: is the parser broken?"
    );
    assert!(drifted.is_empty(), "{}", drifted.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 3. Runnable commands
// ---------------------------------------------------------------------------------------------

/// Info strings that look like commands but would not run: a page says `sh` (run) or `text`.
const AMBIGUOUS_SHELL_INFO: [&str; 5] = ["bash", "shell", "console", "zsh", "shell-session"];

/// A page's `sh` blocks, in order, with the reason of each `<!-- not run: ... -->` one.
/// Errors: ambiguous info strings, markers without a reason.
fn runnable_blocks(page: &Path) -> (Vec<(usize, Block)>, Vec<String>) {
    let text = fs::read_to_string(page).unwrap();
    let (blocks, _) = parse(&text);
    let mut run = Vec::new();
    let mut errors = Vec::new();
    let mut number = 0;
    for block in blocks {
        let at = format!("{}:{}", rel(page), block.line);
        if AMBIGUOUS_SHELL_INFO.contains(&block.info.as_str()) {
            errors.push(format!(
                "{at}: a ```{} block: write ```sh (run by tests/docs.rs, or marked \
                 <!-- not run: why -->) or ```text",
                block.info
            ));
            continue;
        }
        if block.info != "sh" {
            continue;
        }
        number += 1;
        if let Some(reason) = block
            .before
            .strip_prefix("<!-- not run:")
            .and_then(|r| r.strip_suffix("-->"))
        {
            if reason.trim().is_empty() {
                errors.push(format!("{at}: `<!-- not run: -->` needs a reason"));
            }
            continue;
        }
        run.push((number, block));
    }
    (run, errors)
}

/// Runs one block: `bash -euo pipefail` in `work`, output to a file (a server the block leaves
/// behind must not hold a pipe open), its whole process group killed afterwards.
fn run_block(block: &Block, work: &Path, bin: &Path, log: &Path) -> Result<(), String> {
    let out = fs::File::create(log).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
    );
    let mut child = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &block.body])
        .current_dir(work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", work)
        .env("LANG", "C.UTF-8")
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + BLOCK_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the block started in the background ends with it.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .stderr(Stdio::null())
        .status();
    let _ = child.wait();
    let output = fs::read_to_string(log).unwrap_or_default();
    let tail = |s: &str| {
        let start = s.len().saturating_sub(6000);
        let start = (start..s.len())
            .find(|i| s.is_char_boundary(*i))
            .unwrap_or(0);
        s[start..].to_string()
    };
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("{s}; output:\n{}", tail(&output))),
        None => Err(format!(
            "still running after {}s (killed); output:\n{}",
            BLOCK_TIMEOUT.as_secs(),
            tail(&output)
        )),
    }
}

#[test]
fn every_runnable_command_in_the_docs_runs() {
    let started = Instant::now();
    let root = repo();
    // Only `login-bridge` of the target directory goes on PATH.
    let tools = tempfile::tempdir().unwrap();
    let bin = tools.path().join("bin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_login-bridge"), bin.join("login-bridge"))
        .unwrap();

    // The tools the pages' commands use besides the bridge: missing ones fail here, by name,
    // rather than as a confusing "command not found" in the middle of a page.
    let missing: Vec<&str> = ["curl", "jq", "openssl", "python3", "node"]
        .into_iter()
        .filter(|tool| {
            !Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the docs' commands need {missing:?} on PATH (curl, jq, openssl, python3: Debian packages \
         of those names; node: see scripts/install-deps.sh)"
    );

    let mut failures = Vec::new();
    let (mut ran, mut pages) = (0, 0);
    for page in docs_pages() {
        let (blocks, errors) = runnable_blocks(&page);
        failures.extend(errors);
        if blocks.is_empty() {
            continue;
        }
        pages += 1;
        let work = tempfile::tempdir().unwrap();
        for name in ["clients", "config", "dist", "scripts", "tests", "tools"] {
            std::os::unix::fs::symlink(root.join(name), work.path().join(name)).unwrap();
        }
        for (number, block) in &blocks {
            let page_started = Instant::now();
            ran += 1;
            let log = tools.path().join("block.log");
            let result = run_block(block, work.path(), &bin, &log);
            println!(
                "{} block {number} (line {}): {:.1}s",
                rel(&page),
                block.line,
                page_started.elapsed().as_secs_f64()
            );
            if let Err(why) = result {
                let mut report = String::new();
                let _ = write!(
                    report,
                    "--- {} block {number} (```sh at line {}) failed: {why}\n--- the block:\n{}",
                    rel(&page),
                    block.line,
                    block.body
                );
                failures.push(report);
                // Later blocks of the page build on this one: stop the page here.
                break;
            }
        }
    }
    println!(
        "docs: {ran} sh block(s) of {pages} page(s) in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} problem(s) in the docs' sh blocks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_markdown_parser_finds_links_headings_and_blocks_as_github_does() {
    assert_eq!(
        slug("The JWT-endpoint round trip"),
        "the-jwt-endpoint-round-trip"
    );
    assert_eq!(
        slug("`token verify`: why a token is refused"),
        "token-verify-why-a-token-is-refused"
    );
    assert_eq!(
        slug("Keycloak ([guide](docs/keycloak.md))"),
        "keycloak-guide"
    );
    assert_eq!(
        slug("Scale-out & HA: Redis_cluster"),
        "scale-out--ha-redis_cluster"
    );
    assert_eq!(
        link_targets("see [a](docs/a.md#x) and `[b](nope.md)` and ![i](s.png \"t\")"),
        vec!["docs/a.md#x", "s.png"]
    );
    let text = "# A\n## A\n<a id=\"here\"></a>\n```sh\n# not a heading\n```\nB\n---\n";
    let a = anchors(text);
    for want in ["a", "a-1", "here", "b"] {
        assert!(a.contains(want), "{want} in {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
    let (blocks, _) =
        parse("<!-- not run: a server -->\n```sh\nserve\n```\n  ```toml\n  a = 1\n  ```\n");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].before, "<!-- not run: a server -->");
    assert_eq!(
        (blocks[1].info.as_str(), blocks[1].body.as_str()),
        ("toml", "a = 1\n")
    );
}
