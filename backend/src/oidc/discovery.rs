//! Discovery: the provider's `/.well-known/openid-configuration`, checked.

use jsonwebtoken::Algorithm;
use serde::Deserialize;

use super::http::ProviderHttp;
use crate::trust::jwks::JwksError;

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

/// Why discovery failed. Each message says what to check.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "cannot reach the OIDC issuer at {url}: {reason}. Check oidc.issuer \
         (BRIDGE_OIDC__ISSUER) and that the provider is running"
    )]
    Unreachable { url: String, reason: String },
    #[error(
        "discovery at {url} answered HTTP {status}. Check oidc.issuer: for Keycloak it is \
         https://HOST/realms/REALM"
    )]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
    #[error("discovery document at {url} is not valid: {reason}")]
    Invalid { url: String, reason: String },
    #[error(
        "the provider says its issuer is {advertised:?} but oidc.issuer is {configured:?}; they \
         must be identical (mix-up defence). Set oidc.issuer to the provider's value"
    )]
    IssuerMismatch {
        advertised: String,
        configured: String,
    },
    #[error("the provider offers no asymmetric ID token signature algorithm")]
    NoAlgorithm,
    #[error("the provider's {endpoint} is not a usable URL: {reason}")]
    BadEndpoint {
        endpoint: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Jwks(#[from] JwksError),
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

/// Fetches and checks the discovery document of `issuer`.
pub async fn fetch_metadata(
    http: &ProviderHttp,
    issuer: &str,
) -> Result<ProviderMetadata, DiscoveryError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let response = http
        .get(&url, None)
        .await
        .map_err(|e| DiscoveryError::Unreachable {
            url: url.clone(),
            reason: e.to_string(),
        })?;
    if !response.status().is_success() {
        return Err(DiscoveryError::Status {
            url,
            status: response.status(),
        });
    }
    let doc: DiscoveryDocument = response.json().await.map_err(|e| DiscoveryError::Invalid {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    if doc.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            advertised: doc.issuer,
            configured: issuer.to_string(),
        });
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
        return Err(DiscoveryError::NoAlgorithm);
    }
    Ok(ProviderMetadata {
        issuer: doc.issuer,
        authorization_endpoint: doc.authorization_endpoint,
        token_endpoint: doc.token_endpoint,
        jwks_uri: doc.jwks_uri,
        end_session_endpoint: doc.end_session_endpoint,
        iss_parameter_supported: doc.authorization_response_iss_parameter_supported,
        algorithms,
    })
}
