//! What a session holds: who is signed in and how, and the logins still under way.

use serde::{Deserialize, Serialize};

use crate::{authority::mint::Minted, trust::principal::Principal};

/// A signed-in browser: the principal every feature reads, and how they got in.
#[derive(Clone, Serialize, Deserialize)]
pub struct SessionUser {
    pub principal: Principal,
    pub sign_in: SignIn,
    pub signed_in_at: i64,
    /// The token last minted for the SPA under `session.token_profile` (a local account's
    /// profile for a local sign-in), reused while fresh.
    #[serde(default)]
    pub minted: Option<Minted>,
    /// The RFC 7638 thumbprint of the browser key this session is bound to (`session.dpop`):
    /// fixed at the first session call that carries a DPoP proof (trust on first use), kept
    /// across refreshes and gateway renewals, reset only by a new sign-in. Once set, only
    /// proofs of this key get the session's token, and that token is always bound to it.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
}

/// How the user got in; each way in keeps what it needs to keep the session alive.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SignIn {
    /// The OIDC code flow (or its silent `prompt=none` variant) with the login provider.
    Oidc {
        tokens: ProviderTokens,
        /// The provider's session id (`sid` of the ID token), for back-channel logout.
        sid: Option<String>,
    },
    /// A JWT that a trusted gateway put on a page request. The session lasts as long as the
    /// JWT; a later page request with a fresh one renews it.
    Gateway { token: String, expires_at: i64 },
    /// A local account's username and password (`auth::local`). No provider token exists: the
    /// SPA's token is minted ([`SessionUser::minted`]).
    Local {
        /// The account's name, to check at each session check that it is still enabled ...
        name: String,
        /// ... and still has the password hash it signed in with (a fingerprint of it, which
        /// a new password, salted afresh, always changes).
        credential: String,
    },
}

/// The provider's tokens. They stay server-side; only the access token is handed to the SPA.
#[derive(Clone, Serialize, Deserialize)]
pub struct ProviderTokens {
    pub access_token: String,
    pub access_expires_at: i64,
    /// When the bridge received the access token: with `access_expires_at` it gives the
    /// token's lifetime, which caps how early a refresh starts.
    pub access_received_at: i64,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// When the refresh token stops working, if the provider said (`refresh_expires_in`):
    /// the session ends then, as nothing could renew it.
    #[serde(default)]
    pub refresh_expires_at: Option<i64>,
}

impl ProviderTokens {
    /// Whether the access token should be refreshed now: within `margin` seconds of expiry,
    /// but never earlier than half its lifetime, so a provider with short-lived tokens is not
    /// asked for a refresh on every call.
    pub fn refresh_due(&self, margin: i64, now: i64) -> bool {
        let lifetime = (self.access_expires_at - self.access_received_at).max(0);
        let margin = margin.min(lifetime / 2);
        self.access_expires_at - now <= margin
    }
}

impl SessionUser {
    /// When this session must end at the latest: the absolute timeout after sign-in, or
    /// earlier when the provider's refresh token runs out first.
    pub fn ends_at(&self, absolute_timeout_secs: i64) -> i64 {
        let absolute = self.signed_in_at.saturating_add(absolute_timeout_secs);
        match self.provider_tokens().and_then(|t| t.refresh_expires_at) {
            Some(refresh_ends) => absolute.min(refresh_ends),
            None => absolute,
        }
    }

    /// The token the SPA gets from `/auth/session`, and when it expires.
    pub fn auth_token(&self) -> (&str, i64) {
        match &self.sign_in {
            SignIn::Oidc { tokens, .. } => (&tokens.access_token, tokens.access_expires_at),
            SignIn::Gateway { token, expires_at } => (token, *expires_at),
            SignIn::Local { .. } => self
                .minted
                .as_ref()
                .map_or(("", 0), |m| (m.token.as_str(), m.expires_at)),
        }
    }

    /// The provider tokens of an OIDC sign-in.
    pub fn provider_tokens(&self) -> Option<&ProviderTokens> {
        match &self.sign_in {
            SignIn::Oidc { tokens, .. } => Some(tokens),
            SignIn::Gateway { .. } | SignIn::Local { .. } => None,
        }
    }

    /// Whether this is the same person, from the same issuer, as `other`.
    pub fn same_identity(&self, other: &SessionUser) -> bool {
        self.principal.issuer == other.principal.issuer
            && self.principal.user.id == other.principal.user.id
    }
}

impl std::fmt::Debug for SessionUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionUser")
            .field("user", &self.principal.user.id)
            .field("issuer", &self.principal.issuer_name)
            .finish_non_exhaustive()
    }
}

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

/// A JWT-endpoint round trip under way: the browser was sent to the configured app and must
/// come back through the gateway with this `state` before `expires_at`.
#[derive(Clone, Serialize, Deserialize)]
pub struct PendingBinding {
    pub state: String,
    pub return_to: String,
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(received: i64, expires: i64) -> ProviderTokens {
        ProviderTokens {
            access_token: String::new(),
            access_expires_at: expires,
            access_received_at: received,
            refresh_token: None,
            id_token: None,
            refresh_expires_at: None,
        }
    }

    #[test]
    fn a_session_ends_at_its_absolute_timeout_or_its_refresh_tokens_end_whichever_is_first() {
        let mut t = tokens(0, 300);
        let user = |t: &ProviderTokens| SessionUser {
            principal: serde_json::from_value(serde_json::json!({
                "user": {"id": "alice"}, "issuer": "i", "issuer_name": "oidc",
                "expires_at": 300, "token_fingerprint": "f", "token_name": null,
                "access_level": null
            }))
            .unwrap_or_else(|e| unreachable!("{e}")),
            sign_in: SignIn::Oidc {
                tokens: t.clone(),
                sid: None,
            },
            signed_in_at: 1_000,
            minted: None,
            dpop_jkt: None,
        };
        assert_eq!(user(&t).ends_at(86_400), 87_400);
        t.refresh_expires_at = Some(2_800);
        assert_eq!(user(&t).ends_at(86_400), 2_800);
        t.refresh_expires_at = Some(100_000);
        assert_eq!(user(&t).ends_at(86_400), 87_400);
    }

    #[test]
    fn a_refresh_is_due_within_the_margin_of_expiry() {
        let s = tokens(0, 3600);
        assert!(!s.refresh_due(60, 3539));
        assert!(s.refresh_due(60, 3540));
    }

    #[test]
    fn short_lived_tokens_are_refreshed_only_in_the_second_half_of_their_life() {
        // 30 s tokens with a 60 s margin would otherwise be refreshed on every call.
        let s = tokens(0, 30);
        assert!(!s.refresh_due(60, 1));
        assert!(!s.refresh_due(60, 14));
        assert!(s.refresh_due(60, 15));
    }
}
