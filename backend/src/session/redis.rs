//! Redis (or Valkey) as the store every replica shares: sessions through
//! tower-sessions-redis-store, the session index as sets, and the refresh lock.
//!
//! Keys: a session is its bare id (tower-sessions-redis-store's choice); everything else of the
//! bridge is under `login-bridge:`.
//!
//! One Redis, a primary found through Redis Sentinel, or a Redis Cluster: fred picks the
//! deployment by the URL's scheme (`redis://`, `redis-sentinel://`, `redis-cluster://`, see
//! [`check_url`]) and follows failovers itself (sentinel re-discovery on reconnect, cluster
//! `MOVED` redirections and slot re-sync). Every key here is used alone (one key per command
//! or script), so on a cluster each spreads by its own hash slot; the authority store, whose
//! scripts touch several keys, puts its keys under one hash tag (see its module).

use std::{sync::Arc, time::Duration};

use fred::{
    clients::{Client, Pool},
    error::ErrorKind,
    interfaces::{ClientLike, ClusterInterface, KeysInterface, LuaInterface, SetsInterface},
    types::{
        Builder, Expiration, SetOptions,
        config::{Config as RedisConfig, ReconnectError, ReconnectPolicy},
    },
};
use futures::future::BoxFuture;
use rand::Rng;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store,
};
use tower_sessions_redis_store::RedisStore;

pub use crate::redis_wait::confirm_replicated;

use super::{
    index::{IndexError, IndexKey, SessionIndex},
    refresh::{CoordinationError, RefreshCoordinator, RefreshLease},
};

/// Connections in the pool (commands are pipelined on each).
const POOL_SIZE: usize = 4;
/// Every command fails after this long, so an unreachable Redis turns into a clean 503 rather
/// than requests that hang.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// Index sets live at most this long after their last addition (sessions end sooner; stale
/// members are dropped when read).
const INDEX_TTL_SECS: i64 = 30 * 24 * 3600;
/// A refresh lock not renewed for this long frees itself (its holder died).
const LOCK_TTL_MS: i64 = 10_000;
/// The holder renews the lock this often while its refresh runs.
const RENEW_EVERY: Duration = Duration::from_secs(3);

/// Renews the lock only if we still own it.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
/// Deletes the lock only if we still own it (never another holder's after ours expired).
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
                       return redis.call('del', KEYS[1]) else return 0 end";

/// The deployment a `session.url` names, for the check and for `check-config`.
#[derive(Debug, PartialEq, Eq)]
pub enum Topology {
    /// `redis://` or `rediss://`: one server (perhaps a primary whose replicas nobody promotes).
    Single,
    /// `redis-sentinel://`: the primary of `service` as the sentinels name it.
    Sentinel { service: String, sentinels: usize },
    /// `redis-cluster://`: any of the cluster's nodes (the rest are discovered).
    Cluster { seeds: usize },
}

impl std::fmt::Display for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single => f.write_str("one Redis server"),
            Self::Sentinel { service, sentinels } => write!(
                f,
                "Redis Sentinel: the primary of {service:?}, asked from {sentinels} sentinel(s)"
            ),
            Self::Cluster { seeds } => write!(f, "Redis Cluster, discovered from {seeds} node(s)"),
        }
    }
}

