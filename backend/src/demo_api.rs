//! The bridge's small demo REST API under `/api`, proving the flow end to end.
//!
//! Every route takes a [`Principal`], the typed extractor that validates
//! `Authorization: Bearer` (or `DPoP` with its proof) itself (signature, issuer, audience,
//! expiry, key binding). Cookies are never
//! looked at here: an API answers 401 JSON with `WWW-Authenticate: Bearer`, never a redirect.
//! The API keeps its own state (the call log), apart from the bridge's infrastructure.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{FromRef, State},
    http::{HeaderValue, Method, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use shared::api::{ApiCall, ApiCalls};

use crate::{
    auth::principal::Principal, clock::now, dpop::Dpop, oidc::client::ProviderClient,
    state::AppState, trust::engine::TrustEngine,
};

/// What the demo API's handlers need: the parts of the bridge the [`Principal`] extractor
/// reads, and the API's own call log. One `Arc`: the route clones its state on every call.
#[derive(Clone)]
struct DemoState(Arc<DemoParts>);

struct DemoParts {
    trust: Arc<TrustEngine>,
    provider: Arc<ProviderClient>,
    dpop: Arc<Dpop>,
    calls: Arc<ApiCallLog>,
}

impl FromRef<DemoState> for Arc<TrustEngine> {
    fn from_ref(state: &DemoState) -> Self {
        state.0.trust.clone()
    }
}

impl FromRef<DemoState> for Arc<ProviderClient> {
    fn from_ref(state: &DemoState) -> Self {
        state.0.provider.clone()
    }
}

impl FromRef<DemoState> for Arc<Dpop> {
    fn from_ref(state: &DemoState) -> Self {
        state.0.dpop.clone()
    }
}

impl FromRef<DemoState> for Arc<ApiCallLog> {
    fn from_ref(state: &DemoState) -> Self {
        state.0.calls.clone()
    }
}

/// The `/api` routes, with their own state; merge them into the bridge's router (full paths,
/// not nested: a nested router costs every API call a rewritten URI and a second routing).
/// `calls` is the API's call log (the caller keeps a handle to read it).
pub fn router(app: &AppState, log: Arc<ApiCallLog>) -> Router {
    let router = Router::new()
        .route("/api/me", get(me))
        .route("/api/calls", get(calls))
        .route("/api", any(not_found))
        .route("/api/{*rest}", any(not_found))
        .with_state(DemoState(Arc::new(DemoParts {
            trust: app.trust.clone(),
            provider: app.provider.clone(),
            dpop: app.dpop.clone(),
            calls: log,
        })));
    // With server nonces, answers to calls with a proof carry the current one; without, no
    // call pays for the layer.
    match app.dpop.nonces {
        Some(_) => router.layer(axum::middleware::from_fn_with_state(
            app.dpop.clone(),
            crate::dpop::advertise_nonce,
        )),
        None => router,
    }
}

/// Records the call the server saw (method, route, which token) for `/api/calls`. `path` is
/// the route's own (each handler has one fixed path), so recording copies no text.
fn record(log: &ApiCallLog, caller: &Principal, method: Method, path: &'static str) {
    log.record(
        &caller.user.id,
        Seen {
            method,
            path,
            token_fingerprint: Fingerprint::of(&caller.token_fingerprint),
            at: now(),
        },
    );
}

/// `GET /api/me`: who the token says the caller is (a [`shared::api::Me`]), as the principal
/// keeps it written.
async fn me(caller: Principal, State(log): State<Arc<ApiCallLog>>, method: Method) -> Response {
    record(&log, &caller, method, "/api/me");
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        caller.api_json(),
    )
        .into_response()
}

/// `GET /api/calls`: the caller's recent API calls (this one included), as the server saw them.
async fn calls(
    caller: Principal,
    State(log): State<Arc<ApiCallLog>>,
    method: Method,
) -> Json<ApiCalls> {
    record(&log, &caller, method, "/api/calls");
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

/// A call as the log keeps it: nothing allocated per call (a standard method is a constant,
/// the path the route's, the fingerprint inline). Written out as an [`ApiCall`] on reading.
struct Seen {
    method: Method,
    path: &'static str,
    token_fingerprint: Fingerprint,
    at: i64,
}

/// A token fingerprint (16 hex digits, see `trust::principal::fingerprint_of`), kept inline.
#[derive(Clone, Copy)]
struct Fingerprint {
    bytes: [u8; 16],
    len: u8,
}

impl Fingerprint {
    fn of(text: &str) -> Self {
        let mut bytes = [0; 16];
        // Cut at a character boundary, should a longer one ever come (a fingerprint is ASCII).
        let mut len = text.len().min(16);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        Self {
            bytes,
            len: u8::try_from(len).unwrap_or(16),
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl From<&Seen> for ApiCall {
    fn from(seen: &Seen) -> Self {
        ApiCall {
            method: seen.method.to_string(),
            path: seen.path.to_string(),
            token_fingerprint: seen.token_fingerprint.as_str().to_string(),
            at: seen.at,
        }
    }
}

/// In-memory record of recent API calls per user, bounded in users and calls.
#[derive(Default)]
pub struct ApiCallLog {
    per_user: Mutex<HashMap<String, VecDeque<Seen>>>,
}

const CALLS_PER_USER: usize = 20;
const MAX_USERS: usize = 10_000;

impl ApiCallLog {
    fn record(&self, user: &str, call: Seen) {
        let mut map = match self.per_user.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        if let Some(calls) = map.get_mut(user) {
            if calls.len() == CALLS_PER_USER {
                calls.pop_back();
            }
            calls.push_front(call);
            return;
        }
        if map.len() >= MAX_USERS {
            // Bounded memory beats perfect history for a demo endpoint.
            map.clear();
        }
        let mut calls = VecDeque::with_capacity(CALLS_PER_USER);
        calls.push_front(call);
        map.insert(user.to_string(), calls);
    }

    /// Newest first.
    pub fn recent(&self, user: &str) -> Vec<ApiCall> {
        let map = match self.per_user.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.get(user)
            .map(|c| c.iter().map(ApiCall::from).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(i: i64) -> Seen {
        Seen {
            method: Method::GET,
            path: "/api/me",
            token_fingerprint: Fingerprint::of("0123456789abcdef"),
            at: i,
        }
    }

    #[test]
    fn the_log_keeps_the_newest_calls_of_each_user_newest_first() {
        let log = ApiCallLog::default();
        for i in 0..25 {
            log.record("alice", seen(i));
        }
        log.record("bob", seen(100));
        let alice = log.recent("alice");
        assert_eq!(alice.len(), CALLS_PER_USER);
        assert_eq!(alice[0].at, 24);
        assert_eq!(alice[CALLS_PER_USER - 1].at, 5);
        assert_eq!(alice[0].method, "GET");
        assert_eq!(alice[0].path, "/api/me");
        assert_eq!(alice[0].token_fingerprint, "0123456789abcdef");
        assert_eq!(log.recent("bob").len(), 1);
        assert!(log.recent("carol").is_empty());
    }

    #[test]
    fn a_fingerprint_is_kept_whole_or_cut_at_a_character() {
        assert_eq!(
            Fingerprint::of("f34046497fcd273f").as_str(),
            "f34046497fcd273f"
        );
        assert_eq!(Fingerprint::of("abc").as_str(), "abc");
        assert_eq!(
            Fingerprint::of("0123456789abcdeé").as_str(),
            "0123456789abcde"
        );
    }
}
