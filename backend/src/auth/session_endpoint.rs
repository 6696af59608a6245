//! `GET /auth/session`: the token-mediating endpoint, the SPA's only source of its token.
//! CSRF-protected; refreshes server-side before expiry; never hands out a refresh token.
//! A session signed in through a gateway hands its gateway JWT only to requests through the
//! gateway (the issuer's trusted proxies): outside, the JWT would be refused anyway, and a
//! session cookie must not turn into a token usable elsewhere. What the SPA should hold
//! outside the gateway is a minted token (`session.token_profile`).
//!
//! With `session.dpop` on, the call carries a DPoP proof (RFC 9449, no `ath`: it carries no
//! token) and the minted token is bound to the proof's key (`cnf.jkt`). The session's key is
//! fixed at its first binding (trust on first use): script injected into the page later can
//! at most obtain a token bound to the browser's non-extractable key, never one of its own or
//! an unbound one. A refused call changes nothing (no refresh, no mint, no binding).

use axum::{
    Json,
    extract::State,
    http::{Extensions, HeaderMap, Method, StatusCode, header},
    response::{IntoResponse, Response},
};
use shared::{error::ApiError, session::SessionInfo};

use super::{csrf::require_same_origin, gateway::peer_of, local, oidc};
use crate::{
    authority::mint::Minted,
    clock::now,
    dpop::{DpopRefusal, ProofError},
    error::{AppError, AppResult},
    session::{
        refresh::RefreshFailure,
        typed::{EndReason, TypedSession},
        user::{SessionUser, SignIn},
    },
    settings::DpopMode,
    state::AppState,
};

/// The path a proof's `htu` names (with `public_url`'s origin), as the browser calls it.
pub const SESSION_PATH: &str = "/auth/session";

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

/// Why a session call's proof is refused, and whether signing in again would help.
struct Refused {
    refusal: DpopRefusal,
    /// The proof is good but from another key than the session's: the browser lost its key
    /// (storage cleared), and a new sign-in (a new, unbound session) is the way back.
    other_key: bool,
}

/// The key this call's token is to be bound to (`None`: a Bearer token), or why the call is
/// refused. Checked before anything else happens to the session, so a refusal changes nothing.
/// `off` ignores proofs (and bindings made before it was turned off) altogether.
async fn binding_key(
    state: &AppState,
    headers: &HeaderMap,
    user: &SessionUser,
) -> Result<Option<String>, Refused> {
    let dpop = &state.dpop;
    if dpop.mode == DpopMode::Off {
        return Ok(None);
    }
    let refused = |refusal: DpopRefusal, other_key: bool| {
        tracing::info!(user = %user.principal.user.id, reason = %refusal, "session call refused");
        Refused { refusal, other_key }
    };
    let proof = dpop
        .check_request(headers, &Method::GET, SESSION_PATH, None, now())
        .await
        .map_err(|r| refused(r, false))?;
    match (proof, &user.dpop_jkt) {
        (Some(proof), Some(bound)) if &proof.jkt != bound => Err(refused(
            DpopRefusal::InvalidProof(ProofError::Invalid(
                "the DPoP proof is signed by another key than the one this session is bound to"
                    .into(),
            )),
            true,
        )),
        (Some(proof), _) => Ok(Some(proof.jkt)),
        // Bound: never an unbound token. Required: never a token without a proof.
        (None, Some(_)) => Err(refused(
            DpopRefusal::InvalidProof(ProofError::Missing),
            false,
        )),
        (None, None) if dpop.mode == DpopMode::Required => Err(refused(
            DpopRefusal::InvalidProof(ProofError::Missing),
            false,
        )),
        (None, None) => Ok(None),
    }
}

/// A refused session call: [`AppError::Dpop`]'s answer (401 with the `DPoP` challenge), its
/// body also saying, as an `unauthenticated` one does, whether the SPA should try a silent
/// sign-in: only for a proof of another key, which a new session would accept. Anything else
/// (no proof, a bad or replayed one) a new sign-in would not mend, so no redirect loop.
fn refused_answer(state: &AppState, refused: Refused) -> Response {
    if matches!(refused.refusal, DpopRefusal::Unavailable(_)) {
        return AppError::Dpop(refused.refusal).into_response();
    }
    let body = ApiError {
        error: refused.refusal.error_code().into(),
        error_description: Some(refused.refusal.to_string()),
        silent_sso_tried: Some(!(refused.other_key && state.settings.oidc.silent_sso)),
        local_accounts: state.settings.local_accounts.is_some().then_some(true),
    };
    let mut answer = AppError::Dpop(refused.refusal).into_response();
    *answer.body_mut() = Json(body).into_response().into_body();
    answer
}

/// Under `session.token_profile` (a local account's profile for a local sign-in), the token
/// the bridge mints for the SPA: the session's last one while it has more than a third of its
/// life left and is bound to the same key (`jkt`; `None`: unbound), else a new one (kept in
/// the session, so every tab and every reload gets the same token and the bridge signs once
/// per period). A new binding is remembered in the session with it.
async fn profile_token(
    state: &AppState,
    session: &TypedSession,
    user: &mut SessionUser,
    jkt: Option<&str>,
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
        && minted.jkt.as_deref() == jkt
        && minted.fresh(profile.lifetime_secs, now())
    {
        return Ok(Some(minted.clone()));
    }
    let minted = authority
        .mint_profile(&profile, &user.principal.user, jkt)
        .map_err(AppError::internal)?;
    if let Some(jkt) = jkt
        && user.dpop_jkt.is_none()
    {
        tracing::info!(user = %user.principal.user.id, %jkt, "session bound to a DPoP key");
        user.dpop_jkt = Some(jkt.to_owned());
    }
    tracing::info!(user = %user.principal.user.id, profile = %name, bound = jkt.is_some(), "minted a token for the SPA");
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
    let jkt = match binding_key(&state, &headers, &user).await {
        Ok(jkt) => jkt,
        Err(refused) => return Ok(refused_answer(&state, refused)),
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
    let minted = profile_token(&state, &session, &mut user, jkt.as_deref()).await?;
    if jkt.is_some() && minted.as_ref().is_none_or(|m| m.jkt != jkt) {
        // Settings validation makes this impossible (DPoP needs `session.token_profile`); a
        // bound session must never fall through to an unbound token all the same.
        return Err(AppError::internal(
            "session.dpop is on but no bound token could be minted (no token profile)",
        ));
    }
    let token_type = match &jkt {
        Some(_) => "DPoP",
        None => "Bearer",
    };
    let (auth_token, expires_at) = match minted {
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
        token_type: token_type.into(),
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(info)).into_response())
}
