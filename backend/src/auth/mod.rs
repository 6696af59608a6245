//! Browser-facing authentication: the OIDC code flow, the server-side session, the
//! token-mediating `/auth/session` endpoint, logout, and the silent-SSO decision.

pub mod flow;
pub mod refresh;
pub mod return_to;
pub mod routes;

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use shared::session::{CSRF_HEADER, CSRF_HEADER_VALUE, User};

use crate::{error::AppError, settings::Settings};

/// Session key of the signed-in state.
pub const SIGNED_IN_KEY: &str = "signed_in";
/// Session key of the logins started from this browser and not finished yet.
pub const PENDING_KEY: &str = "pending_logins";
/// Session key: when a silent (`prompt=none`) attempt last came back without a sign-in.
pub const SILENT_TRIED_KEY: &str = "silent_sso_tried_at";

/// At most this many logins may be pending per browser (tabs); the oldest is dropped.
pub const MAX_PENDING_LOGINS: usize = 5;
/// A login must come back from the provider within this many seconds.
pub const PENDING_LOGIN_TTL_SECS: i64 = 600;

/// A login sent to the provider and not back yet. Lives only in the server-side session.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingLogin {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    pub silent: bool,
    pub created_at: i64,
}

/// The signed-in state of a browser session. Tokens stay server-side; only the access token
/// is handed to the SPA, through `/auth/session`.
#[derive(Clone, Serialize, Deserialize)]
pub struct SignedIn {
    pub user: User,
    pub access_token: String,
    pub access_expires_at: i64,
    /// When the bridge received the access token: with `access_expires_at` it gives the
    /// token's lifetime, which caps how early a refresh starts.
    #[serde(default)]
    pub access_received_at: i64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    pub signed_in_at: i64,
}

impl std::fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedIn")
            .field("user", &self.user.id)
            .field("access_expires_at", &self.access_expires_at)
            .finish_non_exhaustive()
    }
}

impl SignedIn {
    /// Whether the access token should be refreshed now: within `margin` seconds of expiry,
    /// but never earlier than half its lifetime, so a provider with short-lived tokens is not
    /// asked for a refresh on every call.
    pub fn refresh_due(&self, margin: i64, now: i64) -> bool {
        let lifetime = (self.access_expires_at - self.access_received_at).max(0);
        let margin = margin.min(lifetime / 2);
        self.access_expires_at - now <= margin
    }
}

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// CSRF defence for `/auth/session` and state-changing `/auth` endpoints: the custom header
/// must be present (a cross-site page cannot add it without a CORS preflight, which the
/// bridge never grants), and when the browser says where the request comes from, it must be
/// this origin.
pub fn require_same_origin(headers: &HeaderMap, settings: &Settings) -> Result<(), AppError> {
    let has_header = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == CSRF_HEADER_VALUE);
    if !has_header {
        return Err(AppError::BadRequest(format!(
            "missing the {CSRF_HEADER} request header"
        )));
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.to_str().ok() != Some(settings.origin().as_str())
    {
        return Err(AppError::BadRequest("cross-origin request refused".into()));
    }
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return Err(AppError::BadRequest("cross-site request refused".into()));
    }
    Ok(())
}

/// 32 random bytes, base64url: state, nonce and PKCE verifier.
pub fn random_token() -> String {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed_in(received: i64, expires: i64) -> SignedIn {
        SignedIn {
            user: User::default(),
            access_token: String::new(),
            access_expires_at: expires,
            access_received_at: received,
            refresh_token: None,
            id_token: None,
            signed_in_at: received,
        }
    }

    #[test]
    fn a_refresh_is_due_within_the_margin_of_expiry() {
        let s = signed_in(0, 3600);
        assert!(!s.refresh_due(60, 3539));
        assert!(s.refresh_due(60, 3540));
    }

    #[test]
    fn short_lived_tokens_are_refreshed_only_in_the_second_half_of_their_life() {
        // 30 s tokens with a 60 s margin would otherwise be refreshed on every call.
        let s = signed_in(0, 30);
        assert!(!s.refresh_due(60, 1));
        assert!(!s.refresh_due(60, 14));
        assert!(s.refresh_due(60, 15));
    }
}
