//! `GET /auth/session`: the token-mediating endpoint, the SPA's only source of its token.
//! CSRF-protected; refreshes server-side before expiry; never hands out a refresh token.
//! A session signed in through a gateway hands its gateway JWT only to requests through the
//! gateway (the issuer's trusted proxies): outside, the JWT would be refused anyway, and a
//! session cookie must not turn into a token usable elsewhere. What the SPA should hold
//! outside the gateway is a minted token (`session.token_profile`).

use axum::{
    Json,
    extract::State,
    http::{Extensions, HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{error::ApiError, session::SessionInfo};

use super::{csrf::require_same_origin, gateway::peer_of, local, oidc};
use crate::{
    authority::mint::Minted,
    clock::now,
    error::{AppError, AppResult},
    session::{
        refresh::RefreshFailure,
        typed::{EndReason, TypedSession},
        user::{SessionUser, SignIn},
    },
    state::AppState,
};

fn unauthenticated(state: &AppState, silent_sso_tried: bool) -> Response {
    unauthenticated_because(state, silent_sso_tried, "no signed-in session")
}

fn unauthenticated_because(state: &AppState, silent_sso_tried: bool, why: &str) -> Response {
    let body = ApiError {
        error: "unauthenticated".into(),
        error_description: Some(why.into()),
        silent_sso_tried: Some(silent_sso_tried),
        local_accounts: state.settings.local_accounts.is_some().then_some(true),
    };
    (
        StatusCode::UNAUTHORIZED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response()
}

/// Under `session.token_profile` (a local account's profile for a local sign-in), the token
/// the bridge mints for the SPA: the session's last one while it has more than a third of its
/// life left, else a new one (kept in the session, so every tab and every reload gets the same
/// token and the bridge signs once per period).
async fn profile_token(
    state: &AppState,
    session: &TypedSession,
    user: &mut SessionUser,
) -> AppResult<Option<Minted>> {
    let settings = &state.settings;
    let name = match &user.sign_in {
        SignIn::Local { .. } => settings
            .local_accounts
            .as_ref()
            .and_then(|l| l.profile(&settings.session)),
        _ => settings.session.token_profile.as_deref(),
    };
    let (Some(name), Some(authority)) = (name, &state.authority) else {
        return Ok(None);
    };
    let profile = authority
        .profile(name)
        .ok_or_else(|| AppError::internal(format!("token profile {name} is not loaded")))?;
    if let Some(minted) = &user.minted
        && minted.profile == name
        && minted.fresh(profile.lifetime_secs, now())
    {
        return Ok(Some(minted.clone()));
    }
    let minted = authority
        .mint_profile(&profile, &user.principal.user)
        .map_err(AppError::internal)?;
    tracing::info!(user = %user.principal.user.id, profile = %name, "minted a token for the SPA");
    user.minted = Some(minted.clone());
    session.update_user(user.clone()).await?;
    Ok(Some(minted))
}

#[tracing::instrument(skip_all)]
pub async fn session_info(
    State(state): State<AppState>,
    session: TypedSession,
    headers: HeaderMap,
    extensions: Extensions,
) -> AppResult<Response> {
    require_same_origin(&headers, &state.settings.origin())?;
    let mut user = session.user().await?;
    // A gateway sign-in lasts as long as the gateway's JWT.
    if let Some(u) = &user
        && matches!(u.sign_in, SignIn::Gateway { .. })
        && u.auth_token().1 <= now()
    {
        tracing::info!(user = %u.principal.user.id, "gateway session ended: its JWT expired");
        session.sign_out_user(EndReason::GatewayExpired).await?;
        user = None;
    }
    // A local sign-in lasts while its account is enabled and its password unchanged.
    if let Some(u) = &user
        && local::end_if_revoked(&state, &session, u).await?
    {
        user = None;
    }
    let Some(mut user) = user else {
        let tried = !state.settings.oidc.silent_sso
            || session
                .silent_sso_tried_within(state.settings.oidc.silent_sso_retry_secs)
                .await
                // Fail towards not redirecting: a broken store must not cause a loop.
                .unwrap_or(true);
        return Ok(unauthenticated(&state, tried));
    };
    let margin = state.settings.oidc.refresh_before_expiry_secs as i64;
    let refresh_due = match &user.sign_in {
        SignIn::Oidc { tokens, .. } => tokens.refresh_due(margin, now()),
        SignIn::Gateway { .. } | SignIn::Local { .. } => false,
    };
    if refresh_due {
        match oidc::refresh(&state, &user).await {
            Ok(refreshed) => {
                session.update_user(refreshed.clone()).await?;
                user = refreshed;
            }
            Err(RefreshFailure::Refused(reason)) => {
                tracing::info!(%reason, "session ended: refresh refused");
                session.sign_out_user(EndReason::RefreshRefused).await?;
                return Ok(unauthenticated(&state, true));
            }
            Err(RefreshFailure::Unavailable(reason)) => {
                if user.auth_token().1 <= now() {
                    return Err(AppError::Unavailable(reason));
                }
                tracing::warn!(%reason, "refresh failed; handing out the still-valid token");
            }
        }
    }
    let (auth_token, expires_at) = match profile_token(&state, &session, &mut user).await? {
        Some(minted) => (minted.token, minted.expires_at),
        None if matches!(user.sign_in, SignIn::Gateway { .. })
            && state
                .trust
                .refuses_peer(&user.principal.issuer_name, peer_of(&extensions)) =>
        {
            // The session stays: the same browser behind the gateway goes on using it. No
            // silent sign-in from here (it would replace the gateway's session unasked).
            tracing::info!(user = %user.principal.user.id, "gateway session used from outside the gateway: its token is not handed out");
            return Ok(unauthenticated_because(
                &state,
                true,
                "this session was signed in through the gateway; its token is usable only \
                 through the gateway",
            ));
        }
        None => {
            let (token, expires_at) = user.auth_token();
            (token.to_string(), expires_at)
        }
    };
    let info = SessionInfo {
        auth_token,
        expires_at,
        user: user.principal.user,
        token_type: "Bearer".into(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response())
}
