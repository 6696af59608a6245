//! Issue 24, acceptance 1: the run command (`scripts/demo.sh`) installs only what running the
//! bridge needs. Its install step's plan (`scripts/demo.sh --plan`: what the step would install
//! on a machine that has none of it) names the WASM target, the SPA's build tools and the demo
//! provider's packages, and nothing that only the tests need; the test command's full install
//! (`scripts/install-deps.sh --plan`) names all of those, so the words looked for are the ones
//! the script really uses. The SPA the run command builds without Trunk is proven in a browser
//! by `browser::the_spa_built_without_trunk_is_trunks_and_signs_in_in_a_real_browser`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::support::repo_root;

/// What only the tests need, as the full install's plan names it.
const TEST_ONLY: [&str; 8] = [
    "chromium",
    "chromium-driver",
    "wrk",
    "redis-server",
    "postgresql",
    "python3-venv",
    "privacyidea",
    "trunk",
];

/// What running needs, as the plans name it.
const RUNNING_NEEDS: [&str; 5] = [
    "rustup target add wasm32-unknown-unknown",
    "the spa's release build",
    "cargo install wasm-bindgen-cli",
    "npm ci in tools",
    "npm ci in tests/idp",
];

/// The `plan: ...` lines of a script run with `args`, under a PATH of the system's directories
/// only (none of a developer's cargo-installed tools).
fn plan_of(script: &str, args: &[&str]) -> Vec<String> {
    let out = std::process::Command::new("bash")
        .arg(repo_root().join(script))
        .args(args)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir(repo_root())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan: Vec<String> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix("plan: "))
        .map(str::to_lowercase)
        .collect();
    assert!(
        !plan.is_empty(),
        "{script} {args:?} planned nothing: {stdout}"
    );
    plan
}

fn mentions(plan: &[String], what: &str) -> bool {
    plan.iter().any(|line| line.contains(what))
}

#[test]
fn the_run_command_installs_only_what_running_needs() {
    let full = plan_of("scripts/install-deps.sh", &["--plan"]);
    for what in TEST_ONLY.iter().chain(&RUNNING_NEEDS) {
        assert!(
            mentions(&full, what),
            "the test command's install plans {what}: {full:?}"
        );
    }

    let run = plan_of("scripts/demo.sh", &["--plan"]);
    for what in RUNNING_NEEDS {
        assert!(
            mentions(&run, what),
            "the run command installs {what}: {run:?}"
        );
    }
    for what in TEST_ONLY {
        assert!(
            !mentions(&run, what),
            "the run command installs {what}, which only the tests need: {run:?}"
        );
    }

    // And nothing of it outside the install step: no command in demo.sh (comments aside)
    // installs a package, runs the full install, or Trunk.
    let demo = std::fs::read_to_string(repo_root().join("scripts/demo.sh")).unwrap();
    for line in demo.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        if line.contains("install-deps.sh") {
            assert!(
                line.contains("--run"),
                "demo.sh runs the full install: {line}"
            );
        }
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || ";|&()`$\"'{}".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        for (i, word) in words.iter().enumerate() {
            let next = words.get(i + 1).copied().unwrap_or_default();
            let installs = matches!(*word, "apt-get" | "apt" | "pip" | "pip3")
                || (*word == "cargo" && next == "install")
                || (*word == "npm" && matches!(next, "install" | "ci" | "i"));
            let test_only = matches!(
                *word,
                "trunk" | "--trunk" | "chromium" | "wrk" | "redis-server"
            );
            assert!(!installs && !test_only, "demo.sh: {line}");
        }
    }
}
