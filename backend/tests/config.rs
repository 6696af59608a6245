//! Configuration as an operator meets it: a TOML file, `BRIDGE_*` overrides, and clear errors
//! at startup (`login-bridge check-config`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};

fn run(config: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_login-bridge"));
    cmd.args(["check-config", "--config"])
        .arg(&path)
        .env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

const BASE: &str = r#"
public_url = "https://ui.example.org"
[oidc]
issuer = "https://idp.example.org/realms/r"
client_id = "ui"
api_audience = "my-api"
"#;

#[test]
fn a_missing_client_secret_says_so_and_how_to_fix_it() {
    let out = run(BASE, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("oidc.client_secret: missing"), "{err}");
    assert!(err.contains("BRIDGE_OIDC__CLIENT_SECRET"), "{err}");
}

#[test]
fn environment_variables_override_the_file_and_secrets_stay_masked() {
    let out = run(
        BASE,
        &[
            ("BRIDGE_OIDC__CLIENT_SECRET", "super-secret-value"),
            ("BRIDGE_OIDC__CLIENT_ID", "from-env"),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"client_id\": \"from-env\""), "{stdout}");
    assert!(!stdout.contains("super-secret-value"), "{stdout}");
    assert!(stdout.contains("\"client_secret\": \"***\""), "{stdout}");
}

#[test]
fn every_problem_is_listed_at_once_and_unknown_keys_are_errors() {
    let out = run(
        "public_url = \"ftp://x\"\n[oidc]\nissuer = \"nope\"\nclient_id = \"\"\napi_audience = \"account\"\n",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for problem in [
        "public_url",
        "oidc.issuer",
        "oidc.client_id",
        "oidc.client_secret",
        "oidc.api_audience",
    ] {
        assert!(err.contains(problem), "{problem} in {err}");
    }
    let out = run(&format!("{BASE}\nclient_secrett = \"typo\"\n"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_secrett"));
}

#[test]
fn a_bad_trusted_issuer_is_refused_at_startup_with_its_name() {
    let config = format!(
        "{BASE}\n[[issuers]]\nname = \"gw\"\nissuer = \"https://gw\"\naudiences = [\"a\"]\nalgorithms = [\"HS256\"]\npublic_key = \"-----BEGIN PUBLIC KEY-----\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
        .args(["token", "verify", "--config"])
        .arg(&path)
        .arg("x.y.z")
        .env_clear()
        .env("BRIDGE_OIDC__CLIENT_SECRET", "s")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("issuers[gw]"), "{err}");
    assert!(err.contains("never used as an HMAC secret"), "{err}");
}
