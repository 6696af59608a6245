//! One SQLite file serves one bridge: the real binary started on the file of a running bridge
//! (on another port) stops with an error that names the way out and changes nothing; once the
//! first is killed (`kill -9`: the kernel lets go of its lock), a bridge starts on the file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{process::Stdio, time::Duration};

/// `login-bridge --config <config>` with `listen` (and `public_url`) moved to a free port.
fn on_another_port(config: &std::path::Path, dir: &std::path::Path) -> (std::path::PathBuf, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = std::fs::read_to_string(config).unwrap();
    let moved: String = text
        .lines()
        .map(|l| {
            if l.starts_with("listen =") {
                format!("listen = \"127.0.0.1:{port}\"")
            } else if l.starts_with("public_url =") {
                format!("public_url = \"http://localhost:{port}\"")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let path = dir.join(format!("bridge-{port}.toml"));
    std::fs::write(&path, moved).unwrap();
    (path, port)
}

fn bridge(config: &std::path::Path) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_login-bridge"));
    c.arg("--config")
        .arg(config)
        .env_clear()
        .env("RUST_LOG", "error")
        .kill_on_drop(true);
    c
}

#[tokio::test]
async fn a_second_bridge_on_one_sqlite_file_is_refused_until_the_first_is_gone() {
    let mut first = common::Bridge::start("127.0.0.1:9".parse().unwrap(), "").await;
    let scratch = tempfile::tempdir().unwrap();
    let (second_config, second_port) = on_another_port(&first.config(), scratch.path());

    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        bridge(&second_config).stdout(Stdio::null()).output(),
    )
    .await
    .expect("the second bridge did not stop")
    .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("another login-bridge is serving the session database")
            && stderr.contains("s.sqlite.lock")
            && stderr.contains("session.store = \"redis\" or \"postgres\""),
        "{stderr}"
    );
    // The first goes on serving.
    let http = reqwest::Client::new();
    let r = http.get(format!("{}/healthz", first.base)).send().await;
    assert!(r.unwrap().status().is_success());

    // kill -9: nothing of the first runs any more, and the next bridge takes the file.
    first.process.kill().await.unwrap();
    let mut next = bridge(&second_config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{second_port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        if let Some(status) = next.try_wait().unwrap() {
            let out = next.wait_with_output().await.unwrap();
            panic!(
                "the bridge after kill -9 stopped ({status}): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bridge did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
