//! Transport: everything the SPA says to the bridge over HTTP, and nothing about who is signed
//! in. This is the only module that sends requests (with gloo-net, JSON through serde_json), so
//! there is one place that decides how requests are authenticated:
//!
//! - [`Api`] holds the token and sends any REST call (GET, POST, PUT, DELETE, optional JSON
//!   body) with `Authorization: Bearer <token>`, or, for a token bound to this browser's key,
//!   `Authorization: DPoP <token>` and a fresh `DPoP` proof ([`crate::dpop`], RFC 9449);
//! - [`upstream_prefix`] asks the bridge (`GET /auth/upstreams`, public) where it proxies an
//!   API that one of the SPA's pages works with;
//! - [`fetch_session`] and [`logout`] talk to the bridge's token-mediating endpoints with the
//!   CSRF header and the same-origin session cookie instead (and `/auth/session` with a proof
//!   without `ath`, so the bridge can bind the session to this browser's key).
//!
//! A `DPoP-Nonce` on any answer is kept for the next proofs; a `401` asking for one
//! (`error="use_dpop_nonce"`) is retried once with it.
//!
//! Any non-2xx answer comes back as [`Error::Status`] holding the bridge's [`ApiError`] body.
//! What to do about a `401` (refresh the token once, then give up) is [`crate::auth`]'s business,
//! not this module's: it imports neither `auth` nor the app.

use std::future::Future;
use std::pin::Pin;

use gloo_net::http::RequestBuilder;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::error::ApiError;
use shared::session::{CSRF_HEADER, CSRF_HEADER_VALUE, LogoutResponse, SessionInfo};
use shared::upstreams::Upstreams;
use web_sys::RequestCredentials;

use crate::dpop;

/// The HTTP method of a REST call (`Method::GET`, `Method::POST`, ...): gloo-net's, which is
/// the `http` crate's; and gloo-net's answer, as [`crate::auth::AuthState::call_json`] returns it.
pub use gloo_net::http::{Method, Response};

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

/// What [`Error::Transport`] says when a body was not the JSON expected. serde_json's own
/// wording (which field, at which line and column) is not shown: formatting it links
/// serde_json's message tables and `std::io`'s error texts into the WASM, ~1 KB (brotli) of
/// the SPA's first load for a detail that only a developer, in the network tab, needs.
const NOT_THE_JSON_EXPECTED: &str = "the answer was not the JSON expected";

impl From<gloo_net::Error> for Error {
    /// What gloo-net reports: the browser's `fetch` failed (a network error: the browser's
    /// message), or serde_json could not read a body.
    fn from(err: gloo_net::Error) -> Self {
        Self::Transport(match err {
            gloo_net::Error::JsError(js) => js.to_string(),
            gloo_net::Error::SerdeError(_) => NOT_THE_JSON_EXPECTED.to_owned(),
            gloo_net::Error::GlooError(reason) => reason,
        })
    }
}

impl From<serde_json::Error> for Error {
    fn from(_: serde_json::Error) -> Self {
        Self::Transport(NOT_THE_JSON_EXPECTED.to_owned())
    }
}

/// A client for the REST APIs behind the bridge, authenticated with one token: as `Bearer`,
/// or as `DPoP` with a fresh proof per request when the token is bound to this browser's key.
///
/// Cheap to create: make one per call from the current token (see
/// [`crate::auth::AuthState::api`]) rather than keeping one around, so a refreshed token is
/// picked up. Without a token, requests go out unauthenticated (and a protected API answers
/// `401`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Api {
    token: Option<String>,
    /// The token is bound to this browser's key (`token_type: "DPoP"`).
    bound: bool,
}

impl std::fmt::Debug for Api {
    /// Never prints the token itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let token = self.token.as_ref().map(|_| "***");
        f.debug_struct("Api")
            .field("token", &token)
            .field("bound", &self.bound)
            .finish()
    }
}

impl Api {
    /// A client sending `Authorization: Bearer <token>` (none when `token` is `None`).
    pub fn new(token: Option<String>) -> Self {
        Self {
            token,
            bound: false,
        }
    }

    /// A client for a token bound to this browser's key: `Authorization: DPoP <token>` and a
    /// `DPoP` proof (with `ath`) on every request.
    pub fn bound(token: String) -> Self {
        Self {
            token: Some(token),
            bound: true,
        }
    }

