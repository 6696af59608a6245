//! The bridge's small demo REST API under `/api`, proving the flow end to end.
//!
//! Every route takes a [`Principal`], the typed extractor that validates
//! `Authorization: Bearer` itself (signature, issuer, audience, expiry). Cookies are never
//! looked at here: an API answers 401 JSON with `WWW-Authenticate: Bearer`, never a redirect.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use axum::{
    Json, Router,
    extract::{FromRequestParts, OriginalUri, State},
    http::{header, request::Parts},
    response::{IntoResponse, Response},
    routing::get,
};
use shared::api::{ApiCall, ApiCalls};

use crate::{
    auth::now,
    error::AppError,
    state::AppState,
    trust::{engine::Rejection, validate::TokenError},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me", get(me))
        .route("/calls", get(calls))
        .fallback(not_found)
}

pub use crate::trust::engine::Principal;

/// The authenticated caller of an API route: the typed extractor every `/api` handler takes.
/// Shares the verified principal with the token cache instead of copying it per request.
#[derive(Clone, Debug)]
pub struct Caller(pub Arc<Principal>);

impl std::ops::Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.0
    }
}

/// Extracts the single bearer token of a request.
fn bearer_token(parts: &Parts) -> Result<&str, AppError> {
    let mut values = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(AppError::Unauthenticated("missing bearer token".into()));
    };
    if values.next().is_some() {
        return Err(AppError::BadRequest(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| AppError::InvalidToken("Authorization header is not ASCII".into()))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(AppError::InvalidToken(
            "Authorization must be \"Bearer <token>\"".into(),
        )),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    #[tracing::instrument(skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = bearer_token(parts)?;
        // Inside the nested `/api` router the URI has lost its prefix; policies and the call
        // record use the path the client asked for.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.path())
            .unwrap_or_else(|| parts.uri.path());
        let discovered = state.provider.ready();
        let principal = state
            .trust
            .verify(token, discovered.as_ref().map(|d| &d.trusted))
            .await
            .map_err(|rejection| match rejection {
                Rejection::Invalid(TokenError::UntrustedIssuer) if discovered.is_none() => {
                    AppError::Unavailable(state.provider.not_ready_reason())
                }
                Rejection::Invalid(e) => AppError::InvalidToken(e.to_string()),
                Rejection::Policy(reason) => AppError::Forbidden(reason),
            })?;
        state
            .trust
            .authorize(&principal, path)
            .map_err(AppError::Forbidden)?;
        state.api_calls.record(
            &principal.user.id,
            ApiCall {
                method: parts.method.to_string(),
                path: path.to_string(),
                token_fingerprint: principal.token_fingerprint.clone(),
                at: now(),
            },
        );
        Ok(Caller(principal))
    }
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
async fn me(caller: Caller) -> Response {
    Json(MeView {
        user: &caller.user,
        issuer: &caller.issuer,
        expires_at: caller.expires_at,
        token_fingerprint: &caller.token_fingerprint,
    })
    .into_response()
}

/// `GET /api/calls`: the caller's recent API calls, as the server saw them.
async fn calls(caller: Caller, State(state): State<AppState>) -> Json<ApiCalls> {
    Json(ApiCalls {
        calls: state.api_calls.recent(&caller.user.id),
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
