//! Who is signed in, for the whole SPA: one [`AuthState`] context holding the `auth_token` the
//! bridge handed out, the user it belongs to and when it expires.
//!
//! The token lives in memory only. Nothing here touches localStorage or sessionStorage, so a
//! script injected into the page later cannot harvest a token left behind, and a reload simply
//! asks `/auth/session` again (the bridge's HttpOnly session cookie is what survives).
//!
//! The bridge refreshes tokens server-side, so keeping the token fresh only means asking
//! `/auth/session` again shortly before `expires_at`; and a REST call that still meets a `401`
//! ([`AuthState::call`]) asks once more and retries once before giving up.
//!
//! When the bridge binds the token to this browser's key (`token_type: "DPoP"`), every call goes
//! out with a proof ([`crate::api`], [`crate::dpop`]). A session bound to a key the browser no
//! longer has (its storage was cleared) refuses the new key's proof with `silent_sso_tried:
//! false`, so start-up signs in again as it does without a session (silently while the
//! provider's session lasts), which makes a new session bound to the new key.
//!
//! Transport is [`crate::api`]'s job and addresses are [`crate::nav`]'s; this module imports
//! neither the app nor its router, so another Leptos app can use it as it is.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use leptos::prelude::*;
use leptos::task::spawn_local;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared::session::{SessionInfo, User};

use crate::api::{self, Api, Method, Response};
use crate::{clock, nav};

/// Seconds between two checks of `/auth/session` while signed in. The answer is the token to
/// use (the bridge refreshes it well before expiry), and a 401 means the session ended
/// elsewhere (a back-channel logout, another tab's sign-out, a timeout): the SPA then drops its
/// token and shows the login page, within this many seconds. A light periodic check rather
/// than a server-sent event stream: no long-lived connection per tab, nothing to fan out
/// between replicas, and no new code in the WASM.
const SESSION_CHECK_SECS: u64 = 4;

/// Where the SPA stands with the bridge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthStatus {
    /// `/auth/session` has not answered yet (start-up, or a silent sign-in is under way).
    Loading,
    SignedIn,
    SignedOut,
    /// The user asked to sign out and the SPA is on its way out. Kept apart from `SignedOut` so
    /// the sign-in guard does not race the sign-out navigation with a redirect of its own.
    SigningOut,
}

/// The authentication state shared by every component through Leptos context.
///
/// All fields are arena-allocated signals, so the struct is `Copy` and can move into any
/// closure or future.
#[derive(Clone, Copy)]
pub struct AuthState {
    auth_token: RwSignal<Option<String>>,
    /// `auth_token` is bound to this browser's key (DPoP).
    bound: StoredValue<bool>,
    user: RwSignal<Option<User>>,
    expires_at: RwSignal<Option<i64>>,
    status: RwSignal<AuthStatus>,
    /// Why the session could not be checked (network, 5xx): shown on the login page.
    problem: RwSignal<Option<String>>,
    /// Whether the bridge keeps local accounts (its last `401` said so); `None` until one came.
    local_accounts: RwSignal<Option<bool>>,
    refresh_timer: StoredValue<Option<TimeoutHandle>>,
}

impl AuthState {
    /// Creates the state (status `Loading`) and provides it as context to the calling component
    /// and everything below it.
    pub fn provide() -> Self {
        let state = Self {
            auth_token: RwSignal::new(None),
            bound: StoredValue::new(false),
            user: RwSignal::new(None),
            expires_at: RwSignal::new(None),
            status: RwSignal::new(AuthStatus::Loading),
            problem: RwSignal::new(None),
            local_accounts: RwSignal::new(None),
            refresh_timer: StoredValue::new(None),
        };
        provide_context(state);
        state
    }

    /// The state a component above provided with [`Self::provide`].
    ///
    /// Panics (through Leptos) when nothing above provided it: that is a wiring bug in the
    /// component tree, never a runtime condition.
    pub fn from_context() -> Self {
        expect_context()
    }

    /// The token for REST calls; `None` when not signed in.
    pub fn auth_token(&self) -> ReadSignal<Option<String>> {
        self.auth_token.read_only()
    }

    /// Current status (tracked).
    pub fn status(&self) -> AuthStatus {
        self.status.get()
    }

    /// The signed-in user (tracked).
    pub fn user(&self) -> Option<User> {
        self.user.get()
    }

    /// The signed-in user, without subscribing to changes (for a request being built).
    pub fn user_untracked(&self) -> Option<User> {
        self.user.get_untracked()
    }

