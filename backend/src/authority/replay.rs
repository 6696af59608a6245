//! Replay records of service users' assertions, written with group commit.
//!
//! Every accepted assertion records its `(issuer, jti)` in the store before a token is issued;
//! a `jti` already there is a replay. The same statement checks, at that moment, that the
//! signing key still belongs to the issuer and the issuer is enabled and not expired: the
//! authoritative check, so `service-user disable` and `remove-key` (run by another process)
//! take effect on the very next assertion even though lookups before it may be cached.
//! The store has one writer, so these inserts go through [`crate::session::group_commit`]: one statement per batch of waiting records
//! (`INSERT … ON CONFLICT DO NOTHING RETURNING`), each answered once it is committed.

use sqlx::{Row, SqlitePool};

use crate::session::group_commit::{GroupCommit, Inserted};

struct Record {
    issuer: String,
    key_id: String,
    jti: String,
    expires_at: i64,
    now: i64,
}

/// The handle requests use; the writer task runs while a handle exists.
#[derive(Clone)]
pub struct ReplayLog {
    writer: GroupCommit<Record>,
}

#[derive(Debug, thiserror::Error)]
#[error("replay records: {0}")]
pub struct ReplayError(String);

impl ReplayLog {
    /// Starts the writer on `pool` (the store's writer connection).
    pub fn start(pool: SqlitePool) -> Self {
        let writer = GroupCommit::start(
            pool,
            |r: &Record| (r.issuer.clone(), r.jti.clone()),
            |pool, batch| Box::pin(insert(pool, batch)),
        );
        Self { writer }
    }

    /// Records that `issuer` used `jti` (valid until `expires_at`) with its key `key_id`;
    /// false when it was already recorded (a replay), or when at `now` the key is no longer the
    /// issuer's or the issuer is disabled or expired.
    pub async fn first_use(
        &self,
        issuer: &str,
        key_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayError> {
        self.writer
            .first_use(Record {
                issuer: issuer.into(),
                key_id: key_id.into(),
                jti: jti.into(),
                expires_at,
                now,
            })
            .await
            .map_err(|e| ReplayError(e.0))
    }
}

/// Inserts the batch; returns how many times each `(issuer, jti)` was newly inserted (0 or 1).
async fn insert(
    pool: &SqlitePool,
    batch: &[Record],
) -> Result<Inserted<(String, String)>, sqlx::Error> {
    let mut sql = String::from(
        "INSERT INTO used_assertions (issuer, jti, expires_at) \
         SELECT v.column1, v.column2, v.column3 FROM (VALUES ",
    );
    for i in 0..batch.len() {
        sql.push_str(if i == 0 {
            "(?, ?, ?, ?, ?)"
        } else {
            ", (?, ?, ?, ?, ?)"
        });
    }
    sql.push_str(
        ") AS v \
         JOIN service_user_keys k ON k.key_id = v.column4 AND k.user_id = v.column1 \
         JOIN service_users u ON u.id = k.user_id \
         WHERE u.disabled = 0 AND (u.expires_at IS NULL OR u.expires_at > v.column5) \
         ON CONFLICT DO NOTHING RETURNING issuer, jti",
    );
    let mut query = sqlx::query(&sql);
    for r in batch {
        query = query
            .bind(&r.issuer)
            .bind(&r.jti)
            .bind(r.expires_at)
            .bind(&r.key_id)
            .bind(r.now);
    }
    let mut inserted = Inserted::new();
    for row in query.fetch_all(pool).await? {
        *inserted
            .entry((row.get::<String, _>(0), row.get::<String, _>(1)))
            .or_insert(0) += 1;
    }
    Ok(inserted)
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
        for sql in [
            "CREATE TABLE used_assertions (issuer TEXT NOT NULL, jti TEXT NOT NULL,
             expires_at INTEGER NOT NULL, PRIMARY KEY (issuer, jti))",
            "CREATE TABLE service_users (id TEXT PRIMARY KEY, disabled INTEGER, expires_at INTEGER)",
            "CREATE TABLE service_user_keys (key_id TEXT PRIMARY KEY, user_id TEXT)",
            "INSERT INTO service_users VALUES ('svc-1', 0, NULL), ('svc-2', 0, NULL), \
             ('svc-off', 1, NULL), ('svc-old', 0, 100)",
            "INSERT INTO service_user_keys VALUES ('k1', 'svc-1'), ('k2', 'svc-2'), \
             ('k-off', 'svc-off'), ('k-old', 'svc-old')",
        ] {
            let done = sqlx::query(sql).execute(&pool).await;
            assert!(done.is_ok(), "{done:?}");
        }
        (ReplayLog::start(pool.clone()), pool)
    }

    #[tokio::test]
    async fn of_many_concurrent_uses_of_one_jti_exactly_one_is_first() {
        let (log, _pool) = log().await;
        let uses = (0..200).map(|i| {
            let log = log.clone();
            // Ten distinct jtis, each used twenty times at once.
            async move {
                let jti = format!("j{}", i % 10);
                (i % 10, log.first_use("svc-1", "k1", &jti, 9, 50).await)
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
        assert!(matches!(
            log.first_use("svc-2", "k2", "j0", 9, 50).await,
            Ok(true)
        ));
        assert!(matches!(
            log.first_use("svc-1", "k1", "j0", 9, 50).await,
            Ok(false)
        ));
    }

    #[tokio::test]
    async fn a_disabled_or_expired_user_or_a_key_of_another_user_records_nothing() {
        let (log, pool) = log().await;
        for (issuer, key) in [
            ("svc-off", "k-off"),
            ("svc-old", "k-old"),
            ("svc-1", "k2"),
            ("svc-1", "gone"),
        ] {
            assert!(matches!(
                log.first_use(issuer, key, "j", 9, 500).await,
                Ok(false)
            ));
        }
        let rows = sqlx::query("SELECT COUNT(*) FROM used_assertions")
            .fetch_one(&pool)
            .await
            .map(|r| r.get::<i64, _>(0));
        assert_eq!(rows.ok(), Some(0));
    }
}
