//! The trust engine: given a token, which trusted issuer made it, is it valid, who is the
//! caller, and may they do this.
//!
//! The issuer is picked by the token's (unverified) `iss`; from then on only that issuer's
//! keys, algorithms and rules apply. The login provider is registered here after discovery
//! like any configured issuer, so its access tokens take the same single path as every other
//! token, whether they arrive at `/api` or from the code flow. Tokens already verified are
//! remembered (see [`super::cache`]).
//!
//! Two things are checked on every call, cached or not, because they can change while a
//! token stays valid: whether its issuer accepts tokens from the request's peer (an issuer
//! limited to `trusted_proxies`), and whether its holder was stopped (a disabled or expired
//! service user, from a snapshot the authority refreshes; never a store round trip here).
//!
//! A configuration reload replaces the configured issuers and route policies in place
//! ([`TrustEngine::replace_configured`]): the engine keeps its `Arc` (the provider client and
//! the authority hold it), the login provider and the bridge itself stay registered, and an
//! issuer whose key source did not change keeps its fetched keys.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, RwLock, Weak},
    time::Duration,
};

use arc_swap::ArcSwap;

use super::{
    cache::VerifiedCache,
    claims::Claims,
    issuer::{
        BRIDGE_ISSUER, IssuerKeys, IssuerSpec, KeySpec, PROVIDER_ISSUER, RoutePolicy, TrustedIssuer,
    },
    jwks::JwksCache,
    policy::{admit, authorize},
    principal::{Principal, token_digest},
    validate::{
        Check, Expectations, TokenError, TokenKind, ValidatedToken, decode_payload,
        validate_decoded, validate_steps_for,
    },
};

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

pub struct TrustEngine {
    /// Trusted issuers by their exact `iss`. Written at startup, when the login provider
    /// is discovered and on a reload; read on every verification.
    issuers: RwLock<HashMap<String, Arc<TrustedIssuer>>>,
    /// Replaced whole by a reload; one atomic load per authorization.
    route_policies: ArcSwap<Vec<RoutePolicy>>,
    cache: VerifiedCache,
    /// The key-set client of the configured issuers (also those a reload adds).
    http: reqwest::Client,
    /// Service users of the bridge whose tokens stop before their `exp`, by id: `None` for a
    /// disabled one, `Some(at)` for one that expires at `at`. Replaced whole by the
    /// authority every few seconds (see [`Self::set_stopped_service_users`]).
    stopped_service_users: RwLock<StoppedServiceUsers>,
}

/// See [`TrustEngine::set_stopped_service_users`].
pub type StoppedServiceUsers = HashMap<String, Option<i64>>;

/// Memory the verified-token cache may hold: about 1 000 of the demo provider's tokens (an
/// entry holds the token's text, the mapped user and the claims' JSON text, about 2 KiB). A miss
/// costs one signature check (bench/hot-path.sh (b)); the budget keeps the bridge's resident
/// set small and flat (its (c)).
pub const CACHE_BUDGET_BYTES: usize = 2 * 1024 * 1024;

impl TrustEngine {
    /// The engine for the compiled `[[issuers]]` (see [`crate::settings::Config`]).
    pub fn new(
        issuers: Vec<IssuerSpec>,
        route_policies: Vec<RoutePolicy>,
        http: &reqwest::Client,
    ) -> Self {
        let issuers = issuers
            .into_iter()
            .map(|spec| {
                let issuer = TrustedIssuer::from_spec(spec, http);
                (issuer.issuer.clone(), Arc::new(issuer))
            })
            .collect();
        Self {
            issuers: RwLock::new(issuers),
            route_policies: ArcSwap::from_pointee(route_policies),
            cache: VerifiedCache::new(CACHE_BUDGET_BYTES),
            http: http.clone(),
            stopped_service_users: RwLock::default(),
        }
    }

