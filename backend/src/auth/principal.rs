//! The [`Principal`] extractor: how every API route learns who calls it.
//!
//! It reads exactly one `Authorization: Bearer` or `Authorization: DPoP` token (never the
//! session cookie, never `?access_token=`), verifies it through the trust engine, checks its
//! key binding ([`check_binding`]), and applies the route policies of the path the client asked
//! for. An API answers 401 JSON with `WWW-Authenticate: Bearer` (or `DPoP` for a refused
//! proof), never a redirect. The connection's peer goes with the token: an issuer trusted for
//! its proxies only (a gateway's) is refused from anywhere else.
//!
//! A token bound to a key (`cnf.jkt`, RFC 9449) is accepted only as `DPoP` with a valid proof by
//! that key for this very request, whatever `session.dpop` says: a bound token is never a
//! bearer token. An unbound token sent as `DPoP` is refused (RFC 9449 section 7.1).

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts, OriginalUri},
    http::{HeaderMap, Method, request::Parts},
};

use crate::{
    dpop::{Dpop, DpopRefusal, ProofError},
    error::AppError,
    oidc::client::ProviderClient,
    settings::DpopMode,
    trust::{
        bearer::{BearerError, Scheme, access_token},
        engine::Rejection,
        engine::TrustEngine,
        principal,
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
    Arc<Dpop>: FromRef<S>,
{
    type Rejection = AppError;

    #[tracing::instrument(level = "debug", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let dpop = Arc::<Dpop>::from_ref(state);
        let (scheme, token) = match access_token(&parts.headers) {
            Ok(found) => found,
            Err(BearerError::Missing) if dpop.mode != DpopMode::Off => {
                return Err(AppError::UnauthenticatedOfferingDpop(
                    BearerError::Missing.to_string(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
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
        check_binding(
            &dpop,
            &principal,
            scheme,
            token,
            &parts.headers,
            &parts.method,
            path,
        )
        .await?;
        trust
            .authorize(&principal, path)
            .map_err(AppError::Forbidden)?;
        Ok(Principal(principal))
    }
}

/// Whether `token`, proving `principal` and presented with `scheme`, may be used for this
/// request: an unbound token as `Bearer` only; a bound one (`cnf.jkt`) as `DPoP` only, with a
/// proof for `method` and `path` (the path the browser asked for, any upstream prefix
/// included) whose `ath` is the token's and whose key is the one the token names.
pub async fn check_binding(
    dpop: &Dpop,
    principal: &principal::Principal,
    scheme: Scheme,
    token: &str,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
) -> Result<(), AppError> {
    match (principal.cnf_jkt.as_deref(), scheme) {
        (None, Scheme::Bearer) => Ok(()),
        (None, Scheme::Dpop) => Err(DpopRefusal::InvalidToken(
            "the token is not bound to a key; send it as Bearer",
        )
        .into()),
        (Some(_), Scheme::Bearer) => Err(DpopRefusal::InvalidToken(
            "the token is bound to a key; send it as DPoP with a proof",
        )
        .into()),
        (Some(jkt), Scheme::Dpop) => {
            // The token's SHA-256 (its proof's `ath`), kept with it when it was verified.
            let sha256 = principal
                .token_sha256
                .unwrap_or_else(|| principal::token_digest(token));
            let proof = dpop
                .check_request(headers, method, path, Some(sha256), crate::clock::now())
                .await?
                .ok_or(DpopRefusal::InvalidProof(ProofError::Missing))?;
            if proof.jkt != jkt {
                return Err(DpopRefusal::InvalidProof(ProofError::Invalid(
                    "the proof is not signed by the key the token is bound to".into(),
                ))
                .into());
            }
            Ok(())
        }
    }
}
