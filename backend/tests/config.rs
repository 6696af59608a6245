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

#[test]
fn a_token_profile_with_an_unknown_placeholder_is_refused_at_startup() {
    let config = format!(
        "{BASE}\n[session]\ntoken_profile = \"pi\"\n[authority]\nkey_encryption_key_file = \"/nonexistent\"\n\
         [[token_profiles]]\nname = \"pi\"\n[token_profiles.claims]\nusername = \"{{login}}\"\niss = \"me\"\n"
    );
    let out = run(&config, &[("BRIDGE_OIDC__CLIENT_SECRET", "s")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("token_profiles[pi]"), "{err}");
    assert!(err.contains("unknown placeholder {login}"), "{err}");
    assert!(err.contains("\"iss\" is set by the bridge"), "{err}");
}

#[test]
fn service_users_need_the_authority_and_say_how_to_add_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, BASE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
        .args(["service-user", "list", "--config"])
        .arg(&path)
        .env_clear()
        .env("BRIDGE_OIDC__CLIENT_SECRET", "s")
        .env("BRIDGE_SESSION__SQLITE_PATH", dir.path().join("s.sqlite"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("add [authority]"), "{err}");
}

#[test]
fn the_cli_creates_a_service_user_with_a_private_key_file_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let kek = dir.path().join("kek");
    std::fs::write(&kek, "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=\n").unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, BASE).unwrap();
    let key_file = dir.path().join("job.json");
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_login-bridge"))
            .args(args)
            .arg("--config")
            .arg(&path)
            .env_clear()
            .env("BRIDGE_OIDC__CLIENT_SECRET", "s")
            .env("BRIDGE_SESSION__SQLITE_PATH", dir.path().join("s.sqlite"))
            .env("BRIDGE_AUTHORITY__KEY_ENCRYPTION_KEY_FILE", &kek)
            .output()
            .unwrap()
    };
    let key = key_file.to_str().unwrap();
    let out = cli(&[
        "service-user",
        "create",
        "job",
        "--role",
        "deploy",
        "--out",
        key,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&key_file).unwrap()).unwrap();
    assert_eq!(file["type"], "serviceaccount");
    assert!(
        file["key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("PRIVATE KEY"),
        "the key goes to the file only"
    );
    // A second create with the same file name changes nothing.
    let out = cli(&["service-user", "create", "job2", "--out", key]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let listed = String::from_utf8_lossy(&cli(&["service-user", "list"]).stdout).to_string();
    assert!(listed.contains("job ("), "{listed}");
    assert!(!listed.contains("job2"), "{listed}");
    // keys export prints the public key only.
    let pem = String::from_utf8_lossy(&cli(&["keys", "export", "--pem"]).stdout).to_string();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
}

#[test]
fn check_config_into_a_reader_that_stops_early_ends_quietly() {
    // `check-config | head -1`: the pipe closes before the output is written.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bridge.toml");
    std::fs::write(&path, BASE).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_login-bridge"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env_clear()
        .env("BRIDGE_OIDC__CLIENT_SECRET", "s")
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
