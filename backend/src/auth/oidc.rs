//! The OIDC way in: starting a login (`/auth/login`, and the silent attempt of the page-open
//! decision), the provider's callback (`/auth/callback`), turning a token response into a
//! [`SessionUser`] (every token checked by the trust engine), and the refresh that keeps an
//! OIDC session alive.

use axum::{
    extract::{RawQuery, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use futures::FutureExt;
use serde::Deserialize;

use super::{failure_page::failure_page, jwt_endpoint, opaque::random_token, return_to};
use crate::{
    clock::now,
    error::{AppError, AppResult},
    extract::Query,
    oidc::client::{AuthorizationRequest, Discovered, ProviderError, TokenResponse},
    session::{
        index::IndexKey,
        refresh::{RefreshFailure, RefreshOutcome},
        typed::TypedSession,
        user::{PendingLogin, ProviderTokens, SessionUser, SignIn},
    },
    settings::SameSiteMode,
    state::AppState,
    trust::{
        claims::{Claims, Value as ClaimValue},
        engine::Rejection,
        issuer::PROVIDER_ISSUER,
        mapping::map_user,
        validate::TokenError,
    },
};

/// Stores a new pending login in the session and returns the provider's authorization URL.
#[tracing::instrument(skip_all, fields(silent))]
pub async fn start_login(
    state: &AppState,
    session: &TypedSession,
    return_to: String,
    silent: bool,
) -> AppResult<String> {
    let discovered = state.provider.ready().ok_or_else(|| {
        AppError::Unavailable(format!(
            "OIDC discovery not complete: {}",
            state.provider.not_ready_reason()
        ))
    })?;
    if !state.provider.reachable().await {
        return Err(AppError::Unavailable("the provider does not answer".into()));
    }
    let pending = PendingLogin {
        state: random_token(),
        nonce: random_token(),
        pkce_verifier: random_token(),
        return_to,
        silent,
        created_at: now(),
    };
    let url = state.provider.authorization_url(
        &discovered,
        &AuthorizationRequest {
            state: &pending.state,
            nonce: &pending.nonce,
            pkce_verifier: &pending.pkce_verifier,
            silent,
        },
    );
    session.add_pending_login(pending).await?;
    Ok(url)
}

#[derive(Deserialize)]
pub struct LoginQuery {
    return_to: Option<String>,
    prompt: Option<String>,
}

/// `GET /auth/login`: starts the code flow. `prompt=none` asks for a silent sign-in. The
/// browser is navigating: when the store or the provider cannot be used, it gets a readable
/// page, not JSON.
pub async fn login(
    State(state): State<AppState>,
    session: TypedSession,
    q: Result<Query<LoginQuery>, AppError>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return e.into_response(),
    };
    match start(state, session, q).await {
        Ok(response) => response,
        Err(e @ (AppError::StoreUnavailable(_) | AppError::Unavailable(_))) => {
            tracing::warn!(error = %e, "sign-in cannot start");
            failure_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Signing in is not possible right now. Please try again in a moment.",
            )
        }
        Err(e) => e.into_response(),
    }
}

async fn start(state: AppState, session: TypedSession, q: LoginQuery) -> AppResult<Response> {
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
    // With a JWT endpoint configured, an interactive sign-in takes the round trip through it.
    if !silent && let Some(url) = jwt_endpoint::start(&state, &session, target.clone()).await? {
        return Ok(Redirect::to(&url).into_response());
    }
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

/// `GET /auth/callback`: the provider sends the browser back here with `code` and `state`
/// (or an error).
#[tracing::instrument(skip_all)]
pub async fn callback(
    State(state): State<AppState>,
    session: TypedSession,
    RawQuery(raw): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    // With `SameSite=Strict` the provider's redirect back (a navigation another site started)
    // arrives without the session cookie, so the login it completes cannot be found. One hop
    // through a page of our own makes the next request same-site, and the cookie comes along.
    if state.settings.session.same_site == SameSiteMode::Strict
        && headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() == b"cross-site")
    {
        return same_site_hop(raw.as_deref().unwrap_or(""));
    }
    match complete_callback(&state, &session, raw.as_deref()).await {
        Ok(response) => response,
        Err(CallbackError::Page(status, message)) => failure_page(status, &message),
        Err(CallbackError::App(e)) => e.into_response(),
    }
}

