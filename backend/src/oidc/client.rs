//! The provider client: discovery state (retried with back-off until it succeeds, which is
//! what `/readyz` reports) and the OAuth 2.0 calls, made through the `oauth2` crate with the
//! bridge's own `reqwest` client (timeouts, no redirects followed).

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse as _,
    TokenUrl,
    basic::{
        BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
        BasicTokenIntrospectionResponse, BasicTokenType,
    },
};
use serde::{Deserialize, Serialize};

use super::{
    discovery::{DiscoveryError, ProviderMetadata, fetch_metadata},
    http::ProviderHttp,
};
use crate::{
    settings::Settings,
    trust::{engine::TrustEngine, issuer::TrustedIssuer, jwks::JwksCache},
};

/// The OIDC addition to the token response: the ID token.
#[derive(Clone, Default, Deserialize, Serialize)]
pub struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// Keycloak's lifetime of the refresh token (its SSO session's idle or maximum time,
    /// whichever ends first); `0` for offline tokens, which do not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
}

impl std::fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdTokenField { .. }")
    }
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

/// An `oauth2` client with the authorization and token endpoints set.
type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// A discovered provider, ready for logins.
pub struct Discovered {
    pub metadata: ProviderMetadata,
    pub jwks: Arc<JwksCache>,
    oauth: OAuthClient,
}

