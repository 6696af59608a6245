//! `[gateway]`: sign-in with a JWT a gateway in front of the bridge puts on the request; its
//! checks, and what it does to the trust of the issuers it names.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::trust::issuer::{IssuerSpec, PROVIDER_ISSUER};

/// `[gateway]`: a proxy or gateway in front has authenticated the user and puts a JWT on the
/// request; opening any UI page with it signs the user in (no form, no silent-SSO detour).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Names of `[[issuers]]` whose JWTs may sign users in this way.
    pub issuers: Vec<String>,
    /// The request header carrying the JWT: `Authorization` (then `Bearer <jwt>`) or a custom
    /// name such as `x-custom-tkn` carrying the bare JWT.
    #[serde(default = "default_gateway_header")]
    pub header: String,
    /// Peers (CIDRs) whose connections may set the header. From any other address the header
    /// is ignored for sign-in, and a custom header is removed before anything sees it.
    #[serde(default)]
    #[cfg_attr(test, schemars(with = "Vec<String>", extend("items" = { "type": "string", "format": "cidr" })))]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Accept the header from any peer. Only for a bridge that nothing but the gateway can
    /// reach; warned about at startup.
    #[serde(default)]
    pub allow_any_peer: bool,
    /// ZITADEL-style "JWT IdP" round trip: "Sign in" sends the browser to this URL (an existing
    /// app behind the gateway) with `state`, `expires` and `callback`; the app sends it on to
    /// `callback` with the same parameters, and the gateway adds the JWT header on the way.
    #[serde(default)]
    pub jwt_endpoint: Option<Url>,
    /// How long such a round trip may take.
    #[serde(default = "default_binding_ttl")]
    pub jwt_binding_ttl_secs: u64,
    /// When the silent (`prompt=none`) sign-in finds no provider session, take the round trip
    /// through `jwt_endpoint` instead of showing the login page.
    #[serde(default)]
    pub jwt_endpoint_after_silent_miss: bool,
}

fn default_binding_ttl() -> u64 {
    300
}

fn default_gateway_header() -> String {
    "authorization".into()
}

impl GatewaySettings {
    /// Whether the header is `Authorization` (with the `Bearer` scheme).
    pub fn uses_authorization(&self) -> bool {
        self.header.eq_ignore_ascii_case("authorization")
    }

    /// Whether a connection from `peer` may sign users in with the header.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.allow_any_peer || self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }
}

impl GatewaySettings {
    /// The gateway's own settings.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        let gateway = self;
        if gateway.issuers.is_empty() {
            problems.push(
                "gateway.issuers: name at least one [[issuers]] entry whose JWTs sign users in"
                    .into(),
            );
        }
        if axum::http::HeaderName::from_bytes(gateway.header.as_bytes()).is_err() {
            problems.push(format!(
                "gateway.header: {:?} is not a valid header name",
                gateway.header
            ));
        }
        if let Some(endpoint) = &gateway.jwt_endpoint
            && !matches!(endpoint.scheme(), "http" | "https")
        {
            problems.push("gateway.jwt_endpoint: must be an http(s) URL".into());
        }
        if gateway.jwt_binding_ttl_secs == 0 {
            problems.push("gateway.jwt_binding_ttl_secs: must be positive".into());
        }
        if gateway.trusted_proxies.is_empty() && !gateway.allow_any_peer {
            problems.push(
                "gateway.trusted_proxies: list the gateway's addresses (CIDRs such as \
                 10.0.0.5/32); anyone else could set the header. Only if nothing but the \
                 gateway can reach the bridge, set gateway.allow_any_peer = true instead"
                    .into(),
            );
        }
    }

    /// Checks that every issuer the gateway names exists, and limits each to the gateway's
    /// peers unless the entry says from where itself.
    pub(super) fn bind_issuers(&self, issuers: &mut [IssuerSpec], problems: &mut Vec<String>) {
        let gateway = self;
        for name in &gateway.issuers {
            // `oidc` is the login provider itself: a gateway in front may inject the
            // provider's own access tokens (a Keycloak realm behind oauth2-proxy). Its
            // tokens stay accepted from any peer: the SPA of a code-flow sign-in sends
            // them from wherever the browser is.
            if name == PROVIDER_ISSUER {
                continue;
            }
            match issuers.iter_mut().find(|i| &i.name == name) {
                // A gateway's issuer is trusted for requests through the gateway only (a
                // stolen gateway JWT is worthless elsewhere), unless the entry says from
                // where itself.
                Some(issuer) => {
                    if issuer.trusted_proxies.is_none() && !gateway.allow_any_peer {
                        issuer.trusted_proxies = Some(gateway.trusted_proxies.clone());
                    }
                }
                None => problems.push(format!(
                    "gateway.issuers: {name:?} is not the name of an [[issuers]] entry \
                         (or \"{PROVIDER_ISSUER}\", the login provider)"
                )),
            }
        }
    }
}