    /// A reload: the configured `[[issuers]]` and `[[route_policies]]` become `specs` and
    /// `route_policies`. The login provider and the bridge itself (registered through
    /// [`Self::register`]) stay, and win over a configured issuer of the same `iss` as they
    /// did before. An issuer whose JWKS URL, refresh period and cooldown are unchanged keeps
    /// its cache (keys fetched, no new fetch); new key sets are fetched at once. Every verified
    /// token is forgotten: it is checked again under the new rules on its next call.
    pub fn replace_configured(
        &self,
        specs: Vec<IssuerSpec>,
        route_policies: Vec<RoutePolicy>,
    ) -> IssuerChanges {
        let mut changes = IssuerChanges::default();
        let mut fresh = Vec::new();
        {
            let mut map = match self.issuers.write() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            let registered =
                |i: &TrustedIssuer| i.name == PROVIDER_ISSUER || i.name == BRIDGE_ISSUER;
            let mut next: HashMap<String, Arc<TrustedIssuer>> = map
                .iter()
                .filter(|(_, i)| registered(i))
                .map(|(iss, i)| (iss.clone(), i.clone()))
                .collect();
            for spec in specs {
                if next.contains_key(&spec.issuer) {
                    continue;
                }
                let previous = map.get(&spec.issuer).filter(|i| !registered(i));
                let reusable = previous.and_then(|old| match (&old.keys, &spec.keys) {
                    (IssuerKeys::Remote(jwks), KeySpec::JwksUrl(url))
                        if jwks.url() == url
                            && jwks.cooldown() == spec.jwks_refetch_cooldown
                            && old.jwks_refresh == spec.jwks_refresh =>
                    {
                        Some(jwks.clone())
                    }
                    _ => None,
                });
                match (previous, &reusable) {
                    (None, _) => changes.added.push(spec.name.clone()),
                    (Some(_), Some(_)) => changes.keys_kept.push(spec.name.clone()),
                    (Some(_), None) => changes.keys_reloaded.push(spec.name.clone()),
                }
                let (every, name) = (spec.jwks_refresh, spec.name.clone());
                let mut fetched_anew = false;
                let issuer = TrustedIssuer::from_spec_with(spec, |url, cooldown| match reusable {
                    Some(jwks) => jwks,
                    None => {
                        let jwks = Arc::new(JwksCache::new(url, self.http.clone(), cooldown));
                        fresh.push((jwks.clone(), every, name.clone()));
                        fetched_anew = true;
                        jwks
                    }
                });
                if fetched_anew {
                    changes.fetching.push(name);
                }
                next.insert(issuer.issuer.clone(), Arc::new(issuer));
            }
            changes.removed = map
                .iter()
                .filter(|(iss, i)| !registered(i) && !next.contains_key(*iss))
                .map(|(_, i)| i.name.clone())
                .collect();
            *map = next;
        }
        self.route_policies.store(Arc::new(route_policies));
        self.cache.clear();
        for (jwks, every, name) in fresh {
            spawn_refresh(&jwks, every, name);
        }
        changes
    }

    /// Which service users' tokens the bridge no longer accepts (disabled: `None`; expiring:
    /// `Some(at)`), read from the authority's store, on every replica, every few seconds.
    pub fn set_stopped_service_users(&self, stopped: StoppedServiceUsers) {
        let mut current = match self.stopped_service_users.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        *current = stopped;
    }

    /// Whether `principal`'s holder was stopped before its token's `exp`: a service user of
    /// the bridge (its tokens name it in `client_id`, as introspection reads them) that is
    /// disabled or expired. Other issuers' tokens cost one comparison.
    fn stopped(&self, principal: &Principal, now: i64) -> bool {
        if principal.issuer_name != BRIDGE_ISSUER {
            return false;
        }
        let Some(client) = principal.token_name.as_deref() else {
            return false;
        };
        let stopped = match self.stopped_service_users.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        match stopped.get(client) {
            None => false,
            Some(None) => true,
            Some(Some(at)) => now >= *at,
        }
    }

    /// Adds (or replaces) an issuer: the login provider once discovery has succeeded.
    pub fn register(&self, issuer: TrustedIssuer) {
        let mut map = match self.issuers.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(previous) = map.get(&issuer.issuer)
            && previous.name != issuer.name
        {
            tracing::warn!(
                issuer = %issuer.issuer,
                replaced = %previous.name,
                by = %issuer.name,
                "two trusted issuers share one `iss`; the later registration wins"
            );
        }
        map.insert(issuer.issuer.clone(), Arc::new(issuer));
    }

    /// Every trusted issuer now (configured ones, and the provider once discovered).
    pub fn issuers(&self) -> Vec<Arc<TrustedIssuer>> {
        self.read().values().cloned().collect()
    }

