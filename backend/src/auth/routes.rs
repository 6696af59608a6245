//! The `/auth/*` routes, one handler per file of this folder.

use std::sync::Arc;

use axum::{
    Extension, Router,
    routing::{get, post},
};

use super::{
    backchannel_logout, jwt_endpoint,
    local::{self, LocalLogin},
    logout::logout,
    oidc,
    session_endpoint::session_info,
};
use crate::state::AppState;

/// `local`: the local accounts' sign-in, when `[local_accounts]` is configured.
pub fn router(local: Option<Arc<LocalLogin>>) -> Router<AppState> {
    let router = match local {
        Some(local) => Router::new().route(local::PATH, post(local::login).layer(Extension(local))),
        None => Router::new(),
    };
    router
        .route("/auth/login", get(oidc::login))
        .route("/auth/callback", get(oidc::callback))
        .route("/auth/session", get(session_info))
        .route("/auth/logout", post(logout))
        .route(backchannel_logout::PATH, post(backchannel_logout::receive))
        .route(jwt_endpoint::CALLBACK_PATH, get(jwt_endpoint::callback))
}
