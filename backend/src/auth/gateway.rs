//! The gateway way in: a proxy or gateway in front of the bridge has authenticated the user and
//! puts a JWT on the request (`Authorization: Bearer …` or a custom header with the bare JWT).
//! A page request carrying a valid one signs the user in before the page is served, with no
//! form and no silent-SSO detour (the privacyIDEA ask).
//!
//! Only connections from `gateway.trusted_proxies` may do this. From any other peer the header
//! means nothing for sign-in, and a custom header is removed by [`strip_untrusted_header`]
//! before any handler sees it. The JWT is checked by the trust engine, restricted to the
//! issuers named in `gateway.issuers` (`verify_as_one_of`). Those issuers are trusted for
//! requests from `trusted_proxies` only, on every way in (`/api`, upstreams, `/auth/session`
//! handing the JWT out): a gateway JWT sent straight from elsewhere is refused.

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
    upstream::headers::same_when_folded,
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
/// (nor an upstream, later) ever sees a forged one: under any spelling a backend may read as
/// the same name (case, `_` for `-`; see [`crate::upstream::headers`]). `Authorization` stays:
/// the SPA's own Bearer calls use it; for sign-in it is only read from trusted peers.
pub async fn strip_untrusted_header(
    State(gateway): State<Option<Arc<GatewaySettings>>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(gateway) = &gateway
        && !gateway.uses_authorization()
    {
        let trusted = peer_of(request.extensions()).is_some_and(|peer| gateway.trusts(peer));
        if !trusted {
            // Compared in place; only a request that carries one allocates the list.
            let forged: Vec<HeaderName> = request
                .headers()
                .keys()
                .filter(|name| same_when_folded(name.as_str(), &gateway.header))
                .cloned()
                .collect();
            if !forged.is_empty() {
                tracing::info!("gateway header from an untrusted peer removed");
            }
            for name in forged {
                request.headers_mut().remove(name);
            }
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
    // No signature at all (`alg: none` and the like): not a JWT any issuer could accept.
    if token.split('.').nth(2).is_none_or(str::is_empty) {
        return Err("the gateway header holds an unsigned token");
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
            TokenError::UntrustedIssuer | TokenError::WrongIssuer | TokenError::UntrustedPeer => {
                "untrusted_issuer"
            }
            TokenError::WrongAudience { .. } | TokenError::WrongAuthorizedParty(_) => {
                "wrong_audience"
            }
            TokenError::BadSignature | TokenError::UnknownKey => "bad_signature",
            TokenError::MissingClaim(_) | TokenError::MissingRequiredClaim(_) => "missing_claim",
            TokenError::InvalidClaim(_)
            | TokenError::WrongType
            | TokenError::NonceMismatch
            | TokenError::NotALogoutToken(_)
            | TokenError::Revoked => "invalid",
            TokenError::TooLarge
            | TokenError::Malformed(_)
            | TokenError::AlgorithmNotAllowed(..)
            | TokenError::ForbiddenHeader(_) => return None,
        },
    })
}

/// A reason code of [`GatewaySignIn::Rejected`], in the words the login page shows.
pub fn reason_words(code: &str) -> &'static str {
    match code {
        "expired" => {
            "Your gateway's sign-in token has expired. Reload the page once your gateway has a \
             fresh one, or sign in with SSO."
        }
        "not_yet_valid" => {
            "Your gateway's sign-in token is not valid yet (check the clocks). Reload later, or \
             sign in with SSO."
        }
        "untrusted_issuer" => {
            "Your gateway's sign-in token comes from an issuer this site does not trust. Sign in \
             with SSO."
        }
        "wrong_audience" => {
            "Your gateway's sign-in token is meant for another application. Sign in with SSO."
        }
        "bad_signature" => {
            "Your gateway's sign-in token has a signature this site cannot verify. Sign in with \
             SSO."
        }
        "missing_claim" => {
            "Your gateway's sign-in token lacks a claim this site needs to know who you are \
             (such as your username). Sign in with SSO."
        }
        "policy" => "Your gateway's sign-in token does not allow access here. Sign in with SSO.",
        _ => "Your gateway's sign-in token was not accepted. Sign in with SSO.",
    }
}

