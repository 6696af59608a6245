//! Configuration: a TOML file, then `BRIDGE_` environment variables (`__` separates nesting
//! levels, e.g. `BRIDGE_OIDC__CLIENT_SECRET`), validated once at startup.
//!
//! Every problem is reported at once, each with the setting's name and how to fix it, so an
//! operator does not have to restart the bridge once per typo.

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Deserialize, Serialize};
use url::Url;

pub use crate::authority::{
    crypto::SigningAlg,
    profile::{AuthoritySettings, TokenProfile, TokenProfileSettings},
};
pub use crate::trust::{
    issuer::{IssuerSettings, IssuerSpec, PROVIDER_ISSUER, Policy, RoutePolicy},
    mapping::ClaimMapping,
};

/// A secret read from configuration. `Debug` and `Serialize` never show it.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    /// Masked, but an absent secret stays visibly absent: the defaults pass through
    /// serialization on their way into the configuration, and a masked empty secret must not
    /// turn into a configured one.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds to. Port 0 picks a free port.
    pub listen: SocketAddr,
    /// The URL browsers use to reach the bridge (scheme, host, port; no path). The OIDC
    /// redirect URI is `<public_url>/auth/callback`; cookies get `Secure` and the `__Host-`
    /// prefix when it is https.
    pub public_url: Url,
    /// Directory with the built SPA (`trunk build --release` writes `dist/`).
    pub dist_dir: PathBuf,
    pub oidc: OidcSettings,
    pub session: SessionSettings,
    /// Claim mapping of the login provider's tokens.
    pub claims: ClaimMapping,
    /// More issuers whose JWTs the API accepts (gateways, other realms, service tokens...).
    #[serde(default)]
    pub issuers: Vec<IssuerSettings>,
    /// Extra requirements for API paths under a prefix.
    #[serde(default)]
    pub route_policies: Vec<RoutePolicy>,
    /// Sign-in with a JWT a gateway in front of the bridge puts on the request.
    #[serde(default)]
    pub gateway: Option<GatewaySettings>,
    /// The bridge as a token issuer: its signing keys, service users, `/oauth/token`.
    #[serde(default)]
    pub authority: Option<AuthoritySettings>,
    /// Tokens the bridge mints for one API (privacyIDEA...). Needs `[authority]`.
    #[serde(default)]
    pub token_profiles: Vec<TokenProfileSettings>,
    /// Username/password accounts kept by the bridge itself (off unless present). Needs
    /// `[authority]`: their token is minted.
    #[serde(default)]
    pub local_accounts: Option<LocalAccountsSettings>,
    /// REST APIs reached through the bridge under a path prefix.
    #[serde(default)]
    pub upstreams: Vec<UpstreamSettings>,
    /// Cross-origin calls from SPAs served elsewhere (off by default).
    #[serde(default)]
    pub cors: CorsSettings,
    /// Prometheus `/metrics` on a listener of its own (off by default).
    #[serde(default)]
    pub metrics: MetricsSettings,
    /// How log lines are written.
    #[serde(default)]
    pub log: LogSettings,
    /// What the web UI calls the product.
    #[serde(default)]
    pub ui: UiSettings,
}

/// `[ui]`: what the bridge fills into the SPA's `index.html` when it serves it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiSettings {
    /// The product's name: the page title, and the heading of the sign-in card.
    pub title: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            title: "login-bridge".to_owned(),
        }
    }
}

/// `[metrics]`: where `GET /metrics` is served. Never on the public listener: counters tell
/// an outsider how the bridge is used, so they get an address only operators reach.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Address of the metrics listener (`127.0.0.1:9464`); absent, no metrics at all.
    pub listen: Option<SocketAddr>,
}

/// `[log]`: the format of log lines on stderr, and which are written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// Which lines are written, in `RUST_LOG`'s syntax (`info`, `warn,login_bridge=debug`).
    /// `RUST_LOG`, when set, wins. Changes on a reload (SIGHUP).
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: "info".to_owned(),
        }
    }
}

/// `text` for people, `json` (one object a line) for log collectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// One `[[upstreams]]` entry: calls under `prefix` are authenticated like `/api`, then sent
/// on to `url` with the token that API accepts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// A short name for logs (default: the prefix).
    #[serde(default)]
    pub name: Option<String>,
    /// Path prefix, starting and ending with `/` (e.g. `/pi/`).
    pub prefix: String,
    /// Base URL of the API.
    pub url: Url,
    /// Drop the prefix from the forwarded path (`/pi/token/` → `<url>/token/`).
    #[serde(default = "yes")]
    pub strip_prefix: bool,
    /// The token the upstream gets: `forward` (the validated incoming one), `profile:<name>`
    /// (minted from a `[[token_profiles]]` entry for the caller) or `none`.
    #[serde(default = "default_upstream_token")]
    pub token: String,
    /// Header of the outgoing token (default: the profile's, else `authorization`).
    #[serde(default)]
    pub header: Option<String>,
    /// Scheme before the outgoing token, empty for the bare token (default: the profile's,
    /// else `Bearer`).
    #[serde(default)]
    pub scheme: Option<String>,
    /// Claims sent as headers: header name → claim path (`X-Auth-User = "preferred_username"`).
    /// Client-sent copies of these headers are always removed.
    #[serde(default)]
    pub forward_claims: std::collections::BTreeMap<String, String>,
    /// More request headers to remove before forwarding.
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// How long to wait for the upstream's response headers.
    #[serde(default = "default_upstream_timeout")]
    pub timeout_secs: u64,
    /// Largest request body forwarded.
    #[serde(default = "default_upstream_body")]
    pub max_body_bytes: usize,
    /// A page of the SPA that works with this API (`privacyidea`), announced at
    /// `GET /auth/upstreams`.
    #[serde(default)]
    pub ui: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_upstream_token() -> String {
    "forward".into()
}
fn default_upstream_timeout() -> u64 {
    30
}
fn default_upstream_body() -> usize {
    10 * 1024 * 1024
}

/// `[cors]`: origins whose pages may call the bridge's APIs with credentials.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsSettings {
    /// Exact origins (`https://ui.example.org`); `*` is refused.
    pub allowed_origins: Vec<String>,
}

