//! `[session]`: where sessions live, how long they last, the cookie, and DPoP; their checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::secret::Secret;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// `[session]`: a browser's session lives in the store; its cookie holds only an opaque id.
pub struct SessionSettings {
    /// Where sessions (and the session index, the authority's keys and service users, replay
    /// records, refresh coordination) live; an unknown value is refused, naming the choices.
    #[serde(default)]
    pub store: StoreKind,
    /// SQLite database file for sessions (created when missing; survives restarts). Its
    /// write-ahead log sits beside it (`<file>-wal`): the bridge starts it over once it holds
    /// 32 MiB, so it stays near that at most (`bench/dpop.sh`, a DPoP replay record per request
    /// at up to 20 000 a second: 5 to 33 MB). One file serves one bridge: the running bridge
    /// holds a lock on `<file>.lock`, and a second bridge started on the file stops with an
    /// error once the lock has stayed held for 2 s (the `keys`, `service-user` and `user`
    /// commands work beside it).
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub sqlite_path: PathBuf,
    /// A session ends after this long without activity.
    pub idle_timeout_secs: i64,
    /// A signed-in session ends this long after its sign-in, whatever its activity, or earlier
    /// when the provider says its refresh token ends sooner (`refresh_expires_in`).
    #[serde(default = "default_absolute_timeout")]
    pub absolute_timeout_secs: i64,
    /// `SameSite` of the session cookie.
    #[serde(default)]
    pub same_site: SameSiteMode,
    /// The token `/auth/session` hands the SPA: absent, the provider's (or gateway's) access
    /// token; the name of a `[[token_profiles]]` entry, a token the bridge mints from it.
    #[serde(default)]
    pub token_profile: Option<String>,
    /// The shared store's address. `redis`: one server `redis://[:password@]host:6379/0`
    /// (`rediss://` for TLS), Sentinel
    /// `redis-sentinel://[:password@]sentinel1:26379/0?sentinelServiceName=mymaster&node=sentinel2:26379`,
    /// or Cluster `redis-cluster://[:password@]node1:6379?node=node2:6379` (see
    /// docs/redis-ha.md); `postgres`: `postgres://user:password@host/db`. It may hold a
    /// password: prefer `BRIDGE_SESSION__URL` or `url_file`; it is never logged or echoed.
    #[serde(default)]
    pub url: Secret,
    /// A file holding `url` (a mounted secret).
    #[serde(default)]
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub url_file: Option<PathBuf>,
    /// `redis` only: a session write (sign-in, refreshed tokens, logout), the refresh lock
    /// and a DPoP replay record count as done only once this many replicas confirmed them
    /// (Redis `WAIT`, at most 1 s; else the request gets a 503). 0 (default): done when the
    /// primary has them, so a failover can lose the last writes the replicas had not got yet
    /// (see docs/redis-ha.md).
    #[serde(default)]
    pub redis_wait_replicas: u32,
    /// DPoP (RFC 9449): whether the SPA's token is bound to the browser's non-extractable key
    /// (see docs/dpop.md). Binding needs a token the bridge mints (`session.token_profile`);
    /// an upstream with `token = "forward"` gets a startup warning.
    #[serde(default)]
    pub dpop: DpopMode,
    /// With DPoP on, the bridge hands out server nonces (`DPoP-Nonce`, RFC 9449 section 8)
    /// and every proof must carry a recent one: 60 s steps, the current and the previous one
    /// accepted, kept in the store so every replica accepts every replica's nonces.
    #[serde(default)]
    pub dpop_nonce: bool,
    /// How old a DPoP proof's `iat` may be (seconds, 1 to 3600; `oidc.leeway_secs` is added
    /// either way); its `jti` is remembered that long.
    #[serde(default = "default_dpop_proof_max_age")]
    pub dpop_proof_max_age_secs: i64,
}

fn default_dpop_proof_max_age() -> i64 {
    60
}
fn default_absolute_timeout() -> i64 {
    24 * 3600
}

/// `SameSite` attribute of the session cookie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum SameSiteMode {
    /// Sent on top-level navigations from other sites: the provider's redirect back carries it.
    #[default]
    Lax,
    /// Never sent on requests started by another site.
    Strict,
}

/// Whether the SPA's token is bound to a browser key (`session.dpop`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
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
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// One SQLite file (`session.sqlite_path`): the embedded default for a single bridge (a
    /// second bridge on the same file is refused).
    #[default]
    Sqlite,
    /// Redis or Valkey at `session.url`, shared by every replica.
    Redis,
    /// PostgreSQL at `session.url`, shared by every replica.
    Postgres,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
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
        }
    }
}

impl SessionSettings {
    /// Timeouts, and the shared store's URL (never echoed: it may hold a password).
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if self.idle_timeout_secs <= 0 {
            problems.push("session.idle_timeout_secs: must be positive".into());
        }
        if self.absolute_timeout_secs <= 0 {
            problems.push("session.absolute_timeout_secs: must be positive".into());
        }
        let url = self.url.expose();
        let (store, schemes): (&str, &[&str]) = match self.store {
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
        if self.redis_wait_replicas > 0 && self.store != StoreKind::Redis {
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
    }

    /// `session.dpop`: binding needs a token the bridge mints for every sign-in; the
    /// provider's or a gateway's token cannot carry the browser's key.
    pub(super) fn check_dpop(&self, problems: &mut Vec<String>) {
        if self.dpop != DpopMode::Off && self.token_profile.is_none() {
            problems.push(format!(
                "session.dpop = \"{}\": binding the SPA's token to the browser's key needs a \
                 token the bridge mints, but without session.token_profile the SPA gets the \
                 provider's (or a gateway's) token. Set session.token_profile to a \
                 [[token_profiles]] entry (with [authority]), or session.dpop = \"off\"",
                self.dpop.as_str()
            ));
        }
        if !(1..=3600).contains(&self.dpop_proof_max_age_secs) {
            problems.push("session.dpop_proof_max_age_secs: between 1 and 3600".into());
        }
    }
}
