//! Reload without restart (SIGHUP): the configuration file (and `BRIDGE_*`) is read again;
//! what can change live changes live, what cannot is reported and kept, and a configuration
//! with errors is refused whole while the running one stays.
//!
//! The server reaches its router through an [`ArcSwap`]: [`SwappableShell`] loads the current
//! one per request, so a request in flight finishes on the router it started on and the next
//! one gets the new router; nothing waits and nothing fails during the swap. The heavy,
//! stateful parts (session store and index, refresh lock, provider client, authority keys and
//! store, DPoP replay records, the trust engine with its key caches) are shared by the old and
//! the new router: sessions and keys survive a reload. The trust engine and the authority
//! replace their configured issuers, route policies and token profiles in place.
//!
//! Live: `[[issuers]]` (their keys are read again), `[[route_policies]]`, `[[token_profiles]]`,
//! `[[upstreams]]`, `[gateway]`, `[cors]`, `[ui]`, `log.level`. Kept until a restart: see
//! [`KEPT`].

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    path::Path,
    sync::Arc,
    task::{Context, Poll},
};

use arc_swap::ArcSwap;
use axum::{
    Router,
    body::Body,
    http::{Request, Response},
    serve::{IncomingStream, Listener},
};
use serde::Serialize;

use crate::{
    auth::local::LocalLogin,
    authority::keyring::ProfileSet,
    demo_api::ApiCallLog,
    router::{RouterInputs, request_metrics, upstreams},
    settings::{Config, LogSettings, Settings, SettingsError},
    state::AppState,
    telemetry::{self, LevelChange},
    web::{
        shell::{Shell, ShellFuture},
        spa::SpaIndex,
    },
};

/// Builds the whole router for the session store chosen at startup.
pub type MakeRouter = dyn Fn(RouterInputs) -> Shell<Router> + Send + Sync;

/// What every router of this server is built with, whatever the configuration: made once at
/// startup.
pub struct RouterParts {
    pub make_router: Arc<MakeRouter>,
    pub api_calls: Arc<ApiCallLog>,
    /// The pooled client to the upstreams (a reload keeps its connections).
    pub upstream_http: reqwest::Client,
    /// The local accounts' sign-in and its attempt limits.
    pub local: Option<Arc<LocalLogin>>,
    /// Whether `[metrics]` is on (request metrics in the shell).
    pub metrics: bool,
}

impl RouterParts {
    /// The router for `state`, its upstreams minting from `profiles`. Fails only where an
    /// upstream cannot be set up.
    pub fn build(
        &self,
        state: AppState,
        profiles: Option<&ProfileSet>,
    ) -> anyhow::Result<Shell<Router>> {
        let upstreams = upstreams(&state, profiles)?;
        let track = request_metrics(&state, self.metrics);
        Ok((self.make_router)(RouterInputs {
            state,
            api_calls: self.api_calls.clone(),
            upstreams,
            upstream_http: self.upstream_http.clone(),
            local: self.local.clone(),
            track,
        }))
    }
}

/// Settings a running server cannot change: what they configure was built once (a bound
/// listener, an open store, a discovered provider, keys, attempt limits, the subscriber's
/// format). A reload that changes one logs it by name and keeps the running value.
pub const KEPT: &[&str] = &[
    "listen",
    "public_url",
    "dist_dir",
    "oidc",
    "claims",
    "session",
    "authority",
    "local_accounts",
    "metrics",
    "log.format",
];

/// The names of [`KEPT`] settings that differ between `running` and `new`.
pub fn kept_changes(running: &Settings, new: &Settings) -> Vec<&'static str> {
    fn differ<T: Serialize>(a: &T, b: &T) -> bool {
        serde_json::to_value(a).ok() != serde_json::to_value(b).ok()
    }
    // Secrets serialize masked: compared as they are.
    let oidc = differ(&running.oidc, &new.oidc)
        || running.oidc.client_secret.expose() != new.oidc.client_secret.expose();
    let session = differ(&running.session, &new.session)
        || running.session.url.expose() != new.session.url.expose();
    let changed = [
        running.listen != new.listen,
        running.public_url != new.public_url,
        running.dist_dir != new.dist_dir,
        oidc,
        differ(&running.claims, &new.claims),
        session,
        differ(&running.authority, &new.authority),
        differ(&running.local_accounts, &new.local_accounts),
        differ(&running.metrics, &new.metrics),
        running.log.format != new.log.format,
    ];
    KEPT.iter()
        .zip(changed)
        .filter(|(_, c)| *c)
        .map(|(name, _)| *name)
        .collect()
}