    /// A client for the token of an `/auth/session` answer, as its `token_type` says.
    pub fn for_session(session: &SessionInfo) -> Self {
        let token = session.auth_token.clone();
        if is_bound(session) {
            Self::bound(token)
        } else {
            Self::new(Some(token))
        }
    }

    /// A gloo-net request for `method path` that accepts JSON and carries the token (and, for
    /// a bound token, a fresh proof for this method and path: asynchronous, as the browser signs
    /// it); add a body, headers or a query, then `send()` it and read the answer with
    /// [`into_json`]. The retry on a `use_dpop_nonce` refusal is [`Self::send_json`]'s (and its
    /// wrappers'): a request built here is sent once.
    pub async fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let mut request = RequestBuilder::new(path)
            .method(method.clone())
            .header("accept", "application/json");
        let token = self.token.as_deref();
        if let Some(token) = token {
            let scheme = if self.bound { "DPoP " } else { "Bearer " };
            request = request.header("authorization", &[scheme, token].concat());
        }
        // With a token the proof carries its hash (`ath`); the session call has none. Without a
        // key there is no proof: the bridge then decides (and `auth` asks the session again).
        if self.bound
            && let Some(proof) = dpop::proof(method.as_str(), path, token).await
        {
            request = request.header("dpop", &proof);
        }
        request
    }

    /// `GET path`, the JSON answer read as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.send::<(), T>(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON.
    pub async fn post<B, T>(&self, path: &str, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::POST, path, Some(body)).await
    }

    /// `PUT path` with `body` as JSON.
    pub async fn put<B, T>(&self, path: &str, body: &B) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        self.send(Method::PUT, path, Some(body)).await
    }

    /// `DELETE path`.
    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.send::<(), T>(Method::DELETE, path, None).await
    }

    /// Sends `method path` with an optional JSON body and reads the JSON answer as `T`.
    ///
    /// An empty 2xx body (e.g. `204 No Content`) reads as JSON `null`, so `T = ()` or an
    /// `Option` fits it.
    pub async fn send<B, T>(&self, method: Method, path: &str, body: Option<&B>) -> Result<T, Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = body.map(serde_json::to_string).transpose()?;
        parse_json(&self.send_text(method, path, body).await?)
    }

    /// [`Self::send_json`], then the 2xx answer's body as text. Not generic: the request and
    /// the reading of the body are one copy in the WASM, whatever type the caller parses.
    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<String, Error> {
        text(self.send_json(method, path, body).await?).await
    }

    /// Sends `method path` with `body` (already JSON) and returns the 2xx answer. Not generic,
    /// so every call shares one copy of the request code in the WASM (and
    /// [`crate::auth::AuthState::call`] can send the same body twice).
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Response, Error> {
        self.exchange(method, path, body, false).await
    }

    /// Sends `method path` (with `session`, as a call to the bridge's `/auth` endpoints: CSRF
    /// header and session cookie) and returns the 2xx answer (see [`ok`]). A bound client's call
    /// goes once more when the answer asks for a DPoP nonce, and a session call whose proof is
    /// refused goes once more with the key read anew. Boxed, so every call the SPA makes shares
    /// one copy of it in the WASM (each future awaiting an `async fn` gets its own inlined copy,
    /// ~0.5 KB brotli here).
    fn exchange<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        body: Option<String>,
        session: bool,
    ) -> Pin<Box<dyn Future<Output = Result<Response, Error>> + 'a>> {
        Box::pin(self.exchange_once_or_twice(method, path, body, session))
    }

    async fn exchange_once_or_twice(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        session: bool,
    ) -> Result<Response, Error> {
        let (mut nonce_retried, mut key_retried) = (false, false);
        loop {
            let mut request = self.request(method.clone(), path).await;
            if session {
                request = request
                    .header(CSRF_HEADER, CSRF_HEADER_VALUE)
                    .credentials(RequestCredentials::SameOrigin);
            }
            let response = match &body {
                Some(body) => {
                    request
                        .header("content-type", "application/json")
                        .body(body.clone())?
                        .send()
                        .await?
                }
                None => request.send().await?,
            };
            if self.bound && !nonce_retried && wants_new_nonce(&response) {
                nonce_retried = true;
                continue;
            }
            // Another tab may have made a new key since this page loaded one (storage
            // cleared), and signed in with it. A session bound to a key the browser lost stays
            // refused, with `silent_sso_tried: false`, so [`crate::auth`] signs in again (a new
            // session, bound to the new key) as after any `401`.
            if session
                && self.bound
                && !key_retried
                && response.status() == 401
                && dpop::has_key()
                && dpop_error_is(&response, "invalid_dpop_proof")
            {
                dpop::forget_key();
                key_retried = true;
                continue;
            }
            return ok(response).await;
        }
    }
}

