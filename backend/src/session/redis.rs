//! Redis (or Valkey) as the store every replica shares: sessions through
//! tower-sessions-redis-store, the session index as sets, and the refresh lock.
//!
//! Keys: a session is its bare id (tower-sessions-redis-store's choice); everything else of the
//! bridge is under `login-bridge:`.

use std::{sync::Arc, time::Duration};

use fred::{
    clients::Pool,
    interfaces::{ClientLike, KeysInterface, LuaInterface, SetsInterface},
    types::{
        Builder, Expiration, SetOptions,
        config::{Config as RedisConfig, ReconnectPolicy},
    },
};
use futures::future::BoxFuture;
use rand::Rng;

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

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("session.url is not a usable Redis URL: {0}")]
    Url(String),
    #[error("cannot connect to Redis at session.url: {0}")]
    Connect(String),
}

/// Connects the pool; fails when Redis cannot be reached within the timeout.
pub async fn connect(url: &str) -> Result<Pool, RedisError> {
    // fred's error for a bad URL quotes it; the URL may hold a password.
    let config =
        RedisConfig::from_url(url).map_err(|_| RedisError::Url("cannot parse it".into()))?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = COMMAND_TIMEOUT;
            c.internal_command_timeout = COMMAND_TIMEOUT;
            // A command is tried once: a retry after a timeout could run it twice.
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        // Reconnect forever, at most every 2 s: the store comes back without a bridge restart.
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 2_000, 2))
        .build_pool(POOL_SIZE)
        .map_err(|e| RedisError::Connect(e.to_string()))?;
    let connected = tokio::time::timeout(COMMAND_TIMEOUT * 5, pool.init()).await;
    match connected {
        Ok(Ok(_)) => Ok(pool),
        Ok(Err(e)) => Err(RedisError::Connect(e.to_string())),
        Err(_) => Err(RedisError::Connect("timed out".into())),
    }
}

/// Whether Redis answers now (readiness).
pub async fn ping(pool: &Pool) -> Result<(), String> {
    pool.ping::<String>(None)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
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
}

impl RedisIndex {
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

impl SessionIndex for RedisIndex {
    fn add<'a>(
        &'a self,
        session_id: &'a str,
        keys: &'a [IndexKey],
    ) -> BoxFuture<'a, Result<(), IndexError>> {
        Box::pin(async move {
            let of = sessions_keys(session_id);
            for key in keys {
                let set = index_key(key);
                let () = self
                    .pool
                    .sadd(&set, session_id)
                    .await
                    .map_err(index_error)?;
                let () = self
                    .pool
                    .expire(&set, INDEX_TTL_SECS, None)
                    .await
                    .map_err(index_error)?;
                let () = self.pool.sadd(&of, set).await.map_err(index_error)?;
            }
            let () = self
                .pool
                .expire(&of, INDEX_TTL_SECS, None)
                .await
                .map_err(index_error)?;
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
}

impl RedisRefreshCoordinator {
    pub fn new(pool: Pool) -> Arc<Self> {
        Arc::new(Self { pool })
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
            let taken: Option<String> = self
                .pool
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
            let _: Option<String> = self
                .pool
                .set(
                    format!("login-bridge:refresh-outcome:{key}"),
                    outcome,
                    Some(Expiration::PX(ms)),
                    None,
                    false,
                )
                .await
                .map_err(coordination)?;
            Ok(())
        })
    }
}
