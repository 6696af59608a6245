//! The bridge as an issuer: its signing keys, loaded from the store and kept parsed in memory,
//! one current key per algorithm in use. Rotation with overlap: a retired key keeps being
//! published (and accepted) until every token it signed has expired, then it is deleted.
//!
//! The bridge registers itself in the trust engine like any other issuer, with exactly the
//! keys its JWKS publishes, so its `/api` accepts the tokens it mints.
//!
//! The `[[token_profiles]]` are a [`ProfileSet`] a configuration reload replaces whole (with a
//! current key made first for any algorithm a new profile needs); the keys and the store stay.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    sync::{Arc, RwLock},
    time::Duration,
};

use arc_swap::ArcSwap;
use serde_json::{Value, json};

use super::{
    crypto::{CryptoError, Kek, Pkcs8, SigningAlg, SigningKey},
    profile::{AuthoritySettings, TokenProfile},
    store::{AuthorityStore, AuthorityStoreError, StoredKey},
};
use crate::{
    clock::now,
    trust::{
        engine::TrustEngine,
        issuer::{IssuerKeys, Policy, TrustedIssuer},
        jwks::KeySet,
        mapping::ClaimMapping,
    },
};

pub use crate::trust::issuer::BRIDGE_ISSUER;

#[derive(Debug, thiserror::Error)]
pub enum AuthorityError {
    #[error("authority: key-encryption key: {0}")]
    Kek(String),
    #[error(transparent)]
    Store(#[from] AuthorityStoreError),
    #[error("authority: signing key {kid}: {source}")]
    Key {
        kid: String,
        #[source]
        source: CryptoError,
    },
    #[error("authority: {0}")]
    Crypto(#[from] CryptoError),
    #[error("authority: no current {0} signing key")]
    NoKey(SigningAlg),
}

/// The keys in memory: the current key of each algorithm and everything published.
pub struct KeyRing {
    current: BTreeMap<SigningAlg, Arc<SigningKey>>,
    published: Vec<Arc<SigningKey>>,
    /// The JWKS document, serialized once per change.
    jwks: Arc<str>,
}

impl KeyRing {
    pub fn current(&self, alg: SigningAlg) -> Option<&Arc<SigningKey>> {
        self.current.get(&alg)
    }

    pub fn published(&self) -> &[Arc<SigningKey>] {
        &self.published
    }

    pub fn jwks_json(&self) -> Arc<str> {
        self.jwks.clone()
    }

    fn kids(&self) -> BTreeSet<&str> {
        self.published.iter().map(|k| k.kid.as_str()).collect()
    }
}

/// A stored key as `keys list` shows it.
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub publish_until: Option<i64>,
}

/// The issuer half of the bridge.
pub struct Authority {
    pub issuer: String,
    pub token_endpoint: String,
    pub introspection_endpoint: String,
    pub jwks_uri: String,
    pub store: AuthorityStore,
    kek: Kek,
    ring: RwLock<Arc<KeyRing>>,
    /// The `[[token_profiles]]`; replaced whole by a configuration reload.
    profiles: ArcSwap<ProfileSet>,
    pub default_alg: SigningAlg,
    pub service_token_lifetime: i64,
    /// Clock skew allowed on assertions and on the bridge's own tokens.
    pub leeway: i64,
    reload_every: Duration,
}

/// The token profiles in use, and what they ask of the keys.
pub struct ProfileSet {
    profiles: Vec<Arc<TokenProfile>>,
    /// Algorithms that always have a current key: the profiles' and the default one.
    needed: BTreeSet<SigningAlg>,
    /// How long a retired key stays published: the longest token lifetime, and the leeway.
    retire_after: i64,
}

impl ProfileSet {
    /// The profile named `name`.
    pub fn get(&self, name: &str) -> Option<Arc<TokenProfile>> {
        self.profiles.iter().find(|p| p.name == name).cloned()
    }

    /// Every profile.
    pub fn all(&self) -> &[Arc<TokenProfile>] {
        &self.profiles
    }

