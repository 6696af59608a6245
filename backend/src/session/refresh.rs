//! Keeping the provider refresh of one session single-flight.
//!
//! Providers rotate refresh tokens (Keycloak, oidc-provider): using one twice ends the
//! session. So every concurrent request holding the same refresh token must share one refresh.
//! How that is coordinated is behind [`RefreshLock`]: in one process a map of shared futures
//! ([`InProcessRefreshLock`]); several replicas will need a lock in their shared store.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use sha2::{Digest, Sha256};

use super::user::SessionUser;

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

pub type RefreshOutcome = Result<SessionUser, RefreshFailure>;

/// Runs the refresh of one refresh token at most once at a time.
pub trait RefreshLock: Send + Sync {
    /// Runs `work` for `refresh_token`, unless a refresh of the same token is already under
    /// way or has just finished: then its outcome is shared instead.
    fn run(
        &self,
        refresh_token: &str,
        work: BoxFuture<'static, RefreshOutcome>,
    ) -> BoxFuture<'static, RefreshOutcome>;
}

/// How long a finished refresh is remembered for latecomers with the old refresh token (they
/// loaded the session before the refreshed one was saved).
const REMEMBER_FOR: Duration = Duration::from_secs(60);

type SharedRefresh = Shared<BoxFuture<'static, RefreshOutcome>>;

/// Single-flight within one process.
#[derive(Default)]
pub struct InProcessRefreshLock {
    in_flight: Mutex<HashMap<[u8; 32], (Instant, SharedRefresh)>>,
}

impl RefreshLock for InProcessRefreshLock {
    fn run(
        &self,
        refresh_token: &str,
        work: BoxFuture<'static, RefreshOutcome>,
    ) -> BoxFuture<'static, RefreshOutcome> {
        let key: [u8; 32] = Sha256::digest(refresh_token.as_bytes()).into();
        let mut map = match self.in_flight.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.retain(|_, (started, _)| started.elapsed() < REMEMBER_FOR);
        let entry = map.entry(key);
        if matches!(entry, std::collections::hash_map::Entry::Occupied(_)) {
            crate::metrics::refresh_coalesced();
        }
        entry
            .or_insert_with(|| (Instant::now(), work.shared()))
            .1
            .clone()
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    #[tokio::test]
    async fn concurrent_refreshes_of_one_token_run_the_work_once() {
        let lock = InProcessRefreshLock::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let wait = wait.shared();
        let mut calls = Vec::new();
        for _ in 0..5 {
            let runs = runs.clone();
            let wait = wait.clone();
            calls.push(
                lock.run(
                    "rt-1",
                    async move {
                        runs.fetch_add(1, Ordering::SeqCst);
                        let _ = wait.await;
                        Err(RefreshFailure::Unavailable("test".into()))
                    }
                    .boxed(),
                ),
            );
        }
        let _ = release.send(());
        let outcomes = futures::future::join_all(calls).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert!(outcomes.iter().all(|o| o.is_err()));
    }
}
