//! The authority's tables in the embedded SQLite file, beside the sessions. SQLite has one
//! writer, so replay records go through the group-commit log of [`crate::authority::replay`].

use sqlx::{Row, SqlitePool, sqlite::SqliteRow};

use super::{REPAIRED_KEY_PUBLISH_SECS, Result, ServiceKey, ServiceUser, StoredKey, list, text};
use crate::{authority::replay::ReplayLog, clock::now};

#[derive(Clone)]
pub(super) struct SqliteTables {
    /// The store's one writer.
    pool: SqlitePool,
    /// Read-only connections to the same database, for the hot lookups.
    readers: SqlitePool,
    replays: ReplayLog,
}

impl SqliteTables {
    /// Creates the tables when missing.
    pub(super) async fn new(pool: SqlitePool, readers: SqlitePool) -> Result<Self> {
        for ddl in [
            "CREATE TABLE IF NOT EXISTS signing_keys (
                kid TEXT PRIMARY KEY,
                alg TEXT NOT NULL,
                sealed_private BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                retired_at INTEGER,
                publish_until INTEGER
            )",
            "CREATE TABLE IF NOT EXISTS service_users (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                roles TEXT NOT NULL,
                groups_ TEXT NOT NULL,
                permissions TEXT NOT NULL,
                disabled INTEGER NOT NULL DEFAULT 0,
                expires_at INTEGER,
                created_at INTEGER NOT NULL
            )",
            "CREATE TABLE IF NOT EXISTS service_user_keys (
                key_id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL REFERENCES service_users(id),
                alg TEXT NOT NULL,
                public_pem TEXT NOT NULL,
                created_at INTEGER NOT NULL
            )",
            "CREATE TABLE IF NOT EXISTS used_assertions (
                issuer TEXT NOT NULL,
                jti TEXT NOT NULL,
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (issuer, jti)
            ) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS used_assertions_expiry ON used_assertions (expires_at)",
            "CREATE TABLE IF NOT EXISTS local_users (
                name TEXT PRIMARY KEY,
                record TEXT NOT NULL
            )",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        Self::one_current_key_per_algorithm(&pool).await?;
        Ok(Self {
            replays: ReplayLog::start(pool.clone()),
            pool,
            readers,
        })
    }

    /// At most one current key per algorithm, enforced by a unique index. A file written
    /// before the index existed may hold several (replicas that started together each made
    /// one): all but the newest (the one the bridge signed with) are retired first, in the same
    /// transaction, and stay published until every token they signed has expired.
    async fn one_current_key_per_algorithm(pool: &SqlitePool) -> Result<()> {
        let mut tx = pool.begin().await?;
        let now = now();
        sqlx::query(
            "UPDATE signing_keys SET retired_at = ?, publish_until = ?
             WHERE retired_at IS NULL AND EXISTS (
                SELECT 1 FROM signing_keys newer
                WHERE newer.alg = signing_keys.alg AND newer.retired_at IS NULL
                  AND (newer.created_at > signing_keys.created_at
                       OR (newer.created_at = signing_keys.created_at
                           AND newer.kid > signing_keys.kid)))",
        )
        .bind(now)
        .bind(now + REPAIRED_KEY_PUBLISH_SECS)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "CREATE UNIQUE INDEX IF NOT EXISTS signing_keys_one_current
             ON signing_keys (alg) WHERE retired_at IS NULL",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- signing keys ----

    fn key_row(row: &SqliteRow) -> StoredKey {
        StoredKey {
            kid: row.get("kid"),
            alg: row.get("alg"),
            sealed_private: row.get("sealed_private"),
            created_at: row.get("created_at"),
            retired_at: row.get("retired_at"),
            publish_until: row.get("publish_until"),
        }
    }

    pub(super) async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::key_row).collect())
    }

    pub(super) async fn create_first_key(&self, key: &StoredKey) -> Result<bool> {
        // The unique index on current keys makes a second current key of `alg` a conflict.
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, sealed_private, created_at, retired_at, publish_until)
             VALUES (?, ?, ?, ?, NULL, NULL) ON CONFLICT DO NOTHING",
        )
        .bind(&key.kid)
        .bind(&key.alg)
        .bind(&key.sealed_private)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn rotate(
        &self,
        new: &StoredKey,
        now: i64,
        publish_until: i64,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let retired = sqlx::query(
            "UPDATE signing_keys SET retired_at = ?, publish_until = ?
             WHERE alg = ? AND retired_at IS NULL",
        )
        .bind(now)
        .bind(publish_until)
        .bind(&new.alg)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, sealed_private, created_at, retired_at, publish_until)
             VALUES (?, ?, ?, ?, NULL, NULL)",
        )
        .bind(&new.kid)
        .bind(&new.alg)
        .bind(&new.sealed_private)
        .bind(new.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(retired)
    }

    pub(super) async fn delete_spent_keys(&self, now: i64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND publish_until <= ?",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    // ---- service users ----

    fn user_row(row: &SqliteRow) -> ServiceUser {
        ServiceUser {
            id: row.get("id"),
            name: row.get("name"),
            roles: list(row.get("roles")),
            groups: list(row.get("groups_")),
            permissions: list(row.get("permissions")),
            disabled: row.get::<i64, _>("disabled") != 0,
            expires_at: row.get("expires_at"),
            created_at: row.get("created_at"),
        }
    }

    pub(super) async fn create_service_user(
        &self,
        user: &ServiceUser,
        key: &ServiceKey,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO service_users (id, name, roles, groups_, permissions, disabled, expires_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(text(&user.roles))
        .bind(text(&user.groups))
        .bind(text(&user.permissions))
        .bind(user.disabled as i64)
        .bind(user.expires_at)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_key(tx: &mut sqlx::SqliteConnection, key: &ServiceKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO service_user_keys (key_id, user_id, alg, public_pem, created_at)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&key.key_id)
        .bind(&key.user_id)
        .bind(&key.alg)
        .bind(&key.public_pem)
        .bind(key.created_at)
        .execute(tx)
        .await?;
        Ok(())
    }

    pub(super) async fn add_service_key(&self, key: &ServiceKey) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        Self::insert_key(&mut conn, key).await
    }

    pub(super) async fn remove_service_key(&self, user_id: &str, key_id: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM service_user_keys WHERE user_id = ? AND key_id = ?")
                .bind(user_id)
                .bind(key_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    pub(super) async fn service_user(&self, id_or_name: &str) -> Result<Option<ServiceUser>> {
        let row = sqlx::query("SELECT * FROM service_users WHERE id = ? OR name = ?")
            .bind(id_or_name)
            .bind(id_or_name)
            .fetch_optional(&self.readers)
            .await?;
        Ok(row.as_ref().map(Self::user_row))
    }

    pub(super) async fn service_users(&self) -> Result<Vec<ServiceUser>> {
        let rows = sqlx::query("SELECT * FROM service_users ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::user_row).collect())
    }

    pub(super) async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE service_users SET disabled = ? WHERE id = ?")
                .bind(disabled as i64)
                .bind(user_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    pub(super) async fn service_keys(&self, user_id: &str) -> Result<Vec<ServiceKey>> {
        let rows = sqlx::query(
            "SELECT * FROM service_user_keys WHERE user_id = ? ORDER BY created_at, key_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(Self::service_key_row).collect())
    }

    fn service_key_row(row: &SqliteRow) -> ServiceKey {
        ServiceKey {
            key_id: row.get("key_id"),
            user_id: row.get("user_id"),
            alg: row.get("alg"),
            public_pem: row.get("public_pem"),
            created_at: row.get("created_at"),
        }
    }

    pub(super) async fn read_key_with_user(
        &self,
        key_id: &str,
    ) -> Result<Option<(ServiceKey, ServiceUser)>> {
        let row = sqlx::query(
            "SELECT k.key_id, k.user_id, k.alg, k.public_pem, k.created_at AS key_created_at,
                    u.id, u.name, u.roles, u.groups_, u.permissions, u.disabled, u.expires_at,
                    u.created_at
             FROM service_user_keys k JOIN service_users u ON u.id = k.user_id
             WHERE k.key_id = ?",
        )
        .bind(key_id)
        .fetch_optional(&self.readers)
        .await?;
        Ok(row.map(|row| {
            let key = ServiceKey {
                key_id: row.get("key_id"),
                user_id: row.get("user_id"),
                alg: row.get("alg"),
                public_pem: row.get("public_pem"),
                created_at: row.get("key_created_at"),
            };
            (key, Self::user_row(&row))
        }))
    }

    // ---- replay records ----

    pub(super) async fn first_use(
        &self,
        issuer: &str,
        key_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        Ok(self
            .replays
            .first_use(issuer, key_id, jti, expires_at, now)
            .await?)
    }

    pub(super) async fn purge_used(&self, now: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM used_assertions WHERE expires_at < ?")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
    // ---- local accounts ----

    pub(super) async fn local_record(&self, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT record FROM local_users WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.readers)
                .await?,
        )
    }

    pub(super) async fn insert_local_record(&self, name: &str, record: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO local_users (name, record) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(record)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn update_local_record(&self, name: &str, record: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE local_users SET record = ? WHERE name = ?")
            .bind(record)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn local_records(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as("SELECT name, record FROM local_users")
            .fetch_all(&self.readers)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

    fn key(kid: &str, alg: &str, created_at: i64) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            alg: alg.into(),
            sealed_private: vec![1, 2, 3],
            created_at,
            retired_at: None,
            publish_until: None,
        }
    }

    /// A file from before the one-current-key rule, where two bridges each made an ES256 key:
    /// opened now, the newer stays current, the older is retired but published for a day and
    /// an hour, and no second current key can be made.
    #[tokio::test]
    async fn a_store_with_two_current_keys_of_one_algorithm_keeps_the_newest() {
        let Ok(pool) = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
        else {
            panic!("sqlite");
        };
        let Ok(_) = sqlx::query(
            "CREATE TABLE signing_keys (kid TEXT PRIMARY KEY, alg TEXT NOT NULL,
             sealed_private BLOB NOT NULL, created_at INTEGER NOT NULL, retired_at INTEGER,
             publish_until INTEGER)",
        )
        .execute(&pool)
        .await
        else {
            panic!("old table");
        };
        for (kid, created_at) in [("es-a", 10), ("es-b", 10), ("es-old", 5)] {
            let Ok(_) = sqlx::query(
                "INSERT INTO signing_keys (kid, alg, sealed_private, created_at) \
                 VALUES (?, 'ES256', x'00', ?)",
            )
            .bind(kid)
            .bind(created_at)
            .execute(&pool)
            .await
            else {
                panic!("old key");
            };
        }
        let Ok(tables) = SqliteTables::new(pool.clone(), pool.clone()).await else {
            panic!("open");
        };
        let Ok(keys) = tables.signing_keys().await else {
            panic!("read");
        };
        let current: Vec<&str> = keys
            .iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(current, ["es-b"]);
        for retired in keys.iter().filter(|k| k.retired_at.is_some()) {
            let (Some(at), Some(until)) = (retired.retired_at, retired.publish_until) else {
                panic!("{} retired without a publication end", retired.kid);
            };
            assert_eq!(until - at, REPAIRED_KEY_PUBLISH_SECS);
        }
        assert!(matches!(
            tables.create_first_key(&key("es-c", "ES256", 20)).await,
            Ok(false)
        ));
        assert!(matches!(
            tables.create_first_key(&key("rs-a", "RS256", 20)).await,
            Ok(true)
        ));
        // A rotation still works under the rule.
        assert!(matches!(
            tables.rotate(&key("es-d", "ES256", 30), 30, 99).await,
            Ok(1)
        ));
    }
}
