//! DPoP proofs already used, by the key's thumbprint and the proof's `jti`, kept until the
//! proof could no longer be accepted anyway (`iat` + max age + leeway). In the configured
//! store, so a proof replayed to another replica (or to the bridge after a restart) is refused;
//! bounded in memory.
//!
//! The engines that group records by second (Redis, SQLite) group them by the proof's `iat`,
//! which the client signed and a replay carries unchanged, not by the moment the record may go:
//! that moment depends on the window of the bridge that checks (`dpop_proof_max_age_secs`,
//! `oidc.leeway_secs`), so a replay to a replica with another window, or to the bridge
//! restarted with another one, looked in another second's group and got through.
//!
//! A record is the SHA-256 of `jkt`, a zero byte and `jti`: 32 bytes whatever the client put
//! in `jti`, and nothing a reader of the store could replay. One record per API call with a
//! bound token, so each engine writes it in the cheapest way that is still atomic:
//!
//! - Redis: one set per second of `iat` (`login-bridge:dpop:seen:<iat>`), which Redis deletes
//!   by itself once the proofs of that second are too old for every bridge that wrote to it
//!   (`EXPIREAT`, the latest asked for), so its memory stays flat. The
//!   records waiting at one moment go through [`crate::session::group_commit`] as one script
//!   call per set (`FIRST_USES`: which of them the set held, then all of them added),
//!   then one `WAIT` per set when `session.redis_wait_replicas` asks for it; on a cluster each
//!   set goes to its own slot's primary. A command per record (`SET <key> 1 NX EX …`) cost
//!   redis-server 9-13 µs of CPU per API call on the bench's two cores, against 2-5 µs so
//!   (20-29 records a script call), and 186 bytes of its memory a record, against 77; a
//!   pipeline of those commands still 7-8 µs. bench/dpop.sh: 0.88 of the bare handler's rate
//!   with a command per record (6 rounds), 0.92 with the sets (30 rounds), the bridge's own CPU
//!   per request from 8 µs above the handler's to 1.8 µs below.
//! - PostgreSQL: `INSERT … ON CONFLICT DO NOTHING` into `dpop_proofs` (one statement; the
//!   primary key lets exactly one of concurrent uses on any replica insert it); a task deletes
//!   expired rows every [`PURGE_EVERY`].
//! - SQLite (one bridge per file): the check against the live records held in the bridge's
//!   memory (`Held`), and each new record appended to the `dpop_proof_seen` table through
//!   [`crate::session::group_commit`] (one row per batch of waiting records) before the proof
//!   is accepted; read back at start, so a restart (or a crash) forgets nothing. An index keyed
//!   by the record instead (one b-tree insert per record, at a random place) cost a 4 KB page
//!   written per API call and the SQLite threads 10-15 µs of CPU each: bench/dpop.sh, 0.72-0.88
//!   of the bare handler's rate with it. Memory: about 40 bytes a live record (calls a second
//!   × the proof window), held under [`HELD_MAX`].
//! - In memory ([`ProofReplay::default`]): for unit tests of the checks that use it; bounded.
//!
//! With a shared engine the bridge keeps nothing per record: its memory stays flat however
//! long it runs, and every replica sees every record.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use fred::{
    clients::Pool,
    types::{Value, scripts::Script},
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
/// Redis sets of records: this and their proofs' `iat` (Unix seconds).
const REDIS_PREFIX: &str = "login-bridge:dpop:seen:";
/// Adds the records (`ARGV[2]`…) to the set `KEYS[1]`, which expires at `ARGV[1]` at the
/// earliest (a replica with a longer window may have asked for later: the later stays);
/// answers, for each, 1 when the set held it already (a replay), 0 when it is new. One script
/// runs at a time, so of two replicas' uses of a record exactly one gets 0. A few commands per
/// batch, not one per record (`SMISMEMBER`: Redis 6.2 or later, or Valkey).
const FIRST_USES: &str = r#"
local held = redis.call('SMISMEMBER', KEYS[1], unpack(ARGV, 2))
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
local at = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
local now = redis.call('TIME')
if left < 0 or tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + left < at * 1000 then
  redis.call('EXPIREAT', KEYS[1], at)
