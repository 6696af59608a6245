//! Everything the SPA says to the bridge over HTTP. This is the only module that touches
//! gloo-net, so there is one place that decides how requests are authenticated: the
//! token-mediating endpoint (`/auth/session`) and logout carry the CSRF header and the session
//! cookie; every REST call carries `Authorization: Bearer <auth_token>`. Any non-2xx answer comes
//! back as [`Error::Status`] holding the bridge's [`ApiError`] body.

use gloo_net::http::{Request, RequestBuilder, Response};
use leptos::prelude::GetUntracked;
use serde::de::DeserializeOwned;
use shared::error::ApiError;
use shared::session::{CSRF_HEADER, CSRF_HEADER_VALUE, LogoutResponse, SessionInfo};
use web_sys::RequestCredentials;

use crate::auth::AuthState;

const SESSION_PATH: &str = "/auth/session";
const LOGOUT_PATH: &str = "/auth/logout";
const LOGIN_PATH: &str = "/auth/login";

/// Why a call to the bridge did not produce the expected value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// No usable answer: the network failed, or a 2xx body was not the JSON we expected.
    Transport(String),
    /// The bridge answered with a non-2xx status.
    Status { status: u16, body: ApiError },
}

impl Error {
    /// A `401`: no session, or a token the API would not accept.
    pub fn is_unauthenticated(&self) -> bool {
        matches!(self, Self::Status { status: 401, .. })
    }

    /// A `401` from `/auth/session` saying the bridge has not yet tried a silent
    /// (`prompt=none`) sign-in for this browser, so the SPA may start one.
    pub fn silent_sso_untried(&self) -> bool {
        matches!(self, Self::Status { status: 401, body } if body.silent_sso_tried == Some(false))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport(reason) => write!(f, "the bridge could not be reached: {reason}"),
            Self::Status { status, body } => write!(f, "HTTP {status}: {body}"),
        }
    }
}

impl From<gloo_net::Error> for Error {
    fn from(err: gloo_net::Error) -> Self {
        Self::Transport(err.to_string())
    }
}

/// `GET /auth/session`: the SPA's only source of its bearer token.
pub async fn fetch_session() -> Result<SessionInfo, Error> {
    let response = with_session_cookie(Request::get(SESSION_PATH))
        .send()
        .await?;
    decode(response).await
}

/// `POST /auth/logout`: ends the bridge session; the answer says where to end the SSO session.
pub async fn logout() -> Result<LogoutResponse, Error> {
    let response = with_session_cookie(Request::post(LOGOUT_PATH))
        .send()
        .await?;
    decode(response).await
}

/// `GET path` on a REST API, authenticated with the current `auth_token`.
///
/// A `401` usually means our copy of the token is stale (the bridge refreshes tokens
/// server-side), so the session is fetched once more and the call retried once. If the API
/// still refuses, the user is marked signed out, which makes the page's sign-in guard send them
/// to the login page with the current path as `return_to`.
pub async fn get_json<T: DeserializeOwned>(auth: AuthState, path: &str) -> Result<T, Error> {
    // Untracked: when a resource calls this, a token refresh must not re-run the resource.
    if let Some(token) = auth.auth_token().get_untracked() {
        match get_with_bearer(path, &token).await {
            Err(err) if err.is_unauthenticated() => {}
            answer => return answer,
        }
    }
    let session = match fetch_session().await {
        Ok(session) => session,
        Err(err) => {
            if err.is_unauthenticated() {
                auth.mark_signed_out();
            }
            return Err(err);
        }
    };
    let token = session.auth_token.clone();
    auth.set_session(session);
    let answer = get_with_bearer(path, &token).await;
    if matches!(&answer, Err(err) if err.is_unauthenticated()) {
        auth.mark_signed_out();
    }
    answer
}

/// Where a full-page navigation starts the OIDC sign-in at the bridge. With `silent`, it asks
/// the provider for `prompt=none`: signed in at once if an SSO session exists, otherwise back
/// to the login page with `error=login_required`.
pub fn sign_in_url(return_to: &str, silent: bool) -> String {
    let prompt = if silent { "prompt=none&" } else { "" };
    format!("{LOGIN_PATH}?{prompt}return_to={}", encode(return_to))
}

/// Percent-encodes a query parameter value.
pub fn encode(value: &str) -> String {
    String::from(web_sys::js_sys::encode_uri_component(value))
}

fn with_session_cookie(request: RequestBuilder) -> RequestBuilder {
    request
        .header(CSRF_HEADER, CSRF_HEADER_VALUE)
        .header("accept", "application/json")
        .credentials(RequestCredentials::SameOrigin)
}

async fn get_with_bearer<T: DeserializeOwned>(path: &str, token: &str) -> Result<T, Error> {
    let response = Request::get(path)
        .header("authorization", &format!("Bearer {token}"))
        .header("accept", "application/json")
        .send()
        .await?;
    decode(response).await
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
    let status = response.status();
    if response.ok() {
        return Ok(response.json().await?);
    }
    // A proxy in front of the bridge may answer with HTML; keep the status meaningful anyway.
    let body = match response.json::<ApiError>().await {
        Ok(body) => body,
        Err(_) => ApiError::new(format!("http_{status}"), response.status_text()),
    };
    Err(Error::Status { status, body })
}
