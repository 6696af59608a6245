//! The trust engine: given a bearer token, which trusted issuer made it, is it valid, who is
//! the caller, and may they do this.
//!
//! The issuer is picked by the token's (unverified) `iss`; from then on only that issuer's
//! keys, algorithms and rules apply. Tokens already verified are remembered (keyed by the
//! whole token, never past their `exp`, void once their issuer's key set changes), so a busy
//! SPA does not pay a signature check on every call.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use shared::session::User;

use super::{
    fingerprint,
    issuer::{IssuerKeys, IssuerSettings, RoutePolicy, TrustedIssuer},
    mapping::{lookup, map_user},
    validate::{Check, Expectations, TokenError, TokenKind, ValidatedToken, validate_steps_for},
};

/// The caller, as proven by a validated bearer token.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user: User,
    /// `iss` of the token.
    pub issuer: String,
    /// Name of the trusted issuer that matched (`oidc` for the login provider).
    pub issuer_name: String,
    pub expires_at: i64,
    pub token_fingerprint: String,
    /// Token name (`azp` by default): which client or token this is.
    pub token_name: Option<String>,
    /// Access level from the issuer's `group_levels` (highest of the caller's groups).
    pub access_level: Option<u32>,
}

/// Why a token did not get through.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Rejection {
    /// Not a valid token of a trusted issuer: 401 `invalid_token`.
    #[error("{0}")]
    Invalid(#[from] TokenError),
    /// A valid token whose holder the policy does not admit: 403 `insufficient_scope`.
    #[error("{0}")]
    Policy(String),
}

struct CacheEntry {
    principal: Arc<Principal>,
    generation: u64,
}

/// Bounded cache of verified tokens.
struct VerifiedCache {
    entries: Mutex<HashMap<[u8; 32], CacheEntry>>,
    capacity: usize,
}

impl VerifiedCache {
    fn get(
        &self,
        key: &[u8; 32],
        now: i64,
        generation_of: impl Fn(&str) -> Option<u64>,
    ) -> Option<Arc<Principal>> {
        let map = match self.entries.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let entry = map.get(key)?;
        let fresh = now < entry.principal.expires_at
            && generation_of(&entry.principal.issuer) == Some(entry.generation);
        fresh.then(|| entry.principal.clone())
    }

    fn insert(&self, key: [u8; 32], principal: Arc<Principal>, generation: u64, now: i64) {
        if principal.expires_at <= now {
            return;
        }
        let mut map = match self.entries.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if map.len() >= self.capacity {
            map.retain(|_, e| e.principal.expires_at > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(
            key,
            CacheEntry {
                principal,
                generation,
            },
        );
    }

    fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }
}

pub struct TrustEngine {
    issuers: HashMap<String, Arc<TrustedIssuer>>,
    route_policies: Vec<RoutePolicy>,
    cache: VerifiedCache,
}

/// Verified tokens remembered at most.
pub const CACHE_CAPACITY: usize = 10_000;

impl TrustEngine {
    /// Compiles the configured issuers; lists every problem.
    pub fn new(
        issuers: &[IssuerSettings],
        route_policies: &[RoutePolicy],
        http: &reqwest::Client,
    ) -> Result<Self, Vec<String>> {
        let mut compiled = HashMap::new();
        let mut problems = Vec::new();
        for s in issuers {
            match TrustedIssuer::from_settings(s, http) {
                Ok(i) => {
                    if compiled.insert(i.issuer.clone(), Arc::new(i)).is_some() {
                        problems.push(format!("issuers: {} is configured twice", s.issuer));
                    }
                }
                Err(e) => problems.push(e),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            issuers: compiled,
            route_policies: route_policies.to_vec(),
            cache: VerifiedCache {
                entries: Mutex::new(HashMap::new()),
                capacity: CACHE_CAPACITY,
            },
        })
    }

