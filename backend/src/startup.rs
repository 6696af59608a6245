//! Building and running the server: `Application::build` binds the listener (port 0 works),
//! exposes `port()`, and `run_until_stopped()` serves until a shutdown signal. With
//! `[metrics]`, a second listener serves `/metrics` (`metrics_port()`), stopped by the same
//! signal. The router is reached through [`crate::reload`]: a reload (SIGHUP) swaps it for
//! one built on the new configuration, with the same sessions, keys and caches.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use arc_swap::ArcSwap;
use axum::{
    Router,
    serve::{Listener, ListenerExt},
};
use futures::FutureExt;
use tokio::net::{TcpListener, TcpStream};

use crate::{
    auth::local::LocalLogin,
    authority::{keyring::Authority, service_users},
    demo_api::ApiCallLog,
    metrics::{self},
    oidc::{client::ProviderClient, http::ProviderHttp},
    reload::{Reloader, RouterParts, SwappableShell},
    router::RouterInputs,
    session::{
        store::{SessionBackend, SqliteFileLock},
        typed::{SessionIndexHandle, SessionLimits},
    },
    settings::{Config, StoreKind},
    state::{AppState, AppStateInner},
    trust::engine::TrustEngine,
    web::{shell::Shell, spa::SpaIndex},
};

pub struct Application {
    port: u16,
    listener: TcpListener,
    /// The whole router in its shell (see [`crate::web::shell`]), as it is now: a reload
    /// swaps it.
    service: Arc<ArcSwap<Shell<Router>>>,
    reloader: Reloader,
    state: AppState,
    api_calls: Arc<ApiCallLog>,
    /// The metrics listener and its router, when `[metrics]` names an address.
    metrics: Option<(TcpListener, Router)>,
    /// The SQLite file's lock, held until the server has stopped.
    _sqlite_lock: Option<SqliteFileLock>,
}

impl Application {
    /// Binds `settings.listen` and prepares everything; discovery runs in the background.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listen = config.settings.listen;
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} (setting `listen`)"))?;
        Self::build_with_listener(config, listener).await
    }

    /// Like [`Application::build`], on a listener the caller already bound.
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        // Bound before anything else starts, so a taken metrics port fails the start at once.
        let metrics_listener =
            match config.settings.metrics.listen {
                Some(addr) => Some(TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on {addr} (setting `metrics.listen`)")
                })?),
                None => None,
            };
        let metrics = match metrics_listener {
            Some(listener) => Some((listener, metrics::router(metrics::install()?))),
            None => None,
        };
        let Config {
            settings,
            issuers,
            profiles,
        } = config;
        let settings = Arc::new(settings);
        settings.log_warnings();
        // Before anything starts or the file is opened: a second bridge on it stops here and
        // changes nothing.
        let sqlite_lock = match settings.session.store {
            StoreKind::Sqlite => Some(SqliteFileLock::take(&settings.session.sqlite_path).await?),
            StoreKind::Redis | StoreKind::Postgres => None,
        };
        // Also the key-set client of every `[[issuers]]` entry: idle connections are dropped
        // before a common keep-alive timeout ends (see `oidc::http`).
        let http = ProviderHttp::new(Duration::from_secs(settings.oidc.http_timeout_secs))
            .context("cannot build the HTTP client")?;
        let trust = Arc::new(TrustEngine::new(
            issuers,
            settings.route_policies.clone(),
            http.client(),
        ));
        trust.spawn_jwks_refresh();
        let provider = Arc::new(ProviderClient::new(settings.clone(), http, trust.clone()));
        let backend = SessionBackend::open(&settings.session).await?;
        backend.spawn_cleanup();
        let authority = match &settings.authority {
            Some(a) => {
                let store = backend.authority_store().await?;
                let authority =
                    Arc::new(Authority::open(a, &settings.origin(), profiles, store).await?);
                trust.register(authority.trusted_issuer());
                authority.spawn_reload(trust.clone());
                service_users::publish_stopped(&authority.store, &trust).await?;
                service_users::spawn_watch(
                    authority.store.clone(),
                    trust.clone(),
                    Duration::from_secs(a.service_user_reload_secs),
                );
                Some(authority)
            }
            None => None,
        };
        tokio::spawn(provider.clone().discover_until_ready());
        let dpop = Arc::new(open_dpop(&settings, &backend).await?);
        let state = AppState::new(AppStateInner {
            spa: Arc::new(SpaIndex::load(&settings.dist_dir, settings.ui.title.trim())),
            sessions: SessionIndexHandle(
                backend.index(),
                SessionLimits {
                    absolute_timeout_secs: settings.session.absolute_timeout_secs,
                },
            ),
            session_records: backend.records(),
            logout_jtis: Arc::default(),
            refresh_lock: backend.refresh_lock(),
            store: backend.probe(),
            settings,
            provider,
            trust,
            authority,
            dpop,
        });
        let api_calls = Arc::new(ApiCallLog::default());
        // Pooled connections to the APIs behind the bridge; redirects go back to the caller.
        let upstream_http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("login-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the upstream HTTP client")?;
        // The local accounts' sign-in: its attempt limits live as long as the server (kept by
        // a reload, like `[local_accounts]` itself).
        let local = match &state.settings.local_accounts {
            Some(l) => Some(Arc::new(
                LocalLogin::new(l.clone()).context("cannot set up the local accounts")?,
            )),
            None => None,
        };
        // The session store's type is chosen here once; a reload builds its routers through
        // the same function.
        let make_router: Arc<crate::reload::MakeRouter> = match backend {
            SessionBackend::Sqlite { store, .. } => {
                Arc::new(move |parts: RouterInputs| parts.router(store.clone()))
            }
            SessionBackend::Redis { store, .. } => {
                Arc::new(move |parts: RouterInputs| parts.router(store.clone()))
            }
            SessionBackend::Postgres { store, .. } => {
                Arc::new(move |parts: RouterInputs| parts.router(store.clone()))
            }
        };
        let parts = RouterParts {
            make_router,
            api_calls: api_calls.clone(),
            upstream_http,
            local,
            metrics: metrics.is_some(),
        };
        let profiles = state.authority.as_ref().map(|a| a.profiles());
        let shell = parts.build(state.clone(), profiles.as_deref())?;
        let service = Arc::new(ArcSwap::from_pointee(shell));
        let reloader = Reloader::new(service.clone(), parts, state.clone());
        Ok(Self {
            port,
            listener,
            service,
            reloader,
            state,
            api_calls,
            metrics,
            _sqlite_lock: sqlite_lock,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the metrics listener, when `[metrics]` is configured.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
            .map(|a| a.port())
    }

    /// The state the server started with (a reload makes a new one with new settings and
    /// the same shared parts).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Reloads the configuration of this server (what SIGHUP does; tests call it in-process).
    pub fn reloader(&self) -> Reloader {
        self.reloader.clone()
    }

    /// The demo API's record of recent calls (what the server saw of each bearer token).
    pub fn api_calls(&self) -> Arc<ApiCallLog> {
        self.api_calls.clone()
    }

    /// Serves until SIGINT/SIGTERM, then finishes in-flight requests (on both listeners).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = shutdown_signal().shared();
        // Under systemd (`Type=notify`): `READY=1` once `/readyz` would say 200.
        crate::notify::spawn_ready_notification(self.state.clone());
        // The peer address decides whether a gateway header may sign users in.
        let service = SwappableShell::new(self.service);
        let public =
            axum::serve(no_delay(self.listener), service).with_graceful_shutdown(stop.clone());
        match self.metrics {
            Some((listener, router)) => {
                let metrics = axum::serve(no_delay(listener), router).with_graceful_shutdown(stop);
                tokio::try_join!(public.into_future(), metrics.into_future()).map(drop)
            }
            None => public.await,
        }
    }
}

