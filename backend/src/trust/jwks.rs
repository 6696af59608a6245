//! A cache of one issuer's JSON Web Key Set, fetched from its `jwks_uri`.
//!
//! Keys are looked up by `kid`. An unknown `kid` triggers at most one refetch per cooldown, and
//! concurrent callers share that one fetch (single-flight), so a flood of tokens with random
//! kids cannot turn the bridge into a traffic amplifier against the provider. When the
//! endpoint fails, the last good keys stay in use. Keys of a type the bridge cannot use are
//! skipped, not fatal.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey,
    jwk::{Jwk, KeyAlgorithm, PublicKeyUse},
};
use sha2::Digest;
use tokio::sync::Mutex;

use super::signature::{self, ParsedKeys};

/// Why a key set could not be fetched or read. The last good keys stay in use meanwhile.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    #[error("JWKS fetch from {url} failed: {reason}")]
    Fetch { url: String, reason: String },
    #[error("JWKS fetch from {url} answered {status}")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("not a JWKS: {0}")]
    Parse(String),
    #[error("JWKS at {url} holds no usable key")]
    Empty { url: String },
}

/// One usable verification key.
pub struct VerificationKey {
    pub kid: Option<String>,
    /// `alg` pinned by the JWK itself, if it names one.
    pub alg: Option<KeyAlgorithm>,
    pub key: DecodingKey,
    /// `alg` as a signature algorithm: `Some(None)` when the JWK pins one that is not.
    pinned: Option<Option<Algorithm>>,
    /// The key parsed once per algorithm it checks (see [`super::signature`]).
    parsed: ParsedKeys,
}

impl VerificationKey {
    pub fn new(kid: Option<String>, alg: Option<KeyAlgorithm>, key: DecodingKey) -> Self {
        let pinned = alg.map(|a| format!("{a:?}").parse::<Algorithm>().ok());
        Self {
            kid,
            alg,
            key,
            pinned,
            parsed: ParsedKeys::default(),
        }
    }

    /// Whether this key may check a token signed with `alg`: a key that names its
    /// algorithm may only be used with that algorithm.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.pinned.is_none_or(|p| p == Some(alg))
    }

    /// Whether `signature_b64` is `alg`'s signature of `message` under this key.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature_b64: &str) -> bool {
        self.allows(alg) && signature::verify(&self.key, &self.parsed, alg, message, signature_b64)
    }
}

/// The keys of one fetch.
#[derive(Clone)]
pub struct KeySet {
    keys: Vec<Arc<VerificationKey>>,
    /// This set's number (see [`next_generation`]); a clone has the same keys and number.
    generation: u64,
}

impl Default for KeySet {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            generation: next_generation(),
        }
    }
}

/// Numbers of key sets, never reused in the process: every set made (a fetch that changed the
/// keys, configured keys, an issuer registered anew with its keys) gets a number of its own. A
/// verified-token cache entry remembers the number of the set that verified it, so an entry of
/// a set that has since been replaced can never look current, not even when the issuer was
/// registered anew (the bridge's own keys after a rotation, the provider after discovery).
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

fn next_generation() -> u64 {
    GENERATIONS.fetch_add(1, Ordering::Relaxed)
}

impl KeySet {
    /// Parses a JWKS document, keeping only signature keys the bridge can use.
    pub fn from_json(body: &[u8]) -> Result<Self, JwksError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            keys: Vec<serde_json::Value>,
        }
        let raw: Raw = serde_json::from_slice(body).map_err(|e| JwksError::Parse(e.to_string()))?;
        let keys = raw
            .keys
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter(|jwk| {
                !matches!(
                    jwk.common.public_key_use,
                    Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
                )
            })
            .filter_map(|jwk| {
                let key = DecodingKey::from_jwk(&jwk).ok()?;
                Some(Arc::new(VerificationKey::new(
                    jwk.common.key_id.clone(),
                    jwk.common.key_algorithm,
                    key,
                )))
            })
            .collect();
        Ok(Self {
            keys,
            generation: next_generation(),
        })
    }

    /// A set of configured keys (PEM, HMAC): usually one, without `kid`.
    pub fn from_keys(keys: Vec<VerificationKey>) -> Self {
        Self {
            keys: keys.into_iter().map(Arc::new).collect(),
            generation: next_generation(),
        }
    }

    /// This set's number, unique in the process (see [`next_generation`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Candidate keys for a token: the ones with its `kid` plus keys that have no `kid` of
    /// their own (a configured PEM or secret), or, for a token without `kid`, every key (the
    /// caller tries each). The `kid` is only ever compared, never used as a path or query.
    pub fn candidates(&self, kid: Option<&str>) -> Vec<Arc<VerificationKey>> {
        match kid {
            Some(kid) => self
                .keys
                .iter()
                .filter(|k| k.kid.is_none() || k.kid.as_deref() == Some(kid))
                .cloned()
                .collect(),
            None => self.keys.clone(),
        }
    }
}

