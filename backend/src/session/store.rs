//! The session store, chosen in settings (`session.store`), behind one seam: the router is
//! generic over tower-sessions' `SessionStore`, and the rest of the bridge sees only the
//! [`SessionIndex`] and [`RefreshLock`] traits. Adding an engine means one more
//! [`SessionBackend`] variant and one file beside this one (`redis`, `postgres`).

use std::{sync::Arc, time::Duration};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tower_sessions::session_store::ExpiredDeletion;
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use super::{
    index::{IndexError, SessionIndex, SqliteIndex},
    postgres::{self, PgIndex, PgRefreshCoordinator, PostgresError},
    redis::{self, RedisError, RedisIndex, RedisRecords, RedisRefreshCoordinator},
    refresh::{InProcessRefreshLock, RefreshLock, ReplicatedRefreshLock},
};
use crate::{
    authority::store::{AuthorityStore, AuthorityStoreError},
    settings::{SessionSettings, StoreKind},
};

/// How long a bridge tries again for a SQLite file's lock that is held (see
/// [`SqliteFileLock::take`]).
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// tower-sessions' table in the SQLite file.
const SQLITE_SESSIONS_TABLE: &str = "tower_sessions";
/// Read-only connections beside the single writer.
const READERS: u32 = 4;
/// How often expired sessions (and their index rows) are deleted.
const CLEANUP_EVERY: Duration = Duration::from_secs(600);
/// How often the checkpointer copies the SQLite WAL's committed pages into the database file
/// (see [`spawn_checkpoints`]). Under the heaviest load measured (a DPoP replay record per
/// request, 15 000 a second) the WAL takes about 13 MB in that time.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// The WAL file is cut back to this size when it is reset after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: &str = "67108864";
/// WAL frames (pages of 4 KiB) past which the checkpointer makes the WAL start over. Passive
/// checkpoints copy every frame but cannot restart the WAL while writes keep coming (the
/// writer appends beside them): under steady load the file grew past 1 GB. A `RESTART`
/// checkpoint holds the writer back for the few frames written since the passive one, then
/// the next write starts the WAL at its beginning. 32 MiB.
const WAL_RESTART_FRAMES: i64 = 8192;

/// Why the store could not be opened. Says which setting to look at.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the session database {path} (session.sqlite_path): {source}")]
    Open {
        path: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot create the session table: {0}")]
    Migrate(#[source] sqlx::Error),
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error("cannot create the session table in PostgreSQL: {0}")]
    PostgresSessions(#[source] sqlx::Error),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Authority(#[from] AuthorityStoreError),
    #[error(
        "another login-bridge is serving the session database {path} (it holds {path}.lock): \
         one SQLite file serves one bridge, which keeps the DPoP replay records and the refresh \
         lock in its memory. Stop the other bridge, give this one a session.sqlite_path of its \
         own, or let replicas share session.store = \"redis\" or \"postgres\" \
         (docs/scale-out.md)"
    )]
    InUse { path: String },
    #[error(
        "cannot lock the session database {path} (session.sqlite_path), through {path}.lock: {source}"
    )]
    Lock {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The running bridge's hold on its SQLite file: an exclusive lock on `<file>.lock`, held
/// while the value lives and let go by the kernel when the process ends (`kill -9` too).
///
/// One SQLite file serves one bridge: the bridge checks DPoP proofs against replay records it
/// holds in memory and keeps refreshes single-flight in its own process, so a second bridge
/// on the same file would let a proof through twice and refresh a session twice. The
/// commands beside a running bridge (`keys`, `service-user`, `user`) open the file without
/// this lock; SQLite orders their writes.
#[derive(Debug)]
pub struct SqliteFileLock {
    _file: std::fs::File,
}

impl SqliteFileLock {
    /// Takes the lock for the SQLite file at `path`, or says that another bridge holds it.
    /// A holder that has just let go may still hold it a moment (a bridge restarted at once;
    /// in one process, a child it is starting, which holds a copy of every descriptor between
    /// its fork and its exec: tests start bridges and programs side by side), so a held lock is
    /// tried again for [`LOCK_WAIT`] before the refusal.
    pub async fn take(path: &std::path::Path) -> Result<Self, StoreError> {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let shown = || path.display().to_string();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| StoreError::Lock {
                path: shown(),
                source,
            })?;
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(std::fs::TryLockError::WouldBlock)
                    if tokio::time::Instant::now() < deadline =>
                {
                    // flock has nothing to wait on without a thread blocked in it.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(StoreError::InUse { path: shown() });
                }
                Err(std::fs::TryLockError::Error(source)) => {
                    return Err(StoreError::Lock {
                        path: shown(),
                        source,
                    });
                }
            }
        }
    }
}

