//! The JWT-endpoint round trip (ZITADEL's "JWT IdP"): for users whose JWT only the gateway in
//! front of an existing app can produce. "Sign in" sends the browser to `gateway.jwt_endpoint`
//! with binding parameters (an opaque single-use `state`, `expires`, and the bridge's
//! `callback`); the app sends the browser on to the callback with the same parameters, and the
//! gateway adds the JWT header on the way. The bridge checks the binding (unknown, reused,
//! expired, or from another browser: refused), then the JWT exactly as on a first page call.

use std::net::IpAddr;

use axum::{
    extract::State,
    http::{Extensions, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use super::{
    failure_page::failure_page,
    gateway::{GatewaySignIn, peer_of, rejected_location, sign_in_from_gateway},
    opaque::random_token,
};
use crate::{
    clock::now,
    error::{AppError, AppResult},
    extract::Query,
    session::{typed::TypedSession, user::PendingBinding},
    state::AppState,
};

/// Path of the bridge's end of the round trip.
pub const CALLBACK_PATH: &str = "/auth/jwt/callback";

/// Starts a round trip: remembers the binding in this browser's session and returns the URL of
/// the app's JWT endpoint. `None` when no JWT endpoint is configured.
pub async fn start(
    state: &AppState,
    session: &TypedSession,
    return_to: String,
) -> AppResult<Option<String>> {
    let Some(gateway) = &state.settings.gateway else {
        return Ok(None);
    };
    let Some(endpoint) = &gateway.jwt_endpoint else {
        return Ok(None);
    };
    let binding = PendingBinding {
        state: random_token(),
        return_to,
        expires_at: now() + i64::try_from(gateway.jwt_binding_ttl_secs).unwrap_or(300),
    };
    let mut url = endpoint.clone();
    url.query_pairs_mut()
        .append_pair("state", &binding.state)
        .append_pair("expires", &binding.expires_at.to_string())
        .append_pair(
            "callback",
            &format!("{}{CALLBACK_PATH}", state.settings.origin()),
        );
    session.add_pending_binding(binding).await?;
    Ok(Some(url.into()))
}

#[derive(Deserialize)]
pub struct CallbackQuery {
    state: Option<String>,
    expires: Option<i64>,
}

/// `GET /auth/jwt/callback?state=…&expires=…`, reached through the gateway with the JWT header.
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<AppState>,
    session: TypedSession,
    q: Result<Query<CallbackQuery>, AppError>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        // The browser is navigating: the page, as for every other refusal of this callback.
        Err(AppError::BadRequest(why)) => return failure_page(StatusCode::BAD_REQUEST, &why),
        Err(e) => return e.into_response(),
    };
    let peer = peer_of(&extensions);
    match complete(&state, &session, q, &headers, peer).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn complete(
    state: &AppState,
    session: &TypedSession,
    q: CallbackQuery,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<Response, AppError> {
    let refused = |why: &str| Ok(failure_page(StatusCode::BAD_REQUEST, why));
    let Some(state_param) = q.state.filter(|s| !s.is_empty()) else {
        return refused("This sign-in response carries no state.");
    };
    // Taken at once, so a `state` works exactly once, whatever happens next.
    let Some(binding) = session.take_pending_binding(&state_param).await? else {
        return refused(
            "This sign-in response does not belong to a sign-in started in this browser, or was \
             already used (unknown state).",
        );
    };
    if binding.expires_at <= now() || q.expires != Some(binding.expires_at) {
        return refused(
            "This sign-in took too long or was altered (expired). Please sign in again.",
        );
    }
    match sign_in_from_gateway(state, session, headers, peer).await? {
        GatewaySignIn::SignedIn => Ok(Redirect::to(&binding.return_to).into_response()),
        GatewaySignIn::NotApplicable => {
            refused("The sign-in came back without a token from the gateway. Please sign in again.")
        }
        GatewaySignIn::Rejected(reason) => {
            Ok(Redirect::to(&rejected_location(reason, &binding.return_to)).into_response())
        }
        GatewaySignIn::Refused(why) => Ok(failure_page(
            StatusCode::BAD_REQUEST,
            &format!("Sign-in refused: {why}."),
        )),
    }
}