/// Checks a `session.url` for the Redis store and says which deployment it names. The
/// messages never quote the URL (it may hold a password).
///
/// - `redis://[[user]:password@]host[:6379][/db]` (`rediss://` for TLS): one server, as before;
/// - `redis-sentinel://[[user]:password@]sentinel[:26379][/db]?sentinelServiceName=NAME[&node=host:port…]`:
///   the sentinels (the first and every `node`), asked for the primary of `NAME`; the password
///   is the primary's;
/// - `redis-cluster://[[user]:password@]host:port[?node=host:port…]`: cluster nodes to start from.
pub fn check_url(url: &str) -> Result<Topology, String> {
    let parsed = url::Url::parse(url)
        .map_err(|e| format!("session.url: not a URL ({e}); expected redis://host:6379/0"))?;
    let scheme = parsed.scheme();
    let topology = match scheme {
        "redis" | "rediss" | "valkey" | "valkeys" => Topology::Single,
        "redis-sentinel" | "rediss-sentinel" | "valkey-sentinel" | "valkeys-sentinel" => {
            let service = parsed
                .query_pairs()
                .find(|(k, _)| k == "sentinelServiceName")
                .map(|(_, v)| v.into_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    "session.url: a redis-sentinel:// URL needs ?sentinelServiceName=NAME \
                     (the name the sentinels monitor the primary under, e.g. mymaster)"
                        .to_string()
                })?;
            Topology::Sentinel {
                service,
                sentinels: 1 + nodes(&parsed)?,
            }
        }
        "redis-cluster" | "rediss-cluster" | "valkey-cluster" | "valkeys-cluster" => {
            if parsed.port().is_none() {
                return Err("session.url: a redis-cluster:// URL needs host:port".into());
            }
            Topology::Cluster {
                seeds: 1 + nodes(&parsed)?,
            }
        }
        _ => {
            return Err(
                "session.url: session.store = \"redis\" needs a redis://, redis-sentinel:// or \
                 redis-cluster:// URL (BRIDGE_SESSION__URL or session.url_file)"
                    .into(),
            );
        }
    };
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("session.url: the URL names no host".into());
    }
    if matches!(topology, Topology::Cluster { .. }) && !matches!(parsed.path(), "" | "/" | "/0") {
        return Err(
            "session.url: a Redis Cluster has only database 0; drop the /N from the URL".into(),
        );
    }
    // fred's own parser has the last word (its errors may quote the URL: not shown).
    RedisConfig::from_url(url).map_err(|_| {
        "session.url: the Redis client cannot use this URL (check the host, port, database and \
         node=host:port parameters)"
            .to_string()
    })?;
    Ok(topology)
}

/// The URL with its passwords (the server's and a `sentinelPassword`) replaced by `***`, for
/// `check-config`; `None` when it does not parse.
pub fn masked_url(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url).ok()?;
    if parsed.password().is_some() {
        parsed.set_password(Some("***")).ok()?;
    }
    if parsed.query_pairs().any(|(k, _)| k == "sentinelPassword") {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if k == "sentinelPassword" {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Some(parsed.to_string())
}

/// How many `node=host:port` parameters the URL has; each must name a port.
fn nodes(url: &url::Url) -> Result<usize, String> {
    let mut count = 0;
    for (k, v) in url.query_pairs() {
        if k == "node" {
            let port = v.rsplit_once(':').and_then(|(h, p)| {
                (!h.is_empty()).then_some(())?;
                p.parse::<u16>().ok()
            });
            if port.is_none() {
                return Err(format!(
                    "session.url: node={v} must be host:port (another sentinel or cluster node)"
                ));
            }
            count += 1;
        }
    }
    Ok(count)
}

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// A message of [`check_url`]'s (which names `session.url`, never quotes it).
    #[error("{0}")]
    Url(String),
    #[error("cannot connect to Redis at session.url: {0}")]
    Connect(String),
    #[error("cannot move the authority's Redis keys under their hash tag: {0}")]
    Migrate(String),
}

/// Connects the pool; fails when Redis cannot be reached within the timeout.
pub async fn connect(url: &str) -> Result<Pool, RedisError> {
    check_url(url).map_err(RedisError::Url)?;
    // fred's error for a bad URL quotes it; the URL may hold a password.
    let config = RedisConfig::from_url(url)
        .map_err(|_| RedisError::Url("session.url: cannot parse it".into()))?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = COMMAND_TIMEOUT;
            c.internal_command_timeout = COMMAND_TIMEOUT;
            // A command is tried once: a retry after a timeout could run it twice.
            c.max_command_attempts = 1;
            // A quiet connection whose server vanished without closing it: closed after this
            // long without an answer. fred counts from the last write, so under traffic this
            // never fires: the watchdog ([`spawn_watchdog`]) covers that case.
            c.unresponsive.max_timeout = Some(COMMAND_TIMEOUT * 2);
            c.unresponsive.interval = Duration::from_millis(500);
            // Answers that mean "this is not the primary any more" (a demoted primary that
            // kept our connection, a cluster mid-failover): reconnect, which re-discovers it.
            c.reconnect_errors = vec![
                ReconnectError::ReadOnly,
                ReconnectError::MasterDown,
                ReconnectError::ClusterDown,
            ];
        })
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        // Reconnect forever, at most every 500 ms: the store comes back without a bridge
        // restart, within half a second of a failover's promotion.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 500, 2))
        .build_pool(POOL_SIZE)
        .map_err(|e| RedisError::Connect(e.to_string()))?;
    let connected = tokio::time::timeout(COMMAND_TIMEOUT * 5, pool.init()).await;
    match connected {
        Ok(Ok(_)) => {
            spawn_watchdog(pool.clone());
            Ok(pool)
        }
        Ok(Err(e)) => Err(RedisError::Connect(e.to_string())),
        Err(_) => Err(RedisError::Connect("timed out".into())),
    }
}

