//! Shared application state, passed to handlers through axum's `State` (never a global).

use std::sync::Arc;

use crate::{
    api::ApiCallLog, auth::refresh::Refresher, oidc::Provider, settings::Settings, spa::SpaIndex,
    trust::engine::TrustEngine,
};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub provider: Arc<Provider>,
    pub refresher: Arc<Refresher>,
    pub api_calls: Arc<ApiCallLog>,
    pub spa: Arc<SpaIndex>,
    /// Every trusted issuer of API bearer tokens, with the verified-token cache.
    pub trust: Arc<TrustEngine>,
}
