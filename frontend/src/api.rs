//! Transport: everything the SPA says to the bridge over HTTP, and nothing about who is signed
//! in. This is the only module that touches gloo-net, so there is one place that decides how
//! requests are authenticated:
//!
//! - [`Api`] holds a bearer token and sends any REST call (GET, POST, PUT, DELETE, optional JSON
//!   body) with `Authorization: Bearer <token>`;
//! - [`fetch_session`] and [`logout`] talk to the bridge's token-mediating endpoints with the
//!   CSRF header and the same-origin session cookie instead.
//!
//! Any non-2xx answer comes back as [`Error::Status`] holding the bridge's [`ApiError`] body.
//! What to do about a `401` (refresh the token once, then give up) is [`crate::auth`]'s business,
//! not this module's: it imports neither `auth` nor the app.

use gloo_net::http::{Request, RequestBuilder, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::error::ApiError;
use shared::session::{CSRF_HEADER, CSRF_HEADER_VALUE, LogoutResponse, SessionInfo};
use web_sys::RequestCredentials;

use crate::json;

const SESSION_PATH: &str = "/auth/session";
const LOGOUT_PATH: &str = "/auth/logout";

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

impl std::error::Error for Error {}

impl From<gloo_net::Error> for Error {
    fn from(err: gloo_net::Error) -> Self {
        Self::Transport(err.to_string())
    }
}

/// The HTTP methods a REST call may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

/// A client for the REST APIs behind the bridge, authenticated with one bearer token.
///
/// Cheap to create: make one per call from the current token (see
/// [`crate::auth::AuthState::api`]) rather than keeping one around, so a refreshed token is
/// picked up. Without a token, requests go out unauthenticated (and a protected API answers
/// `401`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Api {
    token: Option<String>,
}

impl std::fmt::Debug for Api {
    /// Never prints the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.as_ref().map(|_| "***");
        f.debug_struct("Api").field("token", &token).finish()
    }
}

impl Api {
    /// A client sending `Authorization: Bearer <token>` (none when `token` is `None`).
    pub fn new(token: Option<String>) -> Self {
        Self { token }
    }

    /// `GET path`, decoding the JSON answer as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        from_json(&self.send_json(Method::Get, path, None).await?)
    }

    /// `POST path` with `body` as JSON.
    pub async fn post<B, T>(&self, path: &str, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::Post, path, Some(body)).await
    }

    /// `PUT path` with `body` as JSON.
    pub async fn put<B, T>(&self, path: &str, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::Put, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        from_json(&self.send_json(Method::Delete, path, None).await?)
    }

    /// Sends `method path` with an optional JSON body and decodes the JSON answer as `T`.
    ///
    /// An empty 2xx body (e.g. `204 No Content`) decodes as JSON `null`, so `T = ()` or an
    /// `Option` fits it.
    pub async fn send<B, T>(&self, method: Method, path: &str, body: Option<&B>) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = body.map(to_json).transpose()?;
        from_json(&self.send_json(method, path, body).await?)
    }

    /// Sends `method path` with `body` (already JSON) and returns the 2xx answer's body as it
    /// came. Not generic, so every call shares one copy of the request code in the WASM.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<String, Error> {
        let mut request = match method {
            Method::Get => Request::get(path),
            Method::Post => Request::post(path),
            Method::Put => Request::put(path),
            Method::Delete => Request::delete(path),
        }
        .header("accept", "application/json");
        if let Some(token) = &self.token {
            request = request.header("authorization", &["Bearer ", token].concat());
        }
        let response = match body {
            Some(json) => {
                request
                    .header("content-type", "application/json")
                    .body(json)?
                    .send()
                    .await?
            }
            None => request.send().await?,
        };
        answer(response).await
    }
}

/// `GET /auth/session`: the SPA's only source of its bearer token.
pub async fn fetch_session() -> Result<SessionInfo, Error> {
    from_json(&with_session_cookie(SESSION_PATH, Request::get).await?)
}

/// `POST /auth/logout`: ends the bridge session; the answer says where to end the SSO session.
pub async fn logout() -> Result<LogoutResponse, Error> {
    from_json(&with_session_cookie(LOGOUT_PATH, Request::post).await?)
}

/// A call to the bridge's own `/auth` endpoints: CSRF header and the same-origin session cookie,
/// no bearer token.
async fn with_session_cookie(
    path: &str,
    method: fn(&str) -> RequestBuilder,
) -> Result<String, Error> {
    let response = method(path)
        .header(CSRF_HEADER, CSRF_HEADER_VALUE)
        .header("accept", "application/json")
        .credentials(RequestCredentials::SameOrigin)
        .send()
        .await?;
    answer(response).await
}

/// The body of a 2xx answer; any other status becomes [`Error::Status`].
async fn answer(response: Response) -> Result<String, Error> {
    let status = response.status();
    let text = response.text().await?;
    if response.ok() {
        return Ok(text);
    }
    // A proxy in front of the bridge may answer with HTML; keep the status meaningful anyway.
    let body = from_json::<ApiError>(&text)
        .unwrap_or_else(|_| ApiError::new(format!("http_{status}"), response.status_text()));
    Err(Error::Status { status, body })
}

/// Decodes a JSON answer (see [`crate::json`]); an empty body reads as `null`.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    json::from_str(text).map_err(|err| Error::Transport(err.to_string()))
}

/// Encodes a request body as JSON.
pub fn to_json<B: Serialize + ?Sized>(body: &B) -> Result<String, Error> {
    json::to_string(body).map_err(|err| Error::Transport(err.to_string()))
}