/// How often the watchdog pings every connection.
const WATCHDOG_EVERY: Duration = Duration::from_secs(1);

/// Reconnects a connection whose server stopped answering but kept the connection open: a
/// hung or partitioned primary. Closed connections and error answers (`READONLY`…) make fred
/// reconnect by itself; silence does not (its unresponsive check measures from the last
/// write, which steady traffic keeps recent), and a connection left on a primary the sentinels
/// or the cluster replaced would time out forever. A reconnect asks the sentinels (or the
/// cluster's slot map) where the primary is now.
fn spawn_watchdog(pool: Pool) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(WATCHDOG_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let checks = pool.clients().iter().map(|client| async move {
                if !answers_in_time(client).await {
                    tracing::warn!("a Redis connection stopped answering: reconnecting");
                    let _ =
                        tokio::time::timeout(COMMAND_TIMEOUT, client.force_reconnection()).await;
                }
            });
            futures::future::join_all(checks).await;
        }
    });
}

/// Whether every server `client` is connected to answers a `PING` within the command timeout
/// (an error answer or a refused connection counts as an answer: fred handles those).
async fn answers_in_time(client: &Client) -> bool {
    match tokio::time::timeout(COMMAND_TIMEOUT, ping_every_server(client)).await {
        Err(_) => false,
        Ok(results) => !results
            .iter()
            .any(|r| r.as_ref().is_err_and(|e| *e.kind() == ErrorKind::Timeout)),
    }
}

/// `PING` on each server `client` uses: the one primary, or on a cluster every primary of its
/// slot map (a plain `PING` there goes to one node only).
async fn ping_every_server(client: &Client) -> Vec<Result<String, fred::error::Error>> {
    let servers = client
        .cached_cluster_state()
        .map(|state| state.unique_primary_nodes())
        .unwrap_or_default();
    if servers.is_empty() {
        return vec![client.ping::<String>(None).await];
    }
    let pings = servers.into_iter().map(|server| {
        let node = client.with_cluster_node(server);
        async move { node.ping::<String>(None).await }
    });
    futures::future::join_all(pings).await
}

