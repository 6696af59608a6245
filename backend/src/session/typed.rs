//! [`TypedSession`]: the only way handlers touch the browser session. Every session key lives
//! here (zero2prod's `TypedSession`), so no handler spells one, and signing in or out always
//! rotates the id and keeps the session index right.

use std::sync::Arc;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::request::Parts,
};
use tower_sessions::Session;

use super::{
    index::{IndexError, IndexKey, SessionIndex},
    user::{PendingBinding, PendingLogin, SessionUser},
};
use crate::clock::now;

/// Session key of the signed-in user.
const USER_KEY: &str = "user";
/// Session key of the logins started from this browser and not finished yet.
const PENDING_KEY: &str = "pending_logins";
/// Session key of the JWT-endpoint round trips started from this browser.
const BINDINGS_KEY: &str = "pending_bindings";
/// Session key: when a silent (`prompt=none`) attempt last came back without a sign-in.
const SILENT_TRIED_KEY: &str = "silent_sso_tried_at";

/// At most this many logins may be pending per browser (tabs); the oldest is dropped.
pub const MAX_PENDING_LOGINS: usize = 5;
/// A login must come back from the provider within this many seconds.
pub const PENDING_LOGIN_TTL_SECS: i64 = 600;

/// Why the session could not be read or written (the store failed). Never shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Store(#[from] tower_sessions::session::Error),
    #[error(transparent)]
    Index(#[from] IndexError),
}

/// Why a signed-in session ended (the label of the sessions-ended metric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The user signed out.
    Logout,
    /// Another identity signed in on this browser.
    Replaced,
    /// The provider refused the refresh.
    RefreshRefused,
    /// The gateway JWT the session rested on expired.
    GatewayExpired,
    /// `session.absolute_timeout_secs` after the sign-in.
    AbsoluteTimeout,
    /// A local account was disabled, or its password changed, after the sign-in.
    AccountChanged,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Replaced => "replaced",
            EndReason::RefreshRefused => "refresh_refused",
            EndReason::GatewayExpired => "gateway_expired",
            EndReason::AbsoluteTimeout => "absolute_timeout",
            EndReason::AccountChanged => "account_changed",
        }
    }
}

impl SessionError {
    /// Which store failed, for the store-errors metric.
    pub fn source_name(&self) -> &'static str {
        match self {
            SessionError::Store(_) => "session",
            SessionError::Index(_) => "index",
        }
    }
}

/// The session index, as a sub-state handlers get through `FromRef`, with the session
/// lifetime rules that apply whatever the store.
#[derive(Clone)]
pub struct SessionIndexHandle(pub Arc<dyn SessionIndex>, pub SessionLimits);

/// How long a signed-in session may last, whatever its activity.
#[derive(Clone, Copy, Debug)]
pub struct SessionLimits {
    /// Seconds after sign-in at which the session ends (`session.absolute_timeout_secs`).
    pub absolute_timeout_secs: i64,
}

/// The browser's session, typed.
pub struct TypedSession {
    session: Session,
    index: Arc<dyn SessionIndex>,
    limits: SessionLimits,
}

/// A session store failure is the bridge's problem, not the client's: a 503 saying nothing
/// of the cause (an unreachable store comes back; the client may try again). Every such
/// failure that reaches a client passes here, so it is counted here. (Beside the session's
/// error, so `error.rs` needs nothing of the session module.)
impl From<SessionError> for crate::error::AppError {
    fn from(e: SessionError) -> Self {
        crate::metrics::store_error(e.source_name());
        Self::StoreUnavailable(e.to_string())
    }
}

impl<S> FromRequestParts<S> for TypedSession
where
    S: Send + Sync,
    SessionIndexHandle: FromRef<S>,
{
    /// The bridge's JSON error like every extractor's (tower-sessions answers plain text). It
    /// only fails when the session layer is missing: a bug of the bridge, so a 500.
    type Rejection = crate::error::AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let session = Session::from_request_parts(parts, state)
            .await
            .map_err(|(_, why)| crate::error::AppError::internal(why))?;
        let SessionIndexHandle(index, limits) = SessionIndexHandle::from_ref(state);
        Ok(Self {
            session,
            index,
            limits,
        })
    }
}

