//! Replay records of service users' assertions, written with group commit.
//!
//! Every accepted assertion records its `(issuer, jti)` in the store before a token is issued;
//! a `jti` already there is a replay. The store has one writer, so under load these inserts
//! queue. Instead of one statement (and one hand-off to SQLite's worker thread) per request,
//! one task takes every record waiting at that moment and inserts them in one statement
//! (`INSERT … ON CONFLICT DO NOTHING RETURNING`): the rows returned are the first uses.
//! Nothing is answered before its record is committed, so a replay is refused exactly as with
//! one insert per request, across restarts and (with a shared store) replicas.

use std::collections::HashMap;

use sqlx::{Row, SqlitePool};
use tokio::sync::{mpsc, oneshot};

/// Records per statement at most (3 bound values each, far below SQLite's limit).
const MAX_BATCH: usize = 256;
/// Records waiting at most; beyond that callers wait for room.
const QUEUE: usize = 4096;

struct Record {
    issuer: String,
    jti: String,
    expires_at: i64,
    first: oneshot::Sender<Result<bool, String>>,
}

/// The handle requests use; the writer task runs while a handle exists.
#[derive(Clone)]
pub struct ReplayLog {
    tx: mpsc::Sender<Record>,
}

#[derive(Debug, thiserror::Error)]
#[error("replay records: {0}")]
pub struct ReplayError(String);

impl ReplayLog {
    /// Starts the writer on `pool` (the store's writer connection).
    pub fn start(pool: SqlitePool) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(pool, rx));
        Self { tx }
    }

    /// Records that `issuer` used `jti` (valid until `expires_at`); false when it was already
    /// recorded: a replay.
    pub async fn first_use(
        &self,
        issuer: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, ReplayError> {
        let (first, answer) = oneshot::channel();
        self.tx
            .send(Record {
                issuer: issuer.into(),
                jti: jti.into(),
                expires_at,
                first,
            })
            .await
            .map_err(|_| ReplayError("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| ReplayError("the writer has stopped".into()))?
            .map_err(ReplayError)
    }
}

async fn write_batches(pool: SqlitePool, mut rx: mpsc::Receiver<Record>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        match insert(&pool, &batch).await {
            Ok(inserted) => answer(&mut batch, inserted),
            Err(e) => {
                tracing::error!(error = %e, records = batch.len(), "writing replay records failed");
                for record in batch.drain(..) {
                    let _ = record.first.send(Err(e.to_string()));
                }
            }
        }
    }
}

/// Inserts the batch; returns how many times each `(issuer, jti)` was newly inserted (0 or 1).
async fn insert(
    pool: &SqlitePool,
    batch: &[Record],
) -> Result<HashMap<(String, String), u32>, sqlx::Error> {
    let mut sql = String::from("INSERT INTO used_assertions (issuer, jti, expires_at) VALUES ");
    for i in 0..batch.len() {
        sql.push_str(if i == 0 { "(?, ?, ?)" } else { ", (?, ?, ?)" });
    }
    sql.push_str(" ON CONFLICT DO NOTHING RETURNING issuer, jti");
    let mut query = sqlx::query(&sql);
    for r in batch {
        query = query.bind(&r.issuer).bind(&r.jti).bind(r.expires_at);
    }
    let mut inserted = HashMap::new();
    for row in query.fetch_all(pool).await? {
        *inserted
            .entry((row.get::<String, _>(0), row.get::<String, _>(1)))
            .or_insert(0) += 1;
    }
    Ok(inserted)
}

/// The first request of each inserted pair gets `true`; a second copy of the same pair in the
/// same batch, and every pair already recorded, gets `false`.
fn answer(batch: &mut Vec<Record>, mut inserted: HashMap<(String, String), u32>) {
    for record in batch.drain(..) {
        let key = (record.issuer, record.jti);
        let first = match inserted.get_mut(&key) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        };
        let _ = record.first.send(Ok(first));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn log() -> (ReplayLog, SqlitePool) {
        // One connection: every connection to `:memory:` is a database of its own.
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await;
        let pool = match pool {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let made = sqlx::query(
            "CREATE TABLE used_assertions (issuer TEXT NOT NULL, jti TEXT NOT NULL,
             expires_at INTEGER NOT NULL, PRIMARY KEY (issuer, jti))",
        )
        .execute(&pool)
        .await;
        assert!(made.is_ok());
        (ReplayLog::start(pool.clone()), pool)
    }

    #[tokio::test]
    async fn of_many_concurrent_uses_of_one_jti_exactly_one_is_first() {
        let (log, _pool) = log().await;
        let uses = (0..200).map(|i| {
            let log = log.clone();
            // Ten distinct jtis, each used twenty times at once.
            async move {
                (
                    i % 10,
                    log.first_use("svc-1", &format!("j{}", i % 10), 9).await,
                )
            }
        });
        let results = futures::future::join_all(uses).await;
        let mut firsts = [0; 10];
        for (jti, r) in results {
            match r {
                Ok(true) => firsts[jti] += 1,
                Ok(false) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(firsts, [1; 10]);
        // The same jti of another user is not a replay; a later use of a recorded one is.
        assert!(matches!(log.first_use("svc-2", "j0", 9).await, Ok(true)));
        assert!(matches!(log.first_use("svc-1", "j0", 9).await, Ok(false)));
    }
}
