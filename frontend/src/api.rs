//! Transport: everything the SPA says to the bridge over HTTP, and nothing about who is signed
//! in. This is the only module that calls the browser's `fetch`, so there is one place that
//! decides how requests are authenticated:
//!
//! - [`Api`] holds a bearer token and sends any REST call (GET, POST, PUT, DELETE, optional JSON
//!   body) with `Authorization: Bearer <token>`;
//! - [`upstream_prefix`] asks the bridge (`GET /auth/upstreams`, public) where it proxies an
//!   API that one of the SPA's pages works with;
//! - [`fetch_session`] and [`logout`] talk to the bridge's token-mediating endpoints with the
//!   CSRF header and the same-origin session cookie instead.
//!
//! Any non-2xx answer comes back as [`Error::Status`] holding the bridge's [`ApiError`] body.
//! What to do about a `401` (refresh the token once, then give up) is [`crate::auth`]'s business,
//! not this module's: it imports neither `auth` nor the app.

use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::error::ApiError;
use shared::session::{CSRF_HEADER, CSRF_HEADER_VALUE, LogoutResponse, SessionInfo};
use wasm_bindgen_futures::JsFuture;
use web_sys::wasm_bindgen::{JsCast, JsValue};
use web_sys::{Headers, RequestCredentials, RequestInit, Response};

use crate::json::{self, Decode, Json};

const SESSION_PATH: &str = "/auth/session";
const LOGOUT_PATH: &str = "/auth/logout";
const UPSTREAMS_PATH: &str = "/auth/upstreams";

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

impl From<JsValue> for Error {
    /// What the browser threw: `fetch` fails with a `TypeError` when the network does.
    fn from(err: JsValue) -> Self {
        Self::Transport(String::from(web_sys::js_sys::Error::from(err).to_string()))
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

impl Method {
    /// The method's name on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Delete => "DELETE",
        }
    }
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
        let headers = Headers::new()?;
        headers.set("accept", "application/json")?;
        if let Some(token) = &self.token {
            headers.set("authorization", &["Bearer ", token].concat())?;
        }
        if body.is_some() {
            headers.set("content-type", "application/json")?;
        }
        fetch(method, path, &headers, body, None).await
    }
}

/// `GET /auth/session`: the SPA's only source of its bearer token.
pub async fn fetch_session() -> Result<SessionInfo, Error> {
    decode(&with_session_cookie(Method::Get, SESSION_PATH).await?)
}

/// The path prefix (e.g. `/pi/`) under which the bridge proxies the API of the page `ui` (e.g.
/// `privacyidea`), as `GET /auth/upstreams` announces it; `None` when there is none or the
/// bridge could not say.
pub async fn upstream_prefix(ui: &str) -> Option<String> {
    let text = Api::default()
        .send_json(Method::Get, UPSTREAMS_PATH, None)
        .await
        .ok()?;
    prefix_for_ui(&Json::parse(&text).ok()?, ui)
}

/// In an answer of `/auth/upstreams` (`{"upstreams": [{"name", "prefix", "ui"}]}`), the prefix
/// of the first entry for `ui`.
pub fn prefix_for_ui(answer: &Json, ui: &str) -> Option<String> {
    match answer.get("upstreams") {
        Json::Array(entries) => entries
            .iter()
            .find(|entry| matches!(entry.get("ui"), Json::String(name) if name == ui))
            .and_then(|entry| entry.opt_string("prefix").ok().flatten()),
        _ => None,
    }
}

/// `POST /auth/logout`: ends the bridge session; the answer says where to end the SSO session.
pub async fn logout() -> Result<LogoutResponse, Error> {
    decode(&with_session_cookie(Method::Post, LOGOUT_PATH).await?)
}

/// A call to the bridge's own `/auth` endpoints: CSRF header and the same-origin session cookie,
/// no bearer token.
async fn with_session_cookie(method: Method, path: &str) -> Result<String, Error> {
    let headers = Headers::new()?;
    headers.set(CSRF_HEADER, CSRF_HEADER_VALUE)?;
    headers.set("accept", "application/json")?;
    fetch(
        method,
        path,
        &headers,
        None,
        Some(RequestCredentials::SameOrigin),
    )
    .await
}

/// One `fetch`: the body of a 2xx answer, or [`Error::Status`] for any other status.
async fn fetch(
    method: Method,
    path: &str,
    headers: &Headers,
    body: Option<String>,
    credentials: Option<RequestCredentials>,
) -> Result<String, Error> {
    let init = RequestInit::new();
    init.set_method(method.as_str());
    init.set_headers(headers);
    if let Some(body) = body {
        init.set_body(&JsValue::from(body));
    }
    if let Some(credentials) = credentials {
        init.set_credentials(credentials);
    }
    let response: Response =
        JsFuture::from(leptos::prelude::window().fetch_with_str_and_init(path, &init))
            .await?
            .unchecked_into();
    let status = response.status();
    let text = JsFuture::from(response.text()?)
        .await?
        .as_string()
        .unwrap_or_default();
    if response.ok() {
        return Ok(text);
    }
    // A proxy in front of the bridge may answer with HTML; keep the status meaningful anyway.
    let body = decode::<ApiError>(&text)
        .unwrap_or_else(|_| ApiError::new(format!("http_{status}"), response.status_text()));
    Err(Error::Status { status, body })
}

/// Decodes a JSON answer as any serde type (see [`crate::json`]); an empty body reads as `null`.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    json::from_json(text).map_err(|err| Error::Transport(err.to_string()))
}

/// Decodes a JSON answer as one of the bridge's own types, by hand (see [`crate::json`]).
pub fn decode<T: Decode>(text: &str) -> Result<T, Error> {
    json::decode(text).map_err(|err| Error::Transport(err.to_string()))
}

/// Encodes a request body as JSON.
pub fn to_json<B: Serialize + ?Sized>(body: &B) -> Result<String, Error> {
    json::to_json(body).map_err(|err| Error::Transport(err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(prefix: &str, ui: Option<&str>) -> Json {
        let mut members = vec![("prefix".to_owned(), Json::String(prefix.to_owned()))];
        if let Some(ui) = ui {
            members.push(("ui".to_owned(), Json::String(ui.to_owned())));
        }
        Json::Object(members)
    }

    #[test]
    fn the_prefix_of_the_entry_for_the_page_is_found() {
        let answer = Json::Object(vec![(
            "upstreams".to_owned(),
            Json::Array(vec![
                entry("/other/", None),
                entry("/x/", Some("other")),
                entry("/pi/", Some("privacyidea")),
            ]),
        )]);
        assert_eq!(
            prefix_for_ui(&answer, "privacyidea").as_deref(),
            Some("/pi/")
        );
        assert_eq!(prefix_for_ui(&answer, "nothing"), None);
        assert_eq!(prefix_for_ui(&Json::Null, "privacyidea"), None);
    }
}
