//! The bridge's small demo REST API under `/api`, proving the flow end to end.
//!
//! Every route takes a [`Principal`], the typed extractor that validates
//! `Authorization: Bearer` itself (signature, issuer, audience, expiry). Cookies are never
//! looked at here: an API answers 401 JSON with `WWW-Authenticate: Bearer`, never a redirect.
//! The API keeps its own state (the call log), apart from the bridge's infrastructure.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{FromRef, OriginalUri, State},
    http::Method,
    response::{IntoResponse, Response},
    routing::{any, get},
};
use shared::api::{ApiCall, ApiCalls};

use crate::{
    auth::principal::Principal, clock::now, oidc::client::ProviderClient, state::AppState,
    trust::engine::TrustEngine,
};

/// What the demo API's handlers need: the parts of the bridge the [`Principal`] extractor
/// reads, and the API's own call log.
#[derive(Clone, FromRef)]
struct DemoState {
    trust: Arc<TrustEngine>,
    provider: Arc<ProviderClient>,
    calls: Arc<ApiCallLog>,
}

/// The `/api` routes, with their own state; merge them into the bridge's router (full paths,
/// not nested: a nested router costs every API call a rewritten URI and a second routing).
/// `calls` is the API's call log (the caller keeps a handle to read it).
pub fn router(app: &AppState, log: Arc<ApiCallLog>) -> Router {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/calls", get(calls))
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .with_state(DemoState {
            trust: app.trust.clone(),
            provider: app.provider.clone(),
            calls: log,
        })
}

/// Records the call the server saw (method, path, which token) for `/api/calls`.
fn record(log: &ApiCallLog, caller: &Principal, method: &Method, uri: &OriginalUri) {
    log.record(
        &caller.user.id,
        ApiCall {
            method: method.to_string(),
            path: uri.path().to_string(),
            token_fingerprint: caller.token_fingerprint.clone(),
            at: now(),
        },
    );
}

/// The wire form of [`Me`], borrowed from the caller instead of copied (same JSON).
#[derive(serde::Serialize)]
struct MeView<'a> {
    user: &'a shared::session::User,
    issuer: &'a str,
    expires_at: i64,
    token_fingerprint: &'a str,
}

/// `GET /api/me`: who the token says the caller is (a [`Me`]).
async fn me(
    caller: Principal,
    State(log): State<Arc<ApiCallLog>>,
    method: Method,
    uri: OriginalUri,
) -> Response {
    record(&log, &caller, &method, &uri);
    Json(MeView {
        user: &caller.user,
        issuer: &caller.issuer,
        expires_at: caller.expires_at,
        token_fingerprint: &caller.token_fingerprint,
    })
    .into_response()
}

/// `GET /api/calls`: the caller's recent API calls (this one included), as the server saw them.
async fn calls(
    caller: Principal,
    State(log): State<Arc<ApiCallLog>>,
    method: Method,
    uri: OriginalUri,
) -> Json<ApiCalls> {
    record(&log, &caller, &method, &uri);
    Json(ApiCalls {
        calls: log.recent(&caller.user.id),
    })
}

async fn not_found() -> impl IntoResponse {
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(shared::error::ApiError::new(
            "not_found",
            "no such API route",
        )),
    )
}

/// In-memory record of recent API calls per user, bounded in users and calls.
pub struct ApiCallLog {
    per_user: Mutex<HashMap<String, VecDeque<ApiCall>>>,
}

const CALLS_PER_USER: usize = 20;
const MAX_USERS: usize = 10_000;

impl Default for ApiCallLog {
    fn default() -> Self {
        Self {
            per_user: Mutex::new(HashMap::new()),
        }
    }
}

impl ApiCallLog {
    pub fn record(&self, user: &str, call: ApiCall) {
        let mut map = match self.per_user.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(calls) = map.get_mut(user) {
            calls.truncate(CALLS_PER_USER - 1);
            calls.push_front(call);
            return;
        }
        if map.len() >= MAX_USERS {
            // Bounded memory beats perfect history for a demo endpoint.
            map.clear();
        }
        map.entry(user.to_string()).or_default().push_front(call);
    }

    /// Newest first.
    pub fn recent(&self, user: &str) -> Vec<ApiCall> {
        let map = match self.per_user.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.get(user)
            .map(|c| c.iter().cloned().collect())
            .unwrap_or_default()
    }
}
