//! DPoP proofs already used, by the key's thumbprint and the proof's `jti`, kept until the
//! proof could no longer be accepted anyway (`iat` + max age + leeway). In the configured
//! store, so a proof replayed to another replica is refused; bounded in memory.
//!
//! A record is the SHA-256 of `jkt`, a zero byte and `jti`: 32 bytes whatever the client put
//! in `jti`, and nothing a reader of the store could replay. One record per API call with a
//! bound token, so each engine writes it in the cheapest way that is still atomic:
//!
//! - Redis: `SET <key> 1 NX EX <seconds left>` (one round trip); Redis forgets the record by
//!   itself when the proof would be refused for its age anyway, so its memory stays flat.
//! - PostgreSQL: `INSERT … ON CONFLICT DO NOTHING` into `dpop_proofs` (one statement; the
//!   primary key lets exactly one of concurrent uses on any replica insert it); a task deletes
//!   expired rows every [`PURGE_EVERY`].
//! - SQLite (one bridge): a `dpop_proofs` table keyed by expiry and record, written through
//!   [`crate::session::group_commit`] (one statement per batch of waiting records: SQLite has
//!   one writer), purged likewise.
//! - In memory ([`ProofReplay::default`]): for unit tests of the checks that use it; bounded.
//!
//! The bridge itself keeps nothing per record in any shared engine: its memory stays flat
//! however long it runs.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use fred::{
    clients::Pool,
    interfaces::KeysInterface,
    types::{Expiration, SetOptions},
};
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row, SqlitePool};

use crate::{
    clock::now,
    session::group_commit::{GroupCommit, Inserted},
};

/// How often expired records are deleted from the SQL tables. A record lives about a minute
/// (the proof's max age and leeway), so the tables hold about this much more than that.
pub const PURGE_EVERY: Duration = Duration::from_secs(10);
/// Redis keys: this and the record's base64url.
const REDIS_PREFIX: &str = "login-bridge:dpop:proof:";
/// Records the in-memory engine holds at most (expired ones go first).
const MEMORY_MAX: usize = 100_000;

/// The replay records of one bridge.
#[derive(Clone)]
pub struct ProofReplay {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Memory(Arc<Mutex<HashMap<[u8; 32], i64>>>),
    Sqlite(GroupCommit<Record>),
    Postgres(PgPool),
    /// The pool and `session.redis_wait_replicas`.
    Redis(Pool, u32),
}

