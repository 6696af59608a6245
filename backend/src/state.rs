//! Shared application state, passed to handlers through axum's `State` (never a global).
//!
//! axum clones the state for every extractor that asks for it, so it is one `Arc`: a clone is
//! one reference-count increment, whatever the state holds.

use std::{ops::Deref, sync::Arc};

use crate::{
    api::ApiCallLog, auth::refresh::Refresher, oidc::Provider, settings::Settings, spa::SpaIndex,
    trust::engine::TrustEngine,
};

#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub settings: Arc<Settings>,
    pub provider: Arc<Provider>,
    pub refresher: Arc<Refresher>,
    pub api_calls: Arc<ApiCallLog>,
    pub spa: Arc<SpaIndex>,
    /// Every trusted issuer of API bearer tokens, with the verified-token cache.
    pub trust: Arc<TrustEngine>,
}

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}
