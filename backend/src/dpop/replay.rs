//! DPoP proofs already used, by the key's thumbprint and the proof's `jti`, kept until the
//! proof could no longer be accepted anyway (`iat` + max age + leeway). In the configured
//! store, so a proof replayed to another replica is refused; bounded in memory.

/// The replay records of one bridge. (Interim: in this process's memory, like the
/// back-channel logout `jti`s; the store-backed records replace it.)
#[derive(Clone, Default)]
pub struct ProofReplay {
    seen: std::sync::Arc<crate::session::seen::SeenJtis>,
}

#[derive(Debug, thiserror::Error)]
#[error("DPoP replay records: {0}")]
pub struct ReplayError(pub String);

impl ProofReplay {
    /// Records `(jkt, jti)` until `until`; false when it was recorded before (a replay).
    pub async fn first_use(
        &self,
        jkt: &str,
        jti: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, ReplayError> {
        match self.seen.first_use(&format!("{jkt}.{jti}"), until, now) {
            Ok(()) => Ok(true),
            Err(crate::session::seen::SeenError::Replayed) => Ok(false),
            Err(crate::session::seen::SeenError::Full) => {
                Err(ReplayError("too many proofs in the window".into()))
            }
        }
    }
}