end
return held
"#;
/// Batches of Redis records at most in flight at once: the next starts beside the last only
/// when that one is held up (`group_commit`'s stall), so a `WAIT` for a stalled replica or a
/// hung cluster primary does not hold up the records of healthy primaries behind it.
const REDIS_IN_FLIGHT: usize = 32;
/// Records the in-memory engine holds at most (expired ones go first).
const MEMORY_MAX: usize = 100_000;
/// Live records the SQLite engine holds at most: about 150 MB, the 90 s window of 44 000 bound
/// API calls a second. Past it, new proofs answer 503 until records expire (a flood,
/// not a browser).
pub const HELD_MAX: usize = 4_000_000;
/// A record in SQLite's `dpop_proof_seen` rows: the first 16 bytes of its key, then its
/// proof's `iat` (little-endian). The rows of `dpop_proof_log`, the version before, held
/// `until` in its place.
const LOGGED_LEN: usize = 24;

/// The replay records of one bridge.
#[derive(Clone)]
pub struct ProofReplay {
    engine: Engine,
}

#[derive(Clone)]
enum Engine {
    Memory(Arc<Mutex<HashMap<[u8; 32], i64>>>),
    /// The live records, and the writer of `dpop_proof_seen`.
    Sqlite(Arc<Mutex<Held>>, GroupCommit<Logged>),
    Postgres(PgPool),
    /// The writer of the sets, one script call per set and batch.
    Redis(GroupCommit<Logged>),
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

/// One record as the SQLite and Redis writers take it.
#[derive(Clone, Copy)]
struct Logged {
    /// The first 16 bytes of the record's key: the SHA-256 is uniform, so 128 bits tell the
    /// live records apart (two of a million share them with a chance of about 10^-27).
    key: u128,
    /// The proof's `iat`: the second whose group holds the record.
    iat: i64,
    /// When the record may go.
    until: i64,
}

/// The first 16 bytes of a record's key, as the SQLite and Redis engines keep it.
fn first_16(key: &[u8; 32]) -> u128 {
    let mut first = [0; 16];
    first.copy_from_slice(&key[..16]);
    u128::from_le_bytes(first)
}

impl Logged {
    fn new(key: &[u8; 32], iat: i64, until: i64) -> Self {
        Self {
            key: first_16(key),
            iat,
            until,
        }
    }

    /// The key and `iat` (`until` is the row's).
    fn encode(&self, into: &mut Vec<u8>) {
        into.extend_from_slice(&self.key.to_le_bytes());
        into.extend_from_slice(&self.iat.to_le_bytes());
    }

    /// The records of one row, as pairs of the key's first 16 bytes and the second after it;
    /// a row cut short (never written so) ends early.
    fn decode(row: &[u8]) -> impl Iterator<Item = (u128, i64)> + '_ {
        row.chunks_exact(LOGGED_LEN).map(|r| {
            let (key, second) = r.split_at(16);
            let mut k = [0; 16];
            k.copy_from_slice(key);
            let mut t = [0; 8];
            t.copy_from_slice(second);
            (u128::from_le_bytes(k), i64::from_le_bytes(t))
        })
    }
}

/// The live records of the SQLite engine, in buckets by their proofs' `iat`: a replay carries
/// the same signed `iat`, so it meets its record in one bucket, whatever window the bridge had
/// when it wrote the record. A bucket goes whole once its `until` has passed (one bridge gives
/// every record the same window, so the buckets expire in order), so expiry costs nothing per
/// record, and the memory follows the live records (calls a second × the window) however long
/// the bridge runs.
struct Held {
    buckets: BTreeMap<i64, Bucket>,
    len: usize,
    max: usize,
    /// `login_bridge_dpop_replay_records_held`, set to `len` as it changes.
    gauge: ::metrics::Gauge,
}

