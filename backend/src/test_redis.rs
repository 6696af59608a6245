//! For unit tests: a real `redis-server` of the test's own (installed by
//! `scripts/install-deps.sh`) on a free loopback port, with nothing saved to disk.

use std::time::Duration;

use fred::{clients::Pool, interfaces::ClientLike, types::Builder, types::config::Config};

/// The server, killed when dropped, and its directory (deleted after it).
pub struct Server {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A new server and a pool of two connections to it, once it answers.
pub async fn start() -> (Pool, Server) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", ""])
        .arg("--dir")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("redis-server (scripts/install-deps.sh): {e}"));
    let server = Server { child, _dir: dir };
    let config =
        Config::from_url(&format!("redis://127.0.0.1:{port}/0")).unwrap_or_else(|e| panic!("{e}"));
    // The server opens its port a moment after it starts; nothing else says when.
    for _ in 0..100 {
        if let Ok(pool) = Builder::from_config(config.clone()).build_pool(2)
            && pool.init().await.is_ok()
        {
            return (pool, server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("redis-server did not start");
}
