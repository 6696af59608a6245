//! The steps of the authorization-code flow that both the `/auth` routes and the SPA's
//! silent-SSO redirect use: starting a login, and turning a token response into a
//! [`SignedIn`] after validating every token in it.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use tower_sessions::Session;

use super::{
    MAX_PENDING_LOGINS, PENDING_KEY, PENDING_LOGIN_TTL_SECS, PendingLogin, SignedIn, now,
    random_token,
};
use crate::{
    error::{AppError, AppResult},
    oidc::{Discovered, TokenResponse},
    state::AppState,
    trust::{
        mapping::map_user,
        validate::{Expectations, TokenError, TokenKind, ValidatedToken, validate},
    },
};

/// Stores a new pending login in the session and returns the provider's authorization URL.
#[tracing::instrument(skip_all, fields(silent))]
pub async fn start_login(
    state: &AppState,
    session: &Session,
    return_to: String,
    silent: bool,
) -> AppResult<String> {
    let discovered = state.provider.ready().ok_or_else(|| {
        AppError::Unavailable(format!(
            "OIDC discovery not complete: {}",
            state.provider.not_ready_reason()
        ))
    })?;
    let pending = PendingLogin {
        state: random_token(),
        nonce: random_token(),
        pkce_verifier: random_token(),
        return_to,
        silent,
        created_at: now(),
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.pkce_verifier.as_bytes()));

    let mut pendings: Vec<PendingLogin> = session
        .get(PENDING_KEY)
        .await
        .map_err(AppError::internal)?
        .unwrap_or_default();
    pendings.retain(|p| now() - p.created_at < PENDING_LOGIN_TTL_SECS);
    while pendings.len() >= MAX_PENDING_LOGINS {
        pendings.remove(0);
    }
    let settings = &state.settings;
    let mut url =
        url::Url::parse(&discovered.metadata.authorization_endpoint).map_err(AppError::internal)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &settings.oidc.client_id)
            .append_pair("redirect_uri", &settings.redirect_uri())
            .append_pair("scope", &settings.oidc.scopes.join(" "))
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if silent {
            q.append_pair("prompt", "none");
        }
    }
    pendings.push(pending);
    session
        .insert(PENDING_KEY, pendings)
        .await
        .map_err(AppError::internal)?;
    Ok(url.into())
}

/// Removes and returns the pending login with this `state`, if it exists and is fresh.
/// Once taken it is gone, so a `state` works exactly once.
pub async fn take_pending(session: &Session, state_param: &str) -> AppResult<Option<PendingLogin>> {
    let mut pendings: Vec<PendingLogin> = session
        .get(PENDING_KEY)
        .await
        .map_err(AppError::internal)?
        .unwrap_or_default();
    let found = pendings
        .iter()
        .position(|p| constant_time_eq(p.state.as_bytes(), state_param.as_bytes()))
        .map(|i| pendings.remove(i));
    pendings.retain(|p| now() - p.created_at < PENDING_LOGIN_TTL_SECS);
    session
        .insert(PENDING_KEY, pendings)
        .await
        .map_err(AppError::internal)?;
    Ok(found.filter(|p| now() - p.created_at < PENDING_LOGIN_TTL_SECS))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Validates the API access token the provider issued, as the API itself would.
pub async fn validate_access_token(
    state: &AppState,
    discovered: &Discovered,
    token: &str,
) -> Result<ValidatedToken, TokenError> {
    let audiences = std::slice::from_ref(&state.settings.oidc.api_audience);
    validate(
        token,
        &*discovered.jwks,
        &Expectations {
            issuer: &discovered.metadata.issuer,
            algorithms: &discovered.metadata.algorithms,
            leeway_secs: state.settings.oidc.leeway_secs,
            kind: TokenKind::Access { audiences },
            required_typ: None,
            required_claims: &[],
        },
    )
    .await
}

/// Why a token response could not become a session.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the provider sent no ID token")]
    NoIdToken,
    #[error("ID token rejected: {0}")]
    IdToken(TokenError),
    #[error(
        "access token rejected: {0}. The access token must be a JWT for the configured \
         oidc.api_audience (Keycloak: add an audience mapper to the client)"
    )]
    AccessToken(TokenError),
    #[error("the refreshed ID token is for another user")]
    SubjectChanged,
}

/// Validates the tokens of a code exchange (`nonce` given) or refresh (`expected_sub` given)
/// and builds the signed-in state.
#[tracing::instrument(skip_all)]
pub async fn signed_in_from_tokens(
    state: &AppState,
    discovered: &Discovered,
    tokens: TokenResponse,
    nonce: Option<&str>,
    previous: Option<&SignedIn>,
) -> Result<SignedIn, SignInError> {
    let settings = &state.settings;
    let id_claims = match (&tokens.id_token, previous) {
        (Some(id_token), _) => {
            let id = validate(
                id_token,
                &*discovered.jwks,
                &Expectations {
                    issuer: &discovered.metadata.issuer,
                    algorithms: &discovered.metadata.algorithms,
                    leeway_secs: settings.oidc.leeway_secs,
                    kind: TokenKind::Id {
                        client_id: &settings.oidc.client_id,
                        nonce,
                    },
                    required_typ: None,
                    required_claims: &[],
                },
            )
            .await
            .map_err(SignInError::IdToken)?;
            if let Some(prev) = previous
                && id.subject() != Some(prev.user.id.as_str())
            {
                return Err(SignInError::SubjectChanged);
            }
            Some(id.claims)
        }
        // A refresh may omit the ID token; a login may not.
        (None, Some(_)) => None,
        (None, None) => return Err(SignInError::NoIdToken),
    };
    let access = validate_access_token(state, discovered, &tokens.access_token)
        .await
        .map_err(SignInError::AccessToken)?;
    if let Some(prev) = previous
        && access.subject() != Some(prev.user.id.as_str())
    {
        return Err(SignInError::SubjectChanged);
    }
    let user = match (&id_claims, previous) {
        (Some(id), _) => map_user(&settings.claims, &[id, &access.claims]),
        (None, Some(prev)) => {
            let mut user = map_user(&settings.claims, &[&access.claims]);
            user.id = prev.user.id.clone();
            user
        }
        (None, None) => return Err(SignInError::NoIdToken),
    };
    let id_sub = id_claims
        .as_ref()
        .and_then(|c| c.get("sub"))
        .and_then(|v| v.as_str());
    if let Some(sub) = id_sub
        && access.subject() != Some(sub)
    {
        return Err(SignInError::SubjectChanged);
    }
    Ok(SignedIn {
        user,
        access_token: tokens.access_token,
        access_expires_at: access.expires_at,
        access_received_at: now(),
        refresh_token: tokens
            .refresh_token
            .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
        id_token: tokens
            .id_token
            .or_else(|| previous.and_then(|p| p.id_token.clone())),
        signed_in_at: previous.map(|p| p.signed_in_at).unwrap_or_else(now),
    })
}
