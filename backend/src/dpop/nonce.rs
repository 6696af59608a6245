//! Server nonces for DPoP proofs (RFC 9449 section 8), when `session.dpop_nonce = true`: a
//! proof must carry a nonce the bridge handed out recently, so a proof signed ahead of time
//! (by script that ran in the page earlier) stops working within minutes.
//!
//! Stateless, so every replica accepts every other's nonces without a store round trip per
//! call: a nonce is a time step (of [`STEP_SECS`]) and an HMAC-SHA-256 of it, truncated to 128
//! bits. The current and the previous step are accepted (a nonce lives between one and two
//! steps), and the next one within the leeway (replicas whose clocks differ a little).
//!
//! The HMAC key is a random secret kept in the session store (`shared_secrets` in SQL,
//! `login-bridge:dpop:nonce-secret` in Redis), made by whichever replica starts first and read
//! by the others. Not derived from the authority's key-encryption key: nonces then work
//! whether or not `[authority]` is configured, and the KEK keeps one use. Whoever can read the
//! store can forge nonces; they could as well forge sessions there, and a nonce only proves
//! freshness, never who signed the proof.

use aws_lc_rs::{constant_time::verify_slices_are_equal, hmac};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use fred::{
    clients::Pool,
    interfaces::KeysInterface,
    types::{Expiration, SetOptions},
};
use sqlx::{PgPool, SqlitePool};

/// A nonce's time step.
pub const STEP_SECS: i64 = 60;
/// Bytes of the HMAC kept in a nonce.
const MAC_LEN: usize = 16;
/// The secret's name in the store.
const SECRET_NAME: &str = "dpop-nonce";
const REDIS_SECRET: &str = "login-bridge:dpop:nonce-secret";

/// The nonces of one bridge (and of every replica sharing its store).
pub struct ServerNonces {
    key: hmac::Key,
    leeway_secs: i64,
}

#[derive(Debug, thiserror::Error)]
#[error("DPoP nonce secret: {0}")]
pub struct NonceSecretError(String);