    fn new(
        profiles: Vec<TokenProfile>,
        default_alg: SigningAlg,
        service_token_lifetime: i64,
        leeway: i64,
    ) -> Self {
        let mut needed: BTreeSet<SigningAlg> = profiles.iter().map(|p| p.alg).collect();
        needed.insert(default_alg);
        let longest = profiles
            .iter()
            .map(|p| p.lifetime_secs)
            .chain([service_token_lifetime])
            .max()
            .unwrap_or(0);
        Self {
            profiles: profiles.into_iter().map(Arc::new).collect(),
            needed,
            retire_after: longest + leeway,
        }
    }
}

/// The key-encryption key the settings name.
pub fn load_kek(settings: &AuthoritySettings) -> Result<Kek, AuthorityError> {
    match (
        &settings.key_encryption_key_file,
        &settings.key_encryption_key_env,
    ) {
        (Some(path), None) => {
            if settings.create_key_encryption_key {
                create_kek_file(path)?;
            }
            Kek::from_file(path)
                .map_err(|e| AuthorityError::Kek(format!("authority.key_encryption_key_file: {e}")))
        }
        (None, Some(var)) => {
            let text = std::env::var(var).map_err(|_| {
                AuthorityError::Kek(format!(
                    "environment variable {var} (authority.key_encryption_key_env) is not set"
                ))
            })?;
            Kek::from_base64(&text)
                .map_err(|e| AuthorityError::Kek(format!("environment variable {var}: {e}")))
        }
        _ => Err(AuthorityError::Kek(
            "set exactly one of authority.key_encryption_key_file and \
             authority.key_encryption_key_env"
                .into(),
        )),
    }
}

/// `authority.create_key_encryption_key`: writes a new key to `path` unless a file is there.
/// Created with mode 0600 and never overwritten, so two processes starting at once keep the
/// first one's key.
fn create_kek_file(path: &Path) -> Result<(), AuthorityError> {
    if path.exists() {
        return Ok(());
    }
    let text = Kek::generate_base64()
        .map_err(|e| AuthorityError::Kek(format!("cannot make a new key: {e}")))?;
    match super::keyfile::write_private(path, format!("{text}\n").as_bytes()) {
        Ok(()) => {
            tracing::info!(path = %path.display(), "created the key-encryption key (mode 0600)");
            Ok(())
        }
        // Created by another process since the check above: use that one.
        Err(_) if path.exists() => Ok(()),
        Err(e) => Err(AuthorityError::Kek(format!(
            "authority.key_encryption_key_file: {e} (authority.create_key_encryption_key)"
        ))),
    }
}

impl Authority {
    /// Opens the authority on `store`: reads and unseals its keys, creates a current key for
    /// every algorithm in use that has none.
    pub async fn open(
        settings: &AuthoritySettings,
        public_origin: &str,
        profiles: Vec<TokenProfile>,
        store: AuthorityStore,
    ) -> Result<Self, AuthorityError> {
        let kek = load_kek(settings)?;
        let default_alg = SigningAlg::parse(&settings.algorithm).unwrap_or(SigningAlg::ES256);
        let profiles = ProfileSet::new(
            profiles,
            default_alg,
            settings.service_token_lifetime_secs as i64,
            settings.leeway_secs as i64,
        );
        let issuer = settings
            .issuer
            .clone()
            .unwrap_or_else(|| public_origin.to_string());
        let authority = Self {
            token_endpoint: format!("{public_origin}/oauth/token"),
            introspection_endpoint: format!("{public_origin}/oauth/introspect"),
            jwks_uri: format!("{public_origin}/.well-known/jwks.json"),
            issuer,
            store,
            kek,
            ring: RwLock::new(Arc::new(KeyRing {
                current: BTreeMap::new(),
                published: Vec::new(),
                jwks: Arc::from("{\"keys\":[]}"),
            })),
            profiles: ArcSwap::from_pointee(profiles),
            default_alg,
            service_token_lifetime: settings.service_token_lifetime_secs as i64,
            leeway: settings.leeway_secs as i64,
            reload_every: Duration::from_secs(settings.key_reload_secs.max(1)),
        };
        authority.reload().await?;
        let needed = authority.profiles.load().needed.clone();
        authority.create_missing_keys(&needed).await?;
        Ok(authority)
    }

    /// A current key for every algorithm of `needed` that has none, then the keys read again.
    async fn create_missing_keys(
        &self,
        needed: &BTreeSet<SigningAlg>,
    ) -> Result<(), AuthorityError> {
        for alg in self.missing_of(needed) {
            let key = self.new_key(alg)?;
            // Another replica or CLI run starting at the same moment may have created one
            // since the read above: the store keeps the first and the reload below reads it,
            // so every bridge signs with the key `keys export` prints.
            if self.store.create_first_key(&key).await? {
                tracing::info!(kid = %key.kid, %alg, "created a signing key");
            } else {
                tracing::info!(%alg, "another bridge created the current signing key first; using it");
            }
        }
        self.reload().await?;
        if let Some(alg) = self.missing_of(needed).first() {
            return Err(AuthorityError::NoKey(*alg));
        }
        Ok(())
    }