/// `[gateway]`: a proxy or gateway in front has authenticated the user and puts a JWT on the
/// request; opening any UI page with it signs the user in (no form, no silent-SSO detour).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Names of `[[issuers]]` whose JWTs may sign users in this way.
    pub issuers: Vec<String>,
    /// The request header carrying the JWT: `Authorization` (then `Bearer <jwt>`) or a custom
    /// name such as `x-custom-tkn` carrying the bare JWT.
    #[serde(default = "default_gateway_header")]
    pub header: String,
    /// Peers (CIDRs) whose connections may set the header. From any other address the header
    /// is ignored for sign-in, and a custom header is removed before anything sees it.
    #[serde(default)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Accept the header from any peer. Only for a bridge that nothing but the gateway can
    /// reach; warned about at startup.
    #[serde(default)]
    pub allow_any_peer: bool,
    /// ZITADEL-style "JWT IdP" round trip: "Sign in" sends the browser to this URL (an existing
    /// app behind the gateway) with `state`, `expires` and `callback`; the app sends it on to
    /// `callback` with the same parameters, and the gateway adds the JWT header on the way.
    #[serde(default)]
    pub jwt_endpoint: Option<Url>,
    /// How long such a round trip may take.
    #[serde(default = "default_binding_ttl")]
    pub jwt_binding_ttl_secs: u64,
    /// When the silent (`prompt=none`) sign-in finds no provider session, take the round trip
    /// through `jwt_endpoint` instead of showing the login page.
    #[serde(default)]
    pub jwt_endpoint_after_silent_miss: bool,
}

fn default_binding_ttl() -> u64 {
    300
}

fn default_gateway_header() -> String {
    "authorization".into()
}

impl GatewaySettings {
    /// Whether the header is `Authorization` (with the `Bearer` scheme).
    pub fn uses_authorization(&self) -> bool {
        self.header.eq_ignore_ascii_case("authorization")
    }

    /// Whether a connection from `peer` may sign users in with the header.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.allow_any_peer || self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// The provider's issuer, exactly as in its discovery document
    /// (Keycloak: `https://HOST/realms/REALM`).
    pub issuer: String,
    pub client_id: String,
    /// Confidential client secret. Prefer `BRIDGE_OIDC__CLIENT_SECRET` or `client_secret_file`.
    #[serde(default)]
    pub client_secret: Secret,
    /// File holding the client secret (trailing whitespace trimmed).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    pub scopes: Vec<String>,
    /// The `aud` an access token must carry to be accepted by the API and handed to the SPA.
    /// Keycloak's default `account` is refused: configure an audience mapper.
    pub api_audience: String,
    /// Audiences besides `api_audience` the provider's access token may carry and still be
    /// handed to the SPA. None by default: a token the SPA holds is good at its API only.
    #[serde(default)]
    pub extra_token_audiences: Vec<String>,
    /// Scopes besides `scopes` the access token may carry and still be handed to the SPA.
    #[serde(default)]
    pub extra_token_scopes: Vec<String>,
    /// Audiences besides `client_id` an ID token may carry (OIDC Core §3.1.3.7): some
    /// providers put a client's additional audiences (LemonLDAP::NG) into its ID tokens too.
    /// `api_audience` is always trusted. With more than one audience, `azp` must be the client.
    #[serde(default)]
    pub trusted_id_token_audiences: Vec<String>,
    /// Where the provider sends the browser after end-session. Default:
    /// `<public_url>/login?signed_out=1`.
    #[serde(default)]
    pub post_logout_redirect_uri: Option<Url>,
    /// Try a `prompt=none` sign-in by top-level redirect when a browser opens the UI
    /// without a session.
    pub silent_sso: bool,
    /// After a failed silent attempt, wait this long before trying again for the same browser.
    pub silent_sso_retry_secs: u64,
    /// Refresh the access token this many seconds before it expires.
    pub refresh_before_expiry_secs: u64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// A back-channel logout token issued longer ago than this (plus `leeway_secs`) is
    /// refused: the provider sends it when the session ends, so an old one is a replay whose
    /// `jti` may have been forgotten.
    pub logout_token_max_age_secs: u64,
    /// Upper bound of the back-off between discovery attempts at startup.
    pub discovery_max_backoff_secs: u64,
    /// Minimum time between two JWKS fetches caused by unknown `kid`s.
    pub jwks_refetch_cooldown_secs: u64,
    /// Timeout of every request to the provider.
    pub http_timeout_secs: u64,
}

impl OidcSettings {
    /// The audiences an ID token may carry besides the client: `api_audience` and
    /// `trusted_id_token_audiences`.
    pub fn trusted_id_token_audiences(&self) -> Vec<String> {
        std::iter::once(&self.api_audience)
            .chain(&self.trusted_id_token_audiences)
            .cloned()
            .collect()
    }
}

fn default_absolute_timeout() -> i64 {
    24 * 3600
}

/// `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SameSiteMode {
    /// Sent on top-level navigations from other sites: the provider's redirect back carries it.
    #[default]
    Lax,
    /// Never sent on requests started by another site.
    Strict,
}

/// `[local_accounts]`: sign-in with a username and password kept by the bridge (`login-bridge
/// user ...`), beside SSO. Attempts are limited per account and per client address: each
/// allows a burst, then one attempt per `..._recovery_secs`; a refused attempt gets `429` with
/// `Retry-After`. Each failed attempt is answered after a delay that doubles with every
/// consecutive failure of the account (or address), from `failure_delay_ms` up to
/// `max_failure_delay_ms`.
///
/// The default limits follow OWASP's Authentication Cheat Sheet (a lockout threshold of a few
/// attempts per account, a lockout measured in minutes: its example is ten) and its Credential
/// Stuffing Prevention Cheat Sheet (limit what one address tries across accounts, over a burst
/// and a long period, temporarily): 5 attempts per account, then one every 10 minutes; 20 per
/// address, then one every 15 minutes. A password sprayer on one address gets about 116 guesses
/// a day, not 14 400 (20 then one every 6 s, the limits before).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LocalAccountsSettings {
    /// The `[[token_profiles]]` entry a local user's token is minted from (no provider token
    /// exists). Default: `session.token_profile`.
    pub token_profile: Option<String>,
    pub attempts_per_account: u32,
    pub account_recovery_secs: u64,
    pub attempts_per_address: u32,
    pub address_recovery_secs: u64,
    pub failure_delay_ms: u64,
    pub max_failure_delay_ms: u64,
    /// Proxies in front of the bridge: from these peers, the last `X-Forwarded-For` hop is
    /// the client address the per-address limit counts (else every user would share the
    /// proxy's allowance).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// One more attempt per account every 10 minutes once its burst is spent.
const DEFAULT_ACCOUNT_RECOVERY_SECS: u64 = 10 * 60;
/// One more attempt per client address every 15 minutes once its burst is spent.
const DEFAULT_ADDRESS_RECOVERY_SECS: u64 = 15 * 60;

impl Default for LocalAccountsSettings {
    fn default() -> Self {
        Self {
            token_profile: None,
            attempts_per_account: 5,
            account_recovery_secs: DEFAULT_ACCOUNT_RECOVERY_SECS,
            attempts_per_address: 20,
            address_recovery_secs: DEFAULT_ADDRESS_RECOVERY_SECS,
            failure_delay_ms: 250,
            max_failure_delay_ms: 4000,
            trusted_proxies: Vec::new(),
        }
    }
}

