//! The authority's records in Redis (or Valkey), shared by every replica. Keys, all under
//! `login-bridge:{authority}:`:
//!
//! - `signing-keys`: set of kids; `signing-key:{kid}`: hash (`alg`, `sealed_private` in
//!   base64, `created_at`, and once retired `retired_at`, `publish_until`); at most one key of
//!   each algorithm without `retired_at` (the current one), which the creation and rotation
//!   scripts keep so;
//! - `service-users`: set of user ids; `service-user-names`: hash name → id (names are
//!   unique); `service-user:{id}`: hash (`name`, `roles`, `groups`, `permissions` as JSON
//!   arrays, `disabled` `0`/`1`, `created_at`, optional `expires_at`);
//! - `service-user-keys:{id}`: set of the user's key ids; `service-key:{key_id}`: hash
//!   (`user_id`, `alg`, `public_pem`, `created_at`);
//! - `local-users`: hash name → the local account's JSON record;
//! - `used:{issuer}:{jti}`: a replay record, `SET NX` with the assertion's remaining lifetime,
//!   so Redis forgets it when it could not be used anyway. Issuers are the bridge's own user
//!   ids (`svc-` and base64url), which hold no `:`.
//!
//! Every write that touches several keys is one Lua script, so a replica (or a CLI run) that
//! stops half-way leaves nothing half-written, and the replay record's check (the key is still
//! the user's, the user enabled and unexpired) happens atomically with its `SET NX`. The
//! rotation and spent-key scripts reach the per-key hashes through the kid set.
//!
//! On a Redis Cluster a script's keys must share one hash slot, so every key here carries the
//! hash tag `{authority}`: the whole authority lives in one slot (one primary and its
//! replicas). That is the price of its atomic multi-key scripts, and a small one: it is a
//! handful of keys per service user and signing key, read through the bridge's caches, and
//! written once per service-user assertion (the `used:` record). The heavy, per-request keys
//! (sessions, the DPoP replay records, refresh locks, the session index) are single keys
//! without a tag and spread over every slot. The keys were `login-bridge:authority:…` before
//! the tag; [`migrate_untagged`] renames those once, on a single Redis or Sentinel primary.
//!
//! Listings are sorted here, in Rust, the way the SQL engines order them.

use std::collections::HashMap;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use fred::{
    clients::Pool,
    interfaces::{ClientLike, HashesInterface, KeysInterface, LuaInterface, SetsInterface},
};
use futures::TryStreamExt;

use super::{AuthorityStoreError, Result, ServiceKey, ServiceUser, StoredKey, list, text};

const SIGNING_KEYS: &str = "login-bridge:{authority}:signing-keys";
const SIGNING_KEY: &str = "login-bridge:{authority}:signing-key:";
const USERS: &str = "login-bridge:{authority}:service-users";
const USER_NAMES: &str = "login-bridge:{authority}:service-user-names";
const USER: &str = "login-bridge:{authority}:service-user:";
const USER_KEYS: &str = "login-bridge:{authority}:service-user-keys:";
const SERVICE_KEY: &str = "login-bridge:{authority}:service-key:";
const USED: &str = "login-bridge:{authority}:used:";
const LOCAL_USERS: &str = "login-bridge:{authority}:local-users";