    pub fn issuers(&self) -> impl Iterator<Item = &Arc<TrustedIssuer>> {
        self.issuers.values()
    }

    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Fetches every JWKS URL once now, then refreshes each on its schedule, keeping the last
    /// good keys when a fetch fails.
    pub fn spawn_jwks_refresh(self: &Arc<Self>) {
        for issuer in self.issuers.values() {
            if let IssuerKeys::Remote(jwks) = &issuer.keys {
                let jwks = jwks.clone();
                let every = issuer.jwks_refresh;
                let name = issuer.name.clone();
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = jwks.refresh().await {
                            tracing::warn!(issuer = %name, error = %e, "JWKS refresh failed; keeping the last good keys");
                        }
                        tokio::time::sleep(every.max(Duration::from_secs(10))).await;
                    }
                });
            }
        }
    }

    /// The issuer for a token's `iss`: the login provider's (when discovered) or a configured one.
    fn issuer_for(
        &self,
        iss: &str,
        provider: Option<&Arc<TrustedIssuer>>,
    ) -> Option<Arc<TrustedIssuer>> {
        if let Some(p) = provider
            && p.issuer == iss
        {
            return Some(p.clone());
        }
        self.issuers.get(iss).cloned()
    }

    /// Verifies a bearer token and applies the issuer's policy.
    pub async fn verify(
        &self,
        token: &str,
        provider: Option<&Arc<TrustedIssuer>>,
    ) -> Result<Arc<Principal>, Rejection> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(p) = self.cache.get(&key, now, |iss| {
            self.issuer_for(iss, provider).map(|i| i.key_generation())
        }) {
            return Ok(p);
        }
        let iss = peek_issuer(token)?;
        let issuer = self
            .issuer_for(&iss, provider)
            .ok_or(TokenError::UntrustedIssuer)?;
        // The generation before verification: if keys change meanwhile, the entry is void.
        let generation = issuer.key_generation();
        let validated = check_with(&issuer, token, None).await?;
        let principal = Arc::new(principal_from(&issuer, &validated, token));
        admit(&issuer, &principal, &validated.claims).map_err(Rejection::Policy)?;
        self.cache.insert(key, principal.clone(), generation, now);
        Ok(principal)
    }

    /// Route policies for `path` that apply to this principal.
    pub fn authorize(&self, principal: &Principal, path: &str) -> Result<(), String> {
        for rule in &self.route_policies {
            let applies = path.starts_with(&rule.prefix)
                && rule
                    .issuer
                    .as_ref()
                    .is_none_or(|i| i == &principal.issuer_name || i == &principal.issuer);
            if !applies {
                continue;
            }
            require_membership(
                principal,
                &rule.any_role,
                &rule.any_group,
                rule.min_group_level,
            )
            .map_err(|reason| format!("{} {reason}", rule.prefix))?;
        }
        Ok(())
    }

    /// What `login-bridge token verify` prints: the matched issuer, every check, the principal.
    pub async fn explain(&self, token: &str, provider: Option<&Arc<TrustedIssuer>>) -> Explanation {
        let mut checks = Vec::new();
        let iss = match peek_issuer(token) {
            Ok(iss) => iss,
            Err(e) => {
                return Explanation {
                    issuer: None,
                    checks: vec![Check {
                        name: "iss",
                        outcome: Err(e),
                    }],
                    principal: None,
                    policy: None,
                };
            }
        };
        let Some(issuer) = self.issuer_for(&iss, provider) else {
            checks.push(Check {
                name: "issuer",
                outcome: Err(TokenError::UntrustedIssuer),
            });
            return Explanation {
                issuer: Some(format!("{iss} (not configured)")),
                checks,
                principal: None,
                policy: None,
            };
        };
        let result = check_with(&issuer, token, Some(&mut checks)).await;
        let (principal, policy) = match result {
            Ok(v) => {
                let p = principal_from(&issuer, &v, token);
                let policy = admit(&issuer, &p, &v.claims);
                (Some(p), Some(policy))
            }
            Err(_) => (None, None),
        };
        Explanation {
            issuer: Some(format!(
                "{} ({}; keys: {})",
                issuer.name,
                issuer.issuer,
                issuer.key_source()
            )),
            checks,
            principal,
            policy,
        }
    }
}

/// The result of [`TrustEngine::explain`].
pub struct Explanation {
    pub issuer: Option<String>,
    pub checks: Vec<Check>,
    pub principal: Option<Principal>,
    /// `Some(Ok)` when the issuer's policy admits the principal.
    pub policy: Option<Result<(), String>>,
}

impl Explanation {
    pub fn accepted(&self) -> bool {
        self.principal.is_some()
            && matches!(self.policy, Some(Ok(())))
            && self.checks.iter().all(|c| c.outcome.is_ok())
    }
}

async fn check_with(
    issuer: &TrustedIssuer,
    token: &str,
    report: Option<&mut Vec<Check>>,
) -> Result<ValidatedToken, TokenError> {
    let expect = Expectations {
        issuer: &issuer.issuer,
        algorithms: &issuer.algorithms,
        leeway_secs: issuer.leeway_secs,
        kind: TokenKind::Access {
            audiences: &issuer.audiences,
        },
        required_typ: issuer.typ.as_deref(),
        required_claims: &issuer.required_claims,
    };
    validate_steps_for(token, issuer.keys(), &expect, report).await
}