    /// Why the last session check failed for a reason other than "not signed in" (tracked).
    pub fn problem(&self) -> Option<String> {
        self.problem.get()
    }

    /// Whether the login page should offer the local accounts' form (tracked); `None` while
    /// the bridge has not said.
    pub fn local_accounts(&self) -> Option<bool> {
        self.local_accounts.get()
    }

    /// Asks `/auth/session` who is signed in, once at start-up.
    ///
    /// When the bridge says it has not tried a silent sign-in for this browser yet, the page
    /// navigates (top level, no iframe) to the bridge's `prompt=none` login, which comes back
    /// either signed in or to the login page with an error: the bridge records the attempt, so
    /// this cannot loop. The login page itself never starts one: a user who just signed out, or
    /// who was sent there by a failed attempt, must get to choose.
    pub fn start(self) {
        spawn_local(async move {
            match api::fetch_session().await {
                Ok(session) => self.set_session(session),
                Err(err) if err.silent_sso_untried() && !nav::on_login_page() => {
                    let target = nav::sign_in_url(&nav::current_path_and_query(), true);
                    if window().location().assign(&target).is_err() {
                        self.mark_signed_out();
                    }
                    // Otherwise stay `Loading` while the browser leaves the page.
                }
                Err(err) => self.fail(&err),
            }
        });
    }

    /// A transport client carrying the current token (read untracked, so a resource or effect
    /// calling this does not re-run when the token is refreshed), as `Bearer` or, bound to this
    /// browser's key, as `DPoP` with proofs.
    pub fn api(&self) -> Api {
        match self.auth_token.get_untracked() {
            Some(token) if self.bound.get_value() => Api::bound(token),
            token => Api::new(token),
        }
    }

    /// `GET path` on a REST API with the current token, the 2xx answer's body as text (see
    /// [`Self::call`]): what a [`body_resource`] loads.
    pub async fn get_text(self, path: &str) -> Body {
        self.call_text(Method::GET, path, None).await
    }

    /// `GET path` on a REST API with the current token, the JSON answer read as `T`: see
    /// [`Self::call`].
    pub async fn get_json<T: DeserializeOwned>(self, path: &str) -> Result<T, api::Error> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    /// `method path` on a REST API with an optional JSON body, authenticated with the current
    /// `auth_token`, the JSON answer read as `T` (serde_json).
    ///
    /// A `401` usually means our copy of the token is stale (the bridge refreshes tokens
    /// server-side), so the session is fetched once more and the call retried once. If the API
    /// still refuses, the user is marked signed out, which makes the app's sign-in guard send
    /// them to the login page with the current path as `return_to`.
    pub async fn call<B, T>(
        self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, api::Error>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let body = body.map(serde_json::to_string).transpose()?;
        api::parse_json(&self.call_text(method, path, body).await?)
    }