/// Whether Redis answers now on every connection of the pool, and on a cluster at every
/// primary (readiness): after a failover, ready means every connection found the new
/// primary, not only the one asked.
pub async fn ping(pool: &Pool) -> Result<(), String> {
    for client in pool.clients() {
        for answer in ping_every_server(client).await {
            answer.map(drop).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// The session records: tower-sessions-redis-store's, plus `WAIT` after each write when
/// `session.redis_wait_replicas` asks for it (the write goes through one connection of the
/// pool, and the `WAIT` follows it there).
#[derive(Clone, Debug)]
pub struct RedisRecords {
    pool: Pool,
    wait_replicas: u32,
}

impl RedisRecords {
    pub fn new(pool: Pool, wait_replicas: u32) -> Self {
        Self {
            pool,
            wait_replicas,
        }
    }

    /// A store on one connection of the pool (the one a write and its `WAIT` share).
    fn on_one_connection(&self) -> (Client, RedisStore<Client>) {
        let client = self.pool.next().clone();
        (client.clone(), RedisStore::new(client))
    }

    async fn confirm(&self, client: &Client, id: &Id) -> session_store::Result<()> {
        confirm_replicated(client, &id.to_string(), self.wait_replicas)
            .await
            .map_err(session_store::Error::Backend)
    }
}

#[async_trait::async_trait]
impl SessionStore for RedisRecords {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let (client, store) = self.on_one_connection();
        store.create(record).await?;
        self.confirm(&client, &record.id).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (client, store) = self.on_one_connection();
        store.save(record).await?;
        self.confirm(&client, &record.id).await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        RedisStore::new(self.pool.clone()).load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        let (client, store) = self.on_one_connection();
        store.delete(session_id).await?;
        self.confirm(&client, session_id).await
    }
}

fn index_key(key: &IndexKey) -> String {
    format!("login-bridge:index:{}:{}", key.kind(), key.value())
}

fn sessions_keys(session_id: &str) -> String {
    format!("login-bridge:index-of:{session_id}")
}

fn index_error(e: fred::error::Error) -> IndexError {
    IndexError::Engine(e.to_string())
}

/// The session index: one set of session ids per `sid`/`sub`, and per session the set of
/// index keys it is under (to remove it everywhere when it ends).
pub struct RedisIndex {
    pool: Pool,
    /// `session.redis_wait_replicas`: an index entry a failover lost would hide its session
    /// from a back-channel logout.
    wait_replicas: u32,
}

impl RedisIndex {
    pub fn new(pool: Pool, wait_replicas: u32) -> Self {
        Self {
            pool,
            wait_replicas,
        }
    }
}

impl SessionIndex for RedisIndex {
    fn add<'a>(
        &'a self,
        session_id: &'a str,
        keys: &'a [IndexKey],
    ) -> BoxFuture<'a, Result<(), IndexError>> {
        Box::pin(async move {
            // One connection for all of it, so each `WAIT` follows the writes it confirms.
            let client = self.pool.next();
            let of = sessions_keys(session_id);
            let mut written = Vec::with_capacity(keys.len() + 1);
            for key in keys {
                let set = index_key(key);
                let () = client.sadd(&set, session_id).await.map_err(index_error)?;
                let () = client
                    .expire(&set, INDEX_TTL_SECS, None)
                    .await
                    .map_err(index_error)?;
                let () = client.sadd(&of, set.as_str()).await.map_err(index_error)?;
                written.push(set);
            }
            let () = client
                .expire(&of, INDEX_TTL_SECS, None)
                .await
                .map_err(index_error)?;
            written.push(of);
            if self.wait_replicas > 0 {
                // On a cluster the keys sit on several primaries: each is asked (one `WAIT`
                // per key is enough on one primary too, only slower).
                for key in &written {
                    confirm_replicated(client, key, self.wait_replicas)
                        .await
                        .map_err(IndexError::Engine)?;
                }
            }
            Ok(())
        })
    }

    fn sessions<'a>(&'a self, key: &'a IndexKey) -> BoxFuture<'a, Result<Vec<String>, IndexError>> {
        Box::pin(async move {
            let set = index_key(key);
            let members: Vec<String> = self.pool.smembers(&set).await.map_err(index_error)?;
            let mut live = Vec::with_capacity(members.len());
            for id in members {
                // A member whose session expired in Redis is dropped here, lazily.
                let exists: i64 = self.pool.exists(&id).await.map_err(index_error)?;
                if exists > 0 {
                    live.push(id);
                } else {
                    let () = self.pool.srem(&set, &id).await.map_err(index_error)?;
                }
            }
            live.sort();
            Ok(live)
        })
    }

    fn remove<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<(), IndexError>> {
        Box::pin(async move {
            let of = sessions_keys(session_id);
            let sets: Vec<String> = self.pool.smembers(&of).await.map_err(index_error)?;
            for set in sets {
                let () = self
                    .pool
                    .srem(&set, session_id)
                    .await
                    .map_err(index_error)?;
            }
            let () = self.pool.del(&of).await.map_err(index_error)?;
            Ok(())
        })
    }
}

fn coordination(e: fred::error::Error) -> CoordinationError {
    CoordinationError(e.to_string())
}

/// The refresh lock in Redis: `SET NX PX` with a random owner token, renewed while the refresh
/// runs and released only by its owner (a lock that is never renewed expires mid-refresh and
/// lets a second replica redeem the same rotating refresh token: oauth2-proxy #3456).
pub struct RedisRefreshCoordinator {
    pool: Pool,
    /// `session.redis_wait_replicas`: a lock a failover could lose would let a second replica
    /// redeem the same refresh token.
    wait_replicas: u32,
}

impl RedisRefreshCoordinator {
    pub fn new(pool: Pool, wait_replicas: u32) -> Arc<Self> {
        Arc::new(Self {
            pool,
            wait_replicas,
        })
    }
}

struct RedisLease {
    pool: Pool,
    key: String,
    owner: String,
    renewal: tokio::task::JoinHandle<()>,
}

impl RefreshLease for RedisLease {
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            self.renewal.abort();
            let released: Result<i64, _> = self
                .pool
                .eval(RELEASE, vec![self.key.clone()], vec![self.owner.clone()])
                .await;
            if let Err(e) = released {
                // Unreleased, it expires within LOCK_TTL_MS.
                tracing::warn!(error = %e, "could not release the refresh lock");
            }
        })
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.renewal.abort();
    }
}