impl ServerNonces {
    pub fn new(secret: &[u8], leeway_secs: i64) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            leeway_secs: leeway_secs.max(0),
        }
    }

    fn mac(&self, step: i64) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(b"login-bridge DPoP nonce\0");
        ctx.update(&step.to_be_bytes());
        ctx.sign()
    }

    fn nonce_of(&self, step: i64) -> String {
        let mut raw = [0u8; 8 + MAC_LEN];
        raw[..8].copy_from_slice(&step.to_be_bytes());
        raw[8..].copy_from_slice(&self.mac(step).as_ref()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The nonce to hand out at `now` (base64url: fits RFC 9449's `NQCHAR`s and a header).
    pub fn current(&self, now: i64) -> String {
        self.nonce_of(now.div_euclid(STEP_SECS))
    }

    /// Whether `nonce` is one of ours, of the current or the previous step (or the next, within
    /// the leeway).
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let Ok(raw) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        if raw.len() != 8 + MAC_LEN {
            return false;
        }
        let mut step = [0u8; 8];
        step.copy_from_slice(&raw[..8]);
        let step = i64::from_be_bytes(step);
        let current = now.div_euclid(STEP_SECS);
        let ahead = (now + self.leeway_secs).div_euclid(STEP_SECS);
        let fresh = step == current || step == current - 1 || step == ahead;
        fresh && verify_slices_are_equal(&raw[8..], &self.mac(step).as_ref()[..MAC_LEN]).is_ok()
    }

    /// With the secret from the embedded SQLite file (made there when missing).
    pub async fn sqlite(pool: &SqlitePool, leeway_secs: i64) -> Result<Self, NonceSecretError> {
        let sql = |e: sqlx::Error| NonceSecretError(e.to_string());
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS shared_secrets (
                name TEXT PRIMARY KEY,
                secret BLOB NOT NULL
            )",
        )
        .execute(pool)
        .await
        .map_err(sql)?;
        sqlx::query(
            "INSERT INTO shared_secrets (name, secret) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(SECRET_NAME)
        .bind(&random_secret()?[..])
        .execute(pool)
        .await
        .map_err(sql)?;
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT secret FROM shared_secrets WHERE name = ?")
                .bind(SECRET_NAME)
                .fetch_one(pool)
                .await
                .map_err(sql)?;
        Ok(Self::new(&secret, leeway_secs))
    }

    /// With the secret from PostgreSQL (`shared_secrets`, made by the first replica).
    pub async fn postgres(pool: &PgPool, leeway_secs: i64) -> Result<Self, NonceSecretError> {
        let sql = |e: sqlx::Error| NonceSecretError(e.to_string());
        sqlx::query(
            "INSERT INTO shared_secrets (name, secret) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(SECRET_NAME)
        .bind(&random_secret()?[..])
        .execute(pool)
        .await
        .map_err(sql)?;
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT secret FROM shared_secrets WHERE name = $1")
                .bind(SECRET_NAME)
                .fetch_one(pool)
                .await
                .map_err(sql)?;
        Ok(Self::new(&secret, leeway_secs))
    }

    /// With the secret from Redis (`SET NX` by the first replica, never expiring).
    pub async fn redis(pool: &Pool, leeway_secs: i64) -> Result<Self, NonceSecretError> {
        let redis = |e: fred::error::Error| NonceSecretError(e.to_string());
        let mine = URL_SAFE_NO_PAD.encode(random_secret()?);
        let _: Option<String> = pool
            .set(
                REDIS_SECRET,
                mine.as_str(),
                None::<Expiration>,
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(redis)?;
        let stored: Option<String> = pool.get(REDIS_SECRET).await.map_err(redis)?;
        let secret = stored
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .filter(|s| s.len() >= 32)
            .ok_or_else(|| NonceSecretError(format!("{REDIS_SECRET} is not a usable secret")))?;
        Ok(Self::new(&secret, leeway_secs))
    }
}

fn random_secret() -> Result<[u8; 32], NonceSecretError> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret).map_err(|_| NonceSecretError("no random bytes".into()))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_accepted_in_its_step_and_the_next_and_by_every_holder_of_the_secret() {
        let a = ServerNonces::new(b"the shared secret, 32 bytes long", 5);
        let b = ServerNonces::new(b"the shared secret, 32 bytes long", 5);
        let t = 1_800_000_000 - 1_800_000_000 % STEP_SECS;
        let n = a.current(t);
        assert_eq!(n, b.current(t + STEP_SECS - 1), "one nonce per step");
        assert!(b.accepts(&n, t));
        assert!(b.accepts(&n, t + 2 * STEP_SECS - 1), "the next step still");
        assert!(!b.accepts(&n, t + 2 * STEP_SECS), "two steps later no more");
        assert!(b.accepts(&n, t - 3), "a replica a little behind");
        assert!(!b.accepts(&n, t - 10), "issued for later than the leeway");
        let other = ServerNonces::new(b"another secret of thirty-two byt", 5);
        assert!(!other.accepts(&n, t));
        for bad in ["", "x", &n[..n.len() - 1], &format!("{n}A")] {
            assert!(!a.accepts(bad, t), "{bad:?}");
        }
        // A forged step with another step's MAC.
        let mut forged = URL_SAFE_NO_PAD
            .decode(a.current(t - STEP_SECS))
            .unwrap_or_default();
        forged[..8].copy_from_slice(&(t / STEP_SECS).to_be_bytes());
        assert!(!a.accepts(&URL_SAFE_NO_PAD.encode(forged), t));
    }

    #[tokio::test]
    async fn replicas_on_one_sqlite_file_share_the_secret() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let a = ServerNonces::sqlite(&pool, 5).await;
        let b = ServerNonces::sqlite(&pool, 5).await;
        let (Ok(a), Ok(b)) = (a, b) else {
            panic!("no secret")
        };
        assert!(b.accepts(&a.current(1_800_000_000), 1_800_000_000));
    }
}
