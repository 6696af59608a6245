//! PostgreSQL as the store every replica shares: sessions through tower-sessions-sqlx-store,
//! the session index and refresh outcomes in tables of the bridge's migrations
//! (`backend/migrations/postgres`), and the refresh lock as a transaction-scoped advisory lock.

use std::{str::FromStr, sync::Arc, time::Duration};

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::{
    index::{IndexError, IndexKey, SessionIndex},
    refresh::{CoordinationError, RefreshCoordinator, RefreshLease},
};
use crate::clock::now;

/// Connections in the pool.
const POOL_SIZE: u32 = 16;
/// Waiting for a connection (or for an unreachable server) ends after this long, so an outage
/// turns into a clean 503 rather than requests that hang.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("session.url is not a usable PostgreSQL URL")]
    Url,
    #[error("cannot connect to PostgreSQL at session.url: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("cannot create the PostgreSQL tables: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Connects the pool and runs the bridge's migrations.
pub async fn connect(url: &str) -> Result<PgPool, PostgresError> {
    // sqlx's parse error may quote the URL, which may hold a password.
    let options = PgConnectOptions::from_str(url).map_err(|_| PostgresError::Url)?;
    let pool = PgPoolOptions::new()
        .max_connections(POOL_SIZE)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(PostgresError::Connect)?;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .map_err(PostgresError::Migrate)?;
    Ok(pool)
}

/// Whether PostgreSQL answers now (readiness).
pub async fn ping(pool: &PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(pool)
        .await
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The session index in the `session_index` table.
pub struct PgIndex {
    pool: PgPool,
}

impl PgIndex {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Removes rows whose session no longer exists in tower-sessions' table.
    pub async fn purge_orphans(&self) -> Result<u64, IndexError> {
        Ok(sqlx::query(
            "DELETE FROM session_index WHERE session_id NOT IN \
             (SELECT id FROM tower_sessions.session)",
        )
        .execute(&self.pool)
        .await?
        .rows_affected())
    }
}

impl SessionIndex for PgIndex {
    fn add<'a>(
        &'a self,
        session_id: &'a str,
        keys: &'a [IndexKey],
    ) -> BoxFuture<'a, Result<(), IndexError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            for key in keys {
                sqlx::query(
                    "INSERT INTO session_index (kind, value, session_id) VALUES ($1, $2, $3) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(key.kind())
                .bind(key.value())
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn sessions<'a>(&'a self, key: &'a IndexKey) -> BoxFuture<'a, Result<Vec<String>, IndexError>> {
        Box::pin(async move {
            let rows: Vec<(String,)> = sqlx::query_as(
                "SELECT session_id FROM session_index WHERE kind = $1 AND value = $2 \
                 ORDER BY session_id",
            )
            .bind(key.kind())
            .bind(key.value())
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(id,)| id).collect())
        })
    }

    fn remove<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<(), IndexError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM session_index WHERE session_id = $1")
                .bind(session_id)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }
}

fn coordination(e: sqlx::Error) -> CoordinationError {
    CoordinationError(e.to_string())
}

/// The refresh lock as `pg_try_advisory_xact_lock`: held by an open transaction, so it lasts
/// exactly as long as its holder's connection (a replica that dies frees it at once) and needs
/// no renewal.
pub struct PgRefreshCoordinator {
    pool: PgPool,
}

impl PgRefreshCoordinator {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self { pool })
    }

    /// Deletes outcomes nobody will read any more.
    pub async fn purge_expired(&self) -> Result<u64, sqlx::Error> {
        Ok(
            sqlx::query("DELETE FROM refresh_outcomes WHERE expires_at <= $1")
                .bind(now())
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

struct PgLease(Transaction<'static, Postgres>);

impl RefreshLease for PgLease {
    fn release(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Ending the transaction frees the lock; a failure closes the connection, which
            // frees it too.
            if let Err(e) = self.0.rollback().await {
                tracing::warn!(error = %e, "could not end the refresh lock's transaction");
            }
        })
    }
}

/// The advisory lock's 64-bit key: the first 8 bytes of a digest of the bridge's key.
fn lock_id(key: &str) -> i64 {
    let digest = Sha256::digest(format!("login-bridge:refresh:{key}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

impl RefreshCoordinator for PgRefreshCoordinator {
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLease>>, CoordinationError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(coordination)?;
            let (taken,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
                .bind(lock_id(key))
                .fetch_one(&mut *tx)
                .await
                .map_err(coordination)?;
            if !taken {
                let _ = tx.rollback().await;
                return Ok(None);
            }
            Ok(Some(Box::new(PgLease(tx)) as Box<dyn RefreshLease>))
        })
    }

    fn outcome<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CoordinationError>> {
        Box::pin(async move {
            let row: Option<(String,)> = sqlx::query_as(
                "SELECT outcome FROM refresh_outcomes WHERE key = $1 AND expires_at > $2",
            )
            .bind(key)
            .bind(now())
            .fetch_optional(&self.pool)
            .await
            .map_err(coordination)?;
            Ok(row.map(|(o,)| o))
        })
    }

    fn publish<'a>(
        &'a self,
        key: &'a str,
        outcome: String,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), CoordinationError>> {
        Box::pin(async move {
            let expires_at = now() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
            sqlx::query(
                "INSERT INTO refresh_outcomes (key, outcome, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET outcome = EXCLUDED.outcome, \
                 expires_at = EXCLUDED.expires_at",
            )
            .bind(key)
            .bind(outcome)
            .bind(expires_at)
            .execute(&self.pool)
            .await
            .map_err(coordination)?;
            Ok(())
        })
    }
}