/// The records of one second of `iat`, and when the last of them may go.
#[derive(Default)]
struct Bucket {
    until: i64,
    keys: HashSet<u128>,
}

impl Held {
    fn new(max: usize) -> Self {
        Self {
            buckets: BTreeMap::new(),
            len: 0,
            max,
            gauge: crate::metrics::dpop_replay_records_held(),
        }
    }

    /// The live records held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }

    /// Drops the buckets whose `until` has passed, from the oldest `iat` on.
    fn expire(&mut self, now: i64) {
        while let Some(bucket) = self.buckets.first_entry() {
            if bucket.get().until >= now {
                break;
            }
            self.len -= bucket.remove().keys.len();
            self.gauge.set(self.len as f64);
        }
    }

    /// Holds `record` (read back from the log: no limit); false when it was held already.
    fn insert(&mut self, record: Logged) -> bool {
        let bucket = self.buckets.entry(record.iat).or_default();
        bucket.until = bucket.until.max(record.until);
        let new = bucket.keys.insert(record.key);
        if new {
            self.len += 1;
            self.gauge.set(self.len as f64);
        }
        new
    }

    /// Holds `record` unless it is held already (a replay: false); refused past its limit.
    fn first_use(&mut self, record: Logged, now: i64) -> Result<bool, ReplayError> {
        self.expire(now);
        if self
            .buckets
            .get(&record.iat)
            .is_some_and(|b| b.keys.contains(&record.key))
        {
            return Ok(false);
        }
        if self.len >= self.max {
            return Err(ReplayError("too many proofs in flight".into()));
        }
        Ok(self.insert(record))
    }
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
    /// The log in the embedded SQLite file (created when missing; the tables of earlier
    /// versions are moved into it); `pool` is its one writer. Reads the live records back,
    /// then starts the log's group-commit writer and the purge. `lives_secs`: how long past its
    /// proof's `iat` a record lives now (for records of earlier versions, which kept only
    /// that moment).
    pub async fn sqlite(pool: SqlitePool, lives_secs: i64) -> Result<Self, sqlx::Error> {
        Self::sqlite_holding(pool, HELD_MAX, lives_secs).await
    }

