//! The `/auth/*` routes, one handler per file of this folder.

use axum::{
    Router,
    routing::{get, post},
};

use super::{
    backchannel_logout, jwt_endpoint, logout::logout, oidc, session_endpoint::session_info,
};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(oidc::login))
        .route("/auth/callback", get(oidc::callback))
        .route("/auth/session", get(session_info))
        .route("/auth/logout", post(logout))
        .route(backchannel_logout::PATH, post(backchannel_logout::receive))
        .route(jwt_endpoint::CALLBACK_PATH, get(jwt_endpoint::callback))
}
