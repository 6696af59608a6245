//! The upstreams' routes (each handler enforces its own request-body limit, `max_body_bytes`),
//! and `GET /auth/upstreams` (which SPA pages the configured APIs offer), which is one of the
//! bridge's own routes and sits inside its shell.

use std::sync::Arc;

use axum::{
    Json, Router,
    routing::{any, get},
};
use serde_json::json;

use super::proxy::{Upstream, UpstreamState, proxy};
use crate::{settings::GatewaySettings, state::AppState, web::headers::SecurityHeaders};

/// `GET /auth/upstreams`: the upstreams that name a UI page.
pub fn listing(upstreams: &[Arc<Upstream>]) -> Router {
    let listed: Vec<serde_json::Value> = upstreams
        .iter()
        .filter_map(|u| {
            u.ui.as_ref()
                .map(|ui| json!({"name": u.name, "prefix": u.prefix, "ui": ui}))
        })
        .collect();
    let listed = Arc::new(json!({ "upstreams": listed }));
    Router::new().route(
        "/auth/upstreams",
        get(move || {
            let listed = listed.clone();
            async move { Json((*listed).clone()) }
        }),
    )
}

/// The proxy routes, one pair (the prefix and everything under it) per upstream.
/// `app` gives what the `Principal` extractor reads (trust engine, provider, DPoP checks).
pub fn router(
    upstreams: &[Arc<Upstream>],
    app: &AppState,
    http: &reqwest::Client,
    proto: &str,
    gateway: Option<Arc<GatewaySettings>>,
    headers: SecurityHeaders,
) -> Router {
    let dpop = &app.dpop;
    let mut router = Router::new();
    let proto: Arc<str> = Arc::from(proto);
    let headers = Arc::new(headers);
    for upstream in upstreams {
        let state = UpstreamState {
            upstream: upstream.clone(),
            trust: app.trust.clone(),
            provider: app.provider.clone(),
            http: http.clone(),
            proto: proto.clone(),
            gateway: gateway.clone(),
            headers: headers.clone(),
            dpop: dpop.clone(),
        };
        let one = Router::new()
            .route(&upstream.prefix, any(proxy))
            .route(&format!("{}{{*rest}}", upstream.prefix), any(proxy))
            .with_state(state);
        router = router.merge(one);
    }
    // With server nonces, answers to calls with a proof carry the current one.
    match dpop.nonces {
        Some(_) => router.layer(axum::middleware::from_fn_with_state(
            dpop.clone(),
            crate::dpop::advertise_nonce,
        )),
        None => router,
    }
}