impl LocalAccountsSettings {
    /// The profile local users' tokens are minted from.
    pub fn profile<'a>(&'a self, session: &'a SessionSettings) -> Option<&'a str> {
        self.token_profile
            .as_deref()
            .or(session.token_profile.as_deref())
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSettings {
    /// Where sessions live. `sqlite` (the default) is one file that survives restarts.
    #[serde(default)]
    pub store: StoreKind,
    /// SQLite database file for sessions (created when missing; survives restarts).
    pub sqlite_path: PathBuf,
    /// A session ends after this long without activity.
    pub idle_timeout_secs: i64,
    /// A signed-in session ends this long after its sign-in, whatever its activity.
    #[serde(default = "default_absolute_timeout")]
    pub absolute_timeout_secs: i64,
    /// `SameSite` of the session cookie: `lax` (default) or `strict` (see the README: the
    /// provider's redirect back is then followed by one same-site hop).
    #[serde(default)]
    pub same_site: SameSiteMode,
    /// The token `/auth/session` hands the SPA: absent, the provider's (or gateway's) access
    /// token; the name of a `[[token_profiles]]` entry, a token the bridge mints from it.
    #[serde(default)]
    pub token_profile: Option<String>,
    /// The shared store's address for `redis` (`redis://[:password@]host:6379/0`, `rediss://`
    /// for TLS) and `postgres` (`postgres://user:password@host/db`). It may hold a password:
    /// prefer `BRIDGE_SESSION__URL` or `url_file`.
    #[serde(default)]
    pub url: Secret,
    /// A file holding `url` (a mounted secret).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// `redis` only: a session write (sign-in, refreshed tokens, logout), the refresh lock
    /// and a DPoP replay record count as done only once this many replicas confirmed them
    /// (Redis `WAIT`, at most 1 s; else the request gets a 503). 0 (default): done when the
    /// primary has them, so a failover can lose the last writes the replicas had not got yet
    /// (see docs/redis-ha.md).
    #[serde(default)]
    pub redis_wait_replicas: u32,
    /// DPoP (RFC 9449): whether the SPA's token is bound to the browser's non-extractable key.
    /// `off` (default): Bearer tokens as before; `optional`: a session is bound on its first
    /// call that carries a proof; `required`: a session call without a valid proof is refused.
    /// Binding needs a token the bridge mints (`session.token_profile`).
    #[serde(default)]
    pub dpop: DpopMode,
    /// With DPoP on, the bridge hands out server nonces (`DPoP-Nonce`, RFC 9449 section 8)
    /// and every proof must carry a recent one.
    #[serde(default)]
    pub dpop_nonce: bool,
    /// How old a DPoP proof's `iat` may be (seconds; `oidc.leeway_secs` is added either way).
    #[serde(default = "default_dpop_proof_max_age")]
    pub dpop_proof_max_age_secs: i64,
}

fn default_dpop_proof_max_age() -> i64 {
    60
}

/// Whether the SPA's token is bound to a browser key (`session.dpop`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DpopMode {
    /// Bearer tokens; DPoP proofs are ignored.
    #[default]
    Off,
    /// A session is bound on its first call that carries a proof; until then, Bearer.
    Optional,
    /// Every session call carries a valid proof; every token is bound.
    Required,
}

impl DpopMode {
    /// The setting's value, as written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            DpopMode::Off => "off",
            DpopMode::Optional => "optional",
            DpopMode::Required => "required",
        }
    }
}

/// The engine that keeps sessions, the session index, the authority's keys and service users,
/// replay records and refresh coordination.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file (`session.sqlite_path`): the embedded default for a single bridge.
    #[default]
    Sqlite,
    /// Redis or Valkey at `session.url`, shared by every replica.
    Redis,
    /// PostgreSQL at `session.url`, shared by every replica.
    Postgres,
}

/// The configuration after every check, with the trusted issuers compiled: what the server
/// and the CLI run on. Only [`Settings::compile`] (and so [`Settings::load`]) makes one.
#[derive(Clone)]
pub struct Config {
    pub settings: Settings,
    /// The `[[issuers]]` entries, compiled (keys read, algorithms parsed, patterns built).
    pub issuers: Vec<IssuerSpec>,
    /// The `[[token_profiles]]`, checked.
    pub profiles: Vec<TokenProfile>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("settings", &self.settings)
            .field(
                "issuers",
                &self.issuers.iter().map(|i| &i.name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: Url::parse("http://localhost:8080").unwrap_or_else(|_| unreachable_url()),
            dist_dir: PathBuf::from("dist"),
            oidc: OidcSettings {
                issuer: String::new(),
                client_id: String::new(),
                client_secret: Secret::default(),
                client_secret_file: None,
                scopes: vec!["openid".into(), "profile".into(), "email".into()],
                api_audience: String::new(),
                extra_token_audiences: Vec::new(),
                extra_token_scopes: Vec::new(),
                trusted_id_token_audiences: Vec::new(),
                post_logout_redirect_uri: None,
                silent_sso: true,
                silent_sso_retry_secs: 300,
                refresh_before_expiry_secs: 60,
                leeway_secs: 30,
                logout_token_max_age_secs: 300,
                discovery_max_backoff_secs: 30,
                jwks_refetch_cooldown_secs: 30,
                http_timeout_secs: 10,
            },
            session: SessionSettings {
                store: StoreKind::Sqlite,
                sqlite_path: PathBuf::from("login-bridge.sqlite"),
                idle_timeout_secs: 8 * 3600,
                absolute_timeout_secs: default_absolute_timeout(),
                same_site: SameSiteMode::Lax,
                token_profile: None,
                url: Secret::default(),
                url_file: None,
                redis_wait_replicas: 0,
                dpop: DpopMode::Off,
                dpop_nonce: false,
                dpop_proof_max_age_secs: default_dpop_proof_max_age(),
            },
            claims: ClaimMapping::default(),
            issuers: Vec::new(),
            route_policies: Vec::new(),
            gateway: None,
            authority: None,
            token_profiles: Vec::new(),
            local_accounts: None,
            upstreams: Vec::new(),
            cors: CorsSettings::default(),
            metrics: MetricsSettings::default(),
            log: LogSettings::default(),
            ui: UiSettings::default(),
        }
    }
}

// `Url::parse` of a literal cannot fail; this keeps `Default` free of unwrap.
#[allow(clippy::panic)]
fn unreachable_url() -> Url {
    panic!("static URL literal is valid")
}

/// Why the configuration could not be used. The message lists every problem found.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("configuration could not be read: {0}")]
    Load(String),
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<String>),
}

