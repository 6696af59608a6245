//! `POST /auth/backchannel-logout`: the provider ends sessions (OIDC Back-Channel Logout 1.0).
//!
//! The provider posts a logout token (a JWT it signed) server to server. It is checked like
//! every token, by the trust engine with the provider's keys (`iss`, `aud` = this client,
//! `iat`, `exp`, `jti`, the back-channel `events` member, `sid` and/or `sub`, no `nonce`), an
//! `iat` older than `oidc.logout_token_max_age_secs` (plus the leeway) is refused, a `jti` is
//! used once, and every bridge session the session index has for the token's `sid`
//! (or, without one, its `sub`) ends: its record is deleted, so each of its tabs is signed out
//! at its next call. Answers: 200 when done, 400 `invalid_request` for a token that does not
//! pass (and nothing ends), 503 when the store fails. Never cached.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;

use crate::{
    clock::now,
    error::AppError,
    extract::Form,
    session::{index::IndexKey, seen::SeenError},
    state::AppState,
    trust::issuer::PROVIDER_ISSUER,
};

pub const PATH: &str = "/auth/backchannel-logout";

#[derive(Deserialize)]
pub struct LogoutForm {
    logout_token: Option<String>,
}

fn refuse(description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({"error": "invalid_request", "error_description": description})),
    )
        .into_response()
}

#[tracing::instrument(skip_all)]
pub async fn receive(
    State(state): State<AppState>,
    form: Result<Form<LogoutForm>, AppError>,
) -> Response {
    // A malformed form (`logout_token` twice, not a form, too large) gets the bridge's JSON.
    let form = match form {
        Ok(Form(form)) => form,
        Err(e) => return e.into_response(),
    };
    let Some(token) = form.logout_token.filter(|t| !t.is_empty()) else {
        return refuse("logout_token is missing");
    };
    let client_id = &state.settings.oidc.client_id;
    let claims = match state
        .trust
        .verify_logout_token(&token, PROVIDER_ISSUER, client_id)
        .await
    {
        Ok(valid) => valid.claims,
        Err(e) => {
            tracing::warn!(reason = %e, "back-channel logout token refused");
            return refuse(&e.to_string());
        }
    };
    let text = |name: &str| claims.str(name).map(str::to_owned);
    let (Some(jti), Some(exp)) = (text("jti"), claims.get("exp").and_then(|e| e.as_i64())) else {
        return refuse("logout token without jti or exp");
    };
    let leeway = i64::try_from(state.settings.oidc.leeway_secs).unwrap_or(0);
    // The engine checked `iat` is a number and not in the future; an old one is refused, as
    // the provider sends the token when the session ends (the `jti` record alone would let a
    // token replayed after the record's end through).
    let max_age = i64::try_from(state.settings.oidc.logout_token_max_age_secs).unwrap_or(0);
    let issued = crate::trust::validate::numeric_claim(&claims, "iat")
        .ok()
        .flatten();
    if issued.is_none_or(|iat| now() - iat > max_age.saturating_add(leeway)) {
        tracing::warn!("back-channel logout token refused: issued too long ago");
        return refuse(&format!(
            "logout token issued more than {max_age} s ago (iat; leeway {leeway} s)"
        ));
    }
    match state
        .logout_jtis
        .first_use(&jti, exp.saturating_add(leeway), now())
    {
        Ok(()) => {}
        Err(SeenError::Replayed) => {
            tracing::warn!("back-channel logout token replayed");
            return refuse("this logout token was already used");
        }
        Err(SeenError::Full) => {
            return AppError::Unavailable("too many logout tokens".into()).into_response();
        }
    }
    // `sid` names one provider session; without it, every session of the subject ends.
    let key = match (text("sid"), text("sub")) {
        (Some(sid), _) => IndexKey::sid(sid),
        (None, Some(sub)) => IndexKey::sub(sub),
        (None, None) => return refuse("neither sid nor sub"),
    };
    match end_sessions(&state, &key).await {
        Ok(ended) => {
            tracing::info!(sessions = ended, by = key.kind(), "back-channel logout");
            for _ in 0..ended {
                crate::metrics::session_ended("backchannel_logout");
            }
            (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// Deletes every session the index has under `key`; returns how many there were.
async fn end_sessions(state: &AppState, key: &IndexKey) -> Result<usize, AppError> {
    let index = &state.sessions.0;
    let ids = index
        .sessions(key)
        .await
        .map_err(|e| AppError::from(crate::session::typed::SessionError::from(e)))?;
    for id in &ids {
        if let Ok(parsed) = id.parse::<tower_sessions::session::Id>() {
            state.session_records.delete(&parsed).await.map_err(|e| {
                AppError::from(crate::session::typed::SessionError::Store(e.into()))
            })?;
        }
        index
            .remove(id)
            .await
            .map_err(|e| AppError::from(crate::session::typed::SessionError::from(e)))?;
    }
    Ok(ids.len())
}
