//! Real Redis and PostgreSQL servers for the shared-store tests: each test starts its own on a
//! free loopback port in a temporary directory, and stops it when dropped. Nothing assumes a
//! service is already running (`scripts/install-deps.sh` installs the Debian packages).

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A free port on 127.0.0.1 (bound, read, released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Waits until `child` prints a line containing `ready` on stdout or stderr.
pub async fn wait_for_line(child: &mut Child, ready: &str, what: &str) {
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut out = BufReader::new(stdout).lines();
    let mut err = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let line = tokio::select! {
                l = out.next_line() => l,
                l = err.next_line() => l,
            };
            match line {
                Ok(Some(line)) => {
                    if line.contains(ready) {
                        return true;
                    }
                    seen.push(line);
                }
                _ => return false,
            }
        }
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "{what} did not start:\n{}",
        seen.join("\n")
    );
    // Keep draining its output so the server never blocks on a full pipe.
    tokio::spawn(async move {
        loop {
            tokio::select! {
                l = out.next_line() => if !matches!(l, Ok(Some(_))) { break },
                l = err.next_line() => if !matches!(l, Ok(Some(_))) { break },
            }
        }
    });
}

/// Sends `signal` to `pid` (the tests crate has no `unsafe`, so no `libc::kill`).
fn signal(pid: u32, signal: &str) {
    let _ = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status();
}

/// A `redis-server` of this test's own, with an append-only file so a restart keeps its data.
pub struct RedisServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl RedisServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Starts it again (same port, same data) after [`Self::stop`].
    pub async fn restart(&mut self) {
        let mut child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/install-deps.sh)");
        wait_for_line(&mut child, "Ready to accept connections", "redis-server").await;
        self.child = Some(child);
    }

    /// Kills the server (an outage: clients see refused connections).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }
}

/// A PostgreSQL cluster of this test's own (initdb runs as the unprivileged `postgres` user
/// when the tests run as root, as initdb refuses root).
pub struct PostgresServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL must be installed (scripts/install-deps.sh)")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions.last().unwrap().join("bin").join(name)
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `postgres`'s uid and gid (from `id`), to run the server as that user.
fn postgres_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    };
    (id("-u"), id("-g"))
}

impl PostgresServer {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let root = running_as_root();
        if root {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown for postgres");
        }
        let mut initdb = std::process::Command::new(pg_bin("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "bridge",
                "--no-sync",
                "--encoding",
                "UTF8",
            ])
            .stdout(Stdio::null());
        if root {
            let (uid, gid) = postgres_ids();
            std::os::unix::process::CommandExt::uid(&mut initdb, uid);
            std::os::unix::process::CommandExt::gid(&mut initdb, gid);
        }
        let out = initdb.output().unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut server = Self {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart().await;
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://bridge@127.0.0.1:{}/postgres", self.port)
    }

    fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts it again (same port, same data) after [`Self::stop`].
    pub async fn restart(&mut self) {
        let mut command = Command::new(pg_bin("postgres"));
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if running_as_root() {
            let (uid, gid) = postgres_ids();
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn().unwrap();
        wait_for_line(
            &mut child,
            "database system is ready to accept connections",
            "postgres",
        )
        .await;
        self.child = Some(child);
    }

    /// Stops the server fast (SIGINT: clients are disconnected, the data stays).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                signal(pid, "-INT");
            }
            let stopped = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
            if stopped.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            signal(pid, "-INT");
        }
    }
}

/// The shared store of a replica test: a Redis or a PostgreSQL of the test's own.
pub enum SharedStore {
    Redis(RedisServer),
    Postgres(PostgresServer),
}

impl SharedStore {
    pub async fn start(kind: login_bridge::settings::StoreKind) -> Self {
        use login_bridge::settings::StoreKind;
        match kind {
            StoreKind::Redis => Self::Redis(RedisServer::start().await),
            StoreKind::Postgres => Self::Postgres(PostgresServer::start().await),
            StoreKind::Sqlite => panic!("SQLite is not a shared store"),
        }
    }

    /// `AppOptions::store` for this server.
    pub fn option(&self) -> Option<(login_bridge::settings::StoreKind, String)> {
        use login_bridge::settings::StoreKind;
        Some(match self {
            Self::Redis(r) => (StoreKind::Redis, r.url()),
            Self::Postgres(p) => (StoreKind::Postgres, p.url()),
        })
    }

    pub async fn stop(&mut self) {
        match self {
            Self::Redis(r) => r.stop().await,
            Self::Postgres(p) => p.stop().await,
        }
    }

    pub async fn restart(&mut self) {
        match self {
            Self::Redis(r) => r.restart().await,
            Self::Postgres(p) => p.restart().await,
        }
    }
}