/// Tokens of a code exchange or refresh, not validated yet. `Debug` hides them.
#[derive(Clone)]
pub struct TokenResponse {
    pub access_token: String,
    pub id_token: Option<String>,
    pub refresh_token: Option<String>,
    pub expires_in: Option<i64>,
    /// Seconds the refresh token lasts, when the provider says (Keycloak does).
    pub refresh_expires_in: Option<i64>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl From<OidcTokenResponse> for TokenResponse {
    fn from(r: OidcTokenResponse) -> Self {
        Self {
            access_token: r.access_token().secret().clone(),
            id_token: r.extra_fields().id_token.clone(),
            refresh_token: r.refresh_token().map(|t| t.secret().clone()),
            refresh_expires_in: r.extra_fields().refresh_expires_in.filter(|s| *s > 0),
            expires_in: r
                .expires_in()
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

/// Why a call to the token endpoint failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The provider answered with an OAuth error (`invalid_grant`...).
    #[error("provider refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rejected {
        error: String,
        description: Option<String>,
    },
    /// The provider could not be reached or answered garbage.
    #[error("provider unavailable: {0}")]
    Unavailable(String),
}

/// What one login sends to the authorization endpoint.
pub struct AuthorizationRequest<'a> {
    pub state: &'a str,
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    /// `prompt=none`: sign in only if an SSO session exists.
    pub silent: bool,
}

/// The configured provider and, once discovery succeeded, its metadata and keys.
pub struct ProviderClient {
    settings: Arc<Settings>,
    http: ProviderHttp,
    trust: Arc<TrustEngine>,
    discovered: RwLock<Option<Arc<Discovered>>>,
    last_error: RwLock<String>,
    ready_tx: tokio::sync::watch::Sender<bool>,
    /// The last reachability probe: when, and whether the provider answered.
    probe: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

/// A successful reachability probe is reused this long, so a burst of sign-ins costs one
/// request.
const PROBE_REUSE: Duration = Duration::from_secs(5);
/// A probe that takes longer than this counts as "not reachable".
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

impl ProviderClient {
    pub fn new(settings: Arc<Settings>, http: ProviderHttp, trust: Arc<TrustEngine>) -> Self {
        Self {
            settings,
            http,
            trust,
            discovered: RwLock::new(None),
            last_error: RwLock::new("discovery has not run yet".into()),
            ready_tx: tokio::sync::watch::Sender::new(false),
            probe: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether the provider answers now (its discovery document, within 2 s). A sign-in is not
    /// sent to a provider that is down: the browser would land on a connection error at the
    /// provider's host instead of a readable page here.
    ///
    /// A success is reused for 5 s, however many ask. A failure is reused only by callers
    /// that waited for that very probe: the next sign-in asks again, so one failed probe does
    /// not refuse sign-ins for seconds when the provider answers the next request.
    pub async fn reachable(&self) -> bool {
        let asked = std::time::Instant::now();
        let mut last = self.probe.lock().await;
        if let Some((at, ok)) = *last
            && ((ok && at.elapsed() < PROBE_REUSE) || (!ok && at >= asked))
        {
            return ok;
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.settings.oidc.issuer.trim_end_matches('/')
        );
        let ok = self
            .http
            .get(&url, Some(PROBE_TIMEOUT))
            .await
            .is_ok_and(|r| r.status().is_success());
        if !ok {
            tracing::warn!("the provider does not answer; sign-ins are refused until it does");
        }
        *last = Some((std::time::Instant::now(), ok));
        ok
    }

    /// Resolves once discovery has succeeded.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready_tx.subscribe();
        let _ = rx.wait_for(|ready| *ready).await;
    }

    /// The discovered provider, or `None` while discovery has not succeeded.
    pub fn ready(&self) -> Option<Arc<Discovered>> {
        match self.discovered.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Why the provider is not ready (for `/readyz` and logs).
    pub fn not_ready_reason(&self) -> String {
        match self.last_error.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_error(&self, e: String) {
        match self.last_error.write() {
            Ok(mut g) => *g = e,
            Err(p) => *p.into_inner() = e,
        }
    }

    /// One discovery attempt: the discovery document, then the key set; on success the
    /// provider is registered with the trust engine as the issuer named `oidc`.
    pub async fn discover(&self) -> Result<(), DiscoveryError> {
        let oidc = &self.settings.oidc;
        let metadata = fetch_metadata(&self.http, &oidc.issuer).await?;
        let jwks = JwksCache::new(
            metadata.jwks_uri.clone(),
            self.http.client().clone(),
            Duration::from_secs(oidc.jwks_refetch_cooldown_secs),
        );
        jwks.refresh().await?;
        let bad = |endpoint: &'static str| {
            move |e: oauth2::url::ParseError| DiscoveryError::BadEndpoint {
                endpoint,
                reason: e.to_string(),
            }
        };
        let oauth = oauth2::Client::new(ClientId::new(oidc.client_id.clone()))
            .set_client_secret(ClientSecret::new(oidc.client_secret.expose().to_string()))
            .set_auth_uri(
                AuthUrl::new(metadata.authorization_endpoint.clone())
                    .map_err(bad("authorization_endpoint"))?,
            )
            .set_token_uri(
                TokenUrl::new(metadata.token_endpoint.clone()).map_err(bad("token_endpoint"))?,
            )
            .set_redirect_uri(
                RedirectUrl::new(self.settings.redirect_uri()).map_err(bad("redirect URI"))?,
            );
        let jwks = Arc::new(jwks);
        self.trust.register(TrustedIssuer::for_provider(
            metadata.issuer.clone(),
            metadata.algorithms.clone(),
            jwks.clone(),
            oidc.api_audience.clone(),
            self.settings.claims.clone(),
            oidc.leeway_secs,
        ));
        let discovered = Arc::new(Discovered {
            metadata,
            jwks,
            oauth,
        });
        match self.discovered.write() {
            Ok(mut g) => *g = Some(discovered),
            Err(p) => *p.into_inner() = Some(discovered),
        }
        self.ready_tx.send_replace(true);
        Ok(())
    }

    /// Runs discovery until it succeeds, backing off exponentially up to the configured cap.
    pub async fn discover_until_ready(self: Arc<Self>) {
        let cap = Duration::from_secs(self.settings.oidc.discovery_max_backoff_secs.max(1));
        let mut delay = Duration::from_millis(100);
        loop {
            match self.discover().await {
                Ok(()) => {
                    tracing::info!(issuer = %self.settings.oidc.issuer, "OIDC provider discovered; ready");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "OIDC discovery failed");
                    self.set_error(e.to_string());
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(cap);
        }
    }

    /// The provider's authorization URL for one login: code flow, PKCE S256, `state` and
    /// `nonce` of this login, the exact redirect URI, and `prompt=none` when silent.
    pub fn authorization_url(&self, d: &Discovered, login: &AuthorizationRequest<'_>) -> String {
        let state = login.state.to_string();
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            login.pkce_verifier.to_string(),
        ));
        let mut request = d
            .oauth
            .authorize_url(move || CsrfToken::new(state))
            .add_scopes(self.settings.oidc.scopes.iter().cloned().map(Scope::new))
            .set_pkce_challenge(challenge)
            .add_extra_param("nonce", login.nonce);
        if login.silent {
            request = request.add_extra_param("prompt", "none");
        }
        request.url().0.into()
    }

    /// Authorization-code grant with the PKCE verifier of this login.
    pub async fn exchange_code(
        &self,
        d: &Discovered,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        d.oauth
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map(TokenResponse::from)
            .map_err(provider_error)
    }

    /// Refresh-token grant.
    pub async fn refresh(
        &self,
        d: &Discovered,
        refresh_token: &str,
    ) -> Result<TokenResponse, ProviderError> {
        d.oauth
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
            .request_async(&self.http)
            .await
            .map(TokenResponse::from)
            .map_err(provider_error)
    }

    /// The provider's end-session URL with `id_token_hint`, `client_id` and the
    /// `post_logout_redirect_uri`; `None` when the provider has no end-session endpoint.
    pub fn end_session_url(&self, d: &Discovered, id_token_hint: Option<&str>) -> Option<String> {
        let endpoint = d.metadata.end_session_endpoint.as_ref()?;
        let mut url = url::Url::parse(endpoint).ok()?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(id_token) = id_token_hint {
                q.append_pair("id_token_hint", id_token);
            }
            q.append_pair("client_id", &self.settings.oidc.client_id)
                .append_pair(
                    "post_logout_redirect_uri",
                    &self.settings.post_logout_redirect_uri(),
                );
        }
        Some(url.into())
    }
}

/// An OAuth error answer means the provider refused (the session must end), except the two
/// errors that say the provider itself is in trouble; anything else is "unavailable".
fn provider_error<E: std::error::Error>(
    e: RequestTokenError<E, BasicErrorResponse>,
) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::Extension(code)
                if code == "server_error" || code == "temporarily_unavailable" =>
            {
                ProviderError::Unavailable(format!("token endpoint answered {code}"))
            }
            error => ProviderError::Rejected {
                error: error.as_ref().to_string(),
                description: r.error_description().cloned(),
            },
        },
        RequestTokenError::Request(e) => ProviderError::Unavailable(format!("token endpoint: {e}")),
        RequestTokenError::Parse(e, _) => {
            ProviderError::Unavailable(format!("token endpoint answered an invalid body: {e}"))
        }
        RequestTokenError::Other(m) => ProviderError::Unavailable(format!("token endpoint: {m}")),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A provider whose first answer is a 503 and every later one a 200; returns its address
    /// and how many requests it answered.
    async fn flaky_provider() -> (String, Arc<AtomicUsize>) {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
            panic!("bind");
        };
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let answered = Arc::new(AtomicUsize::new(0));
        let count = answered.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                let status = if count.fetch_add(1, Ordering::SeqCst) == 0 {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                let answer = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        (format!("http://{address}"), answered)
    }

    #[tokio::test]
    async fn one_failed_probe_does_not_refuse_the_next_sign_in() {
        let (issuer, answered) = flaky_provider().await;
        let mut settings = Settings::default();
        settings.oidc.issuer = issuer;
        let Ok(http) = ProviderHttp::new(Duration::from_secs(5)) else {
            panic!("client");
        };
        let trust = Arc::new(TrustEngine::new(Vec::new(), Vec::new(), http.client()));
        let provider = ProviderClient::new(Arc::new(settings), http, trust);
        assert!(!provider.reachable().await, "the provider's 503");
        assert!(provider.reachable().await, "asked again, it answers");
        // A success is reused: no third request.
        assert!(provider.reachable().await);
        assert_eq!(answered.load(Ordering::SeqCst), 2);
    }
}
