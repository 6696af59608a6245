//! The proxy handler: authenticate and authorize like `/api`, then stream the call to the
//! upstream and its answer back. A call that fails authentication never reaches the upstream.
//!
//! The upstream routes sit outside the shell that sets the bridge's security headers (an
//! upstream's answer keeps its own), so the handler sets them on every answer it writes itself
//! (401, 403, 400, 413, 502, 504...); a proxied answer only gets `nosniff` when it has none.

use std::{sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::{FromRef, FromRequestParts, Request, State},
    http::{HeaderName, header, request::Parts},
    response::{IntoResponse, Response},
};
use url::Url;

use super::{
    headers::{Forwarding, GuardedHeaders, outgoing, returned},
    outgoing_token::OutgoingToken,
};
use crate::{
    auth::{
        gateway::peer_of,
        principal::{Principal, check_binding},
    },
    authority::keyring::{Authority, ProfileSet},
    dpop::Dpop,
    error::AppError,
    oidc::client::ProviderClient,
    settings::{GatewaySettings, UpstreamSettings},
    trust::{
        bearer::{Scheme, access_token},
        engine::{Rejection, TrustEngine},
    },
    web::{
        headers::SecurityHeaders,
        shell::{limit_body, payload_too_large},
    },
};

/// One configured upstream, ready to serve.
pub struct Upstream {
    pub name: String,
    pub prefix: String,
    /// The upstream's base URL, parsed once.
    base: Url,
    strip_prefix: bool,
    token: OutgoingToken,
    claim_headers: Vec<(HeaderName, String)>,
    /// What a caller may not send under any spelling (claim headers, the token's header,
    /// `strip_headers`, the gateway header, the forwarding headers), folded once here.
    guarded: GuardedHeaders,
    timeout: Duration,
    pub max_body_bytes: usize,
    pub ui: Option<String>,
}

impl Upstream {
    /// `gateway` is the bridge's `[gateway]`: its custom header (if any) never goes upstream;
    /// `minting`: the authority and the profiles a `profile:` token is minted from.
    pub fn new(
        s: &UpstreamSettings,
        minting: Option<(&Arc<Authority>, &ProfileSet)>,
        gateway: Option<&GatewaySettings>,
    ) -> anyhow::Result<Self> {
        let header = |h: &String| HeaderName::from_bytes(h.to_ascii_lowercase().as_bytes());
        let token = OutgoingToken::new(s, minting)?;
        let guarded = GuardedHeaders::new(
            s.forward_claims
                .keys()
                .chain(&s.strip_headers)
                .chain(
                    gateway
                        .filter(|g| !g.uses_authorization())
                        .map(|g| &g.header),
                )
                .map(String::as_str)
                .chain([token.header_name().as_str()])
                // A caller's DPoP proof goes only where its token goes: an upstream that gets
                // a token of the bridge's (or none) never sees it.
                .chain((!token.forwards_the_callers()).then_some("dpop")),
        )?;
        Ok(Self {
            name: s.name.clone().unwrap_or_else(|| s.prefix.clone()),
            prefix: s.prefix.clone(),
            base: s.url.clone(),
            strip_prefix: s.strip_prefix,
            token,
            claim_headers: s
                .forward_claims
                .iter()
                .map(|(h, path)| Ok((header(h)?, path.clone())))
                .collect::<Result<_, axum::http::header::InvalidHeaderName>>()?,
            guarded,
            timeout: Duration::from_secs(s.timeout_secs),
            max_body_bytes: s.max_body_bytes,
            ui: s.ui.clone(),
        })
    }

    /// The upstream URL for a request path under the prefix, or `None` for a path that tries
    /// to leave it (dot segments, empty segments, encoded slashes or dots, backslashes).
    fn target(&self, path: &str, query: Option<&str>) -> Option<Url> {
        let rest = path.strip_prefix(&self.prefix)?;
        let lower = rest.to_ascii_lowercase();
        let escapes = rest.split('/').any(|seg| seg == "." || seg == "..")
            || rest.starts_with('/')
            || rest.contains("//")
            || rest.contains('\\')
            || ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e));
        if escapes {
            return None;
        }
        let path = if self.strip_prefix {
            format!("{}/{rest}", self.base.path().trim_end_matches('/'))
        } else {
            format!("{}{path}", self.base.path().trim_end_matches('/'))
        };
        // The base was parsed at startup: setting path and query costs no full URL parse.
        let mut url = self.base.clone();
        url.set_path(&path);
        url.set_query(query);
        Some(url)
    }
}

/// What the proxy handler needs; the `Principal` extractor reads the trust engine and the
/// provider client from it.
#[derive(Clone, FromRef)]
pub struct UpstreamState {
    pub upstream: Arc<Upstream>,
    pub trust: Arc<TrustEngine>,
    pub provider: Arc<ProviderClient>,
    pub http: reqwest::Client,
    /// `http` or `https`: how browsers reach the bridge.
    pub proto: Arc<str>,
    /// A gateway in front may authenticate proxied calls with its JWT header.
    pub gateway: Option<Arc<GatewaySettings>>,
    /// The bridge's security headers, for the answers the handler writes itself.
    pub headers: Arc<SecurityHeaders>,
    /// DPoP proofs: a bound token passes only with one.
    pub dpop: Arc<Dpop>,
}

