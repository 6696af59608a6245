//! The caller as a validated token proves it: who, from which issuer, until when.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use shared::session::User;

use super::{
    issuer::TrustedIssuer,
    mapping::{lookup, map_user},
    validate::ValidatedToken,
};

/// The caller, as proven by a validated token. Every way in ends in one of these: the `/api`
/// extractor gets it from the bearer token, a browser session keeps it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Principal {
    pub user: User,
    /// `iss` of the token.
    pub issuer: String,
    /// Name of the trusted issuer that matched (`oidc` for the login provider).
    pub issuer_name: String,
    pub expires_at: i64,
    pub token_fingerprint: String,
    /// Token name (`azp` by default): which client or token this is.
    pub token_name: Option<String>,
    /// Access level from the issuer's `group_levels` (highest of the caller's groups).
    pub access_level: Option<u32>,
    /// The validated claims, for features that read more than the mapped user. Kept in
    /// memory only: a session stores the mapped principal, not the token's claims.
    #[serde(skip)]
    pub claims: Arc<Map<String, Value>>,
}

impl Principal {
    /// The principal a validated token of `issuer` proves.
    pub fn from_token(issuer: &TrustedIssuer, validated: ValidatedToken, token: &str) -> Self {
        let user = map_user(&issuer.claims, &[&validated.claims]);
        let access_level = user
            .groups
            .iter()
            .filter_map(|g| issuer.policy.group_levels.get(g).copied())
            .max();
        let token_name = lookup(&validated.claims, &issuer.claims.token_name)
            .and_then(Value::as_str)
            .map(str::to_owned);
        Principal {
            user,
            issuer: validated.issuer,
            issuer_name: issuer.name.clone(),
            expires_at: validated.expires_at,
            token_fingerprint: fingerprint(token),
            token_name,
            access_level,
            claims: Arc::new(validated.claims),
        }
    }
}

/// First 16 hex digits of SHA-256 over a token: safe to show and log, useless to replay.
pub fn fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