/// Whether an `/auth/session` answer's token is bound to this browser's key (`token_type` is
/// `DPoP`, compared without case as RFC 6749 says).
pub fn is_bound(session: &SessionInfo) -> bool {
    session.token_type.eq_ignore_ascii_case("DPoP")
}

/// `GET /auth/session` with a proof of this browser's key (when it has one): the SPA's only
/// source of its token, which the bridge binds to that key.
pub async fn fetch_session() -> Result<SessionInfo, Error> {
    let response = with_session_cookie(Method::GET, SESSION_PATH, true).await?;
    parse_json(&text(response).await?)
}

/// `POST /auth/logout`: ends the bridge session; the answer says where to end the SSO session.
pub async fn logout() -> Result<LogoutResponse, Error> {
    let response = with_session_cookie(Method::POST, LOGOUT_PATH, false).await?;
    parse_json(&text(response).await?)
}

/// The path prefix (e.g. `/pi/`) under which the bridge proxies the API of the page `ui` (e.g.
/// `privacyidea`), as `GET /auth/upstreams` announces it; `None` when there is none or the
/// bridge could not say.
pub async fn upstream_prefix(ui: &str) -> Option<String> {
    let answer: Upstreams = Api::default().get(UPSTREAMS_PATH).await.ok()?;
    answer.prefix_for(ui).map(str::to_owned)
}

/// A call to the bridge's own `/auth` endpoints: CSRF header and the same-origin session cookie,
/// no token, and with `prove` a DPoP proof without `ath`; the 2xx answer.
async fn with_session_cookie(method: Method, path: &str, prove: bool) -> Result<Response, Error> {
    let client = Api {
        token: None,
        bound: prove,
    };
    client.exchange(method, path, None, true).await
}

/// Whether an answer's `WWW-Authenticate` has `error="<error>"` (one of RFC 9449's, which only
/// a `DPoP` challenge carries; the header may hold a `Bearer` challenge too). A plain byte
/// search: `str`'s substring search would add ~1 KB to the WASM for this one use.
fn dpop_error_is(response: &Response, error: &str) -> bool {
    let Some(challenge) = response.headers().get("www-authenticate") else {
        return false;
    };
    let wanted = ["error=\"", error, "\""].concat();
    challenge
        .as_bytes()
        .windows(wanted.len())
        .any(|w| w == wanted.as_bytes())
}

/// Keeps the answer's `DPoP-Nonce`, and says whether the answer is a `401` asking for a proof
/// with that nonce (RFC 9449 section 8), which deserves one retry.
fn wants_new_nonce(response: &Response) -> bool {
    let nonce = response.headers().get("dpop-nonce");
    let fresh = nonce.is_some();
    dpop::remember_nonce(nonce);
    fresh && response.status() == 401 && dpop_error_is(response, "use_dpop_nonce")
}

/// The answer itself when its status is 2xx, otherwise [`Error::Status`] with the bridge's
/// [`ApiError`] body.
async fn ok(response: Response) -> Result<Response, Error> {
    dpop::remember_nonce(response.headers().get("dpop-nonce"));
    if response.ok() {
        return Ok(response);
    }
    let status = response.status();
    // A proxy in front of the bridge may answer with HTML; keep the status meaningful anyway.
    let body = match response.json::<ApiError>().await {
        Ok(body) => body,
        Err(_) => ApiError::new(format!("http_{status}"), response.status_text()),
    };
    Err(Error::Status { status, body })
}

/// Reads a 2xx answer's JSON body as `T` (serde_json); an empty body reads as `null`.
pub async fn into_json<T: DeserializeOwned>(response: Response) -> Result<T, Error> {
    parse_json(&text(response).await?)
}

/// An answer's body as text. Not generic, so reading a body is one copy in the WASM; only
/// [`parse_json`] is instantiated per type (each `async` wrapper around a gloo-net future
/// costs the SPA's first load about 0.3 KB per type it is generic over).
pub async fn text(response: Response) -> Result<String, Error> {
    Ok(response.text().await?)
}

/// A body read as `T` (serde_json); an empty body reads as `null`.
pub fn parse_json<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    let json = if text.is_empty() { "null" } else { text };
    Ok(serde_json::from_str(json)?)
}