/// Where a browser whose gateway JWT was refused goes: the login page, saying why in words
/// (the code stays in `reason` for scripts), and back to `return_to` after signing in.
pub fn rejected_location(reason: &str, return_to: &str) -> String {
    format!(
        "/login?error=gateway_token&reason={reason}&error_description={}&return_to={}",
        urlencoding::encode(reason_words(reason)),
        urlencoding::encode(return_to)
    )
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
    let principal = match state.trust.verify_as_one_of(token, &names, peer).await {
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
    let mut user = SessionUser {
        sign_in: SignIn::Gateway {
            token: token.to_string(),
            expires_at: principal.expires_at,
        },
        principal: (*principal).clone(),
        signed_in_at,
        minted: None,
        dpop_jkt: None,
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
                // A renewal, not a new sign-in: the session stays bound to its DPoP key
                // (else any page request through the gateway would reopen the binding).
                user.dpop_jkt = current.dpop_jkt;
                session.update_user(user).await?;
            }
        }
    }
    Ok(GatewaySignIn::SignedIn)
}

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, http::StatusCode, middleware, routing::get};
    use tower::ServiceExt;

    use super::*;

    fn settings(header: &str) -> GatewaySettings {
        GatewaySettings {
            issuers: vec!["gateway".into()],
            header: header.into(),
            trusted_proxies: vec!["127.0.0.2/32".parse().unwrap()],
            allow_any_peer: false,
            jwt_endpoint: None,
            jwt_binding_ttl_secs: 300,
            jwt_endpoint_after_silent_miss: false,
        }
    }

    /// A handler that answers 200 when it sees the header and 204 when it does not.
    fn app(gateway: GatewaySettings) -> Router {
        Router::new()
            .route(
                "/",
                get(|headers: HeaderMap| async move {
                    if headers
                        .keys()
                        .any(|n| n.as_str().replace('_', "-") == "x-custom-tkn")
                    {
                        StatusCode::OK
                    } else {
                        StatusCode::NO_CONTENT
                    }
                }),
            )
            .layer(middleware::from_fn_with_state(
                Some(Arc::new(gateway)),
                strip_untrusted_header,
            ))
    }

    async fn handler_sees_header(peer: [u8; 4], name: &str) -> bool {
        let mut request = Request::builder()
            .uri("/")
            .header(name, "a.b.c")
            .body(Body::empty())
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::from((peer, 40000))));
        let response = app(settings("x-custom-tkn"))
            .oneshot(request)
            .await
            .unwrap();
        response.status() == StatusCode::OK
    }

    #[tokio::test]
    async fn a_custom_gateway_header_from_an_untrusted_peer_never_reaches_a_handler() {
        assert!(
            handler_sees_header([127, 0, 0, 2], "x-custom-tkn").await,
            "trusted peer"
        );
        assert!(
            !handler_sees_header([127, 0, 0, 1], "x-custom-tkn").await,
            "untrusted peer"
        );
        assert!(
            !handler_sees_header([10, 0, 0, 2], "x-custom-tkn").await,
            "untrusted peer"
        );
    }

    #[tokio::test]
    async fn a_custom_gateway_header_under_another_spelling_never_reaches_a_handler_either() {
        for name in ["x_custom_tkn", "X_Custom-Tkn", "x-custom_tkn"] {
            assert!(
                !handler_sees_header([127, 0, 0, 1], name).await,
                "{name} from an untrusted peer"
            );
        }
    }

    #[test]
    fn a_refused_gateway_token_is_explained_by_its_reason_code() {
        assert_eq!(
            reason_words("expired"),
            "Your gateway's sign-in token has expired. Reload the page once your gateway has a \
             fresh one, or sign in with SSO."
        );
        let cases = [
            ("not_yet_valid", "not valid yet"),
            ("untrusted_issuer", "issuer this site does not trust"),
            ("wrong_audience", "meant for another application"),
            ("bad_signature", "signature this site cannot verify"),
            ("policy", "does not allow access"),
            ("missing_claim", "lacks a claim this site needs"),
            ("invalid", "was not accepted"),
        ];
        for (code, words) in cases {
            let text = reason_words(code);
            assert!(text.contains(words), "{code}: {text}");
            assert!(text.ends_with("Sign in with SSO.") || text.ends_with("sign in with SSO."));
        }
        assert_eq!(
            rejected_location("expired", "/deep?x=1"),
            format!(
                "/login?error=gateway_token&reason=expired&error_description={}&return_to=%2Fdeep%3Fx%3D1",
                urlencoding::encode(reason_words("expired"))
            )
        );
    }

    #[test]
    fn only_a_single_bearer_or_bare_jwt_is_taken_from_the_header() {
        let auth = settings("authorization");
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
        assert_eq!(header_token(&auth, &h), Ok(None), "another scheme");
        h.insert("authorization", "Bearer a.b.c".parse().unwrap());
        assert_eq!(header_token(&auth, &h), Ok(Some("a.b.c")));
        h.append("authorization", "Bearer a.b.c".parse().unwrap());
        assert!(header_token(&auth, &h).is_err(), "two values");
        let custom = settings("x-custom-tkn");
        let mut h = HeaderMap::new();
        h.insert("x-custom-tkn", "a.b.".parse().unwrap());
        assert!(header_token(&custom, &h).is_err(), "unsigned");
    }
}
