//! Keeping the provider refresh of one session single-flight.
//!
//! Providers rotate refresh tokens (Keycloak, oidc-provider): using one twice ends the
//! session. So every concurrent request holding the same refresh token must share one refresh.
//! How that is coordinated is behind [`RefreshLock`]: in one process a map of shared futures
//! ([`InProcessRefreshLock`]); across replicas ([`ReplicatedRefreshLock`]) that map first, then
//! a lock in the shared store ([`RefreshCoordinator`]: Redis `SET NX PX` with an owner token,
//! renewed while the refresh runs; a PostgreSQL advisory lock). The replica that wins refreshes
//! and publishes the outcome under the old refresh token; the others read it instead of
//! refreshing again.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use futures::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::user::SessionUser;

/// Why a refresh did not produce new tokens.
#[derive(Debug, Clone, thiserror::Error, Serialize, Deserialize)]
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

/// The shared store's part of a refresh across replicas. Keys are hex SHA-256 digests of the
/// refresh token (never the token itself).
pub trait RefreshCoordinator: Send + Sync {
    /// Takes the lock for `key` if nobody holds it; `None` when another holder has it.
    fn try_lock<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Box<dyn RefreshLease>>, CoordinationError>>;
    /// The outcome another replica published for `key`, if any (JSON of [`Published`]).
    fn outcome<'a>(
        &'a self,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, CoordinationError>>;
    /// Publishes the outcome for `key`, kept for `ttl`.
    fn publish<'a>(
        &'a self,
        key: &'a str,
        outcome: String,
        ttl: Duration,
    ) -> BoxFuture<'a, Result<(), CoordinationError>>;
}

/// A held cross-replica lock. Dropping it without [`RefreshLease::release`] still frees it
/// (Redis: it expires unrenewed; PostgreSQL: its transaction rolls back).
pub trait RefreshLease: Send {
    fn release(self: Box<Self>) -> BoxFuture<'static, ()>;
}

/// The shared store could not coordinate: the refresh is put off, the session kept.
#[derive(Debug, thiserror::Error)]
#[error("refresh coordination: {0}")]
pub struct CoordinationError(pub String);

/// What the winning replica publishes for the others.
#[derive(Serialize, Deserialize)]
pub enum Published {
    Refreshed(Box<SessionUser>),
    Failed(RefreshFailure),
}

/// How long a replica waits for another's refresh before giving up (the provider's timeout is
/// 10 s by default; a holder that died frees the lock sooner).
const WAIT_FOR: Duration = Duration::from_secs(30);
/// How often a waiting replica looks for the outcome.
const POLL_EVERY: Duration = Duration::from_millis(25);
/// A provider that cannot be reached is not asked again by every replica at once for this long.
const REMEMBER_UNAVAILABLE_FOR: Duration = Duration::from_secs(5);

/// Single-flight within the process, then across replicas through the shared store.
pub struct ReplicatedRefreshLock {
    local: InProcessRefreshLock,
    shared: std::sync::Arc<dyn RefreshCoordinator>,
}

impl ReplicatedRefreshLock {
    pub fn new(shared: std::sync::Arc<dyn RefreshCoordinator>) -> Self {
        Self {
            local: InProcessRefreshLock::default(),
            shared,
        }
    }
}

impl RefreshLock for ReplicatedRefreshLock {
    fn run(
        &self,
        refresh_token: &str,
        work: BoxFuture<'static, RefreshOutcome>,
    ) -> BoxFuture<'static, RefreshOutcome> {
        let key = hex(&Sha256::digest(refresh_token.as_bytes()));
        let across = across_replicas(self.shared.clone(), key, work).boxed();
        self.local.run(refresh_token, across)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(published: &str) -> RefreshOutcome {
    match serde_json::from_str::<Published>(published) {
        Ok(Published::Refreshed(user)) => Ok(*user),
        Ok(Published::Failed(failure)) => Err(failure),
        Err(e) => Err(RefreshFailure::Unavailable(format!(
            "unreadable refresh outcome: {e}"
        ))),
    }
}

fn unavailable(e: CoordinationError) -> RefreshFailure {
    RefreshFailure::Unavailable(e.to_string())
}

/// Reads a published outcome, or takes the lock and runs `work`, or waits for the holder.
async fn across_replicas(
    shared: std::sync::Arc<dyn RefreshCoordinator>,
    key: String,
    work: BoxFuture<'static, RefreshOutcome>,
) -> RefreshOutcome {
    let deadline = tokio::time::Instant::now() + WAIT_FOR;
    let mut coalesced = false;
    loop {
        if let Some(published) = shared.outcome(&key).await.map_err(unavailable)? {
            if coalesced {
                tracing::debug!("another replica refreshed; using its tokens");
            }
            return decode(&published);
        }
        if let Some(lease) = shared.try_lock(&key).await.map_err(unavailable)? {
            // The holder before us may have published between our look and our lock.
            if let Ok(Some(published)) = shared.outcome(&key).await {
                lease.release().await;
                return decode(&published);
            }
            let outcome = work.await;
            let (published, ttl) = match &outcome {
                Ok(user) => (Published::Refreshed(Box::new(user.clone())), REMEMBER_FOR),
                Err(f @ RefreshFailure::Refused(_)) => (Published::Failed(f.clone()), REMEMBER_FOR),
                Err(f @ RefreshFailure::Unavailable(_)) => {
                    (Published::Failed(f.clone()), REMEMBER_UNAVAILABLE_FOR)
                }
            };
            match serde_json::to_string(&published) {
                Ok(json) => {
                    if let Err(e) = shared.publish(&key, json, ttl).await {
                        tracing::warn!(error = %e, "could not publish the refresh outcome");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not encode the refresh outcome"),
            }
            lease.release().await;
            return outcome;
        }
        coalesced = true;
        if tokio::time::Instant::now() >= deadline {
            return Err(RefreshFailure::Unavailable(
                "another replica's refresh did not finish in time".into(),
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
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
