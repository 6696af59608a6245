//! Highly available Redis deployments of the test's own, on loopback ports in a temporary
//! directory: a primary with one replica watched by three sentinels, and a cluster of three
//! primaries with one replica each. The same Debian `redis-server` binary plays every part;
//! `redis-cli` asks the deployment about its state (who is primary, whether a replica caught
//! up), so the tests await events (a promotion, a synced replica) instead of sleeping.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::process::{Child, Command};

use super::{free_port, stores::wait_for_line};

/// The name the sentinels monitor the primary under.
pub const SERVICE: &str = "mymaster";

/// The data nodes' password (`requirepass`, and `masterauth` for their replication).
pub const PASSWORD: &str = "data-secret-4711";
/// The sentinels' own password (`sentinelPassword=` in the bridge's URL).
pub const SENTINEL_PASSWORD: &str = "sentinel-secret-0815";

/// How long a deployment may take to reach a state the test awaits.
const DEADLINE: Duration = Duration::from_secs(60);

/// One `redis-server` process (a data node or a sentinel).
pub struct Node {
    pub port: u16,
    child: Option<Child>,
}

impl Node {
    async fn start(port: u16, args: Vec<String>, ready: &str) -> Self {
        let mut child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server must be installed (scripts/install-deps.sh)");
        wait_for_line(&mut child, ready, "redis-server").await;
        Self {
            port,
            child: Some(child),
        }
    }

    /// `kill -9`: no goodbye to clients, replicas or sentinels.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Sends `signal` (`-STOP`, `-CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        if let Some(pid) = self.child.as_ref().and_then(Child::id) {
            let _ = std::process::Command::new("kill")
                .args([signal, &pid.to_string()])
                .status();
        }
    }

    pub fn alive(&self) -> bool {
        self.child.is_some()
    }
}

