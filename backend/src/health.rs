//! Liveness and readiness probes.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use std::sync::Arc;

use crate::{oidc::client::ProviderClient, session::store::StoreProbe};

/// The process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when OIDC discovery has succeeded and the session store answers; else 503 with the
/// reason. Bearer calls to `/api` need neither and keep working while this says 503: a load
/// balancer should stop sending sign-ins here, not API calls.
pub async fn readyz(
    State(provider): State<Arc<ProviderClient>>,
    State(store): State<StoreProbe>,
) -> impl IntoResponse {
    let provider = match provider.ready() {
        Some(_) => Ok(()),
        None => Err(provider.not_ready_reason()),
    };
    let store = store.check().await;
    match (provider, store) {
        (Ok(()), Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        (provider, store) => {
            let reasons: Vec<String> = [provider.err(), store.err()]
                .into_iter()
                .flatten()
                .collect();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "not_ready", "reason": reasons.join("; ")})),
            )
        }
    }
}
