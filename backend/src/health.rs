//! Liveness and readiness probes.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use std::sync::Arc;

use crate::oidc::client::ProviderClient;

/// The process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when OIDC discovery has succeeded; until then 503 with the reason.
pub async fn readyz(State(provider): State<Arc<ProviderClient>>) -> impl IntoResponse {
    if provider.ready().is_some() {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": provider.not_ready_reason()})),
        )
    }
}
