//! Trusted issuers: their configuration (`[[issuers]]`) and the compiled form the engine uses.
//!
//! Each issuer has exactly one key source, and its keys are used for its tokens only (a token
//! claiming issuer A is never checked with issuer B's keys). Algorithms come from the
//! configuration, never from the token, and must fit the key source: HMAC algorithms only with
//! an HMAC secret, asymmetric ones only with public keys (no key confusion).
//!
//! An issuer may be trusted for requests from some peers only (`trusted_proxies`): a
//! gateway's JWT is meant to arrive through the gateway, and a stolen one must be worthless
//! from anywhere else. The issuers `[gateway] issuers` names get the gateway's proxies.

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey};
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::{
    jwks::{JwksCache, KeySet, VerificationKey},
    mapping::ClaimMapping,
    validate::Keys,
};

/// One `[[issuers]]` entry. A token is matched to its issuer by its exact `iss`; only that
/// issuer's keys and rules apply to it. Exactly one key source: `jwks_url`, `jwks_file`,
/// `public_key`, `public_key_file`, `hmac_secret_env` or `hmac_secret_file`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// A short name for logs, policies and `token verify` (default: the issuer).
    #[serde(default)]
    pub name: Option<String>,
    /// The exact `iss` of its tokens.
    pub issuer: String,
    /// `aud` must contain one of these. Required unless `skip_audience_check = true`.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Accept tokens for any audience (warned about at startup).
    #[serde(default)]
    pub skip_audience_check: bool,
    /// Allowed signature algorithms, e.g. `["RS256"]`: from the configuration only, never from
    /// the token's header. HS* only with an HMAC secret, asymmetric ones only with public keys.
    pub algorithms: Vec<String>,
    /// Key source: a JWKS URL (cached, refreshed on schedule and on unknown `kid`)...
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// ... or a JWKS file ...
    #[serde(default)]
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub jwks_file: Option<PathBuf>,
    /// ... or a PEM public key, inline ...
    #[serde(default)]
    pub public_key: Option<String>,
    /// ... or in a file ...
    #[serde(default)]
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub public_key_file: Option<PathBuf>,
    /// ... or an HMAC secret (at least 32 bytes) from this environment variable ...
    #[serde(default)]
    pub hmac_secret_env: Option<String>,
    /// ... or from this file (trailing newline trimmed).
    #[serde(default)]
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub hmac_secret_file: Option<PathBuf>,
    /// Clock skew allowed on `exp`, `nbf`, `iat`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
    /// Claims that must be present.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Header `typ` the tokens must carry (e.g. `at+jwt`), if set.
    #[serde(default)]
    pub typ: Option<String>,
    /// Scheduled JWKS refresh (`jwks_url` only).
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_secs: u64,
    /// Minimum time between two fetches caused by unknown `kid`s (`jwks_url` only).
    #[serde(default = "default_cooldown")]
    pub jwks_refetch_cooldown_secs: u64,
    /// Accept this issuer's tokens only on connections from these peers (CIDRs, e.g. the
    /// gateway's address), on every way in. Absent: from any peer (an issuer that
    /// `[gateway] issuers` names gets the gateway's `trusted_proxies`, unless set here).
    #[serde(default)]
    #[cfg_attr(test, schemars(with = "Option<Vec<String>>", extend("items" = { "type": "string", "format": "cidr" })))]
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
    /// Claim mapping of this issuer's tokens.
    #[serde(default)]
    pub claims: ClaimMapping,
    /// Who may pass with this issuer's tokens (all optional).
    #[serde(default)]
    pub policy: Policy,
}

fn default_leeway() -> u64 {
    30
}
fn default_jwks_refresh() -> u64 {
    300
}
fn default_cooldown() -> u64 {
    30
}

/// Who may pass, per issuer (checked at verification) or per route prefix.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// The caller needs at least one of these roles.
    pub any_role: Vec<String>,
    /// The caller needs to be in at least one of these groups.
    pub any_group: Vec<String>,
    /// Access level of each group. A caller in several groups gets the highest one: the
    /// most-access group wins (Traefik Hub).
    pub group_levels: BTreeMap<String, u32>,
    /// The caller's access level must be at least this.
    pub min_group_level: Option<u32>,
    /// The token must carry exactly one role, and it must be one of these (Piiano Vault).
    pub exactly_one_role_of: Vec<String>,
    /// The username must match this regular expression, anchored at both ends (privacyIDEA).
    pub username_pattern: Option<String>,
}