/// Reads `iss` from the unverified payload, only to pick the issuer whose rules then apply.
fn peek_issuer(token: &str) -> Result<String, TokenError> {
    if token.len() > super::validate::MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let payload = token
        .split('.')
        .nth(1)
        .ok_or(TokenError::Malformed("a JWT has three dot-separated parts"))?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("payload is not base64url"))?;
    let claims: Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("payload is not a JSON object"))?;
    match claims.get("iss") {
        Some(Value::String(iss)) => Ok(iss.clone()),
        Some(_) => Err(TokenError::InvalidClaim("iss")),
        None => Err(TokenError::MissingClaim("iss")),
    }
}

fn principal_from(issuer: &TrustedIssuer, validated: &ValidatedToken, token: &str) -> Principal {
    let user = map_user(&issuer.claims, &[&validated.claims]);
    let access_level = user
        .groups
        .iter()
        .filter_map(|g| issuer.policy.group_levels.get(g).copied())
        .max();
    let token_name = lookup(&validated.claims, &issuer.claims.token_name)
        .and_then(Value::as_str)
        .map(str::to_owned);
    Principal {
        user,
        issuer: validated.issuer.clone(),
        issuer_name: issuer.name.clone(),
        expires_at: validated.expires_at,
        token_fingerprint: fingerprint(token),
        token_name,
        access_level,
    }
}

/// Roles, groups and access level, as both issuer and route policies state them.
fn require_membership(
    p: &Principal,
    any_role: &[String],
    any_group: &[String],
    min_group_level: Option<u32>,
) -> Result<(), String> {
    if !any_role.is_empty() && !p.user.roles.iter().any(|r| any_role.contains(r)) {
        return Err(format!("requires one of the roles {any_role:?}"));
    }
    if !any_group.is_empty() && !p.user.groups.iter().any(|g| any_group.contains(g)) {
        return Err(format!("requires one of the groups {any_group:?}"));
    }
    if let Some(min) = min_group_level
        && p.access_level.unwrap_or(0) < min
    {
        return Err(format!("requires access level {min}"));
    }
    Ok(())
}

/// The issuer's own policy.
fn admit(issuer: &TrustedIssuer, p: &Principal, claims: &Map<String, Value>) -> Result<(), String> {
    let policy = &issuer.policy;
    if p.user.id.is_empty() {
        return Err(format!("no user id in claim {:?}", issuer.claims.user_id));
    }
    if !policy.exactly_one_role_of.is_empty() {
        // Count what the token carries, not the mapped list: a role claim given as a single
        // string counts as one.
        let roles = match lookup(claims, &issuer.claims.roles) {
            Some(Value::Array(a)) => a.len(),
            Some(Value::String(_)) => 1,
            _ => 0,
        };
        if roles != 1 || p.user.roles.len() != 1 {
            return Err(format!(
                "exactly one role is required, the token has {roles}"
            ));
        }
        if !policy.exactly_one_role_of.contains(&p.user.roles[0]) {
            return Err(format!(
                "role {:?} is not one of the configured roles",
                p.user.roles[0]
            ));
        }
    }
    require_membership(
        p,
        &policy.any_role,
        &policy.any_group,
        policy.min_group_level,
    )?;
    if let Some(re) = &issuer.username_regex {
        let name = p.user.username.as_deref().unwrap_or("");
        if !re.is_match(name) {
            return Err("username does not match the issuer's username_pattern".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(expires_at: i64) -> Principal {
        Principal {
            user: User::default(),
            issuer: "https://iss".into(),
            issuer_name: "iss".into(),
            expires_at,
            token_fingerprint: String::new(),
            token_name: None,
            access_level: None,
        }
    }

    fn cache(capacity: usize) -> VerifiedCache {
        VerifiedCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    #[test]
    fn a_cached_token_is_never_served_past_its_exp() {
        let c = cache(10);
        c.insert([1; 32], Arc::new(principal(100)), 0, 50);
        assert!(c.get(&[1; 32], 99, |_| Some(0)).is_some());
        assert!(c.get(&[1; 32], 100, |_| Some(0)).is_none());
    }

    #[test]
    fn a_cached_token_is_void_once_its_issuers_keys_change() {
        let c = cache(10);
        c.insert([1; 32], Arc::new(principal(100)), 3, 50);
        assert!(c.get(&[1; 32], 60, |_| Some(3)).is_some());
        assert!(c.get(&[1; 32], 60, |_| Some(4)).is_none());
        assert!(
            c.get(&[1; 32], 60, |_| None).is_none(),
            "issuer no longer trusted"
        );
    }

    #[test]
    fn the_cache_stays_within_its_capacity() {
        let c = cache(3);
        for i in 0..10u8 {
            c.insert([i; 32], Arc::new(principal(100)), 0, 50);
        }
        assert!(c.len() <= 3);
    }
}