    /// Algorithms in use that have no current key in memory (none once [`Self::open`]
    /// returned; `/readyz` checks it).
    pub fn missing_keys(&self) -> Vec<SigningAlg> {
        self.missing_of(&self.profiles.load().needed)
    }

    fn missing_of(&self, needed: &BTreeSet<SigningAlg>) -> Vec<SigningAlg> {
        let ring = self.ring();
        needed
            .iter()
            .copied()
            .filter(|a| ring.current(*a).is_none())
            .collect()
    }

    /// The token profiles now.
    pub fn profiles(&self) -> Arc<ProfileSet> {
        self.profiles.load_full()
    }

    /// A reload's first step: the profile set of `profiles`, with a current key made for any
    /// algorithm they need that has none yet. Nothing is in use until
    /// [`Self::install_profiles`]; a key made here is only one more published key.
    pub async fn prepare_profiles(
        &self,
        profiles: Vec<TokenProfile>,
    ) -> Result<Arc<ProfileSet>, AuthorityError> {
        let set = ProfileSet::new(
            profiles,
            self.default_alg,
            self.service_token_lifetime,
            self.leeway,
        );
        if !self.missing_of(&set.needed).is_empty() {
            self.create_missing_keys(&set.needed).await?;
        }
        Ok(Arc::new(set))
    }

    /// Puts a profile set from [`Self::prepare_profiles`] in use.
    pub fn install_profiles(&self, set: Arc<ProfileSet>) {
        self.profiles.store(set);
    }

    /// The keys now.
    pub fn ring(&self) -> Arc<KeyRing> {
        match self.ring.read() {
            Ok(r) => r.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The profile named `name`.
    pub fn profile(&self, name: &str) -> Option<Arc<TokenProfile>> {
        self.profiles.load().get(name)
    }

    fn new_key(&self, alg: SigningAlg) -> Result<StoredKey, AuthorityError> {
        let pkcs8 = Pkcs8::generate(alg)?;
        let key = SigningKey::from_pkcs8(alg, &pkcs8)?;
        let sealed = self.kek.seal(&key.kid, &pkcs8.0)?;
        Ok(StoredKey {
            kid: key.kid,
            alg: alg.as_str().into(),
            sealed_private: sealed,
            created_at: now(),
            retired_at: None,
            publish_until: None,
        })
    }

    /// Re-reads the keys from the store: deletes spent retired keys, unseals new ones, and
    /// when the published set changed, rebuilds the JWKS. Returns whether it changed.
    pub async fn reload(&self) -> Result<bool, AuthorityError> {
        let now = now();
        let deleted = self.store.delete_spent_keys(now).await?;
        if deleted > 0 {
            tracing::info!(
                deleted,
                "retired signing keys past their last token deleted"
            );
        }
        let stored = self.store.signing_keys().await?;
        let old = self.ring();
        let stored_kids: BTreeSet<&str> = stored.iter().map(|k| k.kid.as_str()).collect();
        let currents: BTreeSet<&str> = stored
            .iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| k.kid.as_str())
            .collect();
        let old_currents: BTreeSet<&str> = old.current.values().map(|k| k.kid.as_str()).collect();
        if stored_kids == old.kids() && currents == old_currents && !old.published.is_empty() {
            return Ok(false);
        }
        let mut current = BTreeMap::new();
        let mut published = Vec::with_capacity(stored.len());
        for row in &stored {
            let Some(alg) = SigningAlg::parse(&row.alg) else {
                tracing::warn!(kid = %row.kid, alg = %row.alg, "stored signing key of unknown algorithm ignored");
                continue;
            };
            let key = match old.published.iter().find(|k| k.kid == row.kid) {
                Some(k) => k.clone(),
                None => Arc::new(self.unseal(row, alg)?),
            };
            if row.retired_at.is_none() {
                // Oldest first: a later current key of the same algorithm wins.
                current.insert(alg, key.clone());
            }
            published.push(key);
        }
        let jwks = json!({"keys": published.iter().map(|k| k.jwk.clone()).collect::<Vec<Value>>()});
        let ring = KeyRing {
            current,
            published,
            jwks: Arc::from(jwks.to_string()),
        };
        *match self.ring.write() {
            Ok(r) => r,
            Err(p) => p.into_inner(),
        } = Arc::new(ring);
        Ok(true)
    }

    fn unseal(&self, row: &StoredKey, alg: SigningAlg) -> Result<SigningKey, AuthorityError> {
        let fail = |source| AuthorityError::Key {
            kid: row.kid.clone(),
            source,
        };
        let plain = self.kek.open(&row.kid, &row.sealed_private).map_err(fail)?;
        let key = SigningKey::from_pkcs8(alg, &Pkcs8(plain)).map_err(fail)?;
        if key.kid != row.kid {
            return Err(fail(CryptoError::BadKey(alg)));
        }
        Ok(key)
    }

    /// A new current key for each algorithm in use (or only `only`); the previous ones stay
    /// published until their last token has expired. Returns the new kids.
    pub async fn rotate(&self, only: Option<SigningAlg>) -> Result<Vec<String>, AuthorityError> {
        let algs: Vec<SigningAlg> = match only {
            Some(a) => vec![a],
            None => {
                let mut all = self.profiles.load().needed.clone();
                all.extend(self.ring().current.keys().copied());
                all.into_iter().collect()
            }
        };
        let mut kids = Vec::new();
        for alg in algs {
            let key = self.new_key(alg)?;
            let now = now();
            self.store
                .rotate(&key, now, now + self.profiles.load().retire_after)
                .await?;
            kids.push(key.kid);
        }
        self.reload().await?;
        Ok(kids)
    }

    /// Every stored key, for `keys list`.
    pub async fn key_infos(&self) -> Result<Vec<KeyInfo>, AuthorityError> {
        Ok(self
            .store
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| KeyInfo {
                kid: k.kid,
                alg: k.alg,
                created_at: k.created_at,
                retired_at: k.retired_at,
                publish_until: k.publish_until,
            })
            .collect())
    }

