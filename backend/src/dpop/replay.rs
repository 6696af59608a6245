//! DPoP proofs already used, by the key's thumbprint and the proof's `jti`, kept until the
//! proof could no longer be accepted anyway (`iat` + max age + leeway). In the configured
//! store, so a proof replayed to another replica is refused; bounded in memory.

/// The replay records of one bridge.
#[derive(Clone, Default)]
pub struct ProofReplay {}

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
        let _ = (jkt, jti, until, now);
        todo!("dpop: replay")
    }
}