/// The opened store of the configured engine.
pub enum SessionBackend {
    Sqlite {
        store: SqliteStore,
        index: Arc<SqliteIndex>,
        pool: sqlx::SqlitePool,
        readers: sqlx::SqlitePool,
    },
    Redis {
        store: RedisRecords,
        index: Arc<RedisIndex>,
        pool: fred::clients::Pool,
        /// `session.redis_wait_replicas`.
        wait_replicas: u32,
    },
    Postgres {
        store: PostgresStore,
        index: Arc<PgIndex>,
        pool: sqlx::PgPool,
    },
}

/// A cheap handle to ask whether the store answers (readiness).
#[derive(Clone)]
pub enum StoreProbe {
    Sqlite(sqlx::SqlitePool),
    Redis(fred::clients::Pool),
    Postgres(sqlx::PgPool),
}

impl StoreProbe {
    /// `Ok` when the store answers within a second, else why not (for `/readyz`; never holds
    /// the store's address or credentials).
    pub async fn check(&self) -> Result<(), String> {
        let answered = tokio::time::timeout(Duration::from_secs(1), async {
            match self {
                Self::Sqlite(pool) => sqlx::query("SELECT 1")
                    .execute(pool)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Self::Redis(pool) => redis::ping(pool).await,
                Self::Postgres(pool) => postgres::ping(pool).await,
            }
        })
        .await;
        match answered {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "session store check failed");
                Err("the session store does not answer".into())
            }
            Err(_) => Err("the session store does not answer in time".into()),
        }
    }
}

impl SessionBackend {
    /// Opens (and migrates) the store `settings` choose.
    pub async fn open(settings: &SessionSettings) -> Result<Self, StoreError> {
        match settings.store {
            StoreKind::Sqlite => Self::open_sqlite(settings).await,
            StoreKind::Redis => {
                let pool = redis::connect(settings.url.expose()).await?;
                let moved = crate::authority::store::AuthorityStore::migrate_redis_keys(&pool)
                    .await
                    .map_err(|e| RedisError::Migrate(e.to_string()))?;
                if moved > 0 {
                    tracing::info!(moved, "authority keys moved under their Redis hash tag");
                }
                Ok(Self::Redis {
                    store: RedisRecords::new(pool.clone(), settings.redis_wait_replicas),
                    wait_replicas: settings.redis_wait_replicas,
                    index: Arc::new(RedisIndex::new(pool.clone(), settings.redis_wait_replicas)),
                    pool,
                })
            }
            StoreKind::Postgres => {
                let pool = postgres::connect(settings.url.expose()).await?;
                let store = PostgresStore::new(pool.clone());
                store
                    .migrate()
                    .await
                    .map_err(StoreError::PostgresSessions)?;
                Ok(Self::Postgres {
                    store,
                    index: Arc::new(PgIndex::new(pool.clone())),
                    pool,
                })
            }
        }
    }

    /// The readiness probe of this engine.
    pub fn probe(&self) -> StoreProbe {
        match self {
            Self::Sqlite { pool, .. } => StoreProbe::Sqlite(pool.clone()),
            Self::Redis { pool, .. } => StoreProbe::Redis(pool.clone()),
            Self::Postgres { pool, .. } => StoreProbe::Postgres(pool.clone()),
        }
    }

    /// The refresh single-flight of this engine: in-process for the embedded SQLite store
    /// (one bridge), across replicas for the shared ones.
    pub fn refresh_lock(&self) -> Arc<dyn RefreshLock> {
        match self {
            Self::Sqlite { .. } => Arc::new(InProcessRefreshLock::default()),
            Self::Redis {
                pool,
                wait_replicas,
                ..
            } => Arc::new(ReplicatedRefreshLock::new(RedisRefreshCoordinator::new(
                pool.clone(),
                *wait_replicas,
            ))),
            Self::Postgres { pool, .. } => Arc::new(ReplicatedRefreshLock::new(
                PgRefreshCoordinator::new(pool.clone()),
            )),
        }
    }

