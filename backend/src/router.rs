//! The router: every route of the public listener in its shell, built from the state and
//! the parts made of the settings (upstreams, request metrics). `startup` builds it at start
//! and `reload` builds it again from a new configuration, so both use this module and neither
//! imports the other for it.

use std::sync::Arc;

use axum::{
    Router, middleware,
    routing::{any, get},
};
use tower_http::services::ServeDir;
use tower_sessions::{Expiry, SessionManagerLayer, SessionStore, cookie::SameSite};

use crate::{
    auth::{
        gateway::strip_untrusted_header, local::LocalLogin, page_open::open_page,
        routes as auth_routes,
    },
    authority::{self, keyring::ProfileSet},
    demo_api::{self, ApiCallLog},
    health,
    metrics::RequestMetrics,
    session::ended::CountEndedSessions,
    settings::SameSiteMode,
    state::AppState,
    upstream::{self, proxy::Upstream},
    web::{
        cors,
        headers::SecurityHeaders,
        shell::{Shell, ShellParts},
        spa::{self},
    },
};

/// What a router is built from besides the session store: the state (with the settings) and
/// the parts made of them.
pub struct RouterInputs {
    pub state: AppState,
    pub api_calls: Arc<ApiCallLog>,
    pub upstreams: Vec<Arc<Upstream>>,
    pub upstream_http: reqwest::Client,
    pub local: Option<Arc<LocalLogin>>,
    pub track: Option<RequestMetrics>,
}

impl RouterInputs {
    pub(crate) fn router<S: SessionStore + Clone>(self, store: S) -> Shell<Router> {
        let RouterInputs {
            state,
            api_calls,
            upstreams,
            upstream_http,
            local,
            track,
        } = self;
        router(
            state,
            store,
            api_calls,
            upstreams,
            upstream_http,
            local,
            track,
        )
    }
}

/// The upstreams of `state`'s settings; a `profile:` token is minted from `profiles`.
pub(crate) fn upstreams(
    state: &AppState,
    profiles: Option<&ProfileSet>,
) -> anyhow::Result<Vec<Arc<Upstream>>> {
    let minting = state.authority.as_ref().zip(profiles);
    state
        .settings
        .upstreams
        .iter()
        .map(|u| Upstream::new(u, minting, state.settings.gateway.as_ref()).map(Arc::new))
        .collect()
}

/// The request metrics of `state`'s settings (their upstream prefixes), when `[metrics]` is on.
pub(crate) fn request_metrics(state: &AppState, on: bool) -> Option<RequestMetrics> {
    // Counted outermost, so every answer is seen (CORS preflights, 413s...); without
    // `[metrics]` no request pays for it.
    on.then(|| {
        RequestMetrics::new(
            state
                .settings
                .upstreams
                .iter()
                .map(|u| u.prefix.clone())
                .collect(),
        )
    })
}

/// The whole router in its shell, for any session store.
fn router<S: SessionStore + Clone>(
    state: AppState,
    store: S,
    api_calls: Arc<ApiCallLog>,
    upstreams: Vec<Arc<Upstream>>,
    upstream_http: reqwest::Client,
    local: Option<Arc<LocalLogin>>,
    track: Option<RequestMetrics>,
) -> Shell<Router> {
    let settings = &state.settings;
    let cookie_name = if settings.is_https() {
        "__Host-lb_session"
    } else {
        "lb_session"
    };
    let sessions = SessionManagerLayer::new(CountEndedSessions(store))
        .with_name(cookie_name)
        .with_secure(settings.is_https())
        .with_http_only(true)
        .with_same_site(match settings.session.same_site {
            SameSiteMode::Lax => SameSite::Lax,
            SameSiteMode::Strict => SameSite::Strict,
        })
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::seconds(
            settings.session.idle_timeout_secs,
        )));
    let spa_files = ServeDir::new(&settings.dist_dir)
        .precompressed_br()
        .precompressed_gzip()
        .append_index_html_on_directories(false)
        .call_fallback_on_method_not_allowed(true)
        .fallback(any(open_page).with_state(state.clone()));
    let spa_files = tower::Layer::layer(&middleware::from_fn(spa::file_cache_headers), spa_files);
    let browser = auth_routes::router(local)
        .fallback_service(spa_files)
        .layer(sessions);
    let headers = SecurityHeaders {
        csp: state.spa.csp.clone(),
        hsts: settings.is_https(),
    };
    let router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(browser)
        .with_state(state.clone())
        .merge(demo_api::router(&state, api_calls));
    let router = match &state.authority {
        Some(a) => router.merge(authority::routes::router(a.clone(), state.trust.clone())),
        None => router,
    };
    // The upstreams' listing is the bridge's own answer: inside the shell, with its headers.
    // Answered with none configured too (`{"upstreams": []}`): the SPA asks on every page
    // load, and a 404 would be a failed request in every browser console.
    let router = router.merge(upstream::routes::listing(&upstreams));
    let strips = matches!(&settings.gateway, Some(g) if !g.uses_authorization());
    let cors = cors::layer(&settings.cors, headers.clone());
    // Nothing else around the main router: one shell does everything. Otherwise the headers
    // and the 64 KiB limit go around the main router, and the metrics around everything.
    if upstreams.is_empty() && !strips && cors.is_none() {
        return Shell::new(
            router,
            ShellParts {
                track,
                headers: Some(headers),
                body_limit: Some(BODY_LIMIT),
            },
        );
    }
    let router = Router::new().fallback_service(Shell::new(
        router,
        ShellParts {
            track: None,
            headers: Some(headers.clone()),
            body_limit: Some(BODY_LIMIT),
        },
    ));
    // Upstreams after the 64 KiB limit: each has its own (`max_body_bytes`), and the proxy
    // sets the security headers on the answers it writes itself (an upstream's keep its own).
    let router = if upstreams.is_empty() {
        router
    } else {
        let proto = settings.public_url.scheme().to_string();
        router.merge(upstream::routes::router(
            &upstreams,
            &state,
            &upstream_http,
            &proto,
            settings.gateway.clone().map(Arc::new),
            headers,
        ))
    };
    // Only a custom gateway header is stripped from untrusted peers (`Authorization` carries
    // the SPA's own Bearer tokens); without one, no request pays for the middleware.
    let router = match &settings.gateway {
        Some(gateway) if !gateway.uses_authorization() => router.layer(
            middleware::from_fn_with_state(Some(Arc::new(gateway.clone())), strip_untrusted_header),
        ),
        _ => router,
    };
    // Outermost: only an allowed origin's requests pass through CORS (see `web::cors`).
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    Shell::new(
        router,
        ShellParts {
            track,
            headers: None,
            body_limit: None,
        },
    )
}

/// Request bodies the bridge's own routes accept (upstreams have their own `max_body_bytes`).
const BODY_LIMIT: usize = 64 * 1024;
