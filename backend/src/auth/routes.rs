//! `/auth/*`: login, callback, the token-mediating session endpoint, logout.

use axum::{
    Json, Router,
    extract::{Query, RawQuery, State},
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use shared::{
    error::ApiError,
    session::{LogoutResponse, SessionInfo},
};
use tower_sessions::Session;

use super::{
    SIGNED_IN_KEY, SILENT_TRIED_KEY, SignedIn,
    flow::{signed_in_from_tokens, start_login, take_pending},
    now,
    refresh::RefreshFailure,
    require_same_origin, return_to,
};
use crate::{
    error::{AppError, AppResult},
    oidc::ProviderError,
    state::AppState,
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/session", get(session_info))
        .route("/auth/logout", post(logout))
}

#[derive(Deserialize)]
struct LoginQuery {
    return_to: Option<String>,
    prompt: Option<String>,
}

/// Starts the code flow. `prompt=none` asks the provider for a silent sign-in.
async fn login(
    State(state): State<AppState>,
    session: Session,
    Query(q): Query<LoginQuery>,
) -> AppResult<Response> {
    let target = return_to::validate(q.return_to.as_deref().unwrap_or("/"))
        .map_err(|e| AppError::BadRequest(e.to_string()))?;
    let silent = match q.prompt.as_deref() {
        None | Some("") | Some("login") => false,
        Some("none") => true,
        Some(_) => {
            return Err(AppError::BadRequest(
                "prompt must be \"none\" or absent".into(),
            ));
        }
    };
    let url = start_login(&state, &session, target, silent).await?;
    Ok(Redirect::to(&url).into_response())
}

/// Parses the callback query, refusing duplicated parameters (parameter pollution).
fn callback_params(
    raw: Option<&str>,
) -> Result<std::collections::HashMap<String, String>, AppError> {
    let mut params = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        if params.insert(k.into_owned(), v.into_owned()).is_some() {
            return Err(AppError::BadRequest(
                "duplicate parameter in callback".into(),
            ));
        }
    }
    Ok(params)
}

/// A small HTML page for a callback that cannot complete: the browser is mid-navigation, so a
/// JSON body would be unreadable. Says what happened and offers a fresh start.
fn failure_page(status: StatusCode, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
         <body><h1>Sign-in failed</h1><p id=\"error\">{escaped}</p><p><a href=\"/login\">Start again</a></p></body></html>"
    );
    (status, [(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

/// Where a provider error sends the browser: the UI's own login page, with the reason.
fn login_page_url(error: &str, description: Option<&str>, return_to: &str) -> String {
    let mut url = format!(
        "/login?error={}&return_to={}",
        urlencoding::encode(error),
        urlencoding::encode(return_to)
    );
    if let Some(d) = description {
        let d: String = d.chars().filter(|c| !c.is_control()).take(200).collect();
        url.push_str("&error_description=");
        url.push_str(&urlencoding::encode(&d));
    }
    url
}

/// The provider sends the browser back here with `code` and `state` (or an error).
#[tracing::instrument(skip_all)]
async fn callback(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> Response {
    match complete_callback(&state, &session, raw.as_deref()).await {
        Ok(response) => response,
        Err(CallbackError::Page(status, message)) => failure_page(status, &message),
        Err(CallbackError::App(e)) => e.into_response(),
    }
}

enum CallbackError {
    Page(StatusCode, String),
    App(AppError),
}

impl From<AppError> for CallbackError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::BadRequest(m) => CallbackError::Page(StatusCode::BAD_REQUEST, m),
            AppError::Unavailable(m) => {
                tracing::warn!(reason = %m, "callback while the provider is unavailable");
                CallbackError::Page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The identity provider cannot be reached right now. Try again in a moment."
                        .into(),
                )
            }
            other => CallbackError::App(other),
        }
    }
}