    /// The embedded store: one SQLite file that survives restarts.
    async fn open_sqlite(settings: &SessionSettings) -> Result<Self, StoreError> {
        let path = &settings.sqlite_path;
        let options = writer_options(path);
        // One connection: SQLite has one writer anyway, and concurrent writers on several
        // connections wait in SQLite's busy handler, which sleeps in steps of up to 100 ms
        // (hundreds of ms at p99 when sign-ins arrive together). Queued on the pool instead,
        // each waits only for the statements ahead of it.
        let pool = connect(path, 1, options).await?;
        // tower-sessions' default table name, which `SQLITE_SESSIONS_TABLE` repeats.
        let store = SqliteStore::new(pool.clone());
        store.migrate().await.map_err(StoreError::Migrate)?;
        let index = Arc::new(SqliteIndex::new(pool.clone()).await?);
        // Readers beside the one writer: WAL lets them run while it writes, and they see every
        // committed write. Hot lookups (the token endpoint's key and user) go here, so they
        // neither queue behind writes nor make writes queue behind them.
        let readers = connect(
            path,
            READERS,
            SqliteConnectOptions::new().filename(path).read_only(true),
        )
        .await?;
        let checkpointer = connect(
            path,
            1,
            SqliteConnectOptions::new()
                .filename(path)
                .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES),
        )
        .await?;
        spawn_checkpoints(checkpointer, Arc::downgrade(&index));
        Ok(Self::Sqlite {
            store,
            index,
            pool,
            readers,
        })
    }

    /// The session records of this engine, for ending sessions outside their own requests
    /// (back-channel logout).
    pub fn records(&self) -> Arc<dyn tower_sessions::SessionStore> {
        match self {
            Self::Sqlite { store, .. } => Arc::new(store.clone()),
            Self::Redis { store, .. } => Arc::new(store.clone()),
            Self::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// The session index of this engine.
    pub fn index(&self) -> Arc<dyn SessionIndex> {
        match self {
            Self::Sqlite { index, .. } => index.clone(),
            Self::Redis { index, .. } => index.clone(),
            Self::Postgres { index, .. } => index.clone(),
        }
    }

    /// The authority's records (signing keys, service users, replay records) in this store:
    /// with a shared engine, every replica signs with the same keys and refuses an assertion
    /// another one accepted.
    pub async fn authority_store(&self) -> Result<AuthorityStore, StoreError> {
        match self {
            Self::Sqlite { pool, readers, .. } => {
                Ok(AuthorityStore::sqlite(pool.clone(), readers.clone()).await?)
            }
            Self::Redis {
                pool,
                wait_replicas,
                ..
            } => Ok(AuthorityStore::redis(pool.clone(), *wait_replicas)),
            Self::Postgres { pool, .. } => Ok(AuthorityStore::postgres(pool.clone())),
        }
    }

    /// Deletes expired sessions, and index rows of sessions that are gone, periodically.
    pub fn spawn_cleanup(&self) {
        match self {
            Self::Sqlite { store, index, .. } => {
                let store = store.clone();
                let index = index.clone();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(CLEANUP_EVERY);
                    loop {
                        every.tick().await;
                        if let Err(e) = store.delete_expired().await {
                            tracing::warn!(error = %e, "expired-session cleanup failed");
                        }
                        if let Err(e) = index.purge_orphans(SQLITE_SESSIONS_TABLE).await {
                            tracing::warn!(error = %e, "session-index cleanup failed");
                        }
                    }
                });
            }
            // Redis expires sessions itself; stale index members are dropped when read.
            Self::Redis { .. } => {}
            Self::Postgres { store, index, pool } => {
                let store = store.clone();
                let index = index.clone();
                let outcomes = PgRefreshCoordinator::new(pool.clone());
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(CLEANUP_EVERY);
                    loop {
                        every.tick().await;
                        if let Err(e) = store.delete_expired().await {
                            tracing::warn!(error = %e, "expired-session cleanup failed");
                        }
                        if let Err(e) = index.purge_orphans().await {
                            tracing::warn!(error = %e, "session-index cleanup failed");
                        }
                        if let Err(e) = outcomes.purge_expired().await {
                            tracing::warn!(error = %e, "refresh-outcome cleanup failed");
                        }
                    }
                });
            }
        }
    }
}

/// A pool of at most `connections` on the SQLite file at `path`, each waiting up to 5 s for a
/// lock or a free connection.
async fn connect(
    path: &std::path::Path,
    connections: u32,
    options: SqliteConnectOptions,
) -> Result<sqlx::SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.busy_timeout(Duration::from_secs(5)))
        .await
        .map_err(|source| StoreError::Open {
            path: path.display().to_string(),
            source,
        })
}

/// The writer's connection: WAL, and no checkpoints of its own.
fn writer_options(path: &std::path::Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // In WAL mode NORMAL never corrupts the file; a power cut may lose the last commits.
        .synchronous(SqliteSynchronous::Normal)
        // The writer never checkpoints: by default the commit that takes the WAL past 1 000
        // pages copies them into the database file and syncs it before the next write can
        // start, so every write queued behind it waits. A connection of its own does that
        // instead, beside the writer (`spawn_checkpoints`). bench/dpop.sh, a replay record
        // per request: p99 13-16 ms -> 8-10 ms, 0.69 -> 0.82 of the bare handler's rate.
        .pragma("wal_autocheckpoint", "0")
        .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES)
}

