//! `POST /auth/logout`: ends the bridge session and tells the SPA where to end the SSO session.

use axum::{Json, extract::State, http::HeaderMap};
use shared::session::LogoutResponse;

use super::csrf::require_same_origin;
use crate::{
    error::AppResult,
    session::typed::{EndReason, TypedSession},
    state::AppState,
};

#[tracing::instrument(skip_all)]
pub async fn logout(
    State(state): State<AppState>,
    session: TypedSession,
    headers: HeaderMap,
) -> AppResult<Json<LogoutResponse>> {
    require_same_origin(&headers, &state.settings.origin())?;
    let user = session.user().await?;
    session.end(EndReason::Logout).await?;
    // Only a provider sign-in has a provider session to end.
    let provider_tokens = user.as_ref().and_then(|u| u.provider_tokens());
    let end_session_url = match (state.provider.ready(), provider_tokens) {
        (Some(d), Some(tokens)) => state
            .provider
            .end_session_url(&d, tokens.id_token.as_deref()),
        _ => None,
    };
    Ok(Json(LogoutResponse { end_session_url }))
}
