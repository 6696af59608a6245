//! Building and running the server: `Application::build` binds the listener (port 0 works),
//! exposes `port()`, and `run_until_stopped()` serves until a shutdown signal.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::Response,
    routing::{any, get},
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use tokio::net::TcpListener;
use tower_http::{limit::RequestBodyLimitLayer, services::ServeDir};
use tower_sessions::{
    Expiry, SessionManagerLayer, cookie::SameSite, session_store::ExpiredDeletion,
};
use tower_sessions_sqlx_store::SqliteStore;

use crate::{
    api::{self, ApiCallLog},
    auth::{refresh::Refresher, routes as auth_routes},
    health,
    oidc::Provider,
    settings::Settings,
    spa::{SpaIndex, spa_entry},
    state::{AppState, AppStateInner},
    trust::engine::TrustEngine,
};

pub struct Application {
    port: u16,
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Binds `settings.listen` and prepares everything; discovery runs in the background.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {} (setting `listen`)", settings.listen))?;
        Self::build_with_listener(settings, listener).await
    }

    /// Like [`Application::build`], on a listener the caller already bound.
    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let port = listener.local_addr()?.port();
        let settings = Arc::new(settings);
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(settings.oidc.http_timeout_secs))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("login-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        let trust = Arc::new(
            TrustEngine::new(&settings.issuers, &settings.route_policies, &http).map_err(
                |problems| {
                    anyhow::anyhow!(
                        "invalid trusted issuers:\n{}",
                        problems
                            .iter()
                            .map(|p| format!("  - {p}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                },
            )?,
        );
        trust.spawn_jwks_refresh();
        let provider = Arc::new(Provider::new(settings.clone(), http));
        let store = session_store(&settings).await?;
        tokio::spawn(provider.clone().discover_until_ready());
        let cleaner = store.clone();
        tokio::spawn(async move {
            if let Err(e) = cleaner
                .continuously_delete_expired(tokio::time::Duration::from_secs(600))
                .await
            {
                tracing::warn!(error = %e, "expired-session cleanup stopped");
            }
        });
        let state = AppState::new(AppStateInner {
            spa: Arc::new(SpaIndex::load(&settings.dist_dir)),
            settings,
            provider,
            refresher: Arc::new(Refresher::default()),
            api_calls: Arc::new(ApiCallLog::default()),
            trust,
        });
        let router = router(state.clone(), store);
        Ok(Self {
            port,
            listener,
            router,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM, then finishes in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await
    }
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
    tracing::info!("shutting down");
}

/// The embedded session store: one SQLite file that survives restarts.
async fn session_store(settings: &Settings) -> anyhow::Result<SqliteStore> {
    let path = &settings.session.sqlite_path;
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .with_context(|| {
            format!(
                "cannot open the session database {} (session.sqlite_path)",
                path.display()
            )
        })?;
    let store = SqliteStore::new(pool);
    store
        .migrate()
        .await
        .context("cannot create the session table")?;
    Ok(store)
}

fn router(state: AppState, store: SqliteStore) -> Router {
    let settings = &state.settings;
    let cookie_name = if settings.is_https() {
        "__Host-lb_session"
    } else {
        "lb_session"
    };
    let sessions = SessionManagerLayer::new(store)
        .with_name(cookie_name)
        .with_secure(settings.is_https())
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            settings.session.idle_timeout_secs,
        )));
    let spa_files = ServeDir::new(&settings.dist_dir)
        .append_index_html_on_directories(false)
        .call_fallback_on_method_not_allowed(true)
        .fallback(any(spa_entry).with_state(state.clone()));
    let browser = auth_routes::router()
        .fallback_service(spa_files)
        .layer(sessions);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .nest("/api", api::router())
        .merge(browser)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security_headers,
        ))
        .layer(RequestBodyLimitLayer::new(64 * 1024))
        .with_state(state)
}

/// Headers every answer carries.
async fn security_headers(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, state.spa.csp.clone());
    if state.settings.is_https() {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}