impl RefreshCoordinator for RedisRefreshCoordinator {
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLease>>, CoordinationError>> {
        Box::pin(async move {
            let lock = format!("login-bridge:refresh-lock:{key}");
            let owner: String = {
                let bytes: [u8; 16] = rand::rng().random();
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            };
            let client = self.pool.next();
            let taken: Option<String> = client
                .set(
                    &lock,
                    owner.as_str(),
                    Some(Expiration::PX(LOCK_TTL_MS)),
                    Some(SetOptions::NX),
                    false,
                )
                .await
                .map_err(coordination)?;
            if taken.is_none() {
                return Ok(None);
            }
            if let Err(e) = confirm_replicated(client, &lock, self.wait_replicas).await {
                // Not confirmed: give it back rather than refresh under a lock a failover
                // could forget.
                let _: Result<i64, _> = self
                    .pool
                    .eval(RELEASE, vec![lock.clone()], vec![owner.clone()])
                    .await;
                return Err(CoordinationError(e));
            }
            let renewal = {
                let pool = self.pool.clone();
                let lock = lock.clone();
                let owner = owner.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(RENEW_EVERY);
                    every.tick().await;
                    loop {
                        every.tick().await;
                        let renewed: Result<i64, _> = pool
                            .eval(
                                RENEW,
                                vec![lock.clone()],
                                vec![owner.clone(), LOCK_TTL_MS.to_string()],
                            )
                            .await;
                        match renewed {
                            Ok(1) => {}
                            Ok(_) => {
                                tracing::warn!("refresh lock lost before the refresh finished");
                                break;
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "could not renew the refresh lock")
                            }
                        }
                    }
                })
            };
            Ok(Some(Box::new(RedisLease {
                pool: self.pool.clone(),
                key: lock,
                owner,
                renewal,
            }) as Box<dyn RefreshLease>))
        })
    }

    fn outcome<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CoordinationError>> {
        Box::pin(async move {
            self.pool
                .get(format!("login-bridge:refresh-outcome:{key}"))
                .await
                .map_err(coordination)
        })
    }

    fn publish<'a>(
        &'a self,
        key: &'a str,
        outcome: String,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), CoordinationError>> {
        Box::pin(async move {
            let ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
            let name = format!("login-bridge:refresh-outcome:{key}");
            let client = self.pool.next();
            let _: Option<String> = client
                .set(&name, outcome, Some(Expiration::PX(ms)), None, false)
                .await
                .map_err(coordination)?;
            confirm_replicated(client, &name, self.wait_replicas)
                .await
                .map_err(CoordinationError)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_and_cluster_urls_are_understood_and_plain_redis_is_unchanged() {
        assert_eq!(
            check_url("redis://:pw@127.0.0.1:6379/0"),
            Ok(Topology::Single)
        );
        assert_eq!(
            check_url(
                "redis-sentinel://:pw@10.0.0.1:26379/0?sentinelServiceName=mymaster\
                 &node=10.0.0.2:26379&node=10.0.0.3:26379"
            ),
            Ok(Topology::Sentinel {
                service: "mymaster".into(),
                sentinels: 3
            })
        );
        assert_eq!(
            check_url("redis-cluster://:pw@10.0.0.1:7000?node=10.0.0.2:7000"),
            Ok(Topology::Cluster { seeds: 2 })
        );
    }

    #[test]
    fn a_bad_redis_url_is_refused_clearly_without_its_password() {
        for (url, says) in [
            (
                "redis-sentinel://:hunter2@10.0.0.1:26379/0",
                "sentinelServiceName",
            ),
            ("redis-cluster://:hunter2@10.0.0.1", "host:port"),
            ("redis-cluster://:hunter2@10.0.0.1:7000/3", "database 0"),
            (
                "redis-cluster://:hunter2@10.0.0.1:7000?node=hunter3",
                "must be host:port",
            ),
            ("postgres://u:hunter2@db/x", "redis-sentinel://"),
            ("", "redis://"),
        ] {
            let problem = check_url(url)
                .err()
                .unwrap_or_else(|| panic!("{url} passed"));
            assert!(problem.contains(says), "{url}: {problem}");
            assert!(problem.starts_with("session.url:"), "{problem}");
            assert!(
                !problem.contains("hunter2"),
                "the password leaked: {problem}"
            );
        }
    }

    #[test]
    fn the_shown_url_masks_every_password() {
        let shown = masked_url(
            "redis-sentinel://u:hunter2@s1:26379/0?sentinelServiceName=m&sentinelPassword=hunter3",
        )
        .unwrap_or_default();
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("u:***@s1:26379") && shown.contains("sentinelPassword=***"));
        assert_eq!(
            masked_url("redis://127.0.0.1:6379/0").as_deref(),
            Some("redis://127.0.0.1:6379/0")
        );
    }
}