/// A `[[route_policies]]` entry: applies to `/api` and upstream paths under `prefix`, on top
/// of the issuer's own policy.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct RoutePolicy {
    /// The path prefix it applies to (`/api/admin`, `/pi/realm/`).
    pub prefix: String,
    /// Only for tokens of this issuer (its `name` or `issuer`); all issuers when absent.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The caller needs at least one of these roles.
    #[serde(default)]
    pub any_role: Vec<String>,
    /// The caller needs to be in at least one of these groups.
    #[serde(default)]
    pub any_group: Vec<String>,
    /// The caller's access level (the issuer's `policy.group_levels`) must be at least this.
    #[serde(default)]
    pub min_group_level: Option<u32>,
}

/// The keys of one issuer.
pub enum IssuerKeys {
    Remote(Arc<JwksCache>),
    Static(KeySet),
}

/// Where a compiled issuer's keys come from. A JWKS URL becomes a live [`JwksCache`] only when
/// the engine is built (it needs the HTTP client); everything else is read at compile time.
#[derive(Clone)]
pub enum KeySpec {
    JwksUrl(String),
    Static(KeySet),
}

/// Why an `[[issuers]]` entry cannot be used. Names the entry, says how to fix it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("issuers[{name}]: {problem}")]
pub struct IssuerConfigError {
    pub name: String,
    pub problem: String,
}

/// A trusted issuer with its keys of type `K`: its rules, compiled from `[[issuers]]` (or
/// from discovery, for the login provider), and where its keys come from.
#[derive(Clone)]
pub struct Issuer<K> {
    pub name: String,
    pub issuer: String,
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub keys: K,
    pub leeway_secs: u64,
    pub required_claims: Vec<String>,
    pub typ: Option<String>,
    pub claims: ClaimMapping,
    pub policy: Policy,
    pub username_regex: Option<Regex>,
    pub jwks_refresh: Duration,
    pub jwks_refetch_cooldown: Duration,
    /// The only peers whose requests may carry this issuer's tokens; `None`: any peer.
    pub trusted_proxies: Option<Vec<ipnet::IpNet>>,
}

impl<K> Issuer<K> {
    /// Whether a token of this issuer may be accepted on a connection from `peer` (`None`:
    /// the peer is not known, which a restricted issuer refuses). A few CIDR comparisons:
    /// checked on every call, the verified-token cache's hits included.
    pub fn accepts_from(&self, peer: Option<IpAddr>) -> bool {
        match &self.trusted_proxies {
            None => true,
            Some(nets) => peer.is_some_and(|p| nets.iter().any(|n| n.contains(&p))),
        }
    }
}

/// An `[[issuers]]` entry after every check: algorithms parsed, key material read, the
/// username pattern compiled. Compiling needs no network, so configuration loading can report
/// every problem at once.
pub type IssuerSpec = Issuer<KeySpec>;

/// A compiled, validated issuer with live keys, as the engine uses it.
pub type TrustedIssuer = Issuer<IssuerKeys>;