async fn complete_callback(
    state: &AppState,
    session: &Session,
    raw: Option<&str>,
) -> Result<Response, CallbackError> {
    let params = callback_params(raw)?;
    let discovered = state
        .provider
        .ready()
        .ok_or_else(|| AppError::Unavailable(state.provider.not_ready_reason()))?;
    let bad = |m: &str| CallbackError::Page(StatusCode::BAD_REQUEST, m.to_string());

    let state_param = params.get("state").map(String::as_str).unwrap_or("");
    let pending = if state_param.is_empty() {
        None
    } else {
        take_pending(session, state_param).await?
    };
    let Some(pending) = pending else {
        if let Some(error) = params.get("error") {
            // Not ours to trust, but still the user's clearest path forward.
            return Ok(Redirect::to(&login_page_url(error, None, "/")).into_response());
        }
        return Err(bad(
            "This sign-in response does not belong to a login started in this browser, or was \
             already used (unknown state).",
        ));
    };

    // RFC 9207: the response must come from the provider this login went to.
    match params.get("iss") {
        Some(iss) if iss != &discovered.metadata.issuer => {
            return Err(bad(
                "The sign-in response came from an unexpected issuer (iss).",
            ));
        }
        None if discovered.metadata.iss_parameter_supported => {
            return Err(bad(
                "The sign-in response lacks the issuer (iss) parameter.",
            ));
        }
        _ => {}
    }

    if let Some(error) = params.get("error") {
        let silent_miss = pending.silent
            && matches!(
                error.as_str(),
                "login_required"
                    | "interaction_required"
                    | "consent_required"
                    | "account_selection_required"
            );
        if pending.silent {
            session
                .insert(SILENT_TRIED_KEY, now())
                .await
                .map_err(AppError::internal)?;
        }
        tracing::info!(%error, silent = pending.silent, "provider answered the authorization request with an error");
        let description = if silent_miss {
            None
        } else {
            params.get("error_description").map(String::as_str)
        };
        return Ok(
            Redirect::to(&login_page_url(error, description, &pending.return_to)).into_response(),
        );
    }

    let Some(code) = params.get("code") else {
        return Err(bad(
            "The sign-in response carries neither a code nor an error.",
        ));
    };
    let tokens = match state
        .provider
        .exchange_code(&discovered, code, &pending.pkce_verifier)
        .await
    {
        Ok(t) => t,
        Err(ProviderError::Rejected { error, .. }) => {
            tracing::info!(%error, "provider refused the authorization code");
            return Err(bad(
                "The identity provider refused the sign-in code (it may have been used already). Please sign in again.",
            ));
        }
        Err(ProviderError::Unavailable(e)) => return Err(AppError::Unavailable(e).into()),
    };
    let signed_in = signed_in_from_tokens(state, &discovered, tokens, Some(&pending.nonce), None)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "tokens from the code exchange rejected");
            bad("The tokens from the identity provider did not pass validation.")
        })?;

    // A new identity gets a new session id (session fixation defence).
    session.cycle_id().await.map_err(AppError::internal)?;
    session
        .remove::<i64>(SILENT_TRIED_KEY)
        .await
        .map_err(AppError::internal)?;
    tracing::info!(user = %signed_in.user.id, "signed in");
    session
        .insert(SIGNED_IN_KEY, signed_in)
        .await
        .map_err(AppError::internal)?;
    Ok(Redirect::to(&pending.return_to).into_response())
}

/// Whether a silent sign-in was tried for this browser recently (so not to try again).
pub async fn silent_sso_tried_recently(state: &AppState, session: &Session) -> bool {
    match session.get::<i64>(SILENT_TRIED_KEY).await {
        Ok(Some(at)) => now() - at < state.settings.oidc.silent_sso_retry_secs as i64,
        Ok(None) => false,
        // Fail towards not redirecting: a broken store must not cause a redirect loop.
        Err(_) => true,
    }
}

fn unauthenticated(silent_sso_tried: bool) -> Response {
    let body = ApiError {
        error: "unauthenticated".into(),
        error_description: Some("no signed-in session".into()),
        silent_sso_tried: Some(silent_sso_tried),
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

/// The SPA's only source of its token.
#[tracing::instrument(skip_all)]
async fn session_info(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> AppResult<Response> {
    require_same_origin(&headers, &state.settings)?;
    let Some(mut signed_in) = session
        .get::<SignedIn>(SIGNED_IN_KEY)
        .await
        .map_err(AppError::internal)?
    else {
        let tried =
            !state.settings.oidc.silent_sso || silent_sso_tried_recently(&state, &session).await;
        return Ok(unauthenticated(tried));
    };
    let margin = state.settings.oidc.refresh_before_expiry_secs as i64;
    if signed_in.refresh_due(margin, now()) {
        match state.refresher.refresh(&state, &signed_in).await {
            Ok(refreshed) => {
                session
                    .insert(SIGNED_IN_KEY, refreshed.clone())
                    .await
                    .map_err(AppError::internal)?;
                signed_in = refreshed;
            }
            Err(RefreshFailure::Refused(reason)) => {
                tracing::info!(%reason, "session ended: refresh refused");
                session
                    .remove::<SignedIn>(SIGNED_IN_KEY)
                    .await
                    .map_err(AppError::internal)?;
                return Ok(unauthenticated(true));
            }
            Err(RefreshFailure::Unavailable(reason)) => {
                if signed_in.access_expires_at <= now() {
                    return Err(AppError::Unavailable(reason));
                }
                tracing::warn!(%reason, "refresh failed; handing out the still-valid token");
            }
        }
    }
    let info = SessionInfo {
        user: signed_in.user,
        auth_token: signed_in.access_token,
        expires_at: signed_in.access_expires_at,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response())
}

/// Ends the bridge session and tells the SPA where to end the SSO session.
#[tracing::instrument(skip_all)]
async fn logout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
) -> AppResult<Json<LogoutResponse>> {
    require_same_origin(&headers, &state.settings)?;
    let signed_in = session
        .get::<SignedIn>(SIGNED_IN_KEY)
        .await
        .map_err(AppError::internal)?;
    session.flush().await.map_err(AppError::internal)?;
    let end_session_url = match (state.provider.ready(), signed_in) {
        (Some(d), Some(s)) => d
            .metadata
            .end_session_endpoint
            .as_ref()
            .and_then(|endpoint| {
                let mut url = url::Url::parse(endpoint).ok()?;
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(id_token) = &s.id_token {
                        q.append_pair("id_token_hint", id_token);
                    }
                    q.append_pair("client_id", &state.settings.oidc.client_id)
                        .append_pair(
                            "post_logout_redirect_uri",
                            &state.settings.post_logout_redirect_uri(),
                        );
                }
                Some(url.to_string())
            }),
        _ => None,
    };
    Ok(Json(LogoutResponse { end_session_url }))
}