/// `new` with every [`KEPT`] setting as `running` has it. Every field is named: a setting
/// added to [`Settings`] does not compile here until it is placed among the live or the kept.
fn keep_running(running: &Settings, new: Settings) -> Settings {
    let Settings {
        listen: _,
        public_url: _,
        dist_dir: _,
        oidc: _,
        session: _,
        claims: _,
        issuers,
        route_policies,
        gateway,
        authority: _,
        token_profiles,
        local_accounts: _,
        upstreams,
        cors,
        metrics: _,
        log,
        ui,
    } = new;
    Settings {
        listen: running.listen,
        public_url: running.public_url.clone(),
        dist_dir: running.dist_dir.clone(),
        oidc: running.oidc.clone(),
        session: running.session.clone(),
        claims: running.claims.clone(),
        issuers,
        route_policies,
        gateway,
        authority: running.authority.clone(),
        token_profiles,
        local_accounts: running.local_accounts.clone(),
        upstreams,
        cors,
        metrics: running.metrics.clone(),
        log: LogSettings {
            format: running.log.format,
            ..log
        },
        ui,
    }
}

/// How a reload ended.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The new configuration is in use; these settings changed but were kept.
    Applied { kept: Vec<&'static str> },
    /// Nothing changed: every problem found.
    Refused { problems: Vec<String> },
}

impl ReloadOutcome {
    pub fn applied(&self) -> bool {
        matches!(self, Self::Applied { .. })
    }
}

/// Reloads the configuration of one server. Cloned freely; reloads run one at a time.
#[derive(Clone)]
pub struct Reloader(Arc<Inner>);

struct Inner {
    current: Arc<ArcSwap<Shell<Router>>>,
    parts: RouterParts,
    /// The state now; the lock also keeps two reloads from interleaving.
    running: tokio::sync::Mutex<AppState>,
}

impl Reloader {
    pub fn new(current: Arc<ArcSwap<Shell<Router>>>, parts: RouterParts, state: AppState) -> Self {
        Self(Arc::new(Inner {
            current,
            parts,
            running: tokio::sync::Mutex::new(state),
        }))
    }

    /// Reads the configuration as the server did at startup (`file`, then `BRIDGE_*`) and
    /// applies it.
    pub async fn reload_file(&self, file: Option<&Path>) -> ReloadOutcome {
        tracing::info!("reloading the configuration");
        self.apply(Settings::load(file)).await
    }

    /// Applies a loaded configuration (or refuses it, with the problems loading found),
    /// logs the outcome and counts it (`login_bridge_config_reloads_total`).
    pub async fn apply(&self, loaded: Result<Config, SettingsError>) -> ReloadOutcome {
        let mut running = self.0.running.lock().await;
        let outcome = match loaded {
            Err(e) => ReloadOutcome::Refused {
                problems: problems_of(e),
            },
            Ok(config) => match self.swap(&mut running, config.settings).await {
                Ok(kept) => ReloadOutcome::Applied { kept },
                Err(problems) => ReloadOutcome::Refused { problems },
            },
        };
        crate::metrics::config_reload(outcome.applied());
        if let ReloadOutcome::Refused { problems } = &outcome {
            for problem in problems {
                tracing::error!(problem = %problem, "configuration reload: {problem}");
            }
            tracing::error!(
                problems = problems.len(),
                "configuration reload refused; the running configuration stays"
            );
        }
        outcome
    }

    /// Builds everything of `new` first, then puts it in use: a problem found on the way
    /// leaves the running configuration untouched.
    async fn swap(
        &self,
        running: &mut AppState,
        new: Settings,
    ) -> Result<Vec<&'static str>, Vec<String>> {
        let kept = kept_changes(&running.settings, &new);
        // Checked again as it will run: a new file may lean on a setting that is kept (a
        // token profile that needs an `[authority]` the server was started without).
        let config = keep_running(&running.settings, new)
            .compile()
            .map_err(problems_of)?;
        let Config {
            settings,
            issuers,
            profiles,
        } = config;
        let profiles = match &running.authority {
            Some(authority) => Some(
                authority
                    .prepare_profiles(profiles)
                    .await
                    .map_err(|e| vec![format!("token_profiles: {e}")])?,
            ),
            None => None,
        };
        let spa = if settings.ui.title == running.settings.ui.title {
            running.spa.clone()
        } else {
            Arc::new(SpaIndex::load(&settings.dist_dir, settings.ui.title.trim()))
        };
        let settings = Arc::new(settings);
        let state = running.reloaded(settings.clone(), spa);
        let shell = self
            .0
            .parts
            .build(state.clone(), profiles.as_deref())
            .map_err(|e| vec![format!("{e:#}")])?;

