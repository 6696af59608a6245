//! From the provider's session (`sid`) or subject (`sub`) to the bridge sessions it opened,
//! so a back-channel logout can end every one of them. The rows live exactly as long as their
//! session: the store's cleanup removes rows whose session is gone.

use futures::future::BoxFuture;
use sqlx::SqlitePool;

/// What a session is found by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexKey {
    kind: &'static str,
    value: String,
}

impl IndexKey {
    /// The provider's session id (`sid` claim).
    pub fn sid(value: impl Into<String>) -> Self {
        Self {
            kind: "sid",
            value: value.into(),
        }
    }

    /// The user's subject at the provider (`sub` claim).
    pub fn sub(value: impl Into<String>) -> Self {
        Self {
            kind: "sub",
            value: value.into(),
        }
    }
}

impl IndexKey {
    /// `sid` or `sub`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("session index: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("session index: {0}")]
    Engine(String),
}

/// The index, one implementation per store engine.
pub trait SessionIndex: Send + Sync {
    /// Records that `session_id` belongs to every key in `keys`.
    fn add<'a>(
        &'a self,
        session_id: &'a str,
        keys: &'a [IndexKey],
    ) -> BoxFuture<'a, Result<(), IndexError>>;
    /// The sessions recorded under `key`.
    fn sessions<'a>(&'a self, key: &'a IndexKey) -> BoxFuture<'a, Result<Vec<String>, IndexError>>;
    /// Forgets `session_id` (it ended).
    fn remove<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<(), IndexError>>;
}

/// The index in the SQLite file that holds the sessions.
pub struct SqliteIndex {
    pool: SqlitePool,
}

impl SqliteIndex {
    pub async fn new(pool: SqlitePool) -> Result<Self, IndexError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS session_index (
                kind TEXT NOT NULL,
                value TEXT NOT NULL,
                session_id TEXT NOT NULL,
                PRIMARY KEY (kind, value, session_id)
            )",
        )
        .execute(&pool)
        .await?;
        sqlx::query(
            "CREATE INDEX IF NOT EXISTS session_index_by_session ON session_index (session_id)",
        )
        .execute(&pool)
        .await?;
        Ok(Self { pool })
    }

    /// Removes rows whose session no longer exists in tower-sessions' table.
    pub async fn purge_orphans(&self, sessions_table: &str) -> Result<u64, IndexError> {
        let sql = format!(
            "DELETE FROM session_index WHERE session_id NOT IN (SELECT id FROM \"{}\")",
            sessions_table.replace('"', "")
        );
        Ok(sqlx::query(&sql).execute(&self.pool).await?.rows_affected())
    }
}

impl SessionIndex for SqliteIndex {
    fn add<'a>(
        &'a self,
        session_id: &'a str,
        keys: &'a [IndexKey],
    ) -> BoxFuture<'a, Result<(), IndexError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            for key in keys {
                sqlx::query(
                    "INSERT OR IGNORE INTO session_index (kind, value, session_id) VALUES (?, ?, ?)",
                )
                .bind(key.kind)
                .bind(&key.value)
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
                "SELECT session_id FROM session_index WHERE kind = ? AND value = ? ORDER BY session_id",
            )
            .bind(key.kind)
            .bind(&key.value)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().map(|(id,)| id).collect())
        })
    }

    fn remove<'a>(&'a self, session_id: &'a str) -> BoxFuture<'a, Result<(), IndexError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM session_index WHERE session_id = ?")
                .bind(session_id)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn index() -> SqliteIndex {
        // One connection: every in-memory SQLite connection is a database of its own.
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await;
        let Ok(pool) = pool else {
            panic!("in-memory SQLite must open")
        };
        let Ok(index) = SqliteIndex::new(pool).await else {
            panic!("the index table must be created")
        };
        index
    }

    #[tokio::test]
    async fn sessions_are_found_by_sid_and_sub_until_removed() {
        let index = index().await;
        let keys = [IndexKey::sid("sid-1"), IndexKey::sub("alice")];
        assert!(index.add("s1", &keys).await.is_ok());
        assert!(index.add("s2", &[IndexKey::sub("alice")]).await.is_ok());
        let by_sid = index.sessions(&IndexKey::sid("sid-1")).await.ok();
        assert_eq!(by_sid, Some(vec!["s1".to_string()]));
        let by_sub = index.sessions(&IndexKey::sub("alice")).await.ok();
        assert_eq!(by_sub, Some(vec!["s1".to_string(), "s2".to_string()]));
        assert!(index.remove("s1").await.is_ok());
        let by_sub = index.sessions(&IndexKey::sub("alice")).await.ok();
        assert_eq!(by_sub, Some(vec!["s2".to_string()]));
        let none = index.sessions(&IndexKey::sid("sid-1")).await.ok();
        assert_eq!(none, Some(vec![]));
    }

    #[tokio::test]
    async fn a_sid_is_not_confused_with_a_sub_of_the_same_value() {
        let index = index().await;
        assert!(index.add("s1", &[IndexKey::sid("x")]).await.is_ok());
        let by_sub = index.sessions(&IndexKey::sub("x")).await.ok();
        assert_eq!(by_sub, Some(vec![]));
    }
}