impl TrustedIssuer {
    pub fn keys(&self) -> Keys<'_> {
        match &self.keys {
            IssuerKeys::Remote(jwks) => Keys::Remote(jwks),
            IssuerKeys::Static(set) => Keys::Static(set),
        }
    }

    /// The number of the issuer's key set: changes whenever the key set does, and is never
    /// reused, not even by this issuer registered anew (verified-token cache entries of
    /// another number are void).
    pub fn key_generation(&self) -> u64 {
        match &self.keys {
            IssuerKeys::Remote(jwks) => jwks.generation(),
            IssuerKeys::Static(set) => set.generation(),
        }
    }

    pub fn key_source(&self) -> &'static str {
        match &self.keys {
            IssuerKeys::Remote(_) => "jwks_url",
            IssuerKeys::Static(_) => "static keys",
        }
    }

    /// The live issuer of a compiled spec; a JWKS URL gets its cache here.
    pub fn from_spec(spec: IssuerSpec, http: &reqwest::Client) -> Self {
        Self::from_spec_with(spec, |url, cooldown| {
            Arc::new(JwksCache::new(url, http.clone(), cooldown))
        })
    }

    /// [`Self::from_spec`], with the cache of a JWKS URL from `remote(url, cooldown)` (a
    /// reload passes the running issuer's cache, keys already fetched, when nothing about
    /// fetching them changed).
    pub fn from_spec_with(
        spec: IssuerSpec,
        remote: impl FnOnce(String, Duration) -> Arc<JwksCache>,
    ) -> Self {
        let Issuer {
            name,
            issuer,
            audiences,
            algorithms,
            keys,
            leeway_secs,
            required_claims,
            typ,
            claims,
            policy,
            username_regex,
            jwks_refresh,
            jwks_refetch_cooldown,
            trusted_proxies,
        } = spec;
        let keys = match keys {
            KeySpec::JwksUrl(url) => IssuerKeys::Remote(remote(url, jwks_refetch_cooldown)),
            KeySpec::Static(set) => IssuerKeys::Static(set),
        };
        Issuer {
            name,
            issuer,
            audiences,
            algorithms,
            keys,
            leeway_secs,
            required_claims,
            typ,
            claims,
            policy,
            username_regex,
            jwks_refresh,
            jwks_refetch_cooldown,
            trusted_proxies,
        }
    }

    /// The login provider after discovery, registered like any other issuer: its own JWKS,
    /// the API audience, the `[claims]` mapping.
    pub fn for_provider(
        issuer: String,
        algorithms: Vec<Algorithm>,
        jwks: Arc<JwksCache>,
        audience: String,
        claims: ClaimMapping,
        leeway_secs: u64,
    ) -> Self {
        Self {
            name: PROVIDER_ISSUER.into(),
            issuer,
            audiences: vec![audience],
            algorithms,
            leeway_secs,
            required_claims: Vec::new(),
            typ: None,
            claims,
            policy: Policy::default(),
            username_regex: None,
            jwks_refresh: Duration::from_secs(default_jwks_refresh()),
            jwks_refetch_cooldown: jwks.cooldown(),
            // The SPA's own Bearer calls carry the provider's tokens from wherever the browser
            // is, also when a gateway in front injects them (see `Settings::compile`).
            trusted_proxies: None,
            keys: IssuerKeys::Remote(jwks),
        }
    }
}

/// Name under which the login provider is registered in the trust engine (reserved).
pub const PROVIDER_ISSUER: &str = "oidc";

/// Name under which the bridge registers itself, as the issuer of the tokens it mints.
pub const BRIDGE_ISSUER: &str = "bridge";