/// A page that sends the browser on to this same callback URL (a meta refresh: no script,
/// which the CSP would refuse), so that request is same-site. Not cached, not referred.
fn same_site_hop(query: &str) -> Response {
    let url = format!("/auth/callback?{query}")
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"0;url={url}\"><title>Signing in</title></head>\
         <body><p>Signing in… <a href=\"{url}\">continue</a></p></body></html>"
    );
    (
        StatusCode::OK,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::response::Html(body),
    )
        .into_response()
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

impl From<crate::session::typed::SessionError> for CallbackError {
    fn from(e: crate::session::typed::SessionError) -> Self {
        CallbackError::App(e.into())
    }
}

async fn complete_callback(
    state: &AppState,
    session: &TypedSession,
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
        session.take_pending_login(state_param).await?
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
            session.mark_silent_sso_tried().await?;
        }
        let round_trip = state
            .settings
            .gateway
            .as_ref()
            .is_some_and(|g| g.jwt_endpoint_after_silent_miss);
        if silent_miss
            && round_trip
            && let Some(url) =
                jwt_endpoint::start(state, session, pending.return_to.clone()).await?
        {
            return Ok(Redirect::to(&url).into_response());
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
    let (user, sid) = session_user_from_tokens(state, tokens, Some(&pending.nonce), None)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "tokens from the code exchange rejected");
            bad("The tokens from the identity provider did not pass validation.")
        })?;

    let mut keys = vec![IndexKey::sub(user.principal.user.id.clone())];
    keys.extend(sid.map(IndexKey::sid));
    tracing::info!(user = %user.principal.user.id, "signed in");
    // A new identity gets a new session id (session fixation defence).
    session.sign_in(user, &keys).await?;
    Ok(Redirect::to(&pending.return_to).into_response())
}

/// Why a token response could not become a session.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the provider sent no ID token")]
    NoIdToken,
    #[error("ID token rejected: {0}")]
    IdToken(TokenError),
    #[error(
        "access token rejected: {0}. The provider must issue JWT access tokens (not opaque \
         ones) carrying oidc.api_audience in aud: set the client's access token format to JWT \
         at the provider and give it that audience (Keycloak: an audience mapper; \
         LemonLDAP::NG: the relying party's JWT access tokens and additional audiences)"
    )]
    AccessToken(Rejection),
    #[error("the refreshed ID token is for another user")]
    SubjectChanged,
    #[error(
        "the access token carries more than the SPA's API needs ({0}); the SPA would hold a \
         token good elsewhere. Narrow it at the provider (Keycloak: the client's audience \
         mapper and client scopes), or allow it with oidc.extra_token_audiences / \
         oidc.extra_token_scopes, or hand the SPA a minted token (session.token_profile)"
    )]
    TooBroad(String),
}

/// What an access token carries beyond what the SPA's API needs: audiences other than
/// `oidc.api_audience` and scopes the bridge did not ask for, less those the configuration
/// allows. Empty when it is narrow enough to hand to the SPA.
pub fn beyond_need(oidc: &crate::settings::OidcSettings, claims: &Claims) -> Vec<String> {
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(ClaimValue::Str(one)) => vec![one.as_ref()],
        Some(ClaimValue::Array(many)) => many.iter().filter_map(ClaimValue::as_str).collect(),
        _ => Vec::new(),
    };
    let scopes = claims
        .str("scope")
        .unwrap_or_default()
        .split_ascii_whitespace();
    let extra_aud = audiences
        .into_iter()
        .filter(|a| *a != oidc.api_audience && !oidc.extra_token_audiences.iter().any(|x| x == a))
        .map(|a| format!("audience {a}"));
    let extra_scope = scopes
        .filter(|s| {
            !oidc.scopes.iter().any(|x| x == s) && !oidc.extra_token_scopes.iter().any(|x| x == s)
        })
        .map(|s| format!("scope {s}"));
    extra_aud.chain(extra_scope).collect()
}

