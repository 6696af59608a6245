//! The gateway way in: a proxy or gateway in front of the bridge has authenticated the user and
//! puts a JWT on the request (`Authorization: Bearer …` or a custom header with the bare JWT).
//! A page request carrying a valid one signs the user in before the page is served, with no
//! form and no silent-SSO detour (the privacyIDEA ask).
//!
//! Only connections from `gateway.trusted_proxies` may do this. From any other peer the header
//! means nothing for sign-in, and a custom header is removed by [`strip_untrusted_header`]
//! before any handler sees it. The JWT is checked by the trust engine, restricted to the
//! issuers named in `gateway.issuers` (`verify_as_one_of`).

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName},
    middleware::Next,
    response::Response,
};

use crate::{
    clock::now,
    error::AppError,
    session::{
        index::IndexKey,
        typed::TypedSession,
        user::{SessionUser, SignIn},
    },
    settings::GatewaySettings,
    state::AppState,
    trust::{
        engine::Rejection,
        validate::{MAX_TOKEN_BYTES, TokenError},
    },
};

/// What the gateway header of a page request amounted to.
#[derive(Debug, PartialEq, Eq)]
pub enum GatewaySignIn {
    /// No gateway configured, no header, or a peer that may not set it.
    NotApplicable,
    /// The user is signed in (new session, renewed, or unchanged).
    SignedIn,
    /// A JWT that did not pass; the code tells the login page why, in plain words.
    Rejected(&'static str),
    /// Not a usable header at all (two of them, oversized, not a JWT): a 400.
    Refused(&'static str),
}

/// The peer address of a request, when the server recorded it.
pub fn peer_of(request_extensions: &axum::http::Extensions) -> Option<IpAddr> {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Removes a custom gateway header from requests of peers that may not set it, so no handler
/// (nor an upstream, later) ever sees a forged one. `Authorization` stays: the SPA's own
/// Bearer calls use it; for sign-in it is only read from trusted peers.
pub async fn strip_untrusted_header(
    State(gateway): State<Option<Arc<GatewaySettings>>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(gateway) = &gateway
        && !gateway.uses_authorization()
    {
        let trusted = peer_of(request.extensions()).is_some_and(|peer| gateway.trusts(peer));
        if !trusted && request.headers().contains_key(gateway.header.as_str()) {
            tracing::info!("gateway header from an untrusted peer removed");
            request.headers_mut().remove(gateway.header.as_str());
        }
    }
    next.run(request).await
}

/// The JWT in the gateway header, if this request carries exactly one usable value.
fn header_token<'a>(
    gateway: &GatewaySettings,
    headers: &'a HeaderMap,
) -> Result<Option<&'a str>, &'static str> {
    let Ok(name) = HeaderName::from_bytes(gateway.header.as_bytes()) else {
        return Ok(None);
    };
    let mut values = headers.get_all(&name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err("more than one gateway header");
    }
    if value.len() > MAX_TOKEN_BYTES + 16 {
        return Err("the gateway header is too large");
    }
    let Ok(value) = value.to_str() else {
        return Err("the gateway header is not ASCII");
    };
    let token = if gateway.uses_authorization() {
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            // Another scheme (Basic...) is not a gateway JWT.
            _ => return Ok(None),
        }
    } else {
        value.trim()
    };
    if token.is_empty() {
        return Err("the gateway header is empty");
    }
    Ok(Some(token))
}

/// The short reason code for a rejected gateway JWT (the login page words it), or `None`
/// when the token is not even a well-formed JWT (answered with a 400 instead).
fn reason_code(rejection: &Rejection) -> Option<&'static str> {
    Some(match rejection {
        Rejection::Policy(_) => "policy",
        Rejection::Invalid(e) => match e {
            TokenError::Expired => "expired",
            TokenError::NotYetValid | TokenError::IssuedInFuture => "not_yet_valid",
            TokenError::UntrustedIssuer | TokenError::WrongIssuer => "untrusted_issuer",
            TokenError::WrongAudience | TokenError::WrongAuthorizedParty => "wrong_audience",
            TokenError::BadSignature | TokenError::UnknownKey => "bad_signature",
            TokenError::MissingClaim(_)
            | TokenError::InvalidClaim(_)
            | TokenError::MissingRequiredClaim(_)
            | TokenError::WrongType
            | TokenError::NonceMismatch => "invalid",
            TokenError::TooLarge
            | TokenError::Malformed(_)
            | TokenError::AlgorithmNotAllowed(_)
            | TokenError::ForbiddenHeader(_) => return None,
        },
    })
}

/// Signs the user in from the gateway header of a page request, if there is one and the peer
/// may set it. A different user's session is ended first; the same user's is renewed.
#[tracing::instrument(skip_all)]
pub async fn sign_in_from_gateway(
    state: &AppState,
    session: &TypedSession,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
) -> Result<GatewaySignIn, AppError> {
    let Some(gateway) = &state.settings.gateway else {
        return Ok(GatewaySignIn::NotApplicable);
    };
    if !peer.is_some_and(|p| gateway.trusts(p)) {
        return Ok(GatewaySignIn::NotApplicable);
    }
    let token = match header_token(gateway, headers) {
        Ok(Some(token)) => token,
        Ok(None) => return Ok(GatewaySignIn::NotApplicable),
        Err(why) => return Ok(GatewaySignIn::Refused(why)),
    };
    let names: Vec<&str> = gateway.issuers.iter().map(String::as_str).collect();
    let principal = match state.trust.verify_as_one_of(token, &names).await {
        Ok(p) => p,
        Err(rejection) => {
            tracing::info!(reason = %rejection, "gateway JWT rejected");
            return Ok(match reason_code(&rejection) {
                Some(code) => GatewaySignIn::Rejected(code),
                None => GatewaySignIn::Refused("the gateway header does not hold a usable JWT"),
            });
        }
    };
    let current = session.user().await?;
    let signed_in_at = match &current {
        Some(c)
            if c.principal.issuer == principal.issuer
                && c.principal.user.id == principal.user.id =>
        {
            c.signed_in_at
        }
        _ => now(),
    };
    let user = SessionUser {
        sign_in: SignIn::Gateway {
            token: token.to_string(),
            expires_at: principal.expires_at,
        },
        principal: (*principal).clone(),
        signed_in_at,
    };
    let keys = [IndexKey::sub(user.principal.user.id.clone())];
    match current {
        None => {
            tracing::info!(user = %user.principal.user.id, issuer = %user.principal.issuer_name, "signed in through the gateway");
            session.sign_in(user, &keys).await?;
        }
        Some(current) if !current.same_identity(&user) => {
            tracing::info!(
                previous = %current.principal.user.id,
                user = %user.principal.user.id,
                issuer = %user.principal.issuer_name,
                "the gateway names another user: the old session ends"
            );
            session.switch_user(user, &keys).await?;
        }
        Some(current) => {
            if current.auth_token().0 != token {
                session.update_user(user).await?;
            }
        }
    }
    Ok(GatewaySignIn::SignedIn)
}
