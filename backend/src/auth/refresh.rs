//! Server-side token refresh, single-flight.
//!
//! Providers rotate refresh tokens (Keycloak, oidc-provider): using one twice ends the
//! session. So all concurrent requests holding the same refresh token share one refresh, and
//! its result stays available for a minute for requests that loaded the session before the
//! refreshed one was saved.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use sha2::{Digest, Sha256};

use super::{SignedIn, flow::signed_in_from_tokens};
use crate::{oidc::ProviderError, state::AppState};

/// How long a finished refresh is remembered for latecomers with the old refresh token.
const REMEMBER_FOR: Duration = Duration::from_secs(60);

/// Why a refresh did not produce new tokens.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RefreshFailure {
    /// The provider refused (`invalid_grant`: session ended at the provider, token reused...)
    /// or the new tokens did not validate: the bridge session must end.
    #[error("refresh refused: {0}")]
    Refused(String),
    /// The provider could not be reached: keep the session, try again later.
    #[error("refresh not possible now: {0}")]
    Unavailable(String),
}

type RefreshFuture = Shared<BoxFuture<'static, Result<SignedIn, RefreshFailure>>>;

#[derive(Default)]
pub struct Refresher {
    in_flight: Mutex<HashMap<[u8; 32], (Instant, RefreshFuture)>>,
}

impl Refresher {
    /// Refreshes `current`, sharing the work with every other caller holding the same
    /// refresh token.
    pub async fn refresh(
        &self,
        state: &AppState,
        current: &SignedIn,
    ) -> Result<SignedIn, RefreshFailure> {
        let Some(refresh_token) = current.refresh_token.clone() else {
            return Err(RefreshFailure::Refused("no refresh token".into()));
        };
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        let future = {
            let mut map = match self.in_flight.lock() {
                Ok(m) => m,
                Err(p) => p.into_inner(),
            };
            map.retain(|_, (started, _)| started.elapsed() < REMEMBER_FOR);
            map.entry(key)
                .or_insert_with(|| {
                    let state = state.clone();
                    let current = current.clone();
                    let fut = async move { do_refresh(state, current, refresh_token).await }
                        .boxed()
                        .shared();
                    (Instant::now(), fut)
                })
                .1
                .clone()
        };
        future.await
    }
}

#[tracing::instrument(skip_all, fields(user = %current.user.id))]
async fn do_refresh(
    state: AppState,
    current: SignedIn,
    refresh_token: String,
) -> Result<SignedIn, RefreshFailure> {
    let discovered = state
        .provider
        .ready()
        .ok_or_else(|| RefreshFailure::Unavailable("provider not discovered".into()))?;
    let tokens = match state.provider.refresh(&discovered, &refresh_token).await {
        Ok(t) => t,
        Err(ProviderError::Rejected { error, .. }) => {
            tracing::info!(%error, "provider refused the refresh; ending the session");
            return Err(RefreshFailure::Refused(error));
        }
        Err(ProviderError::Unavailable(e)) => return Err(RefreshFailure::Unavailable(e)),
    };
    let refreshed = signed_in_from_tokens(&state, &discovered, tokens, None, Some(&current))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "refreshed tokens rejected; ending the session");
            RefreshFailure::Refused(e.to_string())
        })?;
    tracing::debug!("access token refreshed");
    Ok(refreshed)
}

pub type SharedRefresher = Arc<Refresher>;
