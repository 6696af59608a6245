//! Types shared by the login-bridge backend and its SPA.
//!
//! Serde types only, so the crate compiles for `wasm32-unknown-unknown` as well as for the
//! server. Grouped by the flow they belong to. Anything holding a secret has a redacting
//! `Debug` so a stray `{:?}` cannot put a token into a log.

pub mod session {
    //! The token-mediating endpoint (`GET /auth/session`) and logout.
    use serde::{Deserialize, Serialize};

    /// Name of the custom request header that `/auth/session` and every state-changing `/auth`
    /// endpoint require. A cross-site form or `<img>` cannot set it, and a cross-site `fetch`
    /// that sets it needs a CORS preflight the bridge never grants: the CSRF defence.
    pub const CSRF_HEADER: &str = "x-login-bridge";
    /// Value the SPA sends in [`CSRF_HEADER`].
    pub const CSRF_HEADER_VALUE: &str = "1";

    /// Who is signed in, as the bridge mapped it from the validated tokens.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct User {
        /// Stable subject identifier (`sub`).
        pub id: String,
        /// Login name (`preferred_username` for Keycloak).
        pub username: Option<String>,
        /// Display name.
        pub name: Option<String>,
        pub email: Option<String>,
        #[serde(default)]
        pub groups: Vec<String>,
        #[serde(default)]
        pub roles: Vec<String>,
    }

    /// Answer of `GET /auth/session`: the SPA's only source of its bearer token.
    #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SessionInfo {
        pub user: User,
        /// The access token (a JWT) the SPA sends as `Authorization: Bearer` on every REST call.
        pub auth_token: String,
        /// Expiry of `auth_token`, seconds since the Unix epoch.
        pub expires_at: i64,
        /// `Bearer`, or `DPoP` when `auth_token` is bound to the browser's key (RFC 9449): it
        /// is then sent as `Authorization: DPoP` with a fresh `DPoP` proof on every call.
        #[serde(default = "bearer")]
        pub token_type: String,
    }

    fn bearer() -> String {
        "Bearer".into()
    }

    impl std::fmt::Debug for SessionInfo {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SessionInfo")
                .field("user", &self.user)
                .field("auth_token", &"***")
                .field("expires_at", &self.expires_at)
                .field("token_type", &self.token_type)
                .finish()
        }
    }

    /// Answer of `POST /auth/logout`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LogoutResponse {
        /// The provider's end-session URL (with `id_token_hint` and `post_logout_redirect_uri`);
        /// the SPA navigates there to end the SSO session too. `None` when the provider has none.
        pub end_session_url: Option<String>,
    }
}

pub mod error {
    //! The one JSON error body every endpoint answers with.
    use serde::{Deserialize, Serialize};

    /// JSON body of every non-2xx answer. `error` is a stable machine-readable code
    /// (`unauthenticated`, `invalid_token`, `insufficient_scope`, `invalid_request`, ...);
    /// `error_description` is for humans and never echoes a token.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ApiError {
        pub error: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub error_description: Option<String>,
        /// Only on `401` from `/auth/session`: whether the bridge has already tried a silent
        /// (`prompt=none`) sign-in for this browser. When `false`, the SPA may start one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub silent_sso_tried: Option<bool>,
        /// Only on `401` from `/auth/session`, and only when true: the bridge keeps local
        /// accounts, so the login page offers the username/password form.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub local_accounts: Option<bool>,
    }

    impl ApiError {
        pub fn new(error: impl Into<String>, description: impl Into<String>) -> Self {
            Self {
                error: error.into(),
                error_description: Some(description.into()),
                silent_sso_tried: None,
                local_accounts: None,
            }
        }
    }

    impl std::fmt::Display for ApiError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match &self.error_description {
                Some(d) => write!(f, "{}: {}", self.error, d),
                None => f.write_str(&self.error),
            }
        }
    }
}

pub mod api {
    //! The bridge's small demo REST API under `/api`, which proves the flow end to end.
    use serde::{Deserialize, Serialize};

    use crate::session::User;

    /// `GET /api/me`: the identity the API itself validated from the bearer token.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Me {
        pub user: User,
        /// `iss` of the bearer token.
        pub issuer: String,
        /// `exp` of the bearer token, seconds since the Unix epoch.
        pub expires_at: i64,
        /// First 16 hex digits of SHA-256 over the bearer token: lets a person (or a test) see
        /// which token was used without the token itself ever being shown.
        pub token_fingerprint: String,
    }

    /// One REST call the API received, as the server recorded it.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ApiCall {
        pub method: String,
        pub path: String,
        pub token_fingerprint: String,
        /// Seconds since the Unix epoch.
        pub at: i64,
    }

    /// `GET /api/calls`: the caller's most recent API calls, newest first.
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ApiCalls {
        pub calls: Vec<ApiCall>,
    }
}

pub mod upstreams {
    //! `GET /auth/upstreams`: which of the SPA's pages an API behind the bridge offers.
    use serde::{Deserialize, Serialize};

    /// The answer: every upstream that names a UI page (none is an empty list).
    #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Upstreams {
        pub upstreams: Vec<UpstreamPage>,
    }

    /// One upstream with a UI page: the SPA links `ui` and calls the API under `prefix`.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UpstreamPage {
        pub name: String,
        /// Where the bridge proxies the API, e.g. `/pi/`.
        pub prefix: String,
        /// The SPA page that works with it, e.g. `privacyidea`.
        #[serde(default)]
        pub ui: Option<String>,
    }

    impl Upstreams {
        /// The prefix of the first upstream for the page `ui`.
        pub fn prefix_for(&self, ui: &str) -> Option<&str> {
            self.upstreams
                .iter()
                .find(|upstream| upstream.ui.as_deref() == Some(ui))
                .map(|upstream| upstream.prefix.as_str())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::session::{SessionInfo, User};

    #[test]
    fn session_info_debug_never_shows_the_token() {
        let info = SessionInfo {
            user: User::default(),
            auth_token: "eyJsecret".into(),
            expires_at: 1,
            token_type: "Bearer".into(),
        };
        let printed = format!("{info:?}");
        assert!(!printed.contains("eyJsecret"), "{printed}");
        assert!(printed.contains("***"));
    }

    #[test]
    fn the_prefix_of_the_first_upstream_for_a_page_is_found() {
        let answer: super::upstreams::Upstreams = serde_json::from_str(
            r#"{"upstreams": [{"name": "a", "prefix": "/a/", "ui": "other"},
                              {"name": "pi", "prefix": "/pi/", "ui": "privacyidea"}]}"#,
        )
        .unwrap_or_default();
        assert_eq!(answer.prefix_for("privacyidea"), Some("/pi/"));
        assert_eq!(answer.prefix_for("nothing"), None);
    }

    #[test]
    fn api_error_omits_absent_fields() {
        let e = super::error::ApiError::new("unauthenticated", "no session");
        let json = serde_json::to_string(&e).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"error":"unauthenticated","error_description":"no session"}"#
        );
    }
}