    async fn sqlite_holding(
        pool: SqlitePool,
        max: usize,
        lives_secs: i64,
    ) -> Result<Self, sqlx::Error> {
        for ddl in [
            // One row per batch of records, appended: the rows of a second share a page or
            // two, where a table keyed by record took one page per record. `until` is the
            // batch's latest, for the purge.
            "CREATE TABLE IF NOT EXISTS dpop_proof_seen (
                until INTEGER NOT NULL,
                records BLOB NOT NULL
            )",
            "CREATE INDEX IF NOT EXISTS dpop_proof_seen_until ON dpop_proof_seen (until)",
        ] {
            sqlx::query(ddl).execute(&pool).await?;
        }
        let held = Arc::new(Mutex::new(read_back(&pool, now(), max, lives_secs).await?));
        spawn_purge("SQLite", {
            let pool = pool.clone();
            let held = Arc::downgrade(&held);
            move |now| {
                let pool = pool.clone();
                // Also when no proof comes to drop them: idle, the memory goes back.
                if let Some(held) = held.upgrade() {
                    let mut h = match held.lock() {
                        Ok(h) => h,
                        Err(p) => p.into_inner(),
                    };
                    h.expire(now);
                }
                async move {
                    sqlx::query("DELETE FROM dpop_proof_seen WHERE until < ?")
                        .bind(now)
                        .execute(&pool)
                        .await
                        .map(|d| d.rows_affected())
                }
            }
        });
        let writer = GroupCommit::start(
            pool,
            |r: &Logged| r.key,
            |pool, batch| Box::pin(append_sqlite(pool, batch)),
        );
        Ok(Self {
            engine: Engine::Sqlite(held, writer),
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

    /// Sets under `login-bridge:dpop:seen:` in Redis, each expiring by itself; with
    /// `wait_replicas` (`session.redis_wait_replicas`), a record counts once that many
    /// replicas have it (a record a failover lost would let its proof be replayed).
    pub fn redis(pool: Pool, wait_replicas: u32) -> Self {
        let sets = RedisSets {
            pool,
            wait_replicas,
            script: Script::from_lua(FIRST_USES),
        };
        Self {
            engine: Engine::Redis(GroupCommit::start_concurrent(
                sets,
                REDIS_IN_FLIGHT,
                |r: &Logged| (r.iat, r.key),
                |sets, batch| Box::pin(sets.first_uses(batch)),
            )),
        }
    }

    /// Records `(jkt, jti)` of a proof signed at `iat` until `until`; false when it was
    /// recorded before (a replay).
    pub async fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        iat: i64,
        until: i64,
        now: i64,
    ) -> Result<bool, ReplayError> {
        let key = record_key(jkt, jti);
        match &self.engine {
            Engine::Memory(records) => memory_first_use(records, key, until, now),
            Engine::Sqlite(held, writer) => {
                let record = Logged::new(&key, iat, until);
                let first = match held.lock() {
                    Ok(mut h) => h.first_use(record, now),
                    Err(p) => p.into_inner().first_use(record, now),
                }?;
                if !first {
                    return Ok(false);
                }
                // Accepted only once it is in the file: a restart, even after a crash, still
                // refuses it. When the write fails the record stays held (the proof was used;
                // its request answers 503).
                writer
                    .first_use(record)
                    .await
                    .map_err(|e| ReplayError(e.0))?;
                Ok(true)
            }
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
            Engine::Redis(writer) => writer
                .first_use(Logged::new(&key, iat, until))
                .await
                .map_err(|e| ReplayError(e.0)),
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

/// Where the Redis engine's batches go.
struct RedisSets {
    pool: Pool,
    wait_replicas: u32,
    script: Script,
}

impl RedisSets {
    /// The records of `batch` new to their sets: one script call (and `WAIT`) per `iat`, the
    /// sets' calls at once. A record is its first 16 bytes in its `iat`'s set, as in SQLite's
    /// buckets (a replay has its proof's `iat`).
    async fn first_uses(&self, batch: &[Logged]) -> Result<Inserted<(i64, u128)>, String> {
        let mut sets: BTreeMap<i64, (i64, Vec<u128>)> = BTreeMap::new();
        for r in batch {
            let (until, keys) = sets.entry(r.iat).or_insert((i64::MIN, Vec::new()));
            *until = (*until).max(r.until);
            keys.push(r.key);
        }
        let calls = sets.into_iter().map(|(iat, (until, keys))| async move {
            let name = format!("{REDIS_PREFIX}{iat}");
            // Kept one second past `until`, as the SQL engines keep a row until then.
            let mut args = Vec::with_capacity(keys.len() + 1);
            args.push(Value::from(until.saturating_add(1)));
            args.extend(
                keys.iter()
                    .map(|k| Value::Bytes(k.to_le_bytes().to_vec().into())),
            );
            let client = self.pool.next();
            let held: Vec<i64> = self
                .script
                .evalsha_with_reload(client, name.as_str(), args)
                .await
                .map_err(|e| e.to_string())?;
            if held.len() != keys.len() {
                return Err(format!(
                    "the script answered {} of {} records",
                    held.len(),
                    keys.len()
                ));
            }
            crate::redis_wait::confirm_replicated(client, &name, self.wait_replicas).await?;
            Ok::<_, String>(keys.into_iter().map(move |k| (iat, k)).zip(held))
        });
        // A record new to its set counts once, however many copies the batch had: the first
        // copy is its first use, the others replays.
        let mut inserted = Inserted::new();
        for (key, held) in futures::future::try_join_all(calls)
            .await?
            .into_iter()
            .flatten()
        {
            if held == 0 {
                inserted.insert(key, 1);
            }
        }
        Ok(inserted)
    }
}

/// Appends a batch as one row; every record in it is new (the held records are checked first).
async fn append_sqlite(pool: &SqlitePool, batch: &[Logged]) -> Result<Inserted<u128>, sqlx::Error> {
    append_row(pool, batch).await?;
    Ok(batch.iter().map(|r| (r.key, 1)).collect())
}

/// One `dpop_proof_seen` row of `batch`, its `until` the batch's latest.
async fn append_row<'e>(
    db: impl sqlx::SqliteExecutor<'e>,
    batch: &[Logged],
) -> Result<(), sqlx::Error> {
    let mut records = Vec::with_capacity(batch.len() * LOGGED_LEN);
    let mut until = i64::MIN;
    for r in batch {
        r.encode(&mut records);
        until = until.max(r.until);
    }
    sqlx::query("INSERT INTO dpop_proof_seen (until, records) VALUES (?, ?)")
        .bind(until)
        .bind(records)
        .execute(db)
        .await?;
    Ok(())
}

/// The live records of the log, and those of earlier versions' tables, which are then moved
/// into the log in one transaction and dropped: `dpop_proof_log` (rows as here, each record
/// with its `until` in place of its `iat`) and `dpop_proofs` (a row per record). Those kept only
/// `until`, so their `iat` is taken to be `until - lives_secs`: right unless the window
/// changed with the upgrade.
async fn read_back(
    pool: &SqlitePool,
    now: i64,
    max: usize,
    lives_secs: i64,
) -> Result<Held, sqlx::Error> {
    let mut held = Held::new(max);
    let rows = sqlx::query("SELECT until, records FROM dpop_proof_seen WHERE until >= ?")
        .bind(now)
        .fetch_all(pool)
        .await?;
    for row in rows {
        // The row's records got their `until` from one bridge's window, as the row's latest.
        let until: i64 = row.try_get(0)?;
        let records: Vec<u8> = row.try_get(1)?;
        let newest = Logged::decode(&records).map(|(_, iat)| iat).max();
        let lives = newest.map_or(0, |newest| until.saturating_sub(newest));
        for (key, iat) in Logged::decode(&records) {
            let until = iat.saturating_add(lives);
            if until >= now {
                held.insert(Logged { key, iat, until });
            }
        }
    }
    // The check and the move in one transaction: of two openers of one file at once, the
    // second fails instead of moving the rows twice.
    let mut tx = pool.begin().await?;
    let earlier: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name IN ('dpop_proof_log', 'dpop_proofs')",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut moved = Vec::new();
    let of_until = |key: u128, until: i64| Logged {
        key,
        iat: until.saturating_sub(lives_secs),
        until,
    };
    if earlier.iter().any(|t| t == "dpop_proof_log") {
        let rows = sqlx::query("SELECT records FROM dpop_proof_log WHERE until >= ?")
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        for row in rows {
            let records: Vec<u8> = row.try_get(0)?;
            moved.extend(
                Logged::decode(&records)
                    .filter(|&(_, until)| until >= now)
                    .map(|(key, until)| of_until(key, until)),
            );
        }
        sqlx::query("DROP TABLE dpop_proof_log")
            .execute(&mut *tx)
            .await?;
    }
    if earlier.iter().any(|t| t == "dpop_proofs") {
        let rows = sqlx::query("SELECT until, key FROM dpop_proofs WHERE until >= ?")
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
        for row in rows {
            let until: i64 = row.try_get(0)?;
            let key: Vec<u8> = row.try_get(1)?;
            if let Ok(key) = <[u8; 32]>::try_from(key.as_slice()) {
                moved.push(of_until(first_16(&key), until));
            }
        }
        sqlx::query("DROP TABLE dpop_proofs")
            .execute(&mut *tx)
            .await?;
    }
    if !moved.is_empty() {
        for r in &moved {
            held.insert(*r);
        }
        append_row(&mut *tx, &moved).await?;
    }
    tx.commit().await?;
    Ok(held)
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

    /// How long past its proof's `iat` a record lives in these tests (`until - LIVES` is the
    /// proof's `iat`).
    const LIVES: i64 = 90;

    /// Twenty concurrent uses of each of ten proofs: exactly one of each is first; the same
    /// `jti` of another key is not a replay; a later use of a recorded one is.
    async fn one_first_use_per_proof(replay: &ProofReplay) {
        // Real times: the purge runs in the background meanwhile.
        let t = now();
        let uses = (0..200).map(|i| {
            let replay = replay.clone();
            async move {
                let jti = format!("j{}", i % 10);
                (
                    i % 10,
                    replay.first_use("key-a", &jti, t, t + LIVES, t).await,
                )
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
            replay.first_use("key-b", "j0", t, t + LIVES, t).await,
            Ok(true)
        ));
        assert!(matches!(
            replay.first_use("key-a", "j0", t, t + LIVES, t + 50).await,
            Ok(false)
        ));
    }

    #[tokio::test]
    async fn in_memory_each_proof_is_first_once() {
        one_first_use_per_proof(&ProofReplay::default()).await;
    }

    /// The store's writer pool on a SQLite file in `dir`, as the bridge opens it.
    async fn sqlite_file(dir: &std::path::Path) -> SqlitePool {
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.join("store.db"))
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The engine on that file, holding at most `max` records.
    async fn sqlite_replay(dir: &std::path::Path, max: usize) -> (SqlitePool, ProofReplay) {
        let pool = sqlite_file(dir).await;
        let replay = ProofReplay::sqlite_holding(pool.clone(), max, LIVES)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        (pool, replay)
    }

    fn held(replay: &ProofReplay) -> usize {
        match &replay.engine {
            Engine::Sqlite(held, _) => held.lock().map(|h| h.len()).unwrap_or(usize::MAX),
            _ => usize::MAX,
        }
    }

    async fn logged(pool: &SqlitePool) -> Option<i64> {
        sqlx::query("SELECT COUNT(*) FROM dpop_proof_seen")
            .fetch_one(pool)
            .await
            .map(|r| r.get::<i64, _>(0))
            .ok()
    }

    /// Checked in memory, every record in the file before its proof is accepted: a bridge
    /// started afresh on the file (nothing in memory) still refuses each proof, and a second
    /// use of one of them is refused by the first check.
    #[tokio::test]
    async fn in_sqlite_each_proof_is_first_once_and_a_restart_still_refuses_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (pool, replay) = sqlite_replay(dir.path(), HELD_MAX).await;
        one_first_use_per_proof(&replay).await;
        assert_eq!(held(&replay), 11);
        assert!(
            logged(&pool)
                .await
                .is_some_and(|rows| (1..=11).contains(&rows))
        );
        pool.close().await;

        let (_pool, restarted) = sqlite_replay(dir.path(), HELD_MAX).await;
        assert_eq!(held(&restarted), 11, "every record read back");
        let t = now();
        for (key, jti) in [("key-a", "j0"), ("key-a", "j9"), ("key-b", "j0")] {
            assert!(
                matches!(
                    restarted.first_use(key, jti, t, t + LIVES, t).await,
                    Ok(false)
                ),
                "{key} {jti} replayed after the restart"
            );
        }
        assert!(matches!(
            restarted.first_use("key-b", "j1", t, t + LIVES, t).await,
            Ok(true)
        ));
    }

    /// A record is found by its proof's `iat`, not by when it may go: a bridge restarted with
    /// a shorter or a longer window (`dpop_proof_max_age_secs`, leeway) still refuses a proof
    /// it accepted before, and the records read back keep the window they were written with.
    #[tokio::test]
    async fn in_sqlite_a_restart_with_another_window_still_refuses_a_proof_used_before_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (pool, replay) = sqlite_replay(dir.path(), HELD_MAX).await;
        let t = now();
        assert!(matches!(
            replay.first_use("k", "j", t - 10, t - 10 + LIVES, t).await,
            Ok(true)
        ));
        pool.close().await;
        for lives in [30, LIVES, 300] {
            let pool = sqlite_file(dir.path()).await;
            let restarted = ProofReplay::sqlite_holding(pool.clone(), HELD_MAX, lives)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(
                matches!(
                    restarted
                        .first_use("k", "j", t - 10, t - 10 + lives, t)
                        .await,
                    Ok(false)
                ),
                "replayed to a bridge whose records live {lives} s"
            );
            assert_eq!(held(&restarted), 1, "{lives}");
            pool.close().await;
        }
    }

    /// Expired records leave the memory whole seconds at a time, and the log's rows with them;
    /// a record past its time is not read back.
    #[tokio::test]
    async fn in_sqlite_expired_records_leave_memory_and_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (pool, replay) = sqlite_replay(dir.path(), HELD_MAX).await;
        let t = now();
        for jti in ["a", "b", "c"] {
            assert!(matches!(
                replay.first_use("k", jti, t + 1 - LIVES, t + 1, t).await,
                Ok(true)
            ));
        }
        assert!(matches!(
            replay.first_use("k", "d", t + 60 - LIVES, t + 60, t).await,
            Ok(true)
        ));
        assert_eq!(held(&replay), 4);
        // Two seconds on, the first three have expired: the next use drops their bucket.
        assert!(matches!(
            replay
                .first_use("k", "e", t + 60 - LIVES, t + 60, t + 2)
                .await,
            Ok(true)
        ));
        assert_eq!(held(&replay), 2);
        let held_back = read_back(&pool, t + 2, HELD_MAX, LIVES)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(held_back.len(), 2, "expired records are not read back");
        let purged = sqlx::query("DELETE FROM dpop_proof_seen WHERE until < ?")
            .bind(t + 61)
            .execute(&pool)
            .await
            .map(|d| d.rows_affected());
        assert!(purged.is_ok_and(|n| n >= 2));
        assert_eq!(logged(&pool).await, Some(0));
    }

    /// Past its limit the engine refuses new proofs (503) instead of forgetting live ones, and
    /// takes them again once records expire.
    #[tokio::test]
    async fn in_sqlite_memory_is_bounded_without_forgetting() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (_pool, replay) = sqlite_replay(dir.path(), 3).await;
        let t = now();
        for jti in ["a", "b", "c"] {
            assert!(matches!(
                replay.first_use("k", jti, t + 5 - LIVES, t + 5, t).await,
                Ok(true)
            ));
        }
        assert!(
            replay
                .first_use("k", "d", t + 5 - LIVES, t + 5, t)
                .await
                .is_err()
        );
        assert!(matches!(
            replay.first_use("k", "a", t + 5 - LIVES, t + 5, t).await,
            Ok(false)
        ));
        assert!(matches!(
            replay
                .first_use("k", "d", t + 20 - LIVES, t + 20, t + 6)
                .await,
            Ok(true)
        ));
    }