impl Settings {
    /// Defaults, then the TOML file (if given), then `BRIDGE_*` environment variables; then
    /// every check, reported at once.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(SettingsError::Load(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("BRIDGE_").split("__"));
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| SettingsError::Load(e.to_string()))?;
        settings.resolve_secrets()?;
        settings.compile()
    }

    /// Checks everything and compiles the trusted issuers: the one place that says whether a
    /// configuration is usable, listing every problem.
    pub fn compile(self) -> Result<Config, SettingsError> {
        let mut problems = self.problems();
        let mut issuers = Vec::with_capacity(self.issuers.len());
        let mut seen = std::collections::HashSet::new();
        for entry in &self.issuers {
            match IssuerSpec::compile(entry) {
                Ok(spec) => {
                    if !seen.insert(spec.issuer.clone()) {
                        problems.push(format!("issuers: {} is configured twice", spec.issuer));
                    }
                    issuers.push(spec);
                }
                Err(e) => problems.push(e.to_string()),
            }
        }
        if let Some(gateway) = &self.gateway {
            for name in &gateway.issuers {
                // `oidc` is the login provider itself: a gateway in front may inject the
                // provider's own access tokens (a Keycloak realm behind oauth2-proxy). Its
                // tokens stay accepted from any peer: the SPA of a code-flow sign-in sends
                // them from wherever the browser is.
                if name == PROVIDER_ISSUER {
                    continue;
                }
                match issuers.iter_mut().find(|i| &i.name == name) {
                    // A gateway's issuer is trusted for requests through the gateway only (a
                    // stolen gateway JWT is worthless elsewhere), unless the entry says from
                    // where itself.
                    Some(issuer) => {
                        if issuer.trusted_proxies.is_none() && !gateway.allow_any_peer {
                            issuer.trusted_proxies = Some(gateway.trusted_proxies.clone());
                        }
                    }
                    None => problems.push(format!(
                        "gateway.issuers: {name:?} is not the name of an [[issuers]] entry \
                         (or \"{PROVIDER_ISSUER}\", the login provider)"
                    )),
                }
            }
        }
        let profiles = self.compile_profiles(&mut problems);
        self.check_upstreams(&mut problems);
        self.check_dpop(&mut problems);
        if problems.is_empty() {
            Ok(Config {
                settings: self,
                issuers,
                profiles,
            })
        } else {
            Err(SettingsError::Invalid(problems))
        }
    }

    /// The token profiles, and what the bridge as issuer needs.
    fn compile_profiles(&self, problems: &mut Vec<String>) -> Vec<TokenProfile> {
        let default_alg = match &self.authority {
            Some(a) => SigningAlg::parse(&a.algorithm).unwrap_or_else(|| {
                problems.push(format!(
                    "authority.algorithm: {:?} is not one of ES256, RS256, PS256, EdDSA",
                    a.algorithm
                ));
                SigningAlg::ES256
            }),
            None => SigningAlg::ES256,
        };
        if let Some(a) = &self.authority {
            let sources = a.key_encryption_key_file.is_some() as u8
                + a.key_encryption_key_env.is_some() as u8;
            if sources != 1 {
                problems.push(
                    "authority: set exactly one of key_encryption_key_file and \
                     key_encryption_key_env (32 random bytes, base64: `openssl rand -base64 32`)"
                        .into(),
                );
            }
            if a.create_key_encryption_key && a.key_encryption_key_file.is_none() {
                problems.push(
                    "authority.create_key_encryption_key: needs key_encryption_key_file (the \
                     file to create)"
                        .into(),
                );
            }
            if a.service_token_lifetime_secs == 0 || a.service_token_lifetime_secs > 86_400 {
                problems.push("authority.service_token_lifetime_secs: between 1 and 86400".into());
            }
        } else if !self.token_profiles.is_empty() || self.session.token_profile.is_some() {
            problems.push(
                "token_profiles / session.token_profile need [authority] (the bridge's signing \
                 keys): add it with key_encryption_key_file"
                    .into(),
            );
        }
        let mut profiles = Vec::new();
        for entry in &self.token_profiles {
            if profiles.iter().any(|p: &TokenProfile| p.name == entry.name) {
                problems.push(format!(
                    "token_profiles: {:?} is configured twice",
                    entry.name
                ));
            }
            match TokenProfile::compile(entry, default_alg) {
                Ok(p) => profiles.push(p),
                Err(mut e) => problems.append(&mut e),
            }
        }
        if let Some(name) = &self.session.token_profile
            && !self.token_profiles.iter().any(|p| &p.name == name)
        {
            problems.push(format!(
                "session.token_profile: {name:?} is not the name of a [[token_profiles]] entry"
            ));
        }
        if let Some(local) = &self.local_accounts {
            match local.profile(&self.session) {
                None => problems.push(
                    "local_accounts: set local_accounts.token_profile (or session.token_profile) \
                     to a [[token_profiles]] entry: a local user's token is minted from it"
                        .into(),
                ),
                Some(name) if !self.token_profiles.iter().any(|p| p.name == name) => {
                    problems.push(format!(
                        "local_accounts.token_profile: {name:?} is not the name of a \
                         [[token_profiles]] entry"
                    ))
                }
                Some(_) => {}
            }
            if local.attempts_per_account == 0
                || local.attempts_per_address == 0
                || local.account_recovery_secs == 0
                || local.address_recovery_secs == 0
            {
                problems.push(
                    "local_accounts: attempts_per_* and *_recovery_secs must be at least 1".into(),
                );
            }
            if local.failure_delay_ms > local.max_failure_delay_ms
                || local.max_failure_delay_ms > 60_000
            {
                problems.push(
                    "local_accounts: failure_delay_ms <= max_failure_delay_ms <= 60000".into(),
                );
            }
        }
        profiles
    }

    /// Upstreams: prefixes that clash with nothing, known token profiles, valid header names;
    /// CORS origins that are exact.
    fn check_upstreams(&self, problems: &mut Vec<String>) {
        const RESERVED: [&str; 6] = [
            "/auth/",
            "/api/",
            "/oauth/",
            "/.well-known/",
            "/healthz",
            "/readyz",
        ];
        let mut seen = std::collections::HashSet::new();
        for u in &self.upstreams {
            let at = format!("upstreams[{}]", u.name.as_deref().unwrap_or(&u.prefix));
            let prefix_ok = u.prefix.len() > 2
                && u.prefix.starts_with('/')
                && u.prefix.ends_with('/')
                && !u.prefix.contains("//")
                && u.prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c));
            if !prefix_ok {
                problems.push(format!(
                    "{at}.prefix: {:?} must start and end with '/' (e.g. \"/pi/\")",
                    u.prefix
                ));
            } else if RESERVED
                .iter()
                .any(|r| u.prefix.starts_with(r) || r.starts_with(&u.prefix))
            {
                problems.push(format!(
                    "{at}.prefix: {:?} overlaps the bridge's own paths",
                    u.prefix
                ));
            }
            if !seen.insert(u.prefix.clone()) {
                problems.push(format!("{at}.prefix: {:?} is configured twice", u.prefix));
            }
            if !matches!(u.url.scheme(), "http" | "https") {
                problems.push(format!("{at}.url: must be an http(s) URL"));
            }
            match u.token.as_str() {
                "forward" | "none" => {}
                t => match t.strip_prefix("profile:") {
                    Some(name) if self.token_profiles.iter().any(|p| p.name == name) => {}
                    Some(name) => problems.push(format!(
                        "{at}.token: {name:?} is not the name of a [[token_profiles]] entry"
                    )),
                    None => problems.push(format!(
                        "{at}.token: {t:?} is not \"forward\", \"profile:<name>\" or \"none\""
                    )),
                },
            }
            let headers = u
                .header
                .iter()
                .chain(u.forward_claims.keys())
                .chain(u.strip_headers.iter());
            for h in headers {
                if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    problems.push(format!("{at}: {h:?} is not a valid header name"));
                }
            }
            if u.timeout_secs == 0 {
                problems.push(format!("{at}.timeout_secs: must be positive"));
            }
        }
        for origin in &self.cors.allowed_origins {
            let exact = Url::parse(origin)
                .is_ok_and(|u| u.origin().ascii_serialization() == origin.trim_end_matches('/'));
            if origin.contains('*') || !exact {
                problems.push(format!(
                    "cors.allowed_origins: {origin:?} must be an exact origin such as \
                     \"https://ui.example.org\" (no wildcard, no path)"
                ));
            }
        }
    }

    /// `session.dpop`: binding needs a token the bridge mints for every sign-in; the
    /// provider's or a gateway's token cannot carry the browser's key.
    fn check_dpop(&self, problems: &mut Vec<String>) {
        if self.session.dpop != DpopMode::Off && self.session.token_profile.is_none() {
            problems.push(format!(
                "session.dpop = \"{}\": binding the SPA's token to the browser's key needs a \
                 token the bridge mints, but without session.token_profile the SPA gets the \
                 provider's (or a gateway's) token. Set session.token_profile to a \
                 [[token_profiles]] entry (with [authority]), or session.dpop = \"off\"",
                self.session.dpop.as_str()
            ));
        }
        if !(1..=3600).contains(&self.session.dpop_proof_max_age_secs) {
            problems.push("session.dpop_proof_max_age_secs: between 1 and 3600".into());
        }
    }

    /// What a usable configuration may still get wrong: logged at startup (and printed by
    /// `check-config`), one sentence each.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.session.dpop != DpopMode::Off {
            for u in self.upstreams.iter().filter(|u| u.token == "forward") {
                warnings.push(format!(
                    "upstreams[{}]: with session.dpop on, the API at {} receives the SPA's \
                     DPoP-bound token (token = \"forward\"): it must check DPoP proofs itself, \
                     or use token = \"profile:<name>\" to get a token the bridge mints for it",
                    u.name.as_deref().unwrap_or(&u.prefix),
                    u.prefix
                ));
            }
        }
        if self.session.dpop == DpopMode::Off && self.session.dpop_nonce {
            warnings.push("session.dpop_nonce has no effect while session.dpop = \"off\"".into());
        }
        warnings
    }

    fn resolve_secrets(&mut self) -> Result<(), SettingsError> {
        if let Some(path) = &self.oidc.client_secret_file {
            let value = std::fs::read_to_string(path).map_err(|e| {
                SettingsError::Invalid(vec![format!(
                    "oidc.client_secret_file: cannot read {}: {e}",
                    path.display()
                )])
            })?;
            self.oidc.client_secret = Secret::new(value.trim_end());
        }
        if let Some(path) = &self.session.url_file {
            let value = std::fs::read_to_string(path).map_err(|e| {
                SettingsError::Invalid(vec![format!(
                    "session.url_file: cannot read {}: {e}",
                    path.display()
                )])
            })?;
            self.session.url = Secret::new(value.trim());
        }
        Ok(())
    }

    /// Checks everything that can be checked without the network, trusted issuers included.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.clone().compile().map(drop)
    }

    /// The problems of the settings themselves (issuers are checked by [`Self::compile`]).
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        match self.public_url.scheme() {
            "http" | "https" => {}
            other => problems.push(format!(
                "public_url: scheme must be http or https, not {other:?}"
            )),
        }
        if self.public_url.path() != "/" || self.public_url.query().is_some() {
            problems.push(
                "public_url: give only scheme, host and port (e.g. https://ui.example.org), no path"
                    .into(),
            );
        }
        match Url::parse(&self.oidc.issuer) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            // The packaged configuration ships without a provider: say what to set, first.
            _ if self.oidc.issuer.trim().is_empty() => problems.insert(
                0,
                "oidc.issuer: no login provider is configured; set oidc.issuer to its issuer \
                 URL, e.g. https://keycloak.example.org/realms/myrealm (BRIDGE_OIDC__ISSUER), \
                 with oidc.client_id, oidc.client_secret and oidc.api_audience"
                    .into(),
            ),
            _ => problems.push(format!(
                "oidc.issuer: {:?} is not an http(s) URL; set it to the provider's issuer, \
                 e.g. https://keycloak.example.org/realms/myrealm (BRIDGE_OIDC__ISSUER)",
                self.oidc.issuer
            )),
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            problems.push(format!(
                "log.level: {:?} is not a log filter ({e}); e.g. \"info\" or \"warn,login_bridge=debug\"",
                self.log.level
            ));
        }
        let title = self.ui.title.trim();
        if title.is_empty() || title.chars().count() > 80 || title.chars().any(char::is_control) {
            problems
                .push("ui.title: give the product's name, 1 to 80 characters on one line".into());
        }
        if let Some(problem) = self.claims.problem() {
            // The login provider's mapping (`[claims]`).
            problems.push(problem);
        }
        if self.oidc.client_id.is_empty() {
            problems.push(
                "oidc.client_id: missing; set the OIDC client's id (BRIDGE_OIDC__CLIENT_ID)".into(),
            );
        }
        if self.oidc.client_secret.is_empty() {
            problems.push(
                "oidc.client_secret: missing; the bridge is a confidential client. Set \
                 BRIDGE_OIDC__CLIENT_SECRET or oidc.client_secret_file (Keycloak: client > Credentials)"
                    .into(),
            );
        }
        if self.oidc.api_audience.is_empty() {
            problems.push(
                "oidc.api_audience: missing; set the audience your API expects in access tokens \
                 (Keycloak: add an audience mapper to the client)"
                    .into(),
            );
        } else if self.oidc.api_audience == "account" {
            problems.push(
                "oidc.api_audience: \"account\" is Keycloak's default audience and proves nothing \
                 about your API; configure an audience mapper and use its value"
                    .into(),
            );
        }
        if !self.oidc.scopes.iter().any(|s| s == "openid") {
            problems.push("oidc.scopes: must include \"openid\"".into());
        }
        if let Some(metrics) = self.metrics.listen
            && metrics.port() != 0
            && metrics == self.listen
        {
            problems.push(
                "metrics.listen: must differ from listen; metrics get a listener of their own"
                    .into(),
            );
        }
        if self.session.idle_timeout_secs <= 0 {
            problems.push("session.idle_timeout_secs: must be positive".into());
        }
        if self.session.absolute_timeout_secs <= 0 {
            problems.push("session.absolute_timeout_secs: must be positive".into());
        }
        let url = self.session.url.expose();
        let (store, schemes): (&str, &[&str]) = match self.session.store {
            StoreKind::Sqlite => ("sqlite", &[]),
            StoreKind::Redis => {
                // One server, Sentinel or Cluster: checked by the Redis store's own rules.
                if let Err(problem) = crate::session::redis::check_url(url) {
                    problems.push(problem);
                }
                ("redis", &[])
            }
            StoreKind::Postgres => ("postgres", &["postgres", "postgresql"]),
        };
        if self.session.redis_wait_replicas > 0 && self.session.store != StoreKind::Redis {
            problems.push("session.redis_wait_replicas: only for session.store = \"redis\"".into());
        }
        if !schemes.is_empty() {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !scheme.is_some_and(|s| schemes.contains(&s)) {
                // The URL may hold a password: name only what is expected, never echo it.
                problems.push(format!(
                    "session.url: session.store = \"{store}\" needs a {}:// URL \
                     (BRIDGE_SESSION__URL or session.url_file)",
                    schemes[0]
                ));
            }
        }
        if let Some(gateway) = &self.gateway {
            if gateway.issuers.is_empty() {
                problems.push(
                    "gateway.issuers: name at least one [[issuers]] entry whose JWTs sign users in"
                        .into(),
                );
            }
            if axum::http::HeaderName::from_bytes(gateway.header.as_bytes()).is_err() {
                problems.push(format!(
                    "gateway.header: {:?} is not a valid header name",
                    gateway.header
                ));
            }
            if let Some(endpoint) = &gateway.jwt_endpoint
                && !matches!(endpoint.scheme(), "http" | "https")
            {
                problems.push("gateway.jwt_endpoint: must be an http(s) URL".into());
            }
            if gateway.jwt_binding_ttl_secs == 0 {
                problems.push("gateway.jwt_binding_ttl_secs: must be positive".into());
            }
            if gateway.trusted_proxies.is_empty() && !gateway.allow_any_peer {
                problems.push(
                    "gateway.trusted_proxies: list the gateway's addresses (CIDRs such as \
                     10.0.0.5/32); anyone else could set the header. Only if nothing but the \
                     gateway can reach the bridge, set gateway.allow_any_peer = true instead"
                        .into(),
                );
            }
        }
        problems
    }

    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/callback", self.origin())
    }

    /// `scheme://host[:port]` of the public URL, without a trailing slash.
    pub fn origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    pub fn post_logout_redirect_uri(&self) -> String {
        match &self.oidc.post_logout_redirect_uri {
            Some(u) => u.to_string(),
            None => format!("{}/login?signed_out=1", self.origin()),
        }
    }

    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Settings {
        let mut s = Settings::default();
        s.oidc.issuer = "https://idp.example.org/realms/r".into();
        s.oidc.client_id = "ui".into();
        s.oidc.client_secret = Secret::new("s3cret");
        s.oidc.api_audience = "my-api".into();
        s
    }

    #[test]
    fn a_complete_configuration_is_valid() {
        assert!(valid().validate().is_ok());
    }

    /// `valid()` with `toml` merged in.
    fn valid_with(toml: &str) -> Settings {
        match Figment::from(Serialized::defaults(valid()))
            .merge(Toml::string(toml))
            .extract::<Settings>()
        {
            Ok(s) => s,
            Err(e) => panic!("{toml}: {e}"),
        }
    }

    const MINTED_SPA_TOKEN: &str = "[authority]\nkey_encryption_key_file = \"kek\"\n\
        [[token_profiles]]\nname = \"spa\"\n";

    #[test]
    fn dpop_without_a_token_the_bridge_mints_is_refused_naming_the_fix() {
        for mode in ["optional", "required"] {
            let s = valid_with(&format!("[session]\ndpop = \"{mode}\"\n"));
            let Err(SettingsError::Invalid(problems)) = s.validate() else {
                panic!("dpop = {mode} without session.token_profile must be refused");
            };
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].starts_with(&format!("session.dpop = \"{mode}\"")),
                "{problems:?}"
            );
            assert!(
                problems[0].contains("Set session.token_profile to a [[token_profiles]] entry"),
                "{problems:?}"
            );
        }
        // A local account's own profile is not enough: SSO sign-ins would get the provider's.
        let local_only = valid_with(&format!(
            "{MINTED_SPA_TOKEN}[local_accounts]\ntoken_profile = \"spa\"\n\
             [session]\ndpop = \"required\"\n"
        ));
        assert!(local_only.validate().is_err());
        let minted = valid_with(&format!(
            "[session]\ndpop = \"required\"\ntoken_profile = \"spa\"\n{MINTED_SPA_TOKEN}"
        ));
        assert!(minted.validate().is_ok(), "{:?}", minted.validate().err());
        assert!(valid_with("[session]\ndpop = \"off\"\n").validate().is_ok());
    }

    #[test]
    fn dpop_is_off_unless_configured_and_an_unknown_mode_is_refused() {
        assert_eq!(valid().session.dpop, DpopMode::Off);
        let unknown = Figment::from(Serialized::defaults(valid()))
            .merge(Toml::string("[session]\ndpop = \"on\"\n"))
            .extract::<Settings>();
        assert!(unknown.is_err());
        let s = valid_with(&format!(
            "[session]\ndpop = \"optional\"\ntoken_profile = \"spa\"\n\
             dpop_proof_max_age_secs = 0\n{MINTED_SPA_TOKEN}"
        ));
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("a proof age of 0 must be refused");
        };
        assert!(
            problems[0].contains("session.dpop_proof_max_age_secs"),
            "{problems:?}"
        );
    }

    #[test]
    fn with_dpop_on_a_forwarding_upstream_gets_a_warning_and_a_minting_one_none() {
        let upstreams = "[[upstreams]]\nname = \"fwd\"\nprefix = \"/fwd/\"\nurl = \"http://127.0.0.1:1/\"\n\
             [[upstreams]]\nprefix = \"/minted/\"\nurl = \"http://127.0.0.1:1/\"\n\
             token = \"profile:spa\"\n";
        let on = valid_with(&format!(
            "[session]\ndpop = \"required\"\ntoken_profile = \"spa\"\n{MINTED_SPA_TOKEN}{upstreams}"
        ));
        assert!(on.validate().is_ok(), "{:?}", on.validate().err());
        let warnings = on.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("upstreams[fwd]"), "{warnings:?}");
        assert!(
            warnings[0].contains("must check DPoP proofs itself")
                && warnings[0].contains("token = \"profile:<name>\""),
            "{warnings:?}"
        );
        let off = valid_with(&format!(
            "[session]\ntoken_profile = \"spa\"\n{MINTED_SPA_TOKEN}{upstreams}"
        ));
        assert!(off.warnings().is_empty(), "{:?}", off.warnings());
    }

    #[test]
    fn every_problem_is_reported_with_how_to_fix_it() {
        let mut s = valid();
        s.oidc.client_secret = Secret::default();
        s.oidc.issuer = "not a url".into();
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("expected invalid");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("BRIDGE_OIDC__CLIENT_SECRET"))
        );
        assert!(problems.iter().any(|p| p.contains("oidc.issuer")));
    }

    #[test]
    fn the_ui_title_defaults_to_the_product_and_must_be_one_short_line() {
        assert_eq!(valid().ui.title, "login-bridge");
        for bad in ["", "  ", "two\nlines", &"x".repeat(81)] {
            let mut s = valid();
            s.ui.title = bad.to_owned();
            let Err(SettingsError::Invalid(problems)) = s.validate() else {
                panic!("{bad:?} accepted");
            };
            assert!(
                problems.iter().any(|p| p.contains("ui.title")),
                "{problems:?}"
            );
        }
        let mut s = valid();
        s.ui.title = "Acme Staff Portal".into();
        assert!(s.validate().is_ok());
    }

    #[test]
    fn keycloaks_default_account_audience_is_refused() {
        let mut s = valid();
        s.oidc.api_audience = "account".into();
        assert!(s.validate().is_err());
    }

    #[test]
    fn without_a_secret_anywhere_loading_reports_it_missing() {
        let dir = std::env::temp_dir().join(format!("lb-settings-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join("no-secret.toml");
        let written = std::fs::write(
            &file,
            "[oidc]\nissuer = \"https://idp.example.org\"\nclient_id = \"ui\"\napi_audience = \"api\"\n",
        );
        assert!(written.is_ok());
        match Settings::load(Some(&file)) {
            Err(SettingsError::Invalid(problems)) => {
                assert!(
                    problems.iter().any(|p| p.contains("oidc.client_secret")),
                    "{problems:?}"
                );
            }
            other => panic!("expected a missing secret, got {other:?}"),
        }
    }

    #[test]
    fn waiting_for_redis_replicas_is_refused_for_the_other_stores() {
        let mut s = valid();
        s.session.redis_wait_replicas = 1;
        let problems = s.problems().join("\n");
        assert!(
            problems.contains("session.redis_wait_replicas"),
            "{problems}"
        );
        s.session.store = StoreKind::Redis;
        s.session.url = Secret::new("redis-sentinel://127.0.0.1:26379/0?sentinelServiceName=m");
        assert!(
            !s.problems()
                .iter()
                .any(|p| p.contains("redis_wait_replicas"))
        );
    }

    #[test]
    fn a_shared_store_needs_its_url_and_the_url_is_never_echoed() {
        let mut s = valid();
        s.session.store = StoreKind::Redis;
        let problems = s.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("session.url") && p.contains("redis://")),
            "{problems:?}"
        );
        s.session.url = Secret::new("postgres://bridge:hunter2@db/bridge");
        let problems = s.problems().join("\n");
        assert!(problems.contains("session.url"), "{problems}");
        assert!(
            !problems.contains("hunter2"),
            "the password leaked: {problems}"
        );
        s.session.url = Secret::new("redis://:hunter2@127.0.0.1:6379/0");
        assert!(!s.problems().iter().any(|p| p.contains("session.url")));
        s.session.url = Secret::new(
            "redis-sentinel://:hunter2@127.0.0.1:26379/0?sentinelServiceName=m&node=h:26380",
        );
        assert!(!s.problems().iter().any(|p| p.contains("session.url")));
        s.session.url = Secret::new("redis-cluster://:hunter2@127.0.0.1:7000?node=h:7001");
        assert!(!s.problems().iter().any(|p| p.contains("session.url")));
        s.session.url = Secret::new("redis-sentinel://:hunter2@127.0.0.1:26379/0");
        let problems = s.problems().join("\n");
        assert!(problems.contains("sentinelServiceName"), "{problems}");
        assert!(!problems.contains("hunter2"), "{problems}");
        s.session.store = StoreKind::Postgres;
        s.session.url = Secret::new("postgres://bridge@127.0.0.1/bridge");
        assert!(!s.problems().iter().any(|p| p.contains("session.url")));
    }

    #[test]
    fn the_logout_token_age_bound_is_five_minutes_unless_configured() {
        assert_eq!(Settings::default().oidc.logout_token_max_age_secs, 300);
        let configured = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::string("[oidc]\nlogout_token_max_age_secs = 60\n"))
            .extract::<Settings>()
            .map(|s| s.oidc.logout_token_max_age_secs);
        assert_eq!(configured.ok(), Some(60));
    }

    #[test]
    fn the_session_store_is_chosen_in_settings_and_an_unknown_one_is_refused() {
        let parse = |toml: &str| {
            Figment::from(Serialized::defaults(Settings::default()))
                .merge(Toml::string(toml))
                .extract::<Settings>()
                .map_err(|e| e.to_string())
        };
        let chosen = parse(
            "[session]\nstore = \"sqlite\"\nsqlite_path = \"x.sqlite\"\nidle_timeout_secs = 60\n",
        );
        assert_eq!(
            chosen.map(|s| s.session.store).ok(),
            Some(StoreKind::Sqlite)
        );
        let redis = parse("[session]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n");
        assert_eq!(redis.map(|s| s.session.store).ok(), Some(StoreKind::Redis));
        let postgres = parse("[session]\nstore = \"postgres\"\n");
        assert_eq!(
            postgres.map(|s| s.session.store).ok(),
            Some(StoreKind::Postgres)
        );
        let unknown = parse(
            "[session]\nstore = \"memcached\"\nsqlite_path = \"x.sqlite\"\nidle_timeout_secs = 60\n",
        );
        let Err(e) = unknown else {
            panic!("an unknown store must be refused")
        };
        assert!(e.to_string().contains("sqlite"), "names the choices: {e}");
    }

    #[test]
    fn metrics_and_the_log_format_are_off_and_text_unless_configured() {
        let parse = |toml: &str| {
            Figment::from(Serialized::defaults(valid()))
                .merge(Toml::string(toml))
                .extract::<Settings>()
                .map_err(|e| e.to_string())
        };
        let Ok(default) = parse("") else {
            panic!("the defaults parse")
        };
        assert_eq!(default.metrics.listen, None);
        assert_eq!(default.log.format, LogFormat::Text);
        let Ok(set) = parse("[metrics]\nlisten = \"127.0.0.1:9464\"\n[log]\nformat = \"json\"\n")
        else {
            panic!("metrics and log parse")
        };
        assert_eq!(set.metrics.listen, Some(([127, 0, 0, 1], 9464).into()));
        assert_eq!(set.log.format, LogFormat::Json);
        assert!(parse("[log]\nformat = \"xml\"\n").is_err());
    }

    #[test]
    fn metrics_may_not_share_the_public_listener() {
        let mut s = valid();
        s.metrics.listen = Some(s.listen);
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("expected invalid");
        };
        assert!(
            problems.iter().any(|p| p.contains("metrics.listen")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_trusted_issuer_may_not_take_the_login_providers_name() {
        let mut s = valid();
        s.issuers = vec![IssuerSettings {
            name: Some("oidc".into()),
            issuer: "https://gw.example.org".into(),
            audiences: vec!["api".into()],
            skip_audience_check: false,
            algorithms: vec!["RS256".into()],
            jwks_url: Some("https://gw.example.org/jwks".into()),
            jwks_file: None,
            public_key: None,
            public_key_file: None,
            hmac_secret_env: None,
            hmac_secret_file: None,
            leeway_secs: 30,
            required_claims: Vec::new(),
            typ: None,
            jwks_refresh_secs: 300,
            jwks_refetch_cooldown_secs: 30,
            trusted_proxies: None,
            claims: ClaimMapping::default(),
            policy: Policy::default(),
        }];
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("expected invalid");
        };
        assert!(
            problems.iter().any(|p| p.contains("reserved")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_gateway_needs_known_issuers_and_trusted_proxies() {
        let mut s = valid();
        s.gateway = Some(GatewaySettings {
            issuers: vec!["nobody".into()],
            header: "x-custom-tkn".into(),
            trusted_proxies: Vec::new(),
            allow_any_peer: false,
            jwt_endpoint: None,
            jwt_binding_ttl_secs: 300,
            jwt_endpoint_after_silent_miss: false,
        });
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("expected invalid");
        };
        assert!(
            problems
                .iter()
                .any(|p| p.contains("gateway.trusted_proxies")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("\"nobody\" is not the name")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_gateway_may_inject_the_login_providers_own_tokens() {
        let mut s = valid();
        s.gateway = Some(GatewaySettings {
            issuers: vec![PROVIDER_ISSUER.into()],
            header: "authorization".into(),
            trusted_proxies: vec!["10.0.0.5/32".parse().unwrap()],
            allow_any_peer: false,
            jwt_endpoint: None,
            jwt_binding_ttl_secs: 300,
            jwt_endpoint_after_silent_miss: false,
        });
        assert!(s.validate().is_ok());
    }

    /// An `[[issuers]]` entry named `name` (its JWKS URL is not fetched to compile it).
    fn url_issuer(name: &str, trusted_proxies: Option<Vec<ipnet::IpNet>>) -> IssuerSettings {
        IssuerSettings {
            trusted_proxies,
            ..serde_json::from_value(serde_json::json!({
                "name": name, "issuer": format!("https://{name}.example.org"),
                "audiences": ["api"], "algorithms": ["RS256"],
                "jwks_url": format!("https://{name}.example.org/jwks"),
            }))
            .unwrap()
        }
    }

    fn gateway(issuers: &[&str], allow_any_peer: bool) -> GatewaySettings {
        GatewaySettings {
            issuers: issuers.iter().map(|i| (*i).to_owned()).collect(),
            header: "authorization".into(),
            trusted_proxies: vec!["10.0.0.5/32".parse().unwrap()],
            allow_any_peer,
            jwt_endpoint: None,
            jwt_binding_ttl_secs: 300,
            jwt_endpoint_after_silent_miss: false,
        }
    }

    fn proxies_of(config: &Config, name: &str) -> Option<Vec<ipnet::IpNet>> {
        config
            .issuers
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| i.trusted_proxies.clone())
    }

    #[test]
    fn a_gateways_issuers_are_trusted_from_its_proxies_only_unless_they_say_otherwise() {
        let own: Vec<ipnet::IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        let mut s = valid();
        s.issuers = vec![
            url_issuer("gw", None),
            url_issuer("gw-own", Some(own.clone())),
            url_issuer("api", None),
            url_issuer("limited", Some(own.clone())),
        ];
        s.gateway = Some(gateway(&["gw", "gw-own", PROVIDER_ISSUER], false));
        let config = s.clone().compile().unwrap();
        assert_eq!(
            proxies_of(&config, "gw"),
            Some(vec!["10.0.0.5/32".parse().unwrap()]),
            "the gateway's proxies"
        );
        assert_eq!(
            proxies_of(&config, "gw-own"),
            Some(own.clone()),
            "its own list wins"
        );
        assert_eq!(
            proxies_of(&config, "api"),
            None,
            "not the gateway's: from any peer"
        );
        assert_eq!(proxies_of(&config, "limited"), Some(own.clone()));
        // A gateway any peer may reach limits nothing.
        s.gateway = Some(gateway(&["gw"], true));
        assert_eq!(proxies_of(&s.clone().compile().unwrap(), "gw"), None);
        // An empty list would accept the issuer from nowhere: refused, with the fix.
        s.issuers = vec![url_issuer("nowhere", Some(Vec::new()))];
        s.gateway = None;
        let Err(SettingsError::Invalid(problems)) = s.compile() else {
            panic!("expected invalid");
        };
        assert!(
            problems
                .iter()
                .any(|p| p.contains("issuers[nowhere]: trusted_proxies is empty")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_unknown_optional_claim_is_refused_with_the_known_ones() {
        let mut s = valid();
        s.claims.optional = vec!["mail".into()];
        let Err(SettingsError::Invalid(problems)) = s.validate() else {
            panic!("expected invalid");
        };
        assert!(
            problems
                .iter()
                .any(|p| p.contains("claims.optional: \"mail\" is not a mapped field")),
            "{problems:?}"
        );
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let printed = format!("{:?}", valid());
        assert!(!printed.contains("s3cret"), "{printed}");
    }
}