/// The arguments of a data node on `port` keeping nothing on disk, in `dir`.
fn data_node_args(port: u16, dir: &Path) -> Vec<String> {
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--protected-mode",
        "no",
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        PASSWORD,
        "--masterauth",
        PASSWORD,
        "--dir",
        &dir.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `redis-cli -p PORT ARGS…` to a sentinel, its output (empty when it does not answer).
pub async fn cli(port: u16, args: &[&str]) -> String {
    run_cli(port, args, Some(SENTINEL_PASSWORD)).await
}

/// The same to a data node (with its password).
pub async fn data_cli(port: u16, args: &[&str]) -> String {
    run_cli(port, args, Some(PASSWORD)).await
}

async fn run_cli(port: u16, args: &[&str], password: Option<&str>) -> String {
    let mut command = Command::new("redis-cli");
    if let Some(password) = password {
        command.env("REDISCLI_AUTH", password);
    }
    let out = command
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    // A stopped (SIGSTOP) node accepts the connection and never answers.
    match tokio::time::timeout(Duration::from_secs(2), out).await {
        Ok(out) => {
            let out = out.expect("redis-cli must be installed (scripts/install-deps.sh)");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        Err(_) => String::new(),
    }
}

/// A field of an `INFO` section (`field:value` lines).
async fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let info = data_cli(port, &["info", section]).await;
    info.lines().find_map(|l| {
        l.trim()
            .strip_prefix(field)
            .and_then(|r| r.strip_prefix(':'))
            .map(str::to_string)
    })
}

/// Polls `check` until it returns `Some`, at most [`DEADLINE`]; panics with `what` after.
async fn await_state<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{what}: not within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the replica on `replica` has everything the primary on `primary` has written
/// so far (its replication offset reached the primary's).
pub async fn await_replicated(primary: u16, replica: u16) {
    let target: u64 = info_field(primary, "replication", "master_repl_offset")
        .await
        .and_then(|v| v.parse().ok())
        .expect("the primary's replication offset");
    await_state("the replica catching up", || async move {
        let done = info_field(replica, "replication", "master_link_status")
            .await
            .is_some_and(|s| s == "up")
            && info_field(replica, "replication", "slave_repl_offset")
                .await
                .and_then(|v| v.parse::<u64>().ok())
                .is_some_and(|o| o >= target);
        done.then_some(())
    })
    .await
}

/// A primary and its replica, watched by three sentinels (quorum 2) that call the primary
/// down after 1 s without an answer.
pub struct SentinelSet {
    data: Vec<Node>,
    sentinels: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl SentinelSet {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let primary_port = free_port();
        let replica_port = free_port();
        let primary = Node::start(
            primary_port,
            data_node_args(primary_port, &mk(dir.path(), "primary")),
            "Ready to accept connections",
        )
        .await;
        let mut replica_args = data_node_args(replica_port, &mk(dir.path(), "replica"));
        replica_args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary_port.to_string(),
        ]);
        let replica = Node::start(replica_port, replica_args, "Ready to accept connections").await;
        await_replicated(primary_port, replica_port).await;

        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            // Each sentinel rewrites its own file (it records what it learns).
            let sdir = mk(dir.path(), &format!("sentinel{i}"));
            let conf = sdir.join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                     sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
                     sentinel auth-pass {SERVICE} {PASSWORD}\n\
                     requirepass {SENTINEL_PASSWORD}\nsentinel sentinel-pass {SENTINEL_PASSWORD}\n\
                     sentinel down-after-milliseconds {SERVICE} 1000\n\
                     sentinel failover-timeout {SERVICE} 4000\n\
                     sentinel parallel-syncs {SERVICE} 1\n",
                    sdir.display()
                ),
            )
            .unwrap();
            sentinels.push(
                Node::start(
                    port,
                    vec![conf.display().to_string(), "--sentinel".into()],
                    "+monitor master",
                )
                .await,
            );
        }
        let set = Self {
            data: vec![primary, replica],
            sentinels,
            _dir: dir,
        };
        // A failover needs the sentinels to know the replica and a majority of each other
        // (they meet through the primary's hello channel every 2 s).
        for s in &set.sentinels {
            let port = s.port;
            await_state("the sentinels meeting", || async move {
                let master = cli(port, &["sentinel", "master", SERVICE]).await;
                let field = |name: &str| {
                    let lines: Vec<&str> = master.lines().collect();
                    lines
                        .iter()
                        .position(|l| *l == name)
                        .and_then(|i| lines.get(i + 1))
                        .and_then(|v| v.parse::<u32>().ok())
                };
                (field("num-slaves") == Some(1) && field("num-other-sentinels") == Some(2))
                    .then_some(())
            })
            .await;
        }
        set
    }

    /// `session.url` for this deployment: every sentinel, the service name, database 0.
    pub fn url(&self) -> String {
        let mut url = format!(
            "redis-sentinel://:{PASSWORD}@127.0.0.1:{}/0?sentinelServiceName={SERVICE}\
             &sentinelPassword={SENTINEL_PASSWORD}",
            self.sentinels[0].port
        );
        for s in &self.sentinels[1..] {
            url.push_str(&format!("&node=127.0.0.1:{}", s.port));
        }
        url
    }

    /// The port of the primary as the first live sentinel names it.
    pub async fn primary(&self) -> u16 {
        for s in self.sentinels.iter().filter(|s| s.alive()) {
            let answer = cli(s.port, &["sentinel", "get-master-addr-by-name", SERVICE]).await;
            if let Some(port) = answer.lines().nth(1).and_then(|p| p.parse().ok()) {
                return port;
            }
        }
        panic!("no sentinel names a primary");
    }

    /// The replica of the current primary (the other data node).
    pub async fn replica(&self) -> u16 {
        let primary = self.primary().await;
        self.data
            .iter()
            .map(|n| n.port)
            .find(|&p| p != primary)
            .unwrap()
    }

    /// Sends `signal` to the replica of the current primary.
    pub async fn signal_replica(&self, signal: &str) {
        let replica = self.replica().await;
        self.data
            .iter()
            .find(|n| n.port == replica)
            .unwrap()
            .signal(signal);
    }

    /// Sends `signal` to the current primary; returns its port.
    pub async fn signal_primary(&self, signal: &str) -> u16 {
        let primary = self.primary().await;
        self.data
            .iter()
            .find(|n| n.port == primary)
            .unwrap()
            .signal(signal);
        primary
    }

    /// Kills the primary with `kill -9`; returns its port.
    pub async fn kill_primary(&mut self) -> u16 {
        let primary = self.primary().await;
        let node = self.data.iter_mut().find(|n| n.port == primary).unwrap();
        node.kill9().await;
        primary
    }

    /// Waits until every sentinel names another primary than `old` and that node says it is
    /// a primary (the failover completed); returns the new primary's port.
    pub async fn await_promotion(&self, old: u16) -> u16 {
        let ports: Vec<u16> = self.sentinels.iter().map(|s| s.port).collect();
        await_state("the sentinels promoting the replica", || {
            let ports = ports.clone();
            async move {
                let mut named = None;
                for port in ports {
                    let answer = cli(port, &["sentinel", "get-master-addr-by-name", SERVICE]).await;
                    let p: u16 = answer.lines().nth(1)?.parse().ok()?;
                    if p == old || named.is_some_and(|n| n != p) {
                        return None;
                    }
                    named = Some(p);
                }
                let new = named?;
                let role = data_cli(new, &["role"]).await;
                (role.lines().next() == Some("master")).then_some(new)
            }
        })
        .await
    }
}