/// The listener with `TCP_NODELAY` on each connection it accepts. Without it, an answer whose
/// head and body leave in two writes (a file, a proxied or streamed body) waits for the
/// client's delayed ACK of the head, 40 ms on Linux, whenever the connection is in delayed-ACK
/// mode, as a browser's connection reused along a redirect chain is: silent SSO's page took 40
/// ms from its head to its body in Chromium's network log (bench/spa-transfer.sh).
fn no_delay(listener: TcpListener) -> impl Listener<Io = TcpStream, Addr = SocketAddr> {
    listener.tap_io(|tcp: &mut TcpStream| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
        }
    })
}

/// The DPoP checks with their replay records (and nonces' secret) in the session store. Built
/// whatever `session.dpop` says: a token bound to a key is checked even with DPoP off.
async fn open_dpop(
    settings: &crate::settings::Settings,
    backend: &SessionBackend,
) -> anyhow::Result<crate::dpop::Dpop> {
    use crate::dpop::{nonce::ServerNonces, replay::ProofReplay};
    let leeway_secs = i64::try_from(settings.oidc.leeway_secs).unwrap_or(i64::MAX);
    let nonces_on = settings.session.dpop_nonce;
    let (replay, nonces) = match backend {
        SessionBackend::Sqlite { pool, .. } => (
            ProofReplay::sqlite(
                pool.clone(),
                crate::dpop::record_lives_secs(
                    settings.session.dpop_proof_max_age_secs,
                    leeway_secs,
                ),
            )
            .await
            .context("cannot create the DPoP replay table")?,
            match nonces_on {
                true => Some(ServerNonces::sqlite(pool, leeway_secs).await?),
                false => None,
            },
        ),
        SessionBackend::Postgres { pool, .. } => (
            ProofReplay::postgres(pool.clone()),
            match nonces_on {
                true => Some(ServerNonces::postgres(pool, leeway_secs).await?),
                false => None,
            },
        ),
        SessionBackend::Redis {
            pool,
            wait_replicas,
            ..
        } => (
            ProofReplay::redis(pool.clone(), *wait_replicas),
            match nonces_on {
                true => Some(ServerNonces::redis(pool, leeway_secs).await?),
                false => None,
            },
        ),
    };
    Ok(crate::dpop::Dpop {
        mode: settings.session.dpop,
        origin: settings.origin(),
        max_age_secs: settings.session.dpop_proof_max_age_secs,
        leeway_secs,
        replay,
        nonces,
        keys: crate::dpop::proof::ProofKeys::default(),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    crate::notify::stopping();
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_listener_sets_no_delay_on_every_connection_it_accepts() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut listener = no_delay(listener);
        for _ in 0..2 {
            let client = TcpStream::connect(addr);
            let ((accepted, _), client) = tokio::join!(listener.accept(), client);
            client.unwrap();
            assert!(accepted.nodelay().unwrap());
        }
        // What the test relies on: a plain accept leaves Nagle's algorithm on.
        let plain = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(plain.local_addr().unwrap());
        let (accepted, client) = tokio::join!(plain.accept(), client);
        client.unwrap();
        assert!(!accepted.unwrap().0.nodelay().unwrap());
    }
}