    /// The issuer registered under `name`.
    pub fn issuer_named(&self, name: &str) -> Option<Arc<TrustedIssuer>> {
        self.read().values().find(|i| i.name == name).cloned()
    }

    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<TrustedIssuer>>> {
        match self.issuers.read() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        }
    }

    fn issuer_for(&self, iss: &str) -> Option<Arc<TrustedIssuer>> {
        self.read().get(iss).cloned()
    }

    /// Fetches every configured JWKS URL once now, then refreshes each on its schedule,
    /// keeping the last good keys when a fetch fails.
    pub fn spawn_jwks_refresh(self: &Arc<Self>) {
        for issuer in self.issuers() {
            if let IssuerKeys::Remote(jwks) = &issuer.keys {
                spawn_refresh(jwks, issuer.jwks_refresh, issuer.name.clone());
            }
        }
    }

    /// Verifies a bearer token of any trusted issuer and applies that issuer's policy, for a
    /// token that reached the bridge on no connection of a peer's own (one it minted or was
    /// sent by its provider): an issuer limited to trusted proxies refuses it.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, Rejection> {
        self.verify_restricted(token, None, None).await
    }

    /// Like [`Self::verify`], for a token a request from `peer` carried (`None`: the peer is
    /// unknown): an issuer limited to trusted proxies accepts it from those only.
    pub async fn verify_from(
        &self,
        token: &str,
        peer: Option<IpAddr>,
    ) -> Result<Arc<Principal>, Rejection> {
        self.verify_restricted(token, None, peer).await
    }

    /// Like [`Self::verify`], accepting only tokens of the issuer registered as `issuer_name`
    /// (a way in that trusts one issuer, such as the code flow).
    pub async fn verify_as(
        &self,
        token: &str,
        issuer_name: &str,
    ) -> Result<Arc<Principal>, Rejection> {
        self.verify_restricted(token, Some(std::slice::from_ref(&issuer_name)), None)
            .await
    }

    /// Like [`Self::verify_from`], for a way in that trusts several named issuers (a gateway).
    pub async fn verify_as_one_of(
        &self,
        token: &str,
        issuer_names: &[&str],
        peer: Option<IpAddr>,
    ) -> Result<Arc<Principal>, Rejection> {
        self.verify_restricted(token, Some(issuer_names), peer)
            .await
    }

    /// Whether the issuer registered as `issuer_name` refuses its tokens from `peer` (it is
    /// limited to trusted proxies, and `peer` is none of them).
    pub fn refuses_peer(&self, issuer_name: &str, peer: Option<IpAddr>) -> bool {
        self.issuer_named(issuer_name)
            .is_some_and(|i| !i.accepts_from(peer))
    }

    /// Every bearer-style verification passes here once, so it is counted here.
    async fn verify_restricted(
        &self,
        token: &str,
        only: Option<&[&str]>,
        peer: Option<IpAddr>,
    ) -> Result<Arc<Principal>, Rejection> {
        let (result, reason) = self.verify_uncounted(token, only, peer).await;
        crate::metrics::token_verification(result.is_ok(), reason);
        result
    }

    /// [`Self::verify_restricted`] without the metric; also says how it ended (`cached`,
    /// `verified`, or the rejection's reason). A cached token is answered without awaiting
    /// anything; the signature check's future (large: it may fetch keys) lives in a box of
    /// its own, so the future of every API call stays small (it is moved whole into the
    /// handler's box on each call).
    async fn verify_uncounted(
        &self,
        token: &str,
        only: Option<&[&str]>,
        peer: Option<IpAddr>,
    ) -> (Result<Arc<Principal>, Rejection>, &'static str) {
        let now = crate::clock::now();
        match self.cached(token, only, peer, now) {
            Some(answer) => answer,
            None => Box::pin(self.verify_and_remember(token, only, peer, now)).await,
        }
    }

    /// The answer for a token verified before and still fresh, if it is one. What may have
    /// changed since (the peer, the holder's state) is checked as on a miss.
    fn cached(
        &self,
        token: &str,
        only: Option<&[&str]>,
        peer: Option<IpAddr>,
        now: i64,
    ) -> Option<(Result<Arc<Principal>, Rejection>, &'static str)> {
        // Read under the one lookup the generation check makes anyway: no `Arc` cloned.
        let mut from_peer = false;
        let p = self.cache.get(token, now, |iss| {
            let issuers = self.read();
            let found = issuers.get(iss)?;
            from_peer = found.accepts_from(peer);
            Some(found.key_generation())
        })?;
        let refused = |e: TokenError| {
            let reason = e.reason();
            Some((Err(e.into()), reason))
        };
        if !allowed(only, &p.issuer_name) {
            return refused(TokenError::UntrustedIssuer);
        }
        if !from_peer {
            return refused(TokenError::UntrustedPeer);
        }
        if self.stopped(&p, now) {
            return refused(TokenError::Revoked);
        }
        Some((Ok(p), "cached"))
    }

    /// The full check of a token not in the cache: issuer, signature, claims, policy; a
    /// token that passes is remembered.
    async fn verify_and_remember(
        &self,
        token: &str,
        only: Option<&[&str]>,
        peer: Option<IpAddr>,
        now: i64,
    ) -> (Result<Arc<Principal>, Rejection>, &'static str) {
        let invalid = |e: TokenError| {
            let reason = e.reason();
            (Err(e.into()), reason)
        };
        let payload = match peek_issuer(token) {
            Ok(peeked) => peeked,
            Err(e) => return invalid(e),
        };
        // Before the issuer is looked up: a reload meanwhile voids what is verified here.
        let epoch = self.cache.epoch();
        let iss = payload.str("iss").unwrap_or_default();
        let Some(issuer) = self.issuer_for(iss).filter(|i| allowed(only, &i.name)) else {
            return invalid(TokenError::UntrustedIssuer);
        };
        // Before any signature work: from this peer, no token of the issuer would do.
        if !issuer.accepts_from(peer) {
            return invalid(TokenError::UntrustedPeer);
        }
        // The generation before verification: if keys change meanwhile, the entry is void.
        let generation = issuer.key_generation();
        let validated = match check_decoded(&issuer, token, Some(payload), None).await {
            Ok(v) => v,
            Err(e) => return invalid(e),
        };
        let principal = match Principal::from_token(&issuer, &validated, &token_digest(token)) {
            Ok(p) => p,
            Err(e) => return invalid(e),
        };
        if let Err(why) = admit(&issuer, &principal, &validated.claims) {
            return (Err(Rejection::Policy(why)), "policy");
        }
        let principal = Arc::new(principal);
        self.cache
            .insert_as_of(token, principal.clone(), generation, epoch, now);
        if self.stopped(&principal, now) {
            // Cached all the same: the check runs on every hit too, and the user may be
            // enabled again.
            return invalid(TokenError::Revoked);
        }
        (Ok(principal), "verified")
    }

    /// Verifies an OIDC ID token of the issuer registered as `issuer_name` for this client
    /// (`aud`, where only `trusted_audiences` may stand beside the client, `azp`, `sub`, `iat`,
    /// and `nonce` when one was sent), with that issuer's keys, algorithms and leeway: the same
    /// rules module as every other token.
    pub async fn verify_id_token(
        &self,
        token: &str,
        issuer_name: &str,
        client_id: &str,
        trusted_audiences: &[String],
        nonce: Option<&str>,
    ) -> Result<ValidatedToken, TokenError> {
        let Some(issuer) = self.issuer_named(issuer_name) else {
            crate::metrics::token_verification(false, TokenError::UntrustedIssuer.reason());
            return Err(TokenError::UntrustedIssuer);
        };
        verify_kind(
            &issuer,
            token,
            TokenKind::Id {
                client_id,
                trusted_audiences,
                nonce,
            },
        )
        .await
    }

    /// Verifies an OIDC Back-Channel Logout token that the issuer registered as
    /// `issuer_name` sent for this client, with that issuer's keys and rules (see
    /// [`TokenKind::Logout`]). Replays are the caller's to refuse (by `jti`).
    pub async fn verify_logout_token(
        &self,
        token: &str,
        issuer_name: &str,
        client_id: &str,
    ) -> Result<ValidatedToken, TokenError> {
        let Some(issuer) = self.issuer_named(issuer_name) else {
            return Err(TokenError::UntrustedIssuer);
        };
        verify_kind(&issuer, token, TokenKind::Logout { client_id }).await
    }

    /// Route policies for `path` that apply to this principal.
    pub fn authorize(&self, principal: &Principal, path: &str) -> Result<(), String> {
        authorize(&self.route_policies.load(), principal, path)
    }

    /// What `login-bridge token verify` prints: the matched issuer, every check, the principal.
    pub async fn explain(&self, token: &str) -> Explanation {
        let mut checks = Vec::new();
        let payload = match peek_issuer(token) {
            Ok(claims) => claims,
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
        let iss = payload.str("iss").unwrap_or_default();
        let Some(issuer) = self.issuer_for(iss) else {
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
        let result = check_decoded(&issuer, token, Some(payload), Some(&mut checks)).await;
        if let Some(nets) = &issuer.trusted_proxies {
            // Where the token would be accepted: the CLI has no peer to check.
            let nets: Vec<String> = nets.iter().map(ToString::to_string).collect();
            checks.push(Check {
                name: "trusted_proxies",
                outcome: Ok(format!("accepted only from {}", nets.join(", "))),
            });
        }
        let (principal, policy) = match result {
            Ok(v) => match Principal::from_token(&issuer, &v, &token_digest(token)) {
                Ok(p) => {
                    let policy = admit(&issuer, &p, &v.claims);
                    (Some(p), Some(policy))
                }
                Err(e) => {
                    checks.push(Check {
                        name: "claims mapping",
                        outcome: Err(e),
                    });
                    (None, None)
                }
            },
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

/// What [`TrustEngine::replace_configured`] changed, by issuer name, for the reload's log.
#[derive(Debug, Default)]
pub struct IssuerChanges {
    /// Issuers not configured before.
    pub added: Vec<String>,
    /// Issuers no longer configured.
    pub removed: Vec<String>,
    /// Issuers still configured whose fetched key set was kept.
    pub keys_kept: Vec<String>,
    /// Issuers still configured whose keys were read again (files, inline keys) or whose JWKS
    /// URL or its schedule changed.
    pub keys_reloaded: Vec<String>,
    /// Issuers whose key set is being fetched anew.
    pub fetching: Vec<String>,
}

/// Fetches `jwks` now, then every `every` (at least 10 s), keeping the last good keys when a
/// fetch fails. Ends once no issuer holds the cache any more (removed by a reload).
fn spawn_refresh(jwks: &Arc<JwksCache>, every: Duration, name: String) {
    let weak: Weak<JwksCache> = Arc::downgrade(jwks);
    tokio::spawn(async move {
        loop {
            let Some(jwks) = weak.upgrade() else {
                return;
            };
            if let Err(e) = jwks.refresh().await {
                tracing::warn!(issuer = %name, error = %e, "JWKS refresh failed; keeping the last good keys");
            }
            drop(jwks);
            tokio::time::sleep(every.max(Duration::from_secs(10))).await;
        }
    });
}

/// Whether a way in that trusts only the issuers named in `only` (all, when `None`) accepts
/// tokens of the issuer named `name`.
fn allowed(only: Option<&[&str]>, name: &str) -> bool {
    only.is_none_or(|o| o.contains(&name))
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

/// A token of `kind` (ID or logout token) checked with `issuer`'s keys, algorithms and
/// leeway, and counted.
async fn verify_kind(
    issuer: &TrustedIssuer,
    token: &str,
    kind: TokenKind<'_>,
) -> Result<ValidatedToken, TokenError> {
    let expect = Expectations {
        issuer: &issuer.issuer,
        algorithms: &issuer.algorithms,
        leeway_secs: issuer.leeway_secs,
        kind,
        required_typ: None,
        required_claims: &[],
    };
    let result = validate_steps_for(token, issuer.keys(), &expect, None).await;
    match &result {
        Ok(_) => crate::metrics::token_verification(true, "verified"),
        Err(e) => crate::metrics::token_verification(false, e.reason()),
    }
    result
}

/// A token checked with `issuer`'s keys and rules for its access tokens; `payload`: its claims
/// when [`peek_issuer`] parsed them already (then they are not decoded again).
async fn check_decoded(
    issuer: &TrustedIssuer,
    token: &str,
    payload: Option<Claims>,
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
    validate_decoded(token, payload, issuer.keys(), &expect, report).await
}

/// Parses the unverified payload, only to pick the issuer by its `iss` (a string: checked
/// here): nothing of it is trusted until the signature verified, after which the same parsed
/// claims are checked and read, so the payload is decoded and parsed once.
fn peek_issuer(token: &str) -> Result<Claims, TokenError> {
    if token.len() > super::validate::MAX_TOKEN_BYTES {
        return Err(TokenError::TooLarge);
    }
    let segment = token
        .split('.')
        .nth(1)
        .ok_or(TokenError::Malformed("a JWT has three dot-separated parts"))?;
    let claims = decode_payload(segment)?;
    match claims.get("iss") {
        Some(iss) if iss.as_str().is_some() => Ok(claims),
        Some(_) => Err(TokenError::InvalidClaim("iss")),
        None => Err(TokenError::MissingClaim("iss")),
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, encode};

    use super::*;
    use crate::trust::{
        issuer::{IssuerKeys, KeySpec, Policy},
        jwks::{KeySet, VerificationKey},
        mapping::ClaimMapping,
    };

    const ISS: &str = "https://issuer.example.org";

    /// The issuer `ISS` trusting exactly the HMAC key `secret`.
    fn issuer(secret: &[u8]) -> TrustedIssuer {
        TrustedIssuer {
            name: "example".into(),
            issuer: ISS.into(),
            audiences: vec!["api".into()],
            algorithms: vec![Algorithm::HS256],
            keys: IssuerKeys::Static(KeySet::from_keys(vec![VerificationKey::new(
                None,
                None,
                DecodingKey::from_secret(secret),
            )])),
            leeway_secs: 0,
            required_claims: Vec::new(),
            typ: None,
            claims: ClaimMapping::default(),
            policy: Policy::default(),
            username_regex: None,
            jwks_refresh: Duration::from_secs(60),
            jwks_refetch_cooldown: Duration::from_secs(60),
            trusted_proxies: None,
        }
    }

    fn token(secret: &[u8]) -> String {
        token_with(
            secret,
            serde_json::json!({
                "iss": ISS, "aud": "api", "sub": "alice", "exp": crate::clock::now() + 600,
                "preferred_username": "alice",
            }),
        )
    }

    fn token_with(secret: &[u8], claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap_or_default()
    }

    async fn outcome(engine: &TrustEngine, token: &str) -> &'static str {
        engine.verify_uncounted(token, None, None).await.1
    }

    async fn outcome_from(engine: &TrustEngine, token: &str, peer: [u8; 4]) -> &'static str {
        let peer = Some(std::net::IpAddr::from(peer));
        engine.verify_uncounted(token, None, peer).await.1
    }

    /// A gateway's JWT verified once from the gateway sits in the cache: a hit must not
    /// admit it from another address.
    #[tokio::test]
    async fn a_token_of_an_issuer_limited_to_its_proxies_is_refused_elsewhere_cached_or_not() {
        let secret = &[3u8; 32][..];
        let engine = TrustEngine::new(vec![], vec![], &reqwest::Client::new());
        engine.register(TrustedIssuer {
            trusted_proxies: Some(vec![
                "10.0.0.5/32".parse().unwrap_or_else(|_| unreachable!()),
            ]),
            ..issuer(secret)
        });
        let jwt = token(secret);
        assert_eq!(outcome_from(&engine, &jwt, [10, 0, 0, 6]).await, "peer");
        assert_eq!(outcome_from(&engine, &jwt, [10, 0, 0, 5]).await, "verified");
        assert_eq!(
            outcome_from(&engine, &jwt, [10, 0, 0, 6]).await,
            "peer",
            "a cache hit"
        );
        assert_eq!(outcome(&engine, &jwt).await, "peer", "no known peer");
        assert_eq!(outcome_from(&engine, &jwt, [10, 0, 0, 5]).await, "cached");
    }

    /// A service user disabled (or expired) after its token was verified: refused on the next
    /// call, though the token sits in the cache; enabled again, accepted again.
    #[tokio::test]
    async fn a_stopped_service_users_token_is_refused_cached_or_not() {
        let secret = &[4u8; 32][..];
        let engine = TrustEngine::new(vec![], vec![], &reqwest::Client::new());
        let mut bridge = issuer(secret);
        bridge.name = BRIDGE_ISSUER.into();
        bridge.claims.token_name = "client_id".into();
        engine.register(bridge);
        let now = crate::clock::now();
        let jwt = token_with(
            secret,
            serde_json::json!({"iss": ISS, "aud": "api", "sub": "svc-1", "client_id": "svc-1",
                               "preferred_username": "ci", "exp": now + 600}),
        );
        let stop = |at: Option<i64>| {
            engine.set_stopped_service_users(HashMap::from([("svc-1".to_owned(), at)]));
        };
        assert_eq!(outcome(&engine, &jwt).await, "verified");
        stop(None);
        assert_eq!(outcome(&engine, &jwt).await, "revoked", "disabled");
        engine.set_stopped_service_users(HashMap::new());
        assert_eq!(outcome(&engine, &jwt).await, "cached", "enabled again");
        stop(Some(now + 300));
        assert_eq!(outcome(&engine, &jwt).await, "cached", "expires later");
        stop(Some(now - 1));
        assert_eq!(outcome(&engine, &jwt).await, "revoked", "expired");
        // Another user's stop touches nobody else.
        engine.set_stopped_service_users(HashMap::from([("svc-2".to_owned(), None)]));
        assert_eq!(outcome(&engine, &jwt).await, "cached");
    }

    #[tokio::test]
    async fn a_token_without_a_required_mapped_claim_proves_nobody() {
        let secret = &[5u8; 32][..];
        let engine = TrustEngine::new(vec![], vec![], &reqwest::Client::new());
        engine.register(issuer(secret));
        let jwt = token_with(
            secret,
            serde_json::json!({"iss": ISS, "aud": "api", "sub": "alice",
                               "exp": crate::clock::now() + 600}),
        );
        let (result, reason) = engine.verify_uncounted(&jwt, None, None).await;
        assert_eq!(reason, "claims");
        let Err(Rejection::Invalid(TokenError::MissingRequiredClaim(claim))) = result else {
            panic!("not refused for the missing claim");
        };
        assert_eq!(claim, "preferred_username");
        let explained = engine.explain(&jwt).await;
        assert!(!explained.accepted());
    }

    /// The bridge's own issuer is registered anew with its keys when they change (a rotation, a
    /// key retired at once); a token a dropped key signed must not live on in the cache.
    #[tokio::test]
    async fn a_cached_token_is_refused_once_its_issuer_is_registered_with_other_keys() {
        let (old, new) = (&[1u8; 32][..], &[2u8; 32][..]);
        let engine = TrustEngine::new(vec![], vec![], &reqwest::Client::new());
        engine.register(issuer(old));
        let signed_by_old = token(old);
        assert_eq!(outcome(&engine, &signed_by_old).await, "verified");
        assert_eq!(outcome(&engine, &signed_by_old).await, "cached");
        engine.register(issuer(new));
        assert_eq!(outcome(&engine, &signed_by_old).await, "signature");
        // The token of the new key is verified, then cached.
        let signed_by_new = token(new);
        assert_eq!(outcome(&engine, &signed_by_new).await, "verified");
        assert_eq!(outcome(&engine, &signed_by_new).await, "cached");
    }

    /// A JWKS endpoint serving the fixture EC key, for the reload tests.
    async fn jwks_server() -> String {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/issuer-ec.jwks.json"
        ))
        .unwrap_or_default();
        let app =
            axum::Router::new().route("/jwks", axum::routing::get(move || async move { doc }));
        let Ok(listener) = tokio::net::TcpListener::bind("127.0.0.1:0").await else {
            panic!("no port");
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://127.0.0.1:{port}/jwks")
    }

    /// A compiled `[[issuers]]` entry from its TOML-like JSON.
    fn spec(entry: serde_json::Value) -> IssuerSpec {
        let Ok(settings) = serde_json::from_value(entry) else {
            panic!("not an issuer entry");
        };
        match IssuerSpec::compile(&settings) {
            Ok(spec) => spec,
            Err(e) => panic!("{e}"),
        }
    }

    fn remote_spec(url: &str) -> IssuerSpec {
        spec(
            serde_json::json!({"name": "remote", "issuer": "https://remote.example",
            "audiences": ["api"], "algorithms": ["ES256"], "jwks_url": url}),
        )
    }

    fn remote_token() -> String {
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fixtures/issuer-ec.pem"
        ))
        .unwrap_or_default();
        let Ok(key) = EncodingKey::from_ec_pem(&pem) else {
            panic!("fixture key");
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some("ec-1".into());
        encode(
            &header,
            &serde_json::json!({"iss": "https://remote.example", "aud": "api", "sub": "bob",
                "preferred_username": "bob", "exp": crate::clock::now() + 600}),
            &key,
        )
        .unwrap_or_default()
    }

    fn jwks_of(engine: &TrustEngine, name: &str) -> Arc<JwksCache> {
        match engine.issuer_named(name).map(|i| match &i.keys {
            IssuerKeys::Remote(jwks) => Some(jwks.clone()),
            IssuerKeys::Static(_) => None,
        }) {
            Some(Some(jwks)) => jwks,
            _ => panic!("no remote issuer {name}"),
        }
    }

    /// A reload that leaves an issuer's JWKS URL alone keeps its fetched keys (no new fetch,
    /// the same cache), and forgets every verified token: the next call verifies again.
    #[tokio::test]
    async fn a_reload_keeps_the_fetched_keys_of_an_unchanged_issuer_and_empties_the_token_cache() {
        let url = jwks_server().await;
        let engine = Arc::new(TrustEngine::new(
            vec![remote_spec(&url)],
            vec![],
            &reqwest::Client::new(),
        ));
        engine.spawn_jwks_refresh();
        let before = jwks_of(&engine, "remote");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while before.fetch_count() == 0 {
            assert!(std::time::Instant::now() < deadline, "never fetched");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let jwt = remote_token();
        assert_eq!(outcome(&engine, &jwt).await, "verified");
        assert_eq!(outcome(&engine, &jwt).await, "cached");
        assert_eq!(engine.cached_tokens(), 1);

        let secret = &[6u8; 32][..];
        let changes = engine.replace_configured(vec![remote_spec(&url), spec_hmac(secret)], vec![]);

        assert_eq!(changes.keys_kept, ["remote"]);
        assert_eq!(changes.added, ["hmac"]);
        assert!(changes.fetching.is_empty(), "{changes:?}");
        let after = jwks_of(&engine, "remote");
        assert!(Arc::ptr_eq(&before, &after), "the same key cache");
        assert_eq!(engine.cached_tokens(), 0, "verified tokens forgotten");
        assert_eq!(
            outcome(&engine, &jwt).await,
            "verified",
            "checked again, keys at hand"
        );
        assert_eq!(after.fetch_count(), 1, "no new fetch");
        // A changed URL gets a cache of its own.
        let changes = engine.replace_configured(vec![remote_spec(&format!("{url}?v=2"))], vec![]);
        assert_eq!(changes.keys_reloaded, ["remote"]);
        assert_eq!(changes.fetching, ["remote"]);
        assert_eq!(changes.removed, ["hmac"]);
        assert!(!Arc::ptr_eq(&before, &jwks_of(&engine, "remote")));
    }

    fn spec_hmac(secret: &[u8]) -> IssuerSpec {
        let mut spec = spec(serde_json::json!({"name": "hmac", "issuer": ISS,
            "audiences": ["api"], "algorithms": ["HS256"], "hmac_secret_env": "PATH"}));
        spec.keys = KeySpec::Static(KeySet::from_keys(vec![VerificationKey::new(
            None,
            None,
            DecodingKey::from_secret(secret),
        )]));
        spec
    }

    /// A reload drops configured issuers and replaces route policies, but the login provider
    /// and the bridge's own issuer, registered apart from the configuration, stay.
    #[tokio::test]
    async fn a_reload_replaces_configured_issuers_and_policies_and_keeps_the_provider_and_the_bridge()
     {
        let secret = &[7u8; 32][..];
        let engine = TrustEngine::new(
            vec![spec_hmac(secret)],
            vec![RoutePolicy {
                prefix: "/api/admin".into(),
                issuer: None,
                any_role: vec!["admin".into()],
                any_group: vec![],
                min_group_level: None,
            }],
            &reqwest::Client::new(),
        );
        let provider_secret = &[8u8; 32][..];
        engine.register(TrustedIssuer {
            name: PROVIDER_ISSUER.into(),
            issuer: "https://provider.example".into(),
            ..issuer(provider_secret)
        });
        let provider_token = token_with(
            provider_secret,
            serde_json::json!({"iss": "https://provider.example", "aud": "api", "sub": "carol",
                "preferred_username": "carol", "exp": crate::clock::now() + 600}),
        );
        let configured = token(secret);
        assert_eq!(outcome(&engine, &configured).await, "verified");
        let Ok(alice) = engine.verify(&configured).await else {
            panic!("refused");
        };
        assert!(engine.authorize(&alice, "/api/admin/x").is_err());

        let changes = engine.replace_configured(vec![], vec![]);

        assert_eq!(changes.removed, ["hmac"]);
        assert_eq!(
            outcome(&engine, &configured).await,
            "issuer",
            "no longer trusted"
        );
        assert_eq!(outcome(&engine, &provider_token).await, "verified");
        assert!(
            engine.authorize(&alice, "/api/admin/x").is_ok(),
            "policy gone"
        );
    }

    /// Every API call moves this future whole into the handler's box: the signature check's
    /// large state (key fetches) must stay behind a pointer (it measured 1.5 KiB inline).
    #[test]
    fn the_future_of_a_verification_stays_small() {
        let http = reqwest::Client::new();
        let engine = super::TrustEngine::new(vec![], vec![], &http);
        let future = engine.verify("a.b.c");
        let size = std::mem::size_of_val(&future);
        assert!(size <= 512, "{size} bytes");
    }
}