    /// A bridge upgraded from an earlier version moves the live records of its tables into the
    /// log (each record's `iat` taken from its `until` and the window) and still refuses their
    /// proofs: `dpop_proof_log` (rows of records with their `until`) and `dpop_proofs` (a row
    /// per record).
    #[tokio::test]
    async fn in_sqlite_an_earlier_versions_records_are_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pool = sqlite_file(dir.path()).await;
        let t = now();
        for ddl in [
            "CREATE TABLE dpop_proofs (until INTEGER NOT NULL, key BLOB NOT NULL,
             PRIMARY KEY (until, key)) WITHOUT ROWID",
            "CREATE TABLE dpop_proof_log (until INTEGER NOT NULL, records BLOB NOT NULL)",
        ] {
            sqlx::query(ddl)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        for (jti, until) in [("live", t + 60), ("gone", t - 5)] {
            sqlx::query("INSERT INTO dpop_proofs (until, key) VALUES (?, ?)")
                .bind(until)
                .bind(&record_key("k", jti)[..])
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut records = record_key("k", &format!("{jti}-logged"))[..16].to_vec();
            records.extend_from_slice(&until.to_le_bytes());
            sqlx::query("INSERT INTO dpop_proof_log (until, records) VALUES (?, ?)")
                .bind(until)
                .bind(records)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let replay = ProofReplay::sqlite(pool.clone(), LIVES)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for jti in ["live", "live-logged"] {
            assert!(
                matches!(
                    replay.first_use("k", jti, t + 60 - LIVES, t + 60, t).await,
                    Ok(false)
                ),
                "{jti}"
            );
        }
        assert_eq!(held(&replay), 2);
        for table in ["dpop_proofs", "dpop_proof_log"] {
            let left: Option<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = ?")
                    .bind(table)
                    .fetch_optional(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(left, None, "{table} is dropped");
        }
        let again = read_back(&pool, t, HELD_MAX, LIVES)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.len(), 2, "the live records are in the log");
    }

    #[test]
    fn a_record_is_32_bytes_and_names_key_and_jti_apart() {
        assert_ne!(record_key("ab", "c"), record_key("a", "bc"));
        assert_eq!(record_key("a", "b"), record_key("a", "b"));
    }

    use fred::interfaces::{KeysInterface, SetsInterface};

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
            replay
                .first_use("key-c", "j", now + 60 - LIVES, now + 60, now)
                .await,
            Ok(true)
        ));
        let name = format!("{REDIS_PREFIX}{}", now + 60 - LIVES);
        let ttl: i64 = pool.ttl(&name).await.unwrap_or_else(|e| panic!("{e}"));
        assert!((59..=61).contains(&ttl), "expires with the proof: {ttl}");
    }

    /// Replicas with different windows (a configuration rolled out one replica at a time):
    /// a proof one accepted is refused by the other, and its set lives as long as the longer
    /// window asks.
    #[tokio::test]
    async fn in_redis_replicas_with_different_windows_refuse_each_others_proofs() {
        let (pool, _server) = redis().await;
        let (long, short) = (
            ProofReplay::redis(pool.clone(), 0),
            ProofReplay::redis(pool.clone(), 0),
        );
        let t = now();
        // For each proof, the replica with the shorter window writes last.
        for (replica, jti, until, first) in [
            (&long, "a", t + LIVES, true),
            (&short, "a", t + 30, false),
            (&long, "b", t + LIVES, true),
            (&short, "b", t + 30, false),
        ] {
            let used = replica.first_use("k", jti, t, until, t).await;
            assert!(matches!(used, Ok(f) if f == first), "{jti} until {until}");
        }
        let ttl: i64 = pool
            .ttl(format!("{REDIS_PREFIX}{t}"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(ttl >= LIVES - 1, "the longer window's expiry stays: {ttl}");
    }

    /// Records of several seconds' sets waiting at once (one batch, a script call per set):
    /// each proof is first once, in its own set.
    #[tokio::test]
    async fn in_redis_a_batch_over_several_sets_answers_each_record() {
        let (pool, _server) = redis().await;
        let replay = ProofReplay::redis(pool.clone(), 0);
        let t = now();
        let uses = (0..60).map(|i| {
            let replay = replay.clone();
            // Three proofs, each used four times, in each of five seconds.
            let (jti, until) = (format!("j{}", i % 3), t + 60 + i % 5);
            async move {
                (
                    until,
                    replay.first_use("k", &jti, until - LIVES, until, t).await,
                )
            }
        });
        let mut firsts = BTreeMap::<i64, usize>::new();
        for (until, first) in futures::future::join_all(uses).await {
            match first {
                Ok(true) => *firsts.entry(until).or_default() += 1,
                Ok(false) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(firsts.values().collect::<Vec<_>>(), [&3; 5]);
        for until in t + 60..t + 65 {
            let held: i64 = pool
                .scard(format!("{REDIS_PREFIX}{}", until - LIVES))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(held, 3, "the set of {until}");
        }
    }
}
