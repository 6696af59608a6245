//! `POST /oauth/introspect` (RFC 7662): is this token of the bridge's active, and what does it
//! say? The caller authenticates with its own bearer token, a service user's with the
//! `introspect` permission. An active token answers its claims; anything else (expired,
//! forged, another issuer's, a disabled service user's) answers `{"active": false}` and nothing
//! more.

use std::sync::Arc;

use axum::{
    Json,
    extract::{FromRef, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{
    keyring::{Authority, BRIDGE_ISSUER},
    service_users::INTROSPECT,
};
use crate::{
    clock::now,
    error::AppError,
    extract::Form,
    trust::{bearer::bearer_token, engine::TrustEngine},
};

/// What the authority's HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AuthorityState {
    pub authority: Arc<Authority>,
    pub trust: Arc<TrustEngine>,
}

fn no_store(body: Value) -> Response {
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

/// An error answer: RFC 6750 challenge on 401/403, `no-store` always.
fn refuse(status: StatusCode, code: &str, description: &str) -> Response {
    let mut response = (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response();
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
        && let Ok(v) = format!(r#"Bearer realm="login-bridge", error="{code}""#).parse()
    {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::error!(error = %e, "introspection: store unavailable");
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "temporarily_unavailable",
        "try again shortly",
    )
}

/// The form of an introspection request (RFC 7662 section 2.1); a parameter twice is refused.
#[derive(serde::Deserialize)]
pub struct IntrospectForm {
    token: Option<String>,
}

#[tracing::instrument(skip_all)]
pub async fn introspect(
    State(state): State<AuthorityState>,
    headers: HeaderMap,
    form: Result<Form<IntrospectForm>, AppError>,
) -> Response {
    let Ok(caller) = bearer_token(&headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "authenticate with a service user's bearer token",
        );
    };
    let Ok(caller) = state.trust.verify_as(caller, BRIDGE_ISSUER).await else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the caller's token is not valid",
        );
    };
    let allowed = match state.authority.store.service_user(&caller.user.id).await {
        Ok(Some(user)) => user.active(now()) && user.permissions.iter().any(|p| p == INTROSPECT),
        Ok(None) => false,
        Err(e) => return unavailable(e),
    };
    if !allowed {
        return refuse(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "introspection needs a service user with the introspect permission",
        );
    }
    // Read after the caller is known: an unauthenticated caller learns nothing else. A
    // malformed form gets the bridge's JSON (RFC 6749's `invalid_request` shape), `no-store`.
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) => return e.into_response(),
    };
    let Some(token) = form.token.filter(|t| !t.is_empty()) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    let inactive = || no_store(json!({"active": false}));
    let Ok(principal) = state.trust.verify_as(&token, BRIDGE_ISSUER).await else {
        return inactive();
    };
    // A service user's token lives only as long as the user stays enabled.
    let mut answer = principal.claims.parse();
    if let Some(client) = answer.get("client_id").and_then(Value::as_str) {
        match state.authority.store.service_user(client).await {
            Ok(Some(user)) if user.active(now()) && user.id == client => {}
            Ok(_) => return inactive(),
            Err(e) => return unavailable(e),
        }
    }
    answer.insert("active".into(), Value::Bool(true));
    answer.insert("token_type".into(), Value::String("Bearer".into()));
    if let Some(name) = &principal.user.username {
        answer.insert("username".into(), Value::String(name.clone()));
    }
    no_store(Value::Object(answer))
}