impl TypedSession {
    /// The signed-in user, if any. A session written by an older version of the bridge, in a
    /// shape this one cannot read, counts as signed out. A session past its absolute timeout
    /// (counted from the sign-in, whatever the activity since), or past the end of the
    /// provider's refresh token, ends here.
    pub async fn user(&self) -> Result<Option<SessionUser>, SessionError> {
        match self.session.get::<SessionUser>(USER_KEY).await {
            Ok(Some(user)) if now() >= user.ends_at(self.limits.absolute_timeout_secs) => {
                tracing::info!(
                    user = %user.principal.user.id,
                    "session reached its absolute timeout or its refresh token's end"
                );
                self.end(EndReason::AbsoluteTimeout).await?;
                Ok(None)
            }
            Ok(user) => Ok(user),
            Err(tower_sessions::session::Error::SerdeJson(e)) => {
                tracing::info!(error = %e, "unreadable signed-in state; treated as signed out");
                self.session.remove_value(USER_KEY).await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Signs `user` in: a new session id (session fixation defence), the silent-SSO memory
    /// cleared, and the session recorded in the index under `keys` (the provider's `sid`/`sub`).
    pub async fn sign_in(&self, user: SessionUser, keys: &[IndexKey]) -> Result<(), SessionError> {
        if let Some(old) = self.session.id() {
            self.index.remove(&old.to_string()).await?;
        }
        self.session.cycle_id().await?;
        self.session.remove_value(SILENT_TRIED_KEY).await?;
        self.session.insert(USER_KEY, user).await?;
        // Saving now gives the session its new id, which the index needs.
        self.session.save().await?;
        if let Some(id) = self.session.id()
            && !keys.is_empty()
        {
            self.index.add(&id.to_string(), keys).await?;
        }
        crate::metrics::session_created();
        Ok(())
    }

    /// Ends the current session (another identity arrived) and signs `user` in afresh: the old
    /// session id stops working and nothing of the old session carries over.
    pub async fn switch_user(
        &self,
        user: SessionUser,
        keys: &[IndexKey],
    ) -> Result<(), SessionError> {
        self.end(EndReason::Replaced).await?;
        self.sign_in(user, keys).await
    }

    /// Stores refreshed state for the user already signed in (same id).
    pub async fn update_user(&self, user: SessionUser) -> Result<(), SessionError> {
        self.session.insert(USER_KEY, user).await?;
        Ok(())
    }

    /// Forgets the signed-in user, keeping the rest of the session (a refused refresh).
    pub async fn sign_out_user(&self, reason: EndReason) -> Result<(), SessionError> {
        let signed_in = self.session.remove_value(USER_KEY).await?.is_some();
        if let Some(id) = self.session.id() {
            self.index.remove(&id.to_string()).await?;
        }
        if signed_in {
            crate::metrics::session_ended(reason.as_str());
        }
        Ok(())
    }

    /// Ends the whole session: data deleted, cookie removed, index rows gone.
    pub async fn end(&self, reason: EndReason) -> Result<(), SessionError> {
        // Only a session with a user counts as ended (a logout without one ends nothing).
        let signed_in = self.session.get_value(USER_KEY).await?.is_some();
        if let Some(id) = self.session.id() {
            self.index.remove(&id.to_string()).await?;
        }
        self.session.flush().await?;
        if signed_in {
            crate::metrics::session_ended(reason.as_str());
        }
        Ok(())
    }

    /// Remembers a login sent to the provider; at most [`MAX_PENDING_LOGINS`] per browser
    /// (the oldest is dropped), each valid for [`PENDING_LOGIN_TTL_SECS`].
    pub async fn add_pending_login(&self, pending: PendingLogin) -> Result<(), SessionError> {
        let mut pendings = self.pending_logins().await?;
        pendings.retain(|p| now() - p.created_at < PENDING_LOGIN_TTL_SECS);
        while pendings.len() >= MAX_PENDING_LOGINS {
            pendings.remove(0);
        }
        pendings.push(pending);
        self.session.insert(PENDING_KEY, pendings).await?;
        // Saved now, not after the response: a store that cannot take it must stop the
        // redirect to the provider with a readable answer (a login that could never finish).
        self.session.save().await?;
        Ok(())
    }

    /// Removes and returns the pending login with this `state`, if it exists and is fresh.
    /// Once taken it is gone, so a `state` works exactly once.
    pub async fn take_pending_login(
        &self,
        state_param: &str,
    ) -> Result<Option<PendingLogin>, SessionError> {
        let mut pendings = self.pending_logins().await?;
        let found = pendings
            .iter()
            .position(|p| constant_time_eq(p.state.as_bytes(), state_param.as_bytes()))
            .map(|i| pendings.remove(i));
        pendings.retain(|p| now() - p.created_at < PENDING_LOGIN_TTL_SECS);
        self.session.insert(PENDING_KEY, pendings).await?;
        Ok(found.filter(|p| now() - p.created_at < PENDING_LOGIN_TTL_SECS))
    }

    async fn pending_logins(&self) -> Result<Vec<PendingLogin>, SessionError> {
        Ok(self
            .session
            .get::<Vec<PendingLogin>>(PENDING_KEY)
            .await?
            .unwrap_or_default())
    }

    /// Remembers a JWT-endpoint round trip; at most [`MAX_PENDING_LOGINS`] per browser.
    pub async fn add_pending_binding(&self, binding: PendingBinding) -> Result<(), SessionError> {
        let mut bindings = self.pending_bindings().await?;
        bindings.retain(|b| b.expires_at > now());
        while bindings.len() >= MAX_PENDING_LOGINS {
            bindings.remove(0);
        }
        bindings.push(binding);
        self.session.insert(BINDINGS_KEY, bindings).await?;
        Ok(())
    }

    /// Removes and returns the round trip with this `state` (single use), expired or not: the
    /// caller tells the two apart.
    pub async fn take_pending_binding(
        &self,
        state_param: &str,
    ) -> Result<Option<PendingBinding>, SessionError> {
        let mut bindings = self.pending_bindings().await?;
        let found = bindings
            .iter()
            .position(|b| constant_time_eq(b.state.as_bytes(), state_param.as_bytes()))
            .map(|i| bindings.remove(i));
        bindings.retain(|b| b.expires_at > now());
        self.session.insert(BINDINGS_KEY, bindings).await?;
        Ok(found)
    }

    async fn pending_bindings(&self) -> Result<Vec<PendingBinding>, SessionError> {
        Ok(self
            .session
            .get::<Vec<PendingBinding>>(BINDINGS_KEY)
            .await?
            .unwrap_or_default())
    }

    /// Records that a silent sign-in came back without one.
    pub async fn mark_silent_sso_tried(&self) -> Result<(), SessionError> {
        self.session.insert(SILENT_TRIED_KEY, now()).await?;
        Ok(())
    }

    /// Whether a silent sign-in was tried for this browser within `retry_secs`.
    pub async fn silent_sso_tried_within(&self, retry_secs: u64) -> Result<bool, SessionError> {
        Ok(match self.session.get::<i64>(SILENT_TRIED_KEY).await? {
            Some(at) => now() - at < i64::try_from(retry_secs).unwrap_or(i64::MAX),
            None => false,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