/// Cached key set of one issuer, refreshed on unknown `kid` with a cooldown.
pub struct JwksCache {
    url: String,
    http: reqwest::Client,
    cooldown: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// When the last fetch for an unknown `kid` started (scheduled refreshes do not count, so
    /// a key rotated just after one is still picked up at once); also the single-flight lock.
    last_fetch: Mutex<Option<Instant>>,
    fetches: AtomicU64,
    /// The number of the key set in use (see [`next_generation`]); changes whenever a fetch
    /// changes the key set (caches of verified tokens key on it). The same as `keys`' own
    /// number, kept apart so every cached call reads one atomic instead of taking the lock.
    generation: AtomicU64,
    /// SHA-256 of the last JWKS document used, to tell a changed key set from the same one.
    last_body: std::sync::Mutex<[u8; 32]>,
}

impl JwksCache {
    pub fn new(url: String, http: reqwest::Client, cooldown: Duration) -> Self {
        let keys = KeySet::default();
        Self {
            url,
            http,
            cooldown,
            generation: AtomicU64::new(keys.generation()),
            keys: RwLock::new(Arc::new(keys)),
            last_fetch: Mutex::new(None),
            fetches: AtomicU64::new(0),
            last_body: std::sync::Mutex::new([0; 32]),
        }
    }

    /// Where the set is fetched from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The least time between two fetches for unknown `kid`s.
    pub fn cooldown(&self) -> Duration {
        self.cooldown
    }

    /// Number of fetches made so far (exposed for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn current(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Fetches the key set now, regardless of the cooldown (startup and scheduled refresh).
    fn fetch_error(&self, e: reqwest::Error) -> JwksError {
        JwksError::Fetch {
            url: self.url.clone(),
            reason: e.to_string(),
        }
    }

    pub async fn refresh(&self) -> Result<(), JwksError> {
        let _single_flight = self.last_fetch.lock().await;
        self.fetch_locked().await
    }

    /// Every fetch (startup, schedule, unknown `kid`) passes here, so it is counted here.
    async fn fetch_locked(&self) -> Result<(), JwksError> {
        let result = self.fetch_uncounted().await;
        crate::metrics::jwks_fetch(result.is_ok());
        result
    }

    async fn fetch_uncounted(&self) -> Result<(), JwksError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        // A connection the server closed while idle, lost before any answer: once more. The
        // pool has dropped it, and keeps no connection idle past `oidc::http::POOL_IDLE`.
        let response = match self.http.get(&self.url).send().await {
            Err(e) if crate::oidc::http::connection_lost(&e) => {
                self.http.get(&self.url).send().await
            }
            sent => sent,
        }
        .map_err(|e| self.fetch_error(e))?;
        if !response.status().is_success() {
            return Err(JwksError::Status {
                url: self.url.clone(),
                status: response.status(),
            });
        }
        let body = response.bytes().await.map_err(|e| self.fetch_error(e))?;
        let set = KeySet::from_json(&body)?;
        if set.is_empty() {
            // Keep the last good keys: an empty answer is more likely a fault than a revocation.
            return Err(JwksError::Empty {
                url: self.url.clone(),
            });
        }
        let digest: [u8; 32] = sha2::Sha256::digest(&body).into();
        {
            let mut last = match self.last_body.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if *last == digest {
                return Ok(());
            }
            *last = digest;
        }
        let generation = set.generation();
        match self.keys.write() {
            Ok(mut guard) => *guard = Arc::new(set),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(set),
        }
        self.generation.store(generation, Ordering::Relaxed);
        Ok(())
    }

    /// Keys that may have signed a token with this `kid`. Unknown `kid`: one refetch, unless
    /// one happened within the cooldown; concurrent callers wait for the same fetch.
    pub async fn candidates(&self, kid: Option<&str>) -> Vec<Arc<VerificationKey>> {
        let found = self.current().candidates(kid);
        if !found.is_empty() {
            return found;
        }
        let seen_generation = self.generation();
        let mut last = self.last_fetch.lock().await;
        // Someone else may have fetched while we waited for the lock.
        if self.generation() != seen_generation {
            return self.current().candidates(kid);
        }
        let cooling_down = last.is_some_and(|t| t.elapsed() < self.cooldown);
        if cooling_down {
            return Vec::new();
        }
        *last = Some(Instant::now());
        if let Err(e) = self.fetch_locked().await {
            tracing::warn!(error = %e, "JWKS refetch failed; keeping the last good keys");
        }
        drop(last);
        self.current().candidates(kid)
    }
}

/// Shared handle.
pub type SharedJwks = Arc<JwksCache>;

/// Key sets of several issuers by JWKS URL (each issuer's keys stay bound to that issuer).
pub type JwksByIssuer = HashMap<String, SharedJwks>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_unknown_type_are_skipped_not_fatal() {
        let doc = br#"{"keys":[
            {"kty":"OKP","crv":"X448","x":"AAAA","kid":"weird"},
            {"kty":"RSA","kid":"good","use":"sig","alg":"RS256",
             "n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
             "e":"AQAB"},
            {"kty":"RSA","kid":"enc","use":"enc",
             "n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw",
             "e":"AQAB"}
        ]}"#;
        let set = KeySet::from_json(doc).unwrap_or_default();
        assert_eq!(set.len(), 1);
        assert_eq!(set.candidates(Some("good")).len(), 1);
        assert!(set.candidates(Some("weird")).is_empty());
        assert!(set.candidates(Some("enc")).is_empty());
    }

    #[test]
    fn a_document_that_is_not_a_jwks_is_an_error() {
        assert!(KeySet::from_json(b"<html>").is_err());
    }
}