/// In memory, for one process (tests).
impl Default for ProofReplay {
    fn default() -> Self {
        Self {
            engine: Engine::Memory(Arc::default()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("DPoP replay records: {0}")]
pub struct ReplayError(pub String);

/// One record as the SQLite writer takes it.
struct Record {
    key: [u8; 32],
    until: i64,
}

/// The record of `(jkt, jti)`: 32 bytes, whatever the proof's `jti`. `jkt` is base64url (no
/// zero byte), so no two pairs give the same input.
fn record_key(jkt: &str, jti: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(jkt.as_bytes());
    h.update([0]);
    h.update(jti.as_bytes());
    h.finalize().into()
}

impl ProofReplay {
    /// The table in the embedded SQLite file (created when missing); `pool` is its one writer.
    /// Starts the group-commit writer and the purge.
    pub async fn sqlite(pool: SqlitePool) -> Result<Self, sqlx::Error> {
        for ddl in [
            // Keyed by `(until, key)`: one b-tree, written near its end (`until` grows with
            // time) and purged from its start; a second index on `until` made each insert
            // about four times dearer. A replay has the same `until` (it is the proof's `iat`
            // plus the settings' window, and one bridge has one setting), so it still
            // conflicts; a proof with the same `jti` and another `iat` is another proof, which
            // only the key's holder can sign.
            "CREATE TABLE IF NOT EXISTS dpop_proofs (
                until INTEGER NOT NULL,
                key BLOB NOT NULL,
                PRIMARY KEY (until, key)
            ) WITHOUT ROWID",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        spawn_purge("SQLite", {
            let pool = pool.clone();
            move |now| {
                let pool = pool.clone();
                async move {
                    sqlx::query("DELETE FROM dpop_proofs WHERE until < ?")
                        .bind(now)
                        .execute(&pool)
                        .await
                        .map(|d| d.rows_affected())
                }
            }
        });
        let writer = GroupCommit::start(
            pool,
            |r: &Record| r.key,
            |pool, batch| Box::pin(insert_sqlite(pool, batch)),
        );
        Ok(Self {
            engine: Engine::Sqlite(writer),
        })
    }

    /// The `dpop_proofs` table of the bridge's PostgreSQL migrations; starts the purge.
    pub fn postgres(pool: PgPool) -> Self {
        spawn_purge("PostgreSQL", {
            let pool = pool.clone();
            move |now| {
                let pool = pool.clone();
                async move {
                    sqlx::query("DELETE FROM dpop_proofs WHERE until < $1")
                        .bind(now)
                        .execute(&pool)
                        .await
                        .map(|d| d.rows_affected())
                }
            }
        });
        Self {
            engine: Engine::Postgres(pool),
        }
    }

    /// Keys under `login-bridge:dpop:proof:` in Redis, each expiring by itself; with
    /// `wait_replicas` (`session.redis_wait_replicas`), a record counts once that many
    /// replicas have it (a record a failover lost would let its proof be replayed).
    pub fn redis(pool: Pool, wait_replicas: u32) -> Self {
        Self {
            engine: Engine::Redis(pool, wait_replicas),
        }
    }

    /// Records `(jkt, jti)` until `until`; false when it was recorded before (a replay).
    pub async fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, ReplayError> {
        let key = record_key(jkt, jti);
        match &self.engine {
            Engine::Memory(records) => memory_first_use(records, key, until, now),
            Engine::Sqlite(writer) => writer
                .first_use(Record { key, until })
                .await
                .map_err(|e| ReplayError(e.0)),
            Engine::Postgres(pool) => {
                let done = sqlx::query(
                    "INSERT INTO dpop_proofs (key, until) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                )
                .bind(&key[..])
                .bind(until)
                .execute(pool)
                .await
                .map_err(|e| ReplayError(e.to_string()))?;
                Ok(done.rows_affected() == 1)
            }
            Engine::Redis(pool, wait_replicas) => {
                use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
                let name = format!("{REDIS_PREFIX}{}", URL_SAFE_NO_PAD.encode(key));
                // Kept one second past `until`, as the SQL engines keep a row until then.
                let seconds = until.saturating_sub(now).saturating_add(1).max(1);
                let client = pool.next();
                let set: Option<String> = client
                    .set(
                        &name,
                        1,
                        Some(Expiration::EX(seconds)),
                        Some(SetOptions::NX),
                        false,
                    )
                    .await
                    .map_err(|e| ReplayError(e.to_string()))?;
                crate::redis_wait::confirm_replicated(client, &name, *wait_replicas)
                    .await
                    .map_err(ReplayError)?;
                Ok(set.is_some())
            }
        }
    }
}

fn memory_first_use(
    records: &Mutex<HashMap<[u8; 32], i64>>,
    key: [u8; 32],
    until: i64,
    now: i64,
) -> Result<bool, ReplayError> {
    let mut records = match records.lock() {
        Ok(r) => r,
        Err(p) => p.into_inner(),
    };
    if records.get(&key).is_some_and(|&t| t >= now) {
        return Ok(false);
    }
    if records.len() >= MEMORY_MAX {
        records.retain(|_, &mut t| t >= now);
        if records.len() >= MEMORY_MAX {
            return Err(ReplayError("too many proofs in flight".into()));
        }
    }
    records.insert(key, until);
    Ok(true)
}

/// Inserts a batch; returns the records newly inserted.
async fn insert_sqlite(
    pool: &SqlitePool,
    batch: &[Record],
) -> Result<Inserted<[u8; 32]>, sqlx::Error> {
    let mut sql = String::from("INSERT INTO dpop_proofs (until, key) VALUES ");
    for i in 0..batch.len() {
        sql.push_str(if i == 0 { "(?, ?)" } else { ", (?, ?)" });
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING key");
    let mut query = sqlx::query(&sql);
    for r in batch {
        query = query.bind(r.until).bind(&r.key[..]);
    }
    let mut inserted = Inserted::new();
    for row in query.fetch_all(pool).await? {
        let key: Vec<u8> = row.get(0);
        if let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) {
            *inserted.entry(key).or_insert(0) += 1;
        }
    }
    Ok(inserted)
}

/// Deletes expired records every [`PURGE_EVERY`], for as long as the bridge runs.
fn spawn_purge<F, Fut>(engine: &'static str, purge: F)
where
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, sqlx::Error>> + Send,
{
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PURGE_EVERY);
        loop {
            every.tick().await;
            if let Err(e) = purge(now()).await {
                tracing::warn!(engine, error = %e, "DPoP replay-record cleanup failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twenty concurrent uses of each of ten proofs: exactly one of each is first; the same
    /// `jti` of another key is not a replay; a later use of a recorded one is.
    async fn one_first_use_per_proof(replay: &ProofReplay) {
        // Real times: the purge runs in the background meanwhile.
        let t = now();
        let uses = (0..200).map(|i| {
            let replay = replay.clone();
            async move {
                let jti = format!("j{}", i % 10);
                (i % 10, replay.first_use("key-a", &jti, t + 90, t).await)
            }
        });
        let mut firsts = [0; 10];
        for (jti, first) in futures::future::join_all(uses).await {
            match first {
                Ok(true) => firsts[jti] += 1,
                Ok(false) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(firsts, [1; 10]);
        assert!(matches!(
            replay.first_use("key-b", "j0", t + 90, t).await,
            Ok(true)
        ));
        assert!(matches!(
            replay.first_use("key-a", "j0", t + 90, t + 50).await,
            Ok(false)
        ));
    }

    #[tokio::test]
    async fn in_memory_each_proof_is_first_once() {
        one_first_use_per_proof(&ProofReplay::default()).await;
    }

    #[tokio::test]
    async fn in_sqlite_each_proof_is_first_once_and_expired_rows_are_purged() {
        // One connection: every connection to `:memory:` is a database of its own.
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let replay = ProofReplay::sqlite(pool.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        one_first_use_per_proof(&replay).await;
        let count = || async {
            sqlx::query("SELECT COUNT(*) FROM dpop_proofs")
                .fetch_one(&pool)
                .await
                .map(|r| r.get::<i64, _>(0))
                .ok()
        };
        assert_eq!(count().await, Some(11), "one 32-byte row per proof");
        let purged = sqlx::query("DELETE FROM dpop_proofs WHERE until < ?")
            .bind(now() + 100)
            .execute(&pool)
            .await
            .map(|d| d.rows_affected());
        assert_eq!(purged.ok(), Some(11));
    }

    #[test]
    fn a_record_is_32_bytes_and_names_key_and_jti_apart() {
        assert_ne!(record_key("ab", "c"), record_key("a", "bc"));
        assert_eq!(record_key("a", "b"), record_key("a", "b"));
    }

    async fn redis() -> (Pool, crate::test_redis::Server) {
        crate::test_redis::start().await
    }

    #[tokio::test]
    async fn in_redis_each_proof_is_first_once_and_expires_by_itself() {
        let (pool, _server) = redis().await;
        let replay = ProofReplay::redis(pool.clone(), 0);
        one_first_use_per_proof(&replay).await;
        let now = now();
        assert!(matches!(
            replay.first_use("key-c", "j", now + 60, now).await,
            Ok(true)
        ));
        let name = {
            use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
            format!(
                "{REDIS_PREFIX}{}",
                URL_SAFE_NO_PAD.encode(record_key("key-c", "j"))
            )
        };
        let ttl: i64 = pool.ttl(&name).await.unwrap_or_else(|e| panic!("{e}"));
        assert!((59..=61).contains(&ttl), "expires with the proof: {ttl}");
    }
}