/// Replaces a local account's record only if it exists (1), else 0.
const UPDATE_LOCAL: &str = r"
if redis.call('hexists', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
return 1
";

/// Adds a current signing key unless its kid exists or a key of its algorithm is current
/// already (0): one step, so replicas starting together on an empty store make one key.
const CREATE_FIRST_KEY: &str = r"
if redis.call('exists', KEYS[2]) == 1 then return 0 end
for _, kid in ipairs(redis.call('smembers', KEYS[1])) do
  local f = redis.call('hmget', ARGV[5] .. kid, 'alg', 'retired_at')
  if f[1] == ARGV[2] and not f[2] then return 0 end
end
redis.call('hset', KEYS[2], 'kid', ARGV[1], 'alg', ARGV[2], 'sealed_private', ARGV[3],
  'created_at', ARGV[4])
redis.call('sadd', KEYS[1], ARGV[1])
return 1
";

/// Retires every current key of the new key's algorithm and adds the new one; returns how
/// many were retired, or -1 when the new kid exists.
const ROTATE: &str = r"
if redis.call('exists', KEYS[2]) == 1 then return -1 end
local retired = 0
for _, kid in ipairs(redis.call('smembers', KEYS[1])) do
  local key = ARGV[1] .. kid
  local f = redis.call('hmget', key, 'alg', 'retired_at')
  if f[1] == ARGV[3] and not f[2] then
    redis.call('hset', key, 'retired_at', ARGV[6], 'publish_until', ARGV[7])
    retired = retired + 1
  end
end
redis.call('hset', KEYS[2], 'kid', ARGV[2], 'alg', ARGV[3], 'sealed_private', ARGV[4],
  'created_at', ARGV[5])
redis.call('sadd', KEYS[1], ARGV[2])
return retired
";

/// Deletes retired keys published until `ARGV[2]` or earlier; returns how many.
const DELETE_SPENT: &str = r"
local deleted = 0
for _, kid in ipairs(redis.call('smembers', KEYS[1])) do
  local key = ARGV[1] .. kid
  local f = redis.call('hmget', key, 'retired_at', 'publish_until')
  if f[1] and f[2] and tonumber(f[2]) <= tonumber(ARGV[2]) then
    redis.call('del', key)
    redis.call('srem', KEYS[1], kid)
    deleted = deleted + 1
  end
end
return deleted
";

/// Creates a user and its first key: 1, or 0 when the name is taken, -1 when the id or key
/// id exists.
const CREATE_USER: &str = r"
if redis.call('exists', KEYS[3]) == 1 or redis.call('exists', KEYS[5]) == 1 then return -1 end
if redis.call('hsetnx', KEYS[1], ARGV[2], ARGV[1]) == 0 then return 0 end
redis.call('hset', KEYS[3], 'id', ARGV[1], 'name', ARGV[2], 'roles', ARGV[3], 'groups', ARGV[4],
  'permissions', ARGV[5], 'disabled', ARGV[6], 'created_at', ARGV[8])
if ARGV[7] ~= '' then redis.call('hset', KEYS[3], 'expires_at', ARGV[7]) end
redis.call('sadd', KEYS[2], ARGV[1])
redis.call('hset', KEYS[5], 'key_id', ARGV[9], 'user_id', ARGV[1], 'alg', ARGV[10],
  'public_pem', ARGV[11], 'created_at', ARGV[12])
redis.call('sadd', KEYS[4], ARGV[9])
return 1
";

/// Adds a key to an existing user: 1, or -1 without the user, 0 when the key id exists.
const ADD_KEY: &str = r"
if redis.call('exists', KEYS[1]) == 0 then return -1 end
if redis.call('exists', KEYS[3]) == 1 then return 0 end
redis.call('hset', KEYS[3], 'key_id', ARGV[1], 'user_id', ARGV[2], 'alg', ARGV[3],
  'public_pem', ARGV[4], 'created_at', ARGV[5])
redis.call('sadd', KEYS[2], ARGV[1])
return 1
";

/// Removes a key if it is the user's.
const REMOVE_KEY: &str = r"
if redis.call('srem', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('del', KEYS[2])
return 1
";

/// Sets `disabled` on an existing user (never recreates a missing one).
const SET_DISABLED: &str = r"
if redis.call('exists', KEYS[1]) == 0 then return 0 end
redis.call('hset', KEYS[1], 'disabled', ARGV[1])
return 1
";

/// The authoritative check and the replay record in one step: 1 when this is the first use of
/// the `jti` by an enabled, unexpired user with a key that is still its own; else 0.
/// KEYS: the user's hash, the user's key set, the record. ARGV: key id, now, lifetime (s).
const FIRST_USE: &str = r"
if redis.call('hget', KEYS[1], 'disabled') ~= '0' then return 0 end
local expires = redis.call('hget', KEYS[1], 'expires_at')
if expires and tonumber(expires) <= tonumber(ARGV[2]) then return 0 end
if redis.call('sismember', KEYS[2], ARGV[1]) == 0 then return 0 end
if redis.call('set', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then return 1 end
return 0
";

/// The keys written before the hash tag began with this.
const UNTAGGED: &str = "login-bridge:authority:";

/// Renames every `login-bridge:authority:*` key to its tagged name (`RENAMENX`: a key a
/// replica already on this version wrote is kept); returns how many moved. Nothing to do,
/// and no `SCAN` of a store full of sessions at every start, unless one of the old root keys
/// exists (every other record hangs off one of them); those are renamed last, so a start
/// that stops half-way finishes at the next. Not for a cluster: its old keys could not have
/// been written there (the multi-key scripts were refused across slots).
pub(super) async fn migrate_untagged(pool: &Pool) -> Result<u64> {
    if pool.is_clustered() {
        return Ok(0);
    }
    let roots: Vec<String> = [SIGNING_KEYS, USERS, USER_NAMES, LOCAL_USERS]
        .iter()
        .map(|k| k.replace("{authority}", "authority"))
        .collect();
    let old: i64 = pool.exists(roots.clone()).await?;
    if old == 0 {
        return Ok(0);
    }
    let mut keys: Vec<String> = pool
        .next()
        .scan_buffered(format!("{UNTAGGED}*"), Some(1000), None)
        .try_collect::<Vec<_>>()
        .await?
        .into_iter()
        .filter_map(|k| k.into_string())
        .collect();
    keys.sort_by_key(|k| roots.contains(k));
    let mut moved = 0;
    for key in keys {
        let Some(rest) = key.strip_prefix(UNTAGGED) else {
            continue;
        };
        let renamed: bool = pool
            .renamenx(key.as_str(), format!("login-bridge:{{authority}}:{rest}"))
            .await?;
        moved += u64::from(renamed);
    }
    Ok(moved)
}

#[derive(Clone)]
pub(super) struct RedisKeys {
    pool: Pool,
    /// `session.redis_wait_replicas`, for the replay records (a record a failover lost would
    /// let its assertion be used again).
    wait_replicas: u32,
}

/// A record read back as a hash: its key (for errors) and its fields.
struct Record<'a> {
    key: &'a str,
    fields: HashMap<String, String>,
}

impl Record<'_> {
    fn text(&self, name: &str) -> Result<String> {
        self.fields
            .get(name)
            .cloned()
            .ok_or_else(|| AuthorityStoreError::Corrupt(format!("{} has no {name}", self.key)))
    }

    fn int(&self, name: &str) -> Result<i64> {
        self.optional_int(name)?
            .ok_or_else(|| AuthorityStoreError::Corrupt(format!("{} has no {name}", self.key)))
    }

    fn optional_int(&self, name: &str) -> Result<Option<i64>> {
        self.fields
            .get(name)
            .map(|v| {
                v.parse().map_err(|_| {
                    AuthorityStoreError::Corrupt(format!("{} has a bad {name}", self.key))
                })
            })
            .transpose()
    }
}

fn optional(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

impl RedisKeys {
    pub(super) fn new(pool: Pool, wait_replicas: u32) -> Self {
        Self {
            pool,
            wait_replicas,
        }
    }

    /// The hash at `key`, or `None` when it does not exist.
    async fn hash<'a>(&self, key: &'a str) -> Result<Option<Record<'a>>> {
        let fields: HashMap<String, String> = self.pool.hgetall(key).await?;
        Ok((!fields.is_empty()).then_some(Record { key, fields }))
    }

    // ---- signing keys ----

    fn stored_key(record: &Record<'_>) -> Result<StoredKey> {
        let sealed = STANDARD
            .decode(record.text("sealed_private")?)
            .map_err(|_| AuthorityStoreError::Corrupt(format!("{} sealed_private", record.key)))?;
        Ok(StoredKey {
            kid: record.text("kid")?,
            alg: record.text("alg")?,
            sealed_private: sealed,
            created_at: record.int("created_at")?,
            retired_at: record.optional_int("retired_at")?,
            publish_until: record.optional_int("publish_until")?,
        })
    }

    pub(super) async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        let kids: Vec<String> = self.pool.smembers(SIGNING_KEYS).await?;
        let mut keys = Vec::with_capacity(kids.len());
        for kid in kids {
            let name = format!("{SIGNING_KEY}{kid}");
            if let Some(record) = self.hash(&name).await? {
                keys.push(Self::stored_key(&record)?);
            }
        }
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        Ok(keys)
    }

    pub(super) async fn create_first_key(&self, key: &StoredKey) -> Result<bool> {
        let added: i64 = self
            .pool
            .eval(
                CREATE_FIRST_KEY,
                vec![
                    SIGNING_KEYS.to_string(),
                    format!("{SIGNING_KEY}{}", key.kid),
                ],
                vec![
                    key.kid.clone(),
                    key.alg.clone(),
                    STANDARD.encode(&key.sealed_private),
                    key.created_at.to_string(),
                    SIGNING_KEY.to_string(),
                ],
            )
            .await?;
        Ok(added == 1)
    }

    pub(super) async fn rotate(
        &self,
        new: &StoredKey,
        now: i64,
        publish_until: i64,
    ) -> Result<u64> {
        let retired: i64 = self
            .pool
            .eval(
                ROTATE,
                vec![
                    SIGNING_KEYS.to_string(),
                    format!("{SIGNING_KEY}{}", new.kid),
                ],
                vec![
                    SIGNING_KEY.to_string(),
                    new.kid.clone(),
                    new.alg.clone(),
                    STANDARD.encode(&new.sealed_private),
                    new.created_at.to_string(),
                    now.to_string(),
                    publish_until.to_string(),
                ],
            )
            .await?;
        u64::try_from(retired).map_err(|_| {
            AuthorityStoreError::Refused(format!("signing key {} exists already", new.kid))
        })
    }

    pub(super) async fn delete_spent_keys(&self, now: i64) -> Result<u64> {
        let deleted: i64 = self
            .pool
            .eval(
                DELETE_SPENT,
                vec![SIGNING_KEYS.to_string()],
                vec![SIGNING_KEY.to_string(), now.to_string()],
            )
            .await?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }

    // ---- service users ----

    fn user(record: &Record<'_>) -> Result<ServiceUser> {
        Ok(ServiceUser {
            id: record.text("id")?,
            name: record.text("name")?,
            roles: list(&record.text("roles")?),
            groups: list(&record.text("groups")?),
            permissions: list(&record.text("permissions")?),
            disabled: record.text("disabled")? != "0",
            expires_at: record.optional_int("expires_at")?,
            created_at: record.int("created_at")?,
        })
    }

    fn service_key(record: &Record<'_>) -> Result<ServiceKey> {
        Ok(ServiceKey {
            key_id: record.text("key_id")?,
            user_id: record.text("user_id")?,
            alg: record.text("alg")?,
            public_pem: record.text("public_pem")?,
            created_at: record.int("created_at")?,
        })
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<ServiceUser>> {
        let name = format!("{USER}{id}");
        self.hash(&name).await?.as_ref().map(Self::user).transpose()
    }

    pub(super) async fn create_service_user(
        &self,
        user: &ServiceUser,
        key: &ServiceKey,
    ) -> Result<()> {
        if key.user_id != user.id {
            return Err(AuthorityStoreError::Refused(
                "the first key belongs to another user".into(),
            ));
        }
        let created: i64 = self
            .pool
            .eval(
                CREATE_USER,
                vec![
                    USER_NAMES.to_string(),
                    USERS.to_string(),
                    format!("{USER}{}", user.id),
                    format!("{USER_KEYS}{}", user.id),
                    format!("{SERVICE_KEY}{}", key.key_id),
                ],
                vec![
                    user.id.clone(),
                    user.name.clone(),
                    text(&user.roles),
                    text(&user.groups),
                    text(&user.permissions),
                    if user.disabled { "1" } else { "0" }.to_string(),
                    optional(user.expires_at),
                    user.created_at.to_string(),
                    key.key_id.clone(),
                    key.alg.clone(),
                    key.public_pem.clone(),
                    key.created_at.to_string(),
                ],
            )
            .await?;
        match created {
            1 => Ok(()),
            0 => Err(AuthorityStoreError::Refused(format!(
                "a service user named {:?} exists already",
                user.name
            ))),
            _ => Err(AuthorityStoreError::Refused(format!(
                "service user {} or key {} exists already",
                user.id, key.key_id
            ))),
        }
    }

    pub(super) async fn add_service_key(&self, key: &ServiceKey) -> Result<()> {
        let added: i64 = self
            .pool
            .eval(
                ADD_KEY,
                vec![
                    format!("{USER}{}", key.user_id),
                    format!("{USER_KEYS}{}", key.user_id),
                    format!("{SERVICE_KEY}{}", key.key_id),
                ],
                vec![
                    key.key_id.clone(),
                    key.user_id.clone(),
                    key.alg.clone(),
                    key.public_pem.clone(),
                    key.created_at.to_string(),
                ],
            )
            .await?;
        match added {
            1 => Ok(()),
            0 => Err(AuthorityStoreError::Refused(format!(
                "key {} exists already",
                key.key_id
            ))),
            _ => Err(AuthorityStoreError::Refused(format!(
                "no service user {}",
                key.user_id
            ))),
        }
    }

    pub(super) async fn remove_service_key(&self, user_id: &str, key_id: &str) -> Result<bool> {
        let removed: i64 = self
            .pool
            .eval(
                REMOVE_KEY,
                vec![
                    format!("{USER_KEYS}{user_id}"),
                    format!("{SERVICE_KEY}{key_id}"),
                ],
                vec![key_id.to_string()],
            )
            .await?;
        Ok(removed == 1)
    }

    pub(super) async fn service_user(&self, id_or_name: &str) -> Result<Option<ServiceUser>> {
        if let Some(user) = self.user_by_id(id_or_name).await? {
            return Ok(Some(user));
        }
        let id: Option<String> = self.pool.hget(USER_NAMES, id_or_name).await?;
        match id {
            Some(id) => self.user_by_id(&id).await,
            None => Ok(None),
        }
    }

    pub(super) async fn service_users(&self) -> Result<Vec<ServiceUser>> {
        let ids: Vec<String> = self.pool.smembers(USERS).await?;
        let mut users = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(user) = self.user_by_id(&id).await? {
                users.push(user);
            }
        }
        users.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(users)
    }

    pub(super) async fn set_disabled(&self, user_id: &str, disabled: bool) -> Result<bool> {
        let set: i64 = self
            .pool
            .eval(
                SET_DISABLED,
                vec![format!("{USER}{user_id}")],
                vec![if disabled { "1" } else { "0" }.to_string()],
            )
            .await?;
        Ok(set == 1)
    }

    pub(super) async fn service_keys(&self, user_id: &str) -> Result<Vec<ServiceKey>> {
        let ids: Vec<String> = self.pool.smembers(format!("{USER_KEYS}{user_id}")).await?;
        let mut keys = Vec::with_capacity(ids.len());
        for id in ids {
            let name = format!("{SERVICE_KEY}{id}");
            if let Some(record) = self.hash(&name).await? {
                keys.push(Self::service_key(&record)?);
            }
        }
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        Ok(keys)
    }

    pub(super) async fn read_key_with_user(
        &self,
        key_id: &str,
    ) -> Result<Option<(ServiceKey, ServiceUser)>> {
        let name = format!("{SERVICE_KEY}{key_id}");
        let Some(record) = self.hash(&name).await? else {
            return Ok(None);
        };
        let key = Self::service_key(&record)?;
        Ok(self.user_by_id(&key.user_id).await?.map(|user| (key, user)))
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
        // Kept one second past `expires_at`, as the SQL engines keep a record until then.
        let lifetime = expires_at.saturating_sub(now).saturating_add(1).max(1);
        let record = format!("{USED}{issuer}:{jti}");
        let client = self.pool.next();
        let first: i64 = client
            .eval(
                FIRST_USE,
                vec![
                    format!("{USER}{issuer}"),
                    format!("{USER_KEYS}{issuer}"),
                    record.clone(),
                ],
                vec![key_id.to_string(), now.to_string(), lifetime.to_string()],
            )
            .await?;
        crate::redis_wait::confirm_replicated(client, &record, self.wait_replicas)
            .await
            .map_err(|e| fred::error::Error::new(fred::error::ErrorKind::Timeout, e))?;
        Ok(first == 1)
    }

    /// Nothing to do: each record expires by itself.
    pub(super) async fn purge_used(&self, _now: i64) -> Result<u64> {
        Ok(0)
    }
    // ---- local accounts ----

    pub(super) async fn local_record(&self, name: &str) -> Result<Option<String>> {
        Ok(self.pool.hget(LOCAL_USERS, name).await?)
    }

    pub(super) async fn insert_local_record(&self, name: &str, record: &str) -> Result<bool> {
        Ok(self.pool.hsetnx(LOCAL_USERS, name, record).await?)
    }

    pub(super) async fn update_local_record(&self, name: &str, record: &str) -> Result<bool> {
        let updated: i64 = self
            .pool
            .eval(
                UPDATE_LOCAL,
                vec![LOCAL_USERS.to_string()],
                vec![name.to_string(), record.to_string()],
            )
            .await?;
        Ok(updated == 1)
    }

    pub(super) async fn local_records(&self) -> Result<Vec<(String, String)>> {
        let all: HashMap<String, String> = self.pool.hgetall(LOCAL_USERS).await?;
        Ok(all.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    //! The scripts against a real `redis-server` of the test's own (installed by
    //! `scripts/install-deps.sh`), on a free loopback port.

    use super::*;

    async fn redis() -> (RedisKeys, crate::test_redis::Server) {
        let (pool, server) = crate::test_redis::start().await;
        (RedisKeys::new(pool, 0), server)
    }

    fn user(id: &str, name: &str, disabled: bool, expires_at: Option<i64>) -> ServiceUser {
        ServiceUser {
            id: id.into(),
            name: name.into(),
            roles: vec!["r".into()],
            groups: Vec::new(),
            permissions: Vec::new(),
            disabled,
            expires_at,
            created_at: 1,
        }
    }

    fn key(key_id: &str, user_id: &str, created_at: i64) -> ServiceKey {
        ServiceKey {
            key_id: key_id.into(),
            user_id: user_id.into(),
            alg: "ES256".into(),
            public_pem: "pem".into(),
            created_at,
        }
    }

    /// The answer of a store call that must succeed.
    async fn ok<T>(call: impl Future<Output = Result<T>>) -> T {
        call.await.unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn keys_written_before_the_hash_tag_are_moved_under_it_once() {
        let (pool, _server) = crate::test_redis::start().await;
        // What the previous version wrote: a user with a key, under the untagged names.
        let _: () = pool
            .hset(
                "login-bridge:authority:service-user:svc-1",
                [("id", "svc-1"), ("name", "one"), ("roles", "[]")],
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let _: () = pool
            .sadd("login-bridge:authority:service-users", "svc-1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok(migrate_untagged(&pool)).await, 2);
        let users: Vec<String> = pool
            .smembers("login-bridge:{authority}:service-users")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(users, ["svc-1"]);
        let name: Option<String> = pool
            .hget("login-bridge:{authority}:service-user:svc-1", "name")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(name.as_deref(), Some("one"));
        // Nothing left to move the next time.
        assert_eq!(ok(migrate_untagged(&pool)).await, 0);
    }

    #[tokio::test]
    async fn the_replay_script_records_only_first_uses_of_enabled_users_own_keys() {
        let (store, _server) = redis().await;
        for (u, k) in [
            (user("svc-1", "one", false, None), key("k1", "svc-1", 1)),
            (user("svc-2", "two", false, None), key("k2", "svc-2", 1)),
            (
                user("svc-off", "off", true, None),
                key("k-off", "svc-off", 1),
            ),
            (
                user("svc-old", "old", false, Some(100)),
                key("k-old", "svc-old", 1),
            ),
        ] {
            ok(store.create_service_user(&u, &k)).await;
        }
        // Twenty concurrent uses of each of ten jtis: exactly one of each is first.
        let uses = (0..200).map(|i| {
            let store = store.clone();
            async move {
                let jti = format!("j{}", i % 10);
                (i % 10, store.first_use("svc-1", "k1", &jti, 900, 500).await)
            }
        });
        let mut firsts = [0; 10];
        for (jti, first) in futures::future::join_all(uses).await {
            if ok(async { first }).await {
                firsts[jti] += 1;
            }
        }
        assert_eq!(firsts, [1; 10]);
        assert!(ok(store.first_use("svc-2", "k2", "j0", 900, 500)).await);
        // Disabled, expired, another user's key, an unknown key, an unknown user.
        for (issuer, key_id) in [
            ("svc-off", "k-off"),
            ("svc-old", "k-old"),
            ("svc-1", "k2"),
            ("svc-1", "gone"),
            ("svc-none", "k1"),
        ] {
            assert!(
                !ok(store.first_use(issuer, key_id, "fresh", 900, 500)).await,
                "{issuer} {key_id}"
            );
        }
        // Enabled again, or the key removed: the script sees it at once.
        assert!(ok(store.set_disabled("svc-off", false)).await);
        assert!(ok(store.first_use("svc-off", "k-off", "j", 900, 500)).await);
        assert!(ok(store.remove_service_key("svc-2", "k2")).await);
        assert!(!ok(store.first_use("svc-2", "k2", "j", 900, 500)).await);
        assert!(!ok(store.set_disabled("svc-none", true)).await);
    }

    #[tokio::test]
    async fn listings_are_ordered_like_the_sql_engines_and_writes_are_checked() {
        let (store, _server) = redis().await;
        ok(store.create_service_user(&user("svc-b", "b", false, None), &key("kz", "svc-b", 5)))
            .await;
        ok(store.create_service_user(&user("svc-a", "a", false, None), &key("ka", "svc-a", 1)))
            .await;
        ok(store.add_service_key(&key("ky", "svc-b", 5))).await;
        ok(store.add_service_key(&key("kx", "svc-b", 9))).await;
        let names: Vec<String> = ok(store.service_users())
            .await
            .into_iter()
            .map(|u| u.name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        let keys: Vec<String> = ok(store.service_keys("svc-b"))
            .await
            .into_iter()
            .map(|k| k.key_id)
            .collect();
        assert_eq!(keys, ["ky", "kz", "kx"]);
        // By id or by name; a taken name, a key of nobody, a duplicate key are refused.
        assert_eq!(
            ok(store.service_user("b")).await.map(|u| u.id).as_deref(),
            Some("svc-b")
        );
        assert!(ok(store.service_user("svc-a")).await.is_some());
        let taken = store
            .create_service_user(&user("svc-c", "a", false, None), &key("kc", "svc-c", 1))
            .await;
        assert!(matches!(taken, Err(AuthorityStoreError::Refused(_))));
        assert!(ok(store.service_user("svc-c")).await.is_none());
        assert!(
            store
                .add_service_key(&key("kn", "svc-none", 1))
                .await
                .is_err()
        );
        assert!(store.add_service_key(&key("ka", "svc-b", 1)).await.is_err());
        let (k, u) = ok(store.read_key_with_user("ky"))
            .await
            .unwrap_or_else(|| panic!());
        assert_eq!((k.user_id.as_str(), u.name.as_str()), ("svc-b", "b"));
    }

    #[tokio::test]
    async fn a_rotation_retires_the_current_key_and_spent_keys_are_deleted() {
        let (store, _server) = redis().await;
        let stored = |kid: &str, alg: &str, created_at| StoredKey {
            kid: kid.into(),
            alg: alg.into(),
            sealed_private: vec![0, 255, 7],
            created_at,
            retired_at: None,
            publish_until: None,
        };
        assert!(ok(store.create_first_key(&stored("es-1", "ES256", 10))).await);
        assert!(ok(store.create_first_key(&stored("rs-1", "RS256", 10))).await);
        // A second current ES256 key, or the same kid again, is not created.
        assert!(!ok(store.create_first_key(&stored("es-0", "ES256", 9))).await);
        assert!(!ok(store.create_first_key(&stored("es-1", "ES256", 10))).await);
        assert_eq!(
            ok(store.rotate(&stored("es-2", "ES256", 20), 20, 50)).await,
            1
        );
        let keys = ok(store.signing_keys()).await;
        let view: Vec<(&str, Option<i64>, Option<i64>)> = keys
            .iter()
            .map(|k| (k.kid.as_str(), k.retired_at, k.publish_until))
            .collect();
        assert_eq!(
            view,
            [
                ("es-1", Some(20), Some(50)),
                ("rs-1", None, None),
                ("es-2", None, None)
            ]
        );
        assert_eq!(keys[0].sealed_private, [0, 255, 7]);
        assert_eq!(ok(store.delete_spent_keys(49)).await, 0);
        assert_eq!(ok(store.delete_spent_keys(50)).await, 1);
        let kids: Vec<String> = ok(store.signing_keys())
            .await
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, ["rs-1", "es-2"]);
    }
}
