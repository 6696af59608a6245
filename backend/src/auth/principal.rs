//! The [`Principal`] extractor: how every API route learns who calls it.
//!
//! It reads exactly one `Authorization: Bearer` token (never the session cookie, never
//! `?access_token=`), verifies it through the trust engine, and applies the route policies of
//! the path the client asked for. An API answers 401 JSON with `WWW-Authenticate: Bearer`,
//! never a redirect. The connection's peer goes with the token: an issuer trusted for its
//! proxies only (a gateway's) is refused from anywhere else.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts, OriginalUri},
    http::request::Parts,
};

use crate::{
    error::AppError,
    oidc::client::ProviderClient,
    trust::{
        bearer::bearer_token, engine::Rejection, engine::TrustEngine, principal,
        validate::TokenError,
    },
};

/// The authenticated caller of an API route. Shares the verified principal with the token
/// cache instead of copying it per request.
#[derive(Clone, Debug)]
pub struct Principal(pub Arc<principal::Principal>);

impl std::ops::Deref for Principal {
    type Target = principal::Principal;
    fn deref(&self) -> &principal::Principal {
        &self.0
    }
}

impl<S> FromRequestParts<S> for Principal
where
    S: Send + Sync,
    Arc<TrustEngine>: FromRef<S>,
    Arc<ProviderClient>: FromRef<S>,
{
    type Rejection = AppError;

    #[tracing::instrument(level = "debug", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let token = bearer_token(&parts.headers)?;
        let trust = Arc::<TrustEngine>::from_ref(state);
        let peer = super::gateway::peer_of(&parts.extensions);
        let principal =
            trust
                .verify_from(token, peer)
                .await
                .map_err(|rejection| match rejection {
                    Rejection::Invalid(TokenError::UntrustedIssuer) => {
                        // Until discovery succeeds the provider's tokens cannot be told from foreign
                        // ones: say "not ready" rather than "invalid".
                        let provider = Arc::<ProviderClient>::from_ref(state);
                        if provider.ready().is_none() {
                            AppError::Unavailable(provider.not_ready_reason())
                        } else {
                            AppError::InvalidToken(TokenError::UntrustedIssuer.to_string())
                        }
                    }
                    Rejection::Invalid(e) => AppError::InvalidToken(e.to_string()),
                    Rejection::Policy(reason) => AppError::Forbidden(reason),
                })?;
        // Inside a nested router the URI has lost its prefix; policies use the path the
        // client asked for.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map(|u| u.path())
            .unwrap_or_else(|| parts.uri.path());
        trust
            .authorize(&principal, path)
            .map_err(AppError::Forbidden)?;
        Ok(Principal(principal))
    }
}