/// Copies the WAL's committed pages into the SQLite file every [`CHECKPOINT_EVERY`], on a
/// connection of its own, while the store is open (`open`: its index, which every handle of
/// the store holds): a passive checkpoint runs beside the writer and never makes it wait (nor
/// waits for it). When the WAL has grown past [`WAL_RESTART_FRAMES`] anyway, a `RESTART`
/// checkpoint makes it start over. Durability is SQLite's as before: a commit is in the WAL.
fn spawn_checkpoints(checkpointer: sqlx::SqlitePool, open: std::sync::Weak<SqliteIndex>) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(CHECKPOINT_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            if open.strong_count() == 0 {
                break;
            }
            if let Err(e) = checkpoint(&checkpointer).await {
                tracing::warn!(error = %e, "SQLite checkpoint failed; the next one tries again");
            }
        }
        checkpointer.close().await;
    });
}

/// One checkpoint: passive, then `RESTART` when the WAL is past [`WAL_RESTART_FRAMES`].
/// Returns the WAL's frames and those copied into the database file, as the last one saw them.
async fn checkpoint(pool: &sqlx::SqlitePool) -> Result<(i64, i64), sqlx::Error> {
    let passive = checkpoint_mode(pool, "PASSIVE").await?;
    if passive.0 <= WAL_RESTART_FRAMES {
        return Ok(passive);
    }
    checkpoint_mode(pool, "RESTART").await
}

async fn checkpoint_mode(pool: &sqlx::SqlitePool, mode: &str) -> Result<(i64, i64), sqlx::Error> {
    use sqlx::Row;
    let row = sqlx::query(&format!("PRAGMA wal_checkpoint({mode})"))
        .fetch_one(pool)
        .await?;
    Ok((row.try_get(1)?, row.try_get(2)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One holder at a time; the lock goes with its holder (the process, when it ends).
    #[tokio::test]
    async fn a_sqlite_file_is_locked_by_one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sessions.sqlite");
        let first = SqliteFileLock::take(&path).await.unwrap();
        let refused = SqliteFileLock::take(&path).await.unwrap_err();
        assert!(matches!(refused, StoreError::InUse { .. }), "{refused}");
        assert!(
            refused.to_string().contains("sessions.sqlite.lock"),
            "{refused}"
        );
        // Another file beside it is free.
        SqliteFileLock::take(&dir.path().join("other.sqlite"))
            .await
            .unwrap();
        drop(first);
        SqliteFileLock::take(&path).await.unwrap();
        // A holder that lets go within the wait: the next one gets the lock.
        let held = SqliteFileLock::take(&path).await.unwrap();
        let (taken, ()) = tokio::join!(SqliteFileLock::take(&path), async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            drop(held);
        });
        taken.unwrap();
        // A directory that does not exist says what could not be opened.
        let missing = SqliteFileLock::take(&dir.path().join("no/such.sqlite"))
            .await
            .unwrap_err();
        assert!(matches!(missing, StoreError::Lock { .. }), "{missing}");
    }

    /// The writer leaves checkpoints to the checkpointer, whose passive checkpoint copies
    /// what was committed; the WAL then starts over instead of growing.
    #[tokio::test]
    async fn the_writer_never_checkpoints_and_the_checkpointer_copies_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(writer_options(&path))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (x BLOB)")
            .execute(&writer)
            .await
            .unwrap();
        for _ in 0..1500 {
            sqlx::query("INSERT INTO t VALUES (randomblob(4000))")
                .execute(&writer)
                .await
                .unwrap();
        }
        // Past SQLite's default of 1 000 pages (4 MB), the WAL kept growing: the writer did
        // not checkpoint.
        let wal = dir.path().join("store.db-wal");
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(size > 5_000_000, "WAL {size} B");
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(SqliteConnectOptions::new().filename(&path))
            .await
            .unwrap();
        let (frames, copied) = checkpoint(&checkpointer).await.unwrap();
        assert!(frames > 1500, "{frames} frames");
        assert_eq!(copied, frames);
        // All copied: the next write starts the WAL over, and the file is cut back.
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&writer)
            .await
            .unwrap();
        let (frames, _) = checkpoint(&checkpointer).await.unwrap();
        assert!(frames < 10, "{frames} frames after the WAL started over");
    }
}