/// The caller, the token it presented and how: a Bearer (or DPoP-bound) token, as on `/api`,
/// or else the JWT a trusted gateway put in its custom header. Never the session cookie.
async fn authenticate(
    state: &UpstreamState,
    parts: &mut Parts,
) -> Result<(Principal, String, Scheme), AppError> {
    let missing = match Principal::from_request_parts(parts, state).await {
        Ok(caller) => {
            let (scheme, token) = access_token(&parts.headers)?;
            return Ok((caller, token.to_string(), scheme));
        }
        Err(e @ (AppError::Unauthenticated(_) | AppError::UnauthenticatedOfferingDpop(_))) => e,
        Err(e) => return Err(e),
    };
    let Some(gateway) = state.gateway.as_ref().filter(|g| !g.uses_authorization()) else {
        return Err(missing);
    };
    // The header only counts from a trusted peer (the strip middleware also removed it).
    let peer = peer_of(&parts.extensions);
    let trusted = peer.is_some_and(|peer| gateway.trusts(peer));
    let Some(token) = parts
        .headers
        .get(gateway.header.as_str())
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| trusted && !t.is_empty())
        .map(str::to_owned)
    else {
        return Err(missing);
    };
    let names: Vec<&str> = gateway.issuers.iter().map(String::as_str).collect();
    let principal = state
        .trust
        .verify_as_one_of(&token, &names, peer)
        .await
        .map_err(|r| match r {
            Rejection::Invalid(e) => AppError::InvalidToken(e.to_string()),
            Rejection::Policy(reason) => AppError::Forbidden(reason),
        })?;
    // A gateway's header has no scheme: a token bound to a key is refused there, as it is as Bearer.
    check_binding(
        &state.dpop,
        &principal,
        Scheme::Bearer,
        &token,
        &parts.headers,
        &parts.method,
        parts.uri.path(),
    )
    .await?;
    state
        .trust
        .authorize(&principal, parts.uri.path())
        .map_err(AppError::Forbidden)?;
    Ok((Principal(principal), token, Scheme::Bearer))
}

/// The upstream's answer, or the bridge's own (with its security headers): a body over
/// `max_body_bytes` is refused before anything else (413), as the bridge's own routes do.
#[tracing::instrument(skip_all, fields(upstream = %state.upstream.name))]
pub async fn proxy(State(state): State<UpstreamState>, request: Request) -> Response {
    let mut own = match limit_body(request, state.upstream.max_body_bytes) {
        Ok(request) => match forward(&state, request).await {
            Ok(proxied) => return proxied,
            Err(e) => e.into_response(),
        },
        Err(()) => payload_too_large(state.upstream.max_body_bytes),
    };
    state.headers.apply(own.headers_mut());
    own
}

async fn forward(state: &UpstreamState, request: Request) -> Result<Response, AppError> {
    let upstream = state.upstream.clone();
    let (mut parts, body) = request.into_parts();
    let (caller, incoming, scheme) = authenticate(state, &mut parts).await?;
    let target = upstream
        .target(parts.uri.path(), parts.uri.query())
        .ok_or_else(|| AppError::BadRequest("the path may not leave the API's prefix".into()))?;
    let token = upstream
        .token
        .header_for(&incoming, scheme, &caller)
        .map_err(AppError::internal)?;
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let forwarding = Forwarding {
        peer: peer_of(&parts.extensions),
        proto: &state.proto,
        host: host.as_deref(),
    };
    let headers = outgoing(
        std::mem::take(&mut parts.headers),
        &upstream.guarded,
        &upstream.claim_headers,
        caller.claims.view().as_ref(),
        token,
        &forwarding,
    );
    let call = state
        .http
        .request(parts.method.clone(), target)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    // The timeout covers the wait for the answer's headers; the body then streams as long as
    // it takes (a large download is not cut off).
    let mut answer = match tokio::time::timeout(upstream.timeout, call.send()).await {
        Err(_) => {
            return Err(AppError::UpstreamTimeout(format!(
                "{} did not answer within {:?}",
                upstream.name, upstream.timeout
            )));
        }
        Ok(Err(e)) => {
            return Err(AppError::UpstreamUnavailable(format!(
                "{}: {e}",
                upstream.name
            )));
        }
        Ok(Ok(answer)) => answer,
    };
    let status = answer.status();
    // The bridge vouched for the caller and the upstream refused what the bridge sent in its
    // place (a minted token, or none): a fault between bridge and API, not the caller's. A 401
    // passed on would make the SPA refresh and sign the user out for nothing.
    if status == reqwest::StatusCode::UNAUTHORIZED && !upstream.token.forwards_the_callers() {
        return Err(AppError::UpstreamRefused(format!(
            "{} answered 401 to the bridge's token",
            upstream.name
        )));
    }
    // Taken, not copied: the answer only streams its body from here on.
    let headers = returned(std::mem::take(answer.headers_mut()));
    let mut response = Body::from_stream(answer.bytes_stream()).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(strip: bool) -> Upstream {
        let s: UpstreamSettings = match serde_json::from_value(serde_json::json!({
            "prefix": "/pi/", "url": "http://api.internal:5000/base/", "strip_prefix": strip,
        })) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        match Upstream::new(&s, None, None) {
            Ok(u) => u,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn paths_map_under_the_base_and_cannot_leave_the_prefix() {
        let u = upstream(true);
        assert_eq!(
            u.target("/pi/token/", Some("a=1"))
                .map(String::from)
                .as_deref(),
            Some("http://api.internal:5000/base/token/?a=1")
        );
        assert_eq!(
            upstream(false)
                .target("/pi/token/", None)
                .map(String::from)
                .as_deref(),
            Some("http://api.internal:5000/base/pi/token/")
        );
        for bad in [
            "/pi/../admin",
            "/pi/a/../../x",
            "/pi/./x",
            "/pi//x",
            "/pi/%2e%2e/x",
            "/pi/a%2Fb",
            "/pi/a\\b",
            "/other/x",
        ] {
            assert_eq!(u.target(bad, None), None, "{bad}");
        }
    }
}