    /// The bridge as a trusted issuer with exactly its published keys. Its tokens are checked
    /// like any issuer's; the audience is not (each profile names its own, or none).
    pub fn trusted_issuer(&self) -> TrustedIssuer {
        let ring = self.ring();
        let keys = KeySet::from_json(ring.jwks.as_bytes()).unwrap_or_default();
        TrustedIssuer {
            name: BRIDGE_ISSUER.into(),
            issuer: self.issuer.clone(),
            audiences: Vec::new(),
            algorithms: SigningAlg::ALL.iter().map(|a| a.jwt()).collect(),
            keys: IssuerKeys::Static(keys),
            leeway_secs: self.leeway as u64,
            required_claims: Vec::new(),
            typ: None,
            // What a token carries besides `sub` is the profile's template to decide (a user
            // signed in without a username gets tokens without one).
            claims: ClaimMapping {
                roles: "roles".into(),
                token_name: "client_id".into(),
                optional: ["username", "name", "email", "groups", "roles", "token_name"]
                    .map(String::from)
                    .to_vec(),
                ..ClaimMapping::default()
            },
            policy: Policy::default(),
            username_regex: None,
            jwks_refresh: self.reload_every,
            jwks_refetch_cooldown: self.reload_every,
            trusted_proxies: None,
        }
    }

    /// Re-reads the keys on schedule, and keeps the trust engine's view of the bridge in step.
    pub fn spawn_reload(self: &Arc<Self>, trust: Arc<TrustEngine>) {
        let me = self.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(me.reload_every);
            loop {
                every.tick().await;
                match me.reload().await {
                    Ok(true) => {
                        trust.register(me.trusted_issuer());
                        tracing::info!(
                            keys = me.ring().published.len(),
                            "signing keys changed; JWKS updated"
                        );
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "signing-key reload failed; keeping the keys in memory")
                    }
                }
                if let Err(e) = me.store.purge_used(now()).await {
                    tracing::warn!(error = %e, "purging expired replay records failed");
                }
            }
        });
    }
}

/// Writes a new key-encryption key to `path` (mode 0600), for the demo and first setups.
pub fn write_new_kek(path: &Path) -> Result<(), String> {
    let text = Kek::generate_base64().map_err(|e| e.to_string())?;
    super::keyfile::write_private(path, format!("{text}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(path: &Path, create: bool) -> AuthoritySettings {
        match serde_json::from_value(json!({
            "key_encryption_key_file": path,
            "create_key_encryption_key": create,
        })) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_missing_key_encryption_key_is_created_with_mode_0600_only_when_asked() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kek");
        // Not asked: a missing file stops the start and nothing is created.
        let refused = load_kek(&settings(&path, false)).unwrap_err().to_string();
        assert!(
            refused.contains("authority.key_encryption_key_file"),
            "{refused}"
        );
        assert!(!path.exists());
        // Asked: created, owner-only, and the same key on the next start.
        load_kek(&settings(&path, true)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let first = std::fs::read_to_string(&path).unwrap();
        load_kek(&settings(&path, true)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), first);
    }
}