    /// [`Self::call_json`], then the 2xx answer's body as text. Not generic, so only the
    /// parsing is instantiated per answer type in the WASM.
    pub async fn call_text(
        self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<String, api::Error> {
        api::text(self.call_json(method, path, body).await?).await
    }

    /// [`Self::call`] with the body already JSON, returning gloo-net's 2xx answer as it came.
    /// Not generic, so every call shares one copy of the retry logic in the WASM.
    pub async fn call_json(
        self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Response, api::Error> {
        if self.auth_token.with_untracked(Option::is_some) {
            match self
                .api()
                .send_json(method.clone(), path, body.clone())
                .await
            {
                Err(err) if err.is_unauthenticated() => {}
                answer => return answer,
            }
        }
        let session = match api::fetch_session().await {
            Ok(session) => session,
            Err(err) => {
                if err.is_unauthenticated() {
                    self.mark_signed_out();
                }
                return Err(err);
            }
        };
        let api = Api::for_session(&session);
        self.set_session(session);
        let answer = api.send_json(method, path, body).await;
        if matches!(&answer, Err(err) if err.is_unauthenticated()) {
            self.mark_signed_out();
        }
        answer
    }

    /// Stores a fresh answer of `/auth/session` and schedules the next one.
    pub fn set_session(&self, session: SessionInfo) {
        let bound = api::is_bound(&session);
        let SessionInfo {
            user,
            auth_token,
            expires_at,
            ..
        } = session;
        self.bound.set_value(bound);
        set_if_changed(self.auth_token, Some(auth_token));
        set_if_changed(self.user, Some(user));
        set_if_changed(self.expires_at, Some(expires_at));
        set_if_changed(self.problem, None);
        set_if_changed(self.status, AuthStatus::SignedIn);
        self.schedule_refresh();
    }

    /// Forgets the token and user: the session is gone (or the API no longer accepts it).
    pub fn mark_signed_out(&self) {
        self.clear(AuthStatus::SignedOut);
    }

    /// Ends the bridge session (`POST /auth/logout`) and forgets the token and user.
    ///
    /// Returns the provider's end-session URL, if any, for the caller to navigate to; the status
    /// stays `SigningOut` until the caller calls [`Self::finish_sign_out`] or leaves the page.
    /// On failure the previous state is restored, so the UI never claims a sign-out that did
    /// not happen.
    pub async fn sign_out(self) -> Result<Option<String>, api::Error> {
        let previous = self.status.get_untracked();
        self.status.set(AuthStatus::SigningOut);
        match api::logout().await {
            Ok(answer) => {
                self.clear(AuthStatus::SigningOut);
                Ok(answer.end_session_url)
            }
            // No session at the bridge any more: the sign-out the user wanted has happened.
            Err(err) if err.is_unauthenticated() => {
                self.clear(AuthStatus::SigningOut);
                Ok(None)
            }
            Err(err) => {
                self.status.set(previous);
                Err(err)
            }
        }
    }

    /// Completes a sign-out that stays inside the SPA.
    pub fn finish_sign_out(&self) {
        self.status.set(AuthStatus::SignedOut);
    }

    fn fail(&self, err: &api::Error) {
        if let api::Error::Status { status: 401, body } = err {
            set_if_changed(self.local_accounts, Some(body.local_accounts == Some(true)));
        } else {
            self.problem
                .set(Some(format!("Could not check your session: {err}")));
        }
        self.mark_signed_out();
    }

    fn clear(&self, status: AuthStatus) {
        self.cancel_refresh();
        self.auth_token.set(None);
        self.bound.set_value(false);
        set_if_changed(self.user, None);
        set_if_changed(self.expires_at, None);
        set_if_changed(self.status, status);
    }

    fn schedule_refresh(&self) {
        self.cancel_refresh();
        let this = *self;
        let handle = set_timeout_with_handle(
            move || spawn_local(this.refresh()),
            Duration::from_secs(SESSION_CHECK_SECS),
        );
        self.refresh_timer.set_value(handle.ok());
    }

    fn cancel_refresh(&self) {
        if let Some(handle) = self.refresh_timer.get_value() {
            handle.clear();
        }
        self.refresh_timer.set_value(None);
    }

    async fn refresh(self) {
        let answer = api::fetch_session().await;
        // The user may have signed out while the request was in flight.
        if self.status.get_untracked() != AuthStatus::SignedIn {
            return;
        }
        match answer {
            Ok(session) => self.set_session(session),
            Err(err) if err.is_unauthenticated() => self.fail(&err),
            Err(err) => match self.expires_at.get_untracked() {
                // A transient failure: keep the still-valid token and try again.
                Some(expires_at) if expires_at > clock::now_secs() => self.schedule_refresh(),
                _ => self.fail(&err),
            },
        }
    }
}

/// A 2xx answer's body as it came (JSON text), or why there is none: what a
/// [`body_resource`] holds. The page reads it as its own type with [`api::parse_json`] where it
/// shows it.
pub type Body = Result<String, api::Error>;

/// How a [`body_resource`] loads, with its future boxed: one type for every page.
type LoadBody = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = Body>>>>;

/// A `LocalResource` of an answer's body, loaded by `load` (e.g. `move || auth.get_text(path)`).
///
/// Every resource made here has one type, so Leptos's resource machinery (the async derived
/// signal, its scoped future) is in the WASM once instead of once per resource: each copy
/// costs the first load about 1 KB (brotli). Only the page's parsing of the body is per type.
pub fn body_resource<Fut>(load: impl Fn() -> Fut + 'static) -> LocalResource<Body>
where
    Fut: Future<Output = Body> + 'static,
{
    erased_body_resource(Rc::new(move || Box::pin(load())))
}

fn erased_body_resource(load: LoadBody) -> LocalResource<Body> {
    LocalResource::new(move || load())
}

/// Writes `value` only if it differs. A plain `set` notifies even when nothing changed, and a
/// routine session refresh re-setting `SignedIn` would re-render (and re-fetch) the whole page
/// behind the sign-in guard.
fn set_if_changed<T: PartialEq + Send + Sync + 'static>(signal: RwSignal<T>, value: T) {
    signal.maybe_update(|current| {
        let changed = *current != value;
        if changed {
            *current = value;
        }
        changed
    });
}
