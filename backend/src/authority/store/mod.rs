//! What the authority keeps in the bridge's store: its signing keys (private halves sealed
//! under the key-encryption key), service users with their public keys, the `jti`s of
//! assertions already used, and local accounts (name, password hash, roles and groups).
//!
//! They live in the same engine as the sessions (`session.store`): the embedded SQLite file
//! (`sqlite`), or PostgreSQL or Redis shared by every replica (`postgres`, `redis`), so that
//! replicas sign with the same keys, know the same service users and refuse an assertion
//! another replica already accepted. The engine is chosen once, when the store is opened;
//! [`AuthorityStore`] hands each call to it and keeps the one cache that is engine-independent
//! (the token endpoint's key lookups).

mod postgres;
mod redis;
mod sqlite;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use sqlx::{PgPool, SqlitePool};

use super::replay::ReplayError;

/// Why the store did not answer. Never holds the store's address or credentials.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityStoreError {
    #[error("authority store: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("authority store: {0}")]
    Redis(#[from] fred::error::Error),
    #[error("authority store: {0}")]
    Replay(#[from] ReplayError),
    /// A write the store refused because of what it holds (a duplicate, a missing user).
    #[error("authority store: {0}")]
    Refused(String),
    /// A stored record that cannot be read back (edited by hand, or by another version).
    #[error("authority store: unreadable record {0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, AuthorityStoreError>;

/// When a store from before the one-current-key rule holds several current keys of one
/// algorithm (replicas that started together on an empty store each made one), all but the
/// newest are retired and stay published this long: the longest token lifetime the settings
/// allow (a day) and an hour of leeway, so every token they signed still verifies.
/// `backend/migrations/postgres/0004_one_current_signing_key.sql` repeats the number.
const REPAIRED_KEY_PUBLISH_SECS: i64 = 90_000;

/// A signing key as stored.
#[derive(Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    /// `nonce || AES-256-GCM(pkcs8) || tag`, bound to `kid`.
    pub sealed_private: Vec<u8>,
    pub created_at: i64,
    /// When it stopped signing (a rotation); `None` while it is current.
    pub retired_at: Option<i64>,
    /// A retired key is published until every token it signed has expired.
    pub publish_until: Option<i64>,
}

/// A service user: a non-interactive caller that signs assertions with its own key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUser {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// Bridge permissions (`introspect`).
    pub permissions: Vec<String>,
    pub disabled: bool,
    /// The user stops working after this moment, if set.
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

impl ServiceUser {
    pub fn active(&self, now: i64) -> bool {
        !self.disabled && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A public key of a service user (the private half lives only in the user's key file).
#[derive(Clone, Debug)]
pub struct ServiceKey {
    pub key_id: String,
    pub user_id: String,
    pub alg: String,
    pub public_pem: String,
    pub created_at: i64,
}

/// A local account: a person who signs in with a username and password at the bridge itself
/// (break-glass admin, or no provider reachable). Stored as one JSON record under its name.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalUser {
    /// Stable id, the `sub` of its tokens (`local-` and random): a name reused after the
    /// account is removed is another subject.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// The argon2id hash in PHC form (`$argon2id$v=19$m=...`), never the password.
    pub password_hash: String,
    #[serde(default)]
    pub disabled: bool,
    pub created_at: i64,
    /// When the password was last set (shown by `user list`).
    pub password_changed_at: i64,
}

impl std::fmt::Debug for LocalUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalUser")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("disabled", &self.disabled)
            .finish_non_exhaustive()
    }
}

fn local_record(user: &LocalUser) -> Result<String> {
    serde_json::to_string(user).map_err(|e| AuthorityStoreError::Corrupt(e.to_string()))
}

fn local_user(name: &str, record: &str) -> Result<LocalUser> {
    serde_json::from_str(record)
        .map_err(|_| AuthorityStoreError::Corrupt(format!("local user {name:?}")))
}

/// The engine holding the tables (or keys).
#[derive(Clone)]
enum Engine {
    Sqlite(sqlite::SqliteTables),
    Postgres(postgres::PgTables),
    Redis(redis::RedisKeys),
}

/// The authority's records in the configured store.
#[derive(Clone)]
pub struct AuthorityStore {
    engine: Engine,
    /// `key_with_user` answers by key id. Keys and users never change but for `disabled` and
    /// removal, which the replay record's write checks itself; so these may be stale.
    assertion_keys: Arc<RwLock<HashMap<String, (ServiceKey, ServiceUser)>>>,
}

/// Entries of the assertion-key cache at most (it is emptied when full).
const ASSERTION_KEYS: usize = 10_000;

/// A list column (roles, groups, permissions) as stored: a JSON array of strings.
fn list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn text(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

/// Sends the call to the engine's implementation of the same name.
macro_rules! each_engine {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match &$self.engine {
            Engine::Sqlite(e) => e.$method($($arg),*).await,
            Engine::Postgres(e) => e.$method($($arg),*).await,
            Engine::Redis(e) => e.$method($($arg),*).await,
        }
    };
}

impl AuthorityStore {
    /// The tables in the embedded SQLite file (created when missing): `pool` is its one
    /// writer, `readers` read-only connections for the hot lookups.
    pub async fn sqlite(pool: SqlitePool, readers: SqlitePool) -> Result<Self> {
        Ok(Self::on(Engine::Sqlite(
            sqlite::SqliteTables::new(pool, readers).await?,
        )))
    }

    /// The tables in PostgreSQL (created by the bridge's migrations when the pool connected).
    pub fn postgres(pool: PgPool) -> Self {
        Self::on(Engine::Postgres(postgres::PgTables::new(pool)))
    }

    /// Keys under `login-bridge:{authority}:` in Redis (one hash slot on a cluster).
    /// `wait_replicas`: `session.redis_wait_replicas`, for the replay records.
    pub fn redis(pool: fred::clients::Pool, wait_replicas: u32) -> Self {
        Self::on(Engine::Redis(redis::RedisKeys::new(pool, wait_replicas)))
    }

    /// Renames the keys an earlier version wrote without the `{authority}` hash tag; run
    /// once when the Redis store opens. Returns how many keys moved.
    pub async fn migrate_redis_keys(pool: &fred::clients::Pool) -> Result<u64> {
        redis::migrate_untagged(pool).await
    }

    fn on(engine: Engine) -> Self {
        Self {
            engine,
            assertion_keys: Arc::default(),
        }
    }

    // ---- signing keys ----

    /// Every stored signing key, oldest first (ties by `kid`).
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        each_engine!(self.signing_keys())
    }

    /// Adds `key` as the current key of its algorithm, unless the store holds a current key
    /// of that algorithm already: then nothing is written and the answer is false. One atomic
    /// step in each engine (a unique index on the current key of each algorithm in SQL, one
    /// script in Redis), so replicas and CLI runs that start together on an empty store agree
    /// on one current key: the losers re-read the winner.
    pub async fn create_first_key(&self, key: &StoredKey) -> Result<bool> {
        each_engine!(self.create_first_key(key))
    }

    /// Replaces the current key of `alg` by `new` at once: the old one is retired and stays
    /// published until `publish_until`. Returns how many keys were retired.
    pub async fn rotate(&self, new: &StoredKey, now: i64, publish_until: i64) -> Result<u64> {
        each_engine!(self.rotate(new, now, publish_until))
    }

    /// Deletes retired keys whose last token has expired (private half included).
    pub async fn delete_spent_keys(&self, now: i64) -> Result<u64> {
        each_engine!(self.delete_spent_keys(now))
    }

    // ---- service users ----

    /// Creates the user with its first key, both or neither.
    pub async fn create_service_user(&self, user: &ServiceUser, key: &ServiceKey) -> Result<()> {
        each_engine!(self.create_service_user(user, key))
    }

    /// Adds a key to an existing user.
    pub async fn add_service_key(&self, key: &ServiceKey) -> Result<()> {
        each_engine!(self.add_service_key(key))
    }

    /// Removes a key of `user_id`; false when it has no such key.
    pub async fn remove_service_key(&self, user_id: &str, key_id: &str) -> Result<bool> {
        each_engine!(self.remove_service_key(user_id, key_id))
    }

    /// The user with this id, or this name.
    pub async fn service_user(&self, id_or_name: &str) -> Result<Option<ServiceUser>> {
        each_engine!(self.service_user(id_or_name))
    }

    /// Every user, by name (byte order).
    pub async fn service_users(&self) -> Result<Vec<ServiceUser>> {
        each_engine!(self.service_users())
    }

    /// False when there is no such user.
    pub async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool> {
        each_engine!(self.set_disabled(user_id, disabled))
    }

    /// The user's keys, oldest first (ties by key id).
    pub async fn service_keys(&self, user_id: &str) -> Result<Vec<ServiceKey>> {
        each_engine!(self.service_keys(user_id))
    }

    /// The key `key_id` together with its user (the token endpoint's lookup), remembered once
    /// read. The user's `disabled` and `expires_at` may be stale here: [`Self::first_use`] is
    /// the authoritative check.
    pub async fn key_with_user(&self, key_id: &str) -> Result<Option<(ServiceKey, ServiceUser)>> {
        let cached = match self.assertion_keys.read() {
            Ok(map) => map.get(key_id).cloned(),
            Err(p) => p.into_inner().get(key_id).cloned(),
        };
        if let Some(found) = cached {
            return Ok(Some(found));
        }
        let found = each_engine!(self.read_key_with_user(key_id))?;
        if let Some(found) = &found {
            let mut map = match self.assertion_keys.write() {
                Ok(map) => map,
                Err(p) => p.into_inner(),
            };
            if map.len() >= ASSERTION_KEYS {
                map.clear();
            }
            map.insert(key_id.to_string(), found.clone());
        }
        Ok(found)
    }

    // ---- local accounts ----

    /// The local account named `name` (names are compared as given: `add` lowercases them).
    pub async fn local_user(&self, name: &str) -> Result<Option<LocalUser>> {
        each_engine!(self.local_record(name))?
            .map(|record| local_user(name, &record))
            .transpose()
    }

    /// Adds the account; false when one of that name exists.
    pub async fn insert_local_user(&self, user: &LocalUser) -> Result<bool> {
        let record = local_record(user)?;
        each_engine!(self.insert_local_record(&user.name, &record))
    }

    /// Replaces the account of the same name; false when there is none.
    pub async fn update_local_user(&self, user: &LocalUser) -> Result<bool> {
        let record = local_record(user)?;
        each_engine!(self.update_local_record(&user.name, &record))
    }

    /// Every local account, by name (byte order).
    pub async fn local_users(&self) -> Result<Vec<LocalUser>> {
        let mut users = each_engine!(self.local_records())?
            .iter()
            .map(|(name, record)| local_user(name, record))
            .collect::<Result<Vec<_>>>()?;
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    // ---- replay records ----

    /// Records that `issuer` used `jti` (valid until `expires_at`) signed with `key_id`. False
    /// when it was already recorded (a replay), or when at `now` the key is not the issuer's
    /// or the issuer is disabled or expired. Each engine checks all of this in one atomic
    /// step (see [`super::replay`] for SQLite).
    pub async fn first_use(
        &self,
        issuer: &str,
        key_id: &str,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool> {
        each_engine!(self.first_use(issuer, key_id, jti, expires_at, now))
    }

    /// Forgets replay records whose assertion has expired (it could not be used again anyway).
    pub async fn purge_used(&self, now: i64) -> Result<u64> {
        each_engine!(self.purge_used(now))
    }
}
