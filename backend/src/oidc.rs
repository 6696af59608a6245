//! The OpenID Connect provider as the bridge sees it: discovery (retried with back-off until
//! it succeeds, which is what `/readyz` reports), its key set, and the token endpoint.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use crate::{
    settings::Settings,
    trust::{issuer::TrustedIssuer, jwks::JwksCache},
};

/// What discovery told us, checked.
#[derive(Clone, Debug)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: the provider puts `iss` into every authorization response.
    pub iss_parameter_supported: bool,
    /// Signature algorithms accepted for this provider's tokens: what it advertises,
    /// restricted to asymmetric ones (a client secret is never a verification key).
    pub algorithms: Vec<Algorithm>,
}

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    id_token_signing_alg_values_supported: Vec<String>,
}

const ASYMMETRIC: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A discovered provider, ready for logins.
pub struct Discovered {
    pub metadata: ProviderMetadata,
    pub jwks: Arc<JwksCache>,
    /// The provider as a trusted issuer of API access tokens.
    pub trusted: Arc<TrustedIssuer>,
}

/// Answer of the token endpoint. `Debug` hides the tokens.
#[derive(Clone, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<i64>,
    #[serde(default)]
    pub token_type: Option<String>,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("token_type", &self.token_type)
            .finish_non_exhaustive()
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

/// The configured provider and, once discovery succeeded, its metadata and keys.
pub struct Provider {
    settings: Arc<Settings>,
    http: reqwest::Client,
    discovered: RwLock<Option<Arc<Discovered>>>,
    last_error: RwLock<String>,
    ready_tx: tokio::sync::watch::Sender<bool>,
}

impl Provider {
    pub fn new(settings: Arc<Settings>, http: reqwest::Client) -> Self {
        Self {
            settings,
            http,
            discovered: RwLock::new(None),
            last_error: RwLock::new("discovery has not run yet".into()),
            ready_tx: tokio::sync::watch::Sender::new(false),
        }
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

    /// One discovery attempt: fetch and check the discovery document, then the key set.
    pub async fn discover(&self) -> Result<(), String> {
        let issuer = self.settings.oidc.issuer.trim_end_matches('/');
        let url = format!("{issuer}/.well-known/openid-configuration");
        let response = self.http.get(&url).send().await.map_err(|e| {
            format!(
                "cannot reach the OIDC issuer at {url}: {e}. Check oidc.issuer \
                 (BRIDGE_OIDC__ISSUER) and that the provider is running"
            )
        })?;
        if !response.status().is_success() {
            return Err(format!(
                "discovery at {url} answered HTTP {}. Check oidc.issuer: for Keycloak it is \
                 https://HOST/realms/REALM",
                response.status()
            ));
        }
        let doc: DiscoveryDocument = response
            .json()
            .await
            .map_err(|e| format!("discovery document at {url} is not valid: {e}"))?;
        if doc.issuer != self.settings.oidc.issuer {
            return Err(format!(
                "the provider says its issuer is {:?} but oidc.issuer is {:?}; they must be \
                 identical (mix-up defence). Set oidc.issuer to the provider's value",
                doc.issuer, self.settings.oidc.issuer
            ));
        }
        let algorithms: Vec<Algorithm> = if doc.id_token_signing_alg_values_supported.is_empty() {
            vec![Algorithm::RS256]
        } else {
            doc.id_token_signing_alg_values_supported
                .iter()
                .filter_map(|a| a.parse::<Algorithm>().ok())
                .filter(|a| ASYMMETRIC.contains(a))
                .collect()
        };
        if algorithms.is_empty() {
            return Err("the provider offers no asymmetric ID token signature algorithm".into());
        }
        let jwks = JwksCache::new(
            doc.jwks_uri.clone(),
            self.http.clone(),
            Duration::from_secs(self.settings.oidc.jwks_refetch_cooldown_secs),
        );
        jwks.refresh().await?;
        let metadata = ProviderMetadata {
            issuer: doc.issuer,
            authorization_endpoint: doc.authorization_endpoint,
            token_endpoint: doc.token_endpoint,
            jwks_uri: doc.jwks_uri,
            end_session_endpoint: doc.end_session_endpoint,
            iss_parameter_supported: doc.authorization_response_iss_parameter_supported,
            algorithms,
        };
        let jwks = Arc::new(jwks);
        let trusted = Arc::new(TrustedIssuer::for_provider(
            metadata.issuer.clone(),
            metadata.algorithms.clone(),
            jwks.clone(),
            self.settings.oidc.api_audience.clone(),
            self.settings.claims.clone(),
            self.settings.oidc.leeway_secs,
        ));
        let discovered = Arc::new(Discovered {
            metadata,
            jwks,
            trusted,
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
                    self.set_error(e);
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(cap);
        }
    }

    async fn token_request(
        &self,
        discovered: &Discovered,
        form: &[(&str, &str)],
    ) -> Result<TokenResponse, ProviderError> {
        let response = self
            .http
            .post(&discovered.metadata.token_endpoint)
            .basic_auth(
                urlencoding::encode(&self.settings.oidc.client_id),
                Some(urlencoding::encode(
                    self.settings.oidc.client_secret.expose(),
                )),
            )
            .form(form)
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("token endpoint: {e}")))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("token endpoint: {e}")))?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| {
                ProviderError::Unavailable(format!("token endpoint answered an invalid body: {e}"))
            });
        }
        #[derive(Deserialize)]
        struct OAuthError {
            error: String,
            #[serde(default)]
            error_description: Option<String>,
        }
        match serde_json::from_slice::<OAuthError>(&body) {
            Ok(e) if status.is_client_error() => Err(ProviderError::Rejected {
                error: e.error,
                description: e.error_description,
            }),
            _ => Err(ProviderError::Unavailable(format!(
                "token endpoint answered HTTP {status}"
            ))),
        }
    }

    /// Authorization-code grant with the PKCE verifier of this login.
    pub async fn exchange_code(
        &self,
        discovered: &Discovered,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<TokenResponse, ProviderError> {
        let redirect_uri = self.settings.redirect_uri();
        self.token_request(
            discovered,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", pkce_verifier),
            ],
        )
        .await
    }

    pub async fn refresh(
        &self,
        discovered: &Discovered,
        refresh_token: &str,
    ) -> Result<TokenResponse, ProviderError> {
        self.token_request(
            discovered,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }
}