/// `dir/name`, created.
fn mk(dir: &Path, name: &str) -> std::path::PathBuf {
    let d = dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A free port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Three primaries with one replica each (`redis-cli --cluster create … --cluster-replicas
/// 1`); a node missing for 1 s is failed over.
pub struct ClusterSet {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

/// A line of `CLUSTER NODES`: id, port, flags, primary id ("-" for a primary), slots.
struct ClusterNode {
    port: u16,
    flags: String,
    slots: bool,
}

async fn cluster_nodes(port: u16) -> Vec<ClusterNode> {
    data_cli(port, &["cluster", "nodes"])
        .await
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let addr = f.get(1)?;
            let port = addr
                .split(['@', ','])
                .next()?
                .rsplit_once(':')?
                .1
                .parse()
                .ok()?;
            Some(ClusterNode {
                port,
                flags: f.get(2)?.to_string(),
                slots: f.len() > 8,
            })
        })
        .collect()
}

impl ClusterSet {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for i in 0..6 {
            let port = free_cluster_port();
            let mut args = data_node_args(port, &mk(dir.path(), &format!("node{i}")));
            args.extend(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "1000",
                ]
                .map(String::from),
            );
            nodes.push(Node::start(port, args, "Ready to accept connections").await);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .env("REDISCLI_AUTH", PASSWORD)
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let set = Self { nodes, _dir: dir };
        set.await_healthy(None).await;
        // Every replica has synced with its primary.
        for replica in set.replicas().await {
            await_state("the replicas syncing", || async move {
                (info_field(replica, "replication", "master_link_status")
                    .await
                    .as_deref()
                    == Some("up"))
                .then_some(())
            })
            .await;
        }
        set
    }

    /// Waits until every live node sees the cluster ok, three primaries serving slots and,
    /// when given, `dead` marked failed; each replica linked to its primary.
    async fn await_healthy(&self, dead: Option<u16>) {
        let live: Vec<u16> = self
            .nodes
            .iter()
            .filter(|n| n.alive() && Some(n.port) != dead)
            .map(|n| n.port)
            .collect();
        await_state("the cluster becoming healthy", || {
            let live = live.clone();
            async move {
                for &port in &live {
                    let ok = data_cli(port, &["cluster", "info"]).await;
                    if !ok.contains("cluster_state:ok") {
                        return None;
                    }
                    let nodes = cluster_nodes(port).await;
                    let serving = nodes
                        .iter()
                        .filter(|n| {
                            n.flags.contains("master") && !n.flags.contains("fail") && n.slots
                        })
                        .count();
                    if serving != 3 {
                        return None;
                    }
                    if let Some(dead) = dead
                        && !nodes
                            .iter()
                            .any(|n| n.port == dead && n.flags.contains("fail"))
                    {
                        return None;
                    }
                }
                Some(())
            }
        })
        .await
    }

    /// `session.url`: one node to start from, the others as `node=` parameters.
    pub fn url(&self) -> String {
        let mut url = format!(
            "redis-cluster://:{PASSWORD}@127.0.0.1:{}",
            self.nodes[0].port
        );
        for (i, n) in self.nodes[1..].iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("node=127.0.0.1:{}", n.port));
        }
        url
    }

    /// A primary serving slots and its replica, as the first live node sees them.
    pub async fn a_primary_and_its_replica(&self) -> (u16, u16) {
        let asked = self.nodes.iter().find(|n| n.alive()).unwrap().port;
        let text = data_cli(asked, &["cluster", "nodes"]).await;
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let port_of = |f: &Vec<&str>| -> u16 {
            f[1].split(['@', ','])
                .next()
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap()
        };
        for primary in lines
            .iter()
            .filter(|f| f[2].contains("master") && !f[2].contains("fail") && f.len() > 8)
        {
            if let Some(replica) = lines
                .iter()
                .find(|f| f[3] == primary[0] && !f[2].contains("fail"))
            {
                return (port_of(primary), port_of(replica));
            }
        }
        panic!("no primary with a replica:\n{text}");
    }

    /// The primary serving `key`'s slot and its replica.
    pub async fn primary_and_replica_of(&self, key: &str) -> (u16, u16) {
        let asked = self.nodes.iter().find(|n| n.alive()).unwrap().port;
        let slot: u16 = data_cli(asked, &["cluster", "keyslot", key])
            .await
            .trim()
            .parse()
            .unwrap();
        let text = data_cli(asked, &["cluster", "nodes"]).await;
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let port_of = |f: &Vec<&str>| -> u16 {
            f[1].split(['@', ','])
                .next()
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| p.parse().ok())
                .unwrap()
        };
        let serves = |range: &&str| {
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            from.parse::<u16>().is_ok_and(|f| f <= slot)
                && to.parse::<u16>().is_ok_and(|t| slot <= t)
        };
        let primary = lines
            .iter()
            .find(|f| f[2].contains("master") && f.len() > 8 && f[8..].iter().any(serves))
            .unwrap_or_else(|| panic!("nobody serves slot {slot}:\n{text}"));
        let replica = lines.iter().find(|f| f[3] == primary[0]).unwrap();
        (port_of(primary), port_of(replica))
    }

    /// A primary holding a session record (a key outside `login-bridge:`), and its replica.
    pub async fn a_primary_with_sessions(&self) -> (u16, u16) {
        let asked = self.nodes.iter().find(|n| n.alive()).unwrap().port;
        for node in cluster_nodes(asked).await {
            if !node.flags.contains("master") || !node.slots {
                continue;
            }
            let keys = data_cli(node.port, &["keys", "*"]).await;
            if let Some(session) = keys
                .lines()
                .find(|k| !k.is_empty() && !k.starts_with("login-bridge:"))
            {
                return self.primary_and_replica_of(session).await;
            }
        }
        panic!("no session in the cluster");
    }

    /// The ports of every replica.
    pub async fn replicas(&self) -> Vec<u16> {
        let asked = self.nodes.iter().find(|n| n.alive()).unwrap().port;
        cluster_nodes(asked)
            .await
            .into_iter()
            .filter(|n| n.flags.contains("slave"))
            .map(|n| n.port)
            .collect()
    }

    /// Sends `signal` to the node on `port`.
    pub fn signal(&self, port: u16, signal: &str) {
        self.nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap()
            .signal(signal);
    }

    /// Kills the node on `port` with `kill -9`.
    pub async fn kill(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port == port).unwrap();
        node.kill9().await;
    }

    /// Waits until the cluster marked `old` failed and serves every slot again (its replica
    /// promoted), as every live node sees it.
    pub async fn await_promotion(&self, old: u16) {
        self.await_healthy(Some(old)).await;
    }
}
