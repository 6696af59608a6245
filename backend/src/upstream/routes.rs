//! The upstreams' routes, each with its own request-body limit, and `GET /auth/upstreams`
//! (which SPA pages the configured APIs offer).

use std::sync::Arc;

use axum::{
    Json, Router,
    routing::{any, get},
};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;

use super::proxy::{Upstream, UpstreamState, proxy};
use crate::{oidc::client::ProviderClient, settings::GatewaySettings, trust::engine::TrustEngine};

pub fn router(
    upstreams: &[Arc<Upstream>],
    trust: &Arc<TrustEngine>,
    provider: &Arc<ProviderClient>,
    http: &reqwest::Client,
    proto: &str,
    gateway: Option<Arc<GatewaySettings>>,
) -> Router {
    let listed: Vec<serde_json::Value> = upstreams
        .iter()
        .filter_map(|u| {
            u.ui.as_ref()
                .map(|ui| json!({"name": u.name, "prefix": u.prefix, "ui": ui}))
        })
        .collect();
    let listed = Arc::new(json!({ "upstreams": listed }));
    let mut router = Router::new().route(
        "/auth/upstreams",
        get(move || {
            let listed = listed.clone();
            async move { Json((*listed).clone()) }
        }),
    );
    let proto: Arc<str> = Arc::from(proto);
    for upstream in upstreams {
        let state = UpstreamState {
            upstream: upstream.clone(),
            trust: trust.clone(),
            provider: provider.clone(),
            http: http.clone(),
            proto: proto.clone(),
            gateway: gateway.clone(),
        };
        let one = Router::new()
            .route(&upstream.prefix, any(proxy))
            .route(&format!("{}{{*rest}}", upstream.prefix), any(proxy))
            .layer(RequestBodyLimitLayer::new(upstream.max_body_bytes))
            .with_state(state);
        router = router.merge(one);
    }
    router
}
