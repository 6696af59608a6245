//! `[oidc]`: the login provider and the bridge's client at it, and their checks.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use url::Url;

use super::secret::Secret;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
/// `[oidc]`: the bridge is a confidential client of the provider (authorization code flow
/// with PKCE); the provider's access tokens must be JWTs for `api_audience`.
pub struct OidcSettings {
    /// The provider's issuer, exactly as in its discovery document
    /// (Keycloak: `https://HOST/realms/REALM`).
    pub issuer: String,
    /// The bridge's client id at the provider.
    pub client_id: String,
    /// Confidential client secret. Prefer `BRIDGE_OIDC__CLIENT_SECRET` or `client_secret_file`.
    #[serde(default)]
    pub client_secret: Secret,
    /// File holding the client secret (trailing whitespace trimmed).
    #[serde(default)]
    #[cfg_attr(test, schemars(extend("format" = "path")))]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for at sign-in; must include `openid`.
    pub scopes: Vec<String>,
    /// The `aud` an access token must carry to be accepted by the API and handed to the SPA.
    /// Keycloak's default `account` is refused: configure an audience mapper.
    pub api_audience: String,
    /// Audiences besides `api_audience` the provider's access token may carry and still be
    /// handed to the SPA. None by default: a token the SPA holds is good at its API only, and
    /// one with any other audience is refused at sign-in and refresh (the log names what was
    /// extra). Narrow it at the provider, list what is harmless here, or hand the SPA a minted
    /// token (`session.token_profile`).
    #[serde(default)]
    pub extra_token_audiences: Vec<String>,
    /// Scopes besides `scopes` the access token may carry and still be handed to the SPA.
    #[serde(default)]
    pub extra_token_scopes: Vec<String>,
    /// Audiences besides `client_id` an ID token may carry (OIDC Core §3.1.3.7): some
    /// providers put a client's additional audiences (LemonLDAP::NG) into its ID tokens too.
    /// `api_audience` is always trusted. With more than one audience, `azp` must be the client.
    #[serde(default)]
    pub trusted_id_token_audiences: Vec<String>,
    /// Where the provider sends the browser after end-session; must be registered at the
    /// provider. Default: `<public_url>/login?signed_out=1`.
    #[serde(default)]
    pub post_logout_redirect_uri: Option<Url>,
    /// Try a `prompt=none` sign-in by top-level redirect when a browser opens the UI
    /// without a session.
    pub silent_sso: bool,
    /// After a failed silent attempt, wait this long before trying again for the same browser.
    pub silent_sso_retry_secs: u64,
    /// Refresh the access token this many seconds before it expires (never earlier than half
    /// its lifetime).
    pub refresh_before_expiry_secs: u64,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway_secs: u64,
    /// A back-channel logout token issued longer ago than this (plus `leeway_secs`) is
    /// refused: the provider sends it when the session ends, so an old one is a replay whose
    /// `jti` may have been forgotten.
    pub logout_token_max_age_secs: u64,
    /// Upper bound of the back-off between discovery attempts at startup.
    pub discovery_max_backoff_secs: u64,
    /// Minimum time between two JWKS fetches caused by unknown `kid`s.
    pub jwks_refetch_cooldown_secs: u64,
    /// Timeout of every request to the provider.
    pub http_timeout_secs: u64,
}

impl OidcSettings {
    /// The audiences an ID token may carry besides the client: `api_audience` and
    /// `trusted_id_token_audiences`.
    pub fn trusted_id_token_audiences(&self) -> Vec<String> {
        std::iter::once(&self.api_audience)
            .chain(&self.trusted_id_token_audiences)
            .cloned()
            .collect()
    }
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            client_id: String::new(),
            client_secret: Secret::default(),
            client_secret_file: None,
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            api_audience: String::new(),
            extra_token_audiences: Vec::new(),
            extra_token_scopes: Vec::new(),
            trusted_id_token_audiences: Vec::new(),
            post_logout_redirect_uri: None,
            silent_sso: true,
            silent_sso_retry_secs: 300,
            refresh_before_expiry_secs: 60,
            leeway_secs: 30,
            logout_token_max_age_secs: 300,
            discovery_max_backoff_secs: 30,
            jwks_refetch_cooldown_secs: 30,
            http_timeout_secs: 10,
        }
    }
}

impl OidcSettings {
    /// The provider's issuer. Checked before the other sections: a missing one leads the
    /// list (the packaged configuration ships without a provider).
    pub(super) fn check_issuer(&self, problems: &mut Vec<String>) {
        match Url::parse(&self.issuer) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            // The packaged configuration ships without a provider: say what to set, first.
            _ if self.issuer.trim().is_empty() => problems.insert(
                0,
                "oidc.issuer: no login provider is configured; set oidc.issuer to its issuer \
             URL, e.g. https://keycloak.example.org/realms/myrealm (BRIDGE_OIDC__ISSUER), \
             with oidc.client_id, oidc.client_secret and oidc.api_audience"
                    .into(),
            ),
            _ => problems.push(format!(
                "oidc.issuer: {:?} is not an http(s) URL; set it to the provider's issuer, \
             e.g. https://keycloak.example.org/realms/myrealm (BRIDGE_OIDC__ISSUER)",
                self.issuer
            )),
        }
    }

    /// The client at the provider: its id, secret, audience and scopes.
    pub(super) fn check_client(&self, problems: &mut Vec<String>) {
        if self.client_id.is_empty() {
            problems.push(
                "oidc.client_id: missing; set the OIDC client's id (BRIDGE_OIDC__CLIENT_ID)".into(),
            );
        }
        if self.client_secret.is_empty() {
            problems.push(
                "oidc.client_secret: missing; the bridge is a confidential client. Set \
             BRIDGE_OIDC__CLIENT_SECRET or oidc.client_secret_file (Keycloak: client > Credentials)"
                    .into(),
            );
        }
        if self.api_audience.is_empty() {
            problems.push(
                "oidc.api_audience: missing; set the audience your API expects in access tokens \
             (Keycloak: add an audience mapper to the client)"
                    .into(),
            );
        } else if self.api_audience == "account" {
            problems.push(
                "oidc.api_audience: \"account\" is Keycloak's default audience and proves nothing \
             about your API; configure an audience mapper and use its value"
                    .into(),
            );
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            problems.push("oidc.scopes: must include \"openid\"".into());
        }
    }
}