/// Validates the tokens of a code exchange (`nonce` given) or refresh (`previous` given)
/// through the trust engine and builds the session user; also returns the provider's `sid`.
#[tracing::instrument(skip_all)]
pub async fn session_user_from_tokens(
    state: &AppState,
    tokens: TokenResponse,
    nonce: Option<&str>,
    previous: Option<&SessionUser>,
) -> Result<(SessionUser, Option<String>), SignInError> {
    let settings = &state.settings;
    let previous_user = previous.map(|p| p.principal.user.id.as_str());
    let id_claims = match (&tokens.id_token, previous) {
        (Some(id_token), _) => {
            let id = state
                .trust
                .verify_id_token(
                    id_token,
                    PROVIDER_ISSUER,
                    &settings.oidc.client_id,
                    &settings.oidc.trusted_id_token_audiences(),
                    nonce,
                )
                .await
                .map_err(SignInError::IdToken)?;
            if previous_user.is_some() && id.subject() != previous_user {
                return Err(SignInError::SubjectChanged);
            }
            Some(id.claims)
        }
        // A refresh may omit the ID token; a login may not.
        (None, Some(_)) => None,
        (None, None) => return Err(SignInError::NoIdToken),
    };
    // The one path every provider access token takes, as on `/api`.
    let access = state
        .trust
        .verify_as(&tokens.access_token, PROVIDER_ISSUER)
        .await
        .map_err(SignInError::AccessToken)?;
    let access_claims =
        access
            .claims
            .view()
            .ok_or(SignInError::AccessToken(Rejection::Invalid(
                TokenError::Malformed("payload is not a JSON object"),
            )))?;
    let beyond = beyond_need(&settings.oidc, &access_claims);
    if !beyond.is_empty() {
        return Err(SignInError::TooBroad(beyond.join(", ")));
    }
    let access_sub = access_claims.str("sub");
    if previous_user.is_some() && access_sub != previous_user {
        return Err(SignInError::SubjectChanged);
    }
    let id_sub = id_claims.as_ref().and_then(|c| c.str("sub"));
    if let Some(sub) = id_sub
        && access_sub != Some(sub)
    {
        return Err(SignInError::SubjectChanged);
    }
    let mut principal = (*access).clone();
    // ID token first, then the access token (Keycloak puts roles only into the latter).
    // The access token passed the same mapping on its own, so its claims hold every
    // required one; a refusal here is kept all the same rather than assumed away.
    let mapped = |sources: &[&Claims]| {
        map_user(&settings.claims, sources)
            .map_err(|e| SignInError::AccessToken(Rejection::Invalid(e)))
    };
    principal.user = match (&id_claims, previous) {
        (Some(id), _) => mapped(&[id, &access_claims])?,
        (None, Some(prev)) => {
            let mut user = mapped(&[&access_claims])?;
            user.id = prev.principal.user.id.clone();
            user
        }
        (None, None) => return Err(SignInError::NoIdToken),
    };
    let sid = id_claims
        .as_ref()
        .and_then(|c| c.get("sid"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let (previous_tokens, previous_sid) = match previous.map(|p| &p.sign_in) {
        Some(SignIn::Oidc { tokens, sid }) => (Some(tokens), sid.clone()),
        Some(SignIn::Gateway { .. } | SignIn::Local { .. }) | None => (None, None),
    };
    let sid = sid.or(previous_sid);
    let user = SessionUser {
        sign_in: SignIn::Oidc {
            tokens: ProviderTokens {
                access_expires_at: access.expires_at,
                access_token: tokens.access_token,
                access_received_at: now(),
                refresh_token: tokens
                    .refresh_token
                    .or_else(|| previous_tokens.and_then(|p| p.refresh_token.clone())),
                id_token: tokens
                    .id_token
                    .or_else(|| previous_tokens.and_then(|p| p.id_token.clone())),
                refresh_expires_at: match tokens.refresh_expires_in {
                    Some(secs) => Some(now().saturating_add(secs)),
                    None => previous_tokens.and_then(|p| p.refresh_expires_at),
                },
            },
            sid: sid.clone(),
        },
        principal,
        signed_in_at: previous.map(|p| p.signed_in_at).unwrap_or_else(now),
        minted: None,
        // A refresh keeps the session's key; a new sign-in starts unbound.
        dpop_jkt: previous.and_then(|p| p.dpop_jkt.clone()),
    };
    Ok((user, sid))
}

/// Refreshes the provider tokens of `current`, single-flight through the refresh lock: every
/// request holding the same refresh token shares one refresh.
pub async fn refresh(state: &AppState, current: &SessionUser) -> RefreshOutcome {
    let Some(refresh_token) = current
        .provider_tokens()
        .and_then(|t| t.refresh_token.clone())
    else {
        return Err(RefreshFailure::Refused("no refresh token".into()));
    };
    let work = {
        let state = state.clone();
        let current = current.clone();
        let refresh_token = refresh_token.clone();
        async move { do_refresh(state, current, refresh_token).await }.boxed()
    };
    state.refresh_lock.run(&refresh_token, work).await
}

/// One refresh at the provider (callers sharing it are not counted again).
async fn do_refresh(
    state: AppState,
    current: SessionUser,
    refresh_token: String,
) -> RefreshOutcome {
    crate::metrics::refresh_started();
    let outcome = do_refresh_uncounted(state, current, refresh_token).await;
    match &outcome {
        Ok(_) => {}
        Err(RefreshFailure::Refused(_)) => crate::metrics::refresh_failed("refused"),
        Err(RefreshFailure::Unavailable(_)) => crate::metrics::refresh_failed("unavailable"),
    }
    outcome
}

#[tracing::instrument(skip_all, fields(user = %current.principal.user.id))]
async fn do_refresh_uncounted(
    state: AppState,
    current: SessionUser,
    refresh_token: String,
) -> RefreshOutcome {
    let discovered: std::sync::Arc<Discovered> = state
        .provider
        .ready()
        .ok_or_else(|| RefreshFailure::Unavailable("provider not discovered".into()))?;
    let tokens = match state.provider.refresh(&discovered, &refresh_token).await {
        Ok(t) => t,
        Err(ProviderError::Rejected { error, .. }) => {
            tracing::info!(%error, "provider refused the refresh; ending the session");
            return Err(RefreshFailure::Refused(error));
        }
        Err(ProviderError::Unavailable(e)) => return Err(RefreshFailure::Unavailable(e)),
    };
    let (refreshed, _) = session_user_from_tokens(&state, tokens, None, Some(&current))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "refreshed tokens rejected; ending the session");
            RefreshFailure::Refused(e.to_string())
        })?;
    tracing::debug!("access token refreshed");
    Ok(refreshed)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// An opaque access token's refusal names the provider setting in general terms.
    #[test]
    fn the_hint_for_an_opaque_access_token_asks_for_jwt_access_tokens() {
        let refusal = super::SignInError::AccessToken(crate::trust::engine::Rejection::Invalid(
            crate::trust::validate::TokenError::Malformed("a JWT has three dot-separated parts"),
        ))
        .to_string();
        assert!(
            refusal.contains("JWT access tokens (not opaque ones)"),
            "{refusal}"
        );
        assert!(refusal.contains("oidc.api_audience"), "{refusal}");
    }

    use super::beyond_need;
    use crate::settings::Settings;
    use crate::trust::claims::Claims;

    fn beyond(claims: serde_json::Value, extra_aud: &[&str], extra_scope: &[&str]) -> Vec<String> {
        let mut oidc = Settings::default().oidc;
        oidc.api_audience = "api".into();
        oidc.extra_token_audiences = extra_aud.iter().map(|s| s.to_string()).collect();
        oidc.extra_token_scopes = extra_scope.iter().map(|s| s.to_string()).collect();
        let serde_json::Value::Object(claims) = claims else {
            unreachable!()
        };
        beyond_need(&oidc, &Claims::from_map(&claims).unwrap())
    }

    #[test]
    fn a_token_for_the_api_alone_with_the_asked_scopes_is_narrow_enough() {
        assert!(
            beyond(
                json!({"aud": "api", "scope": "openid profile email"}),
                &[],
                &[]
            )
            .is_empty()
        );
        assert!(beyond(json!({"aud": ["api"], "scope": "openid"}), &[], &[]).is_empty());
        assert!(beyond(json!({"aud": "api"}), &[], &[]).is_empty());
    }

    #[test]
    fn more_audiences_or_scopes_than_the_api_needs_are_named_unless_allowed() {
        assert_eq!(
            beyond(
                json!({"aud": ["api", "account", "billing"], "scope": "openid admin"}),
                &[],
                &[]
            ),
            ["audience account", "audience billing", "scope admin"]
        );
        assert_eq!(
            beyond(
                json!({"aud": ["api", "account"], "scope": "openid admin"}),
                &["account"],
                &["admin"]
            ),
            Vec::<String>::new()
        );
    }
}