        // Everything is built: put it in use.
        if let (Some(authority), Some(profiles)) = (&state.authority, profiles) {
            authority.install_profiles(profiles);
        }
        let changes = state
            .trust
            .replace_configured(issuers, settings.route_policies.clone());
        self.0.current.store(Arc::new(shell));
        let level = if settings.log.level == running.settings.log.level {
            None
        } else {
            Some(telemetry::set_level(&settings.log.level))
        };
        *running = state;

        for name in &kept {
            tracing::warn!(
                setting = name,
                "configuration reload: {name} changed; kept; restart to apply"
            );
        }
        match level {
            Some(LevelChange::EnvWins) => {
                tracing::warn!("configuration reload: log.level changed; RUST_LOG is set and wins")
            }
            Some(LevelChange::Failed(e)) => {
                tracing::warn!(error = %e, "configuration reload: log.level not applied")
            }
            _ => {}
        }
        settings.log_warnings();
        tracing::info!(
            issuers_added = ?changes.added,
            issuers_removed = ?changes.removed,
            issuers_keys_reloaded = ?changes.keys_reloaded,
            issuers_keys_kept = ?changes.keys_kept,
            upstreams = settings.upstreams.len(),
            route_policies = settings.route_policies.len(),
            kept = ?kept,
            "configuration reloaded"
        );
        Ok(kept)
    }
}

/// Every problem `e` names, one per entry, as `check-config` lists them.
fn problems_of(e: SettingsError) -> Vec<String> {
    match e {
        SettingsError::Invalid(problems) => problems,
        SettingsError::Load(problem) => vec![problem],
    }
}

/// The public listener's service: per request, the router that is current now (one atomic
/// load), with the connection's peer address.
#[derive(Clone)]
pub struct SwappableShell {
    current: Arc<ArcSwap<Shell<Router>>>,
    peer: Option<SocketAddr>,
}

impl SwappableShell {
    pub fn new(current: Arc<ArcSwap<Shell<Router>>>) -> Self {
        Self {
            current,
            peer: None,
        }
    }
}

/// `axum::serve`'s make-service: one per connection, knowing its peer. (Any TCP listener: the
/// server's is wrapped to set `TCP_NODELAY`, see [`crate::startup`].)
impl<'a, L> tower::Service<IncomingStream<'a, L>> for SwappableShell
where
    L: Listener<Addr = SocketAddr>,
{
    type Response = SwappableShell;
    type Error = Infallible;
    type Future = Ready<Result<SwappableShell, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, L>) -> Self::Future {
        ready(Ok(Self {
            current: self.current.clone(),
            peer: Some(*stream.remote_addr()),
        }))
    }
}

impl tower::Service<Request<Body>> for SwappableShell {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ShellFuture<<Router as tower::Service<Request<Body>>>::Future>;

    /// A router is always ready.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let mut shell = self.current.load().for_peer(self.peer);
        tower::Service::call(&mut shell, request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;

    #[test]
    fn every_kept_setting_that_changed_is_named_and_a_live_one_is_not() {
        let running = Settings::default();
        let mut new = Settings::default();
        assert!(kept_changes(&running, &new).is_empty());
        new.listen = ([127, 0, 0, 1], 9999).into();
        new.session.idle_timeout_secs += 1;
        new.log.level = "debug".into();
        new.upstreams = Vec::new();
        new.cors.allowed_origins = vec!["https://other.example".into()];
        assert_eq!(kept_changes(&running, &new), ["listen", "session"]);
    }

    /// Secrets serialize masked: a changed one is still seen.
    #[test]
    fn a_changed_secret_is_seen_though_it_prints_masked() {
        let mut running = Settings::default();
        running.oidc.client_secret = Secret::new("one");
        let mut new = running.clone();
        new.oidc.client_secret = Secret::new("two");
        assert_eq!(kept_changes(&running, &new), ["oidc"]);
    }

    #[test]
    fn kept_settings_take_the_running_value_and_live_ones_the_new() {
        let running = Settings::default();
        let mut new = Settings {
            listen: ([127, 0, 0, 1], 9999).into(),
            ..Settings::default()
        };
        new.log.level = "debug".into();
        new.log.format = crate::settings::LogFormat::Json;
        new.ui.title = "Other".into();
        let effective = keep_running(&running, new);
        assert_eq!(effective.listen, running.listen);
        assert_eq!(effective.log.format, running.log.format);
        assert_eq!(effective.log.level, "debug");
        assert_eq!(effective.ui.title, "Other");
    }
}
