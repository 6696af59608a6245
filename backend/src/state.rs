//! The bridge's infrastructure, shared by handlers through axum's `State` (never a global):
//! settings, the trust engine, the provider client, the session index, the refresh lock and
//! the SPA's entry page. Features keep their own state; handlers take the parts they need
//! through `FromRef`.
//!
//! axum clones the state for every extractor that asks for it, so it is one `Arc`: a clone is
//! one reference-count increment, whatever the state holds.

use std::{ops::Deref, sync::Arc};

use axum::extract::FromRef;

use crate::{
    authority::keyring::Authority,
    oidc::client::ProviderClient,
    session::{refresh::RefreshLock, store::StoreProbe, typed::SessionIndexHandle},
    settings::Settings,
    trust::engine::TrustEngine,
    web::spa::SpaIndex,
};

#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub settings: Arc<Settings>,
    /// Every trusted issuer (the login provider once discovered), with the verified-token cache.
    pub trust: Arc<TrustEngine>,
    pub provider: Arc<ProviderClient>,
    pub sessions: SessionIndexHandle,
    /// The session records themselves, to end sessions found through the index.
    pub session_records: Arc<dyn tower_sessions::SessionStore>,
    /// `jti`s of back-channel logout tokens already used (see `auth::backchannel_logout`).
    pub logout_jtis: Arc<crate::session::seen::SeenJtis>,
    pub refresh_lock: Arc<dyn RefreshLock>,
    /// Whether the session store answers (readiness).
    pub store: StoreProbe,
    pub spa: Arc<SpaIndex>,
    /// The bridge as a token issuer, when `[authority]` is configured.
    pub authority: Option<Arc<Authority>>,
    /// DPoP proofs (`session.dpop`): their checks and replay records.
    pub dpop: Arc<crate::dpop::Dpop>,
}

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }

    /// The state a configuration reload makes: new `settings` and SPA entry page, every
    /// stateful part (sessions, refresh lock, provider, trust engine, authority, DPoP replay
    /// records, used logout `jti`s) the very same.
    pub fn reloaded(&self, settings: Arc<Settings>, spa: Arc<SpaIndex>) -> Self {
        Self::new(AppStateInner {
            settings,
            trust: self.trust.clone(),
            provider: self.provider.clone(),
            sessions: self.sessions.clone(),
            session_records: self.session_records.clone(),
            logout_jtis: self.logout_jtis.clone(),
            refresh_lock: self.refresh_lock.clone(),
            store: self.store.clone(),
            spa,
            authority: self.authority.clone(),
            dpop: self.dpop.clone(),
        })
    }
}

impl Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Self {
        state.settings.clone()
    }
}

impl FromRef<AppState> for Arc<TrustEngine> {
    fn from_ref(state: &AppState) -> Self {
        state.trust.clone()
    }
}

impl FromRef<AppState> for Arc<ProviderClient> {
    fn from_ref(state: &AppState) -> Self {
        state.provider.clone()
    }
}

impl FromRef<AppState> for Option<Arc<Authority>> {
    fn from_ref(state: &AppState) -> Self {
        state.authority.clone()
    }
}

impl FromRef<AppState> for StoreProbe {
    fn from_ref(state: &AppState) -> Self {
        state.store.clone()
    }
}

impl FromRef<AppState> for SessionIndexHandle {
    fn from_ref(state: &AppState) -> Self {
        state.sessions.clone()
    }
}

impl FromRef<AppState> for Arc<crate::dpop::Dpop> {
    fn from_ref(state: &AppState) -> Self {
        state.dpop.clone()
    }
}
