//! The authority's routes, with their own state.

use std::sync::Arc;

use axum::{
    Router,
    routing::{get, post},
};

use super::{
    introspect::{AuthorityState, introspect},
    keyring::Authority,
    token_endpoint::token,
    well_known::{configuration, jwks},
};
use crate::trust::engine::TrustEngine;

pub fn router(authority: Arc<Authority>, trust: Arc<TrustEngine>) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/openid-configuration", get(configuration))
        .route("/oauth/token", post(token))
        .route("/oauth/introspect", post(introspect))
        .with_state(AuthorityState { authority, trust })
}
