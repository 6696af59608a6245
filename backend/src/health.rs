//! Liveness and readiness probes.

use axum::{Json, extract::State, http::StatusCode, response::IntoResponse};
use serde_json::json;

use std::sync::Arc;

use crate::{
    authority::keyring::Authority, oidc::client::ProviderClient, session::store::StoreProbe,
};

/// The process is up and serving.
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when OIDC discovery has succeeded, the session store answers and (with
/// `[authority]`) the bridge's signing keys are loaded; else 503 with the reason. Bearer calls to `/api` need neither and keep working while this says 503: a load
/// balancer should stop sending sign-ins here, not API calls.
pub async fn readyz(
    State(provider): State<Arc<ProviderClient>>,
    State(store): State<StoreProbe>,
    State(authority): State<Option<Arc<Authority>>>,
) -> impl IntoResponse {
    match readiness(&provider, &store, authority.as_deref()).await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not_ready", "reason": reason})),
        ),
    }
}

/// What `/readyz` answers: `Ok` when it would say 200, else every reason it is not ready. The
/// systemd notifier (`crate::notify`) asks the same question before it sends `READY=1`.
pub async fn readiness(
    provider: &ProviderClient,
    store: &StoreProbe,
    authority: Option<&Authority>,
) -> Result<(), String> {
    let provider = match provider.ready() {
        Some(_) => Ok(()),
        None => Err(provider.not_ready_reason()),
    };
    let store = store.check().await;
    let keys = match authority.map(|a| a.missing_keys()) {
        Some(missing) if !missing.is_empty() => Err(format!(
            "no current signing key for {}",
            missing
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(()),
    };
    match (provider, store, keys) {
        (Ok(()), Ok(()), Ok(())) => Ok(()),
        (provider, store, keys) => Err([provider.err(), store.err(), keys.err()]
            .into_iter()
            .flatten()
            .collect::<Vec<String>>()
            .join("; ")),
    }
}
