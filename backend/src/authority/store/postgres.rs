//! The authority's tables in PostgreSQL, shared by every replica (created by
//! `backend/migrations/postgres/0002_authority.sql` when the pool connects).
//!
//! Unlike SQLite, PostgreSQL takes concurrent writers, so a replay record is one statement per
//! assertion, no group commit: the `INSERT … SELECT … JOIN … WHERE` records it only if the key
//! is still the issuer's and the issuer enabled and unexpired, and the primary key lets exactly
//! one of concurrent uses of a `jti` (on any replica) insert it.
//!
//! Text is ordered with `COLLATE "C"` (byte order), as SQLite's default collation does, so
//! listings come out the same whatever the database's locale.

use sqlx::{PgPool, Row, postgres::PgRow};

use super::{Result, ServiceKey, ServiceUser, StoredKey, list, text};

#[derive(Clone)]
pub(super) struct PgTables {
    pool: PgPool,
}

/// Records a first use, or nothing: the authoritative check of a service user's assertion.
const FIRST_USE: &str = "INSERT INTO used_assertions (issuer, jti, expires_at) \
     SELECT k.user_id, $2::text, $3::bigint FROM service_user_keys k \
     JOIN service_users u ON u.id = k.user_id \
     WHERE k.key_id = $4 AND k.user_id = $1 \
       AND NOT u.disabled AND (u.expires_at IS NULL OR u.expires_at > $5) \
     ON CONFLICT DO NOTHING RETURNING jti";

impl PgTables {
    pub(super) fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    // ---- signing keys ----

    fn key_row(row: &PgRow) -> StoredKey {
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
        let rows = sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::key_row).collect())
    }

    pub(super) async fn create_first_key(&self, key: &StoredKey) -> Result<bool> {
        // The unique index on current keys (migration 0004) makes a second current key of
        // `alg` a conflict: of concurrent inserts, one commits and the others do nothing.
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, sealed_private, created_at, retired_at, publish_until)
             VALUES ($1, $2, $3, $4, NULL, NULL) ON CONFLICT DO NOTHING",
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
        // Rotations from two replicas at once take turns: otherwise each could retire only the
        // key it saw and both new keys would stay current. Readers are not blocked.
        sqlx::query("LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let retired = sqlx::query(
            "UPDATE signing_keys SET retired_at = $1, publish_until = $2
             WHERE alg = $3 AND retired_at IS NULL",
        )
        .bind(now)
        .bind(publish_until)
        .bind(&new.alg)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "INSERT INTO signing_keys (kid, alg, sealed_private, created_at, retired_at, publish_until)
             VALUES ($1, $2, $3, $4, NULL, NULL)",
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
            "DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND publish_until <= $1",
        )
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    // ---- service users ----

    fn user_row(row: &PgRow) -> ServiceUser {
        ServiceUser {
            id: row.get("id"),
            name: row.get("name"),
            roles: list(row.get("roles")),
            groups: list(row.get("groups_")),
            permissions: list(row.get("permissions")),
            disabled: row.get("disabled"),
            expires_at: row.get("expires_at"),
            created_at: row.get("created_at"),
        }
    }

    fn service_key_row(row: &PgRow) -> ServiceKey {
        ServiceKey {
            key_id: row.get("key_id"),
            user_id: row.get("user_id"),
            alg: row.get("alg"),
            public_pem: row.get("public_pem"),
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
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&user.id)
        .bind(&user.name)
        .bind(text(&user.roles))
        .bind(text(&user.groups))
        .bind(text(&user.permissions))
        .bind(user.disabled)
        .bind(user.expires_at)
        .bind(user.created_at)
        .execute(&mut *tx)
        .await?;
        Self::insert_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_key(conn: &mut sqlx::PgConnection, key: &ServiceKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO service_user_keys (key_id, user_id, alg, public_pem, created_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&key.key_id)
        .bind(&key.user_id)
        .bind(&key.alg)
        .bind(&key.public_pem)
        .bind(key.created_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    pub(super) async fn add_service_key(&self, key: &ServiceKey) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        Self::insert_key(&mut conn, key).await
    }

    pub(super) async fn remove_service_key(&self, user_id: &str, key_id: &str) -> Result<bool> {
        Ok(
            sqlx::query("DELETE FROM service_user_keys WHERE user_id = $1 AND key_id = $2")
                .bind(user_id)
                .bind(key_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    pub(super) async fn service_user(&self, id_or_name: &str) -> Result<Option<ServiceUser>> {
        // The id first: ids are made by the bridge, a name could look like one.
        let row = sqlx::query(
            "SELECT * FROM service_users WHERE id = $1 OR name = $1 \
             ORDER BY (id = $1) DESC LIMIT 1",
        )
        .bind(id_or_name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(Self::user_row))
    }

    pub(super) async fn service_users(&self) -> Result<Vec<ServiceUser>> {
        let rows = sqlx::query("SELECT * FROM service_users ORDER BY name COLLATE \"C\"")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(Self::user_row).collect())
    }

    pub(super) async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool> {
        Ok(
            sqlx::query("UPDATE service_users SET disabled = $1 WHERE id = $2")
                .bind(disabled)
                .bind(user_id)
                .execute(&self.pool)
                .await?
                .rows_affected()
                > 0,
        )
    }

    pub(super) async fn service_keys(&self, user_id: &str) -> Result<Vec<ServiceKey>> {
        let rows = sqlx::query(
            "SELECT * FROM service_user_keys WHERE user_id = $1 \
             ORDER BY created_at, key_id COLLATE \"C\"",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(Self::service_key_row).collect())
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
             WHERE k.key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
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
        let recorded = sqlx::query(FIRST_USE)
            .bind(issuer)
            .bind(jti)
            .bind(expires_at)
            .bind(key_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        Ok(recorded.is_some())
    }

    pub(super) async fn purge_used(&self, now: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM used_assertions WHERE expires_at < $1")
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
    // ---- local accounts ----

    pub(super) async fn local_record(&self, name: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT record FROM local_users WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub(super) async fn insert_local_record(&self, name: &str, record: &str) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO local_users (name, record) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(record)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn update_local_record(&self, name: &str, record: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE local_users SET record = $2 WHERE name = $1")
            .bind(name)
            .bind(record)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn local_records(&self) -> Result<Vec<(String, String)>> {
        Ok(sqlx::query_as("SELECT name, record FROM local_users")
            .fetch_all(&self.pool)
            .await?)
    }
}