impl IssuerSpec {
    /// Checks and compiles one `[[issuers]]` entry. Every problem names the setting.
    pub fn compile(s: &IssuerSettings) -> Result<Self, IssuerConfigError> {
        let name = s.name.clone().unwrap_or_else(|| s.issuer.clone());
        let at = |m: String| IssuerConfigError {
            name: name.clone(),
            problem: m,
        };
        if name == PROVIDER_ISSUER || name == BRIDGE_ISSUER {
            return Err(at(format!(
                "the names {PROVIDER_ISSUER:?} (the login provider) and {BRIDGE_ISSUER:?} (the \
                 bridge itself) are reserved; choose another"
            )));
        }
        if s.issuer.is_empty() {
            return Err(at("issuer is empty".into()));
        }
        if s.audiences.is_empty() && !s.skip_audience_check {
            return Err(at(
                "audiences is empty: list the audiences your API accepts, or set \
                 skip_audience_check = true to accept any"
                    .into(),
            ));
        }
        if s.algorithms.is_empty() {
            return Err(at("algorithms is empty: list e.g. [\"RS256\"]".into()));
        }
        if s.trusted_proxies.as_ref().is_some_and(Vec::is_empty) {
            return Err(at(
                "trusted_proxies is empty, so no request could carry its tokens: list the \
                 proxies' addresses (CIDRs such as \"10.0.0.5/32\"), or leave it out to accept \
                 them from any peer"
                    .into(),
            ));
        }
        if let Some(problem) = s.claims.problem() {
            return Err(at(problem));
        }
        let algorithms = s
            .algorithms
            .iter()
            .map(|a| {
                a.parse::<Algorithm>()
                    .map_err(|_| at(format!("unknown algorithm {a:?}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hmac = algorithms
            .iter()
            .filter(|a| matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
            .count();
        let sources = [
            s.jwks_url.is_some(),
            s.jwks_file.is_some(),
            s.public_key.is_some(),
            s.public_key_file.is_some(),
            s.hmac_secret_env.is_some(),
            s.hmac_secret_file.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if sources != 1 {
            return Err(at(format!(
                "needs exactly one key source (jwks_url, jwks_file, public_key, public_key_file, \
                 hmac_secret_env, hmac_secret_file); found {sources}"
            )));
        }
        let is_hmac_source = s.hmac_secret_env.is_some() || s.hmac_secret_file.is_some();
        if is_hmac_source && hmac != algorithms.len() {
            return Err(at("an HMAC secret can only verify HS256/HS384/HS512".into()));
        }
        if !is_hmac_source && hmac > 0 {
            return Err(at(
                "HS* algorithms need an HMAC secret; a public key is never used as an HMAC secret"
                    .into(),
            ));
        }
        let keys = if let Some(url) = &s.jwks_url {
            KeySpec::JwksUrl(url.clone())
        } else if let Some(path) = &s.jwks_file {
            let body = std::fs::read(path)
                .map_err(|e| at(format!("cannot read jwks_file {}: {e}", path.display())))?;
            let set = KeySet::from_json(&body).map_err(|e| at(format!("jwks_file: {e}")))?;
            if set.is_empty() {
                return Err(at("jwks_file holds no usable signature key".into()));
            }
            KeySpec::Static(set)
        } else if s.public_key.is_some() || s.public_key_file.is_some() {
            let pem = match (&s.public_key, &s.public_key_file) {
                (Some(inline), _) => inline.clone().into_bytes(),
                (None, Some(path)) => std::fs::read(path).map_err(|e| {
                    at(format!(
                        "cannot read public_key_file {}: {e}",
                        path.display()
                    ))
                })?,
                (None, None) => Vec::new(),
            };
            KeySpec::Static(KeySet::from_keys(vec![
                pem_key(&pem, &algorithms).map_err(at)?,
            ]))
        } else {
            let secret = match (&s.hmac_secret_env, &s.hmac_secret_file) {
                (Some(var), _) => std::env::var(var).map_err(|_| {
                    at(format!(
                        "environment variable {var} (hmac_secret_env) is not set"
                    ))
                })?,
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|e| {
                        at(format!(
                            "cannot read hmac_secret_file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_string(),
                (None, None) => String::new(),
            };
            if secret.len() < 32 {
                return Err(at(
                    "the HMAC secret must be at least 32 bytes (RFC 7518 3.2)".into(),
                ));
            }
            KeySpec::Static(KeySet::from_keys(vec![VerificationKey::new(
                None,
                None,
                DecodingKey::from_secret(secret.as_bytes()),
            )]))
        };
        let username_regex = match &s.policy.username_pattern {
            Some(p) => Some(
                Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| at(format!("policy.username_pattern: {e}")))?,
            ),
            None => None,
        };
        if s.skip_audience_check {
            tracing::warn!(issuer = %name, "audience check disabled: tokens for any audience are accepted");
        }
        Ok(Self {
            name,
            issuer: s.issuer.clone(),
            audiences: if s.skip_audience_check {
                Vec::new()
            } else {
                s.audiences.clone()
            },
            algorithms,
            keys,
            leeway_secs: s.leeway_secs,
            required_claims: s.required_claims.clone(),
            typ: s.typ.clone(),
            claims: s.claims.clone(),
            policy: s.policy.clone(),
            username_regex,
            jwks_refresh: Duration::from_secs(s.jwks_refresh_secs.max(10)),
            jwks_refetch_cooldown: Duration::from_secs(s.jwks_refetch_cooldown_secs),
            trusted_proxies: s.trusted_proxies.clone(),
        })
    }
}

/// A PEM public key for the configured algorithm family (RSA, EC or Ed25519).
fn pem_key(pem: &[u8], algorithms: &[Algorithm]) -> Result<VerificationKey, String> {
    use Algorithm::*;
    let family = |a: &Algorithm| match a {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => "rsa",
        ES256 | ES384 => "ec",
        EdDSA => "ed",
        _ => "hmac",
    };
    let families: std::collections::BTreeSet<_> = algorithms.iter().map(family).collect();
    let key = match families.iter().next().copied() {
        Some(f) if families.len() == 1 => match f {
            "rsa" => DecodingKey::from_rsa_pem(pem),
            "ec" => DecodingKey::from_ec_pem(pem),
            "ed" => DecodingKey::from_ed_pem(pem),
            _ => return Err("a PEM key cannot verify HMAC algorithms".into()),
        },
        _ => {
            return Err(
                "a PEM public key serves one algorithm family (RSA, EC or EdDSA): list only those"
                    .into(),
            );
        }
    }
    .map_err(|e| format!("public key is not a valid PEM for {algorithms:?}: {e}"))?;
    Ok(VerificationKey::new(None, None, key))
}
