//! Cookies of ended sessions, counted rather than logged. A browser that still holds the
//! cookie of a session that has ended (logout, back-channel logout, idle or absolute timeout)
//! sends it once more: an ordinary event. tower-sessions logs each as "possibly suspicious
//! activity: record not found in store" at WARN; the bridge keeps that line out of its log
//! (see [`crate::telemetry`]) and counts such requests in
//! `login_bridge_ended_session_cookies_total` here. A cookie that is not a session id at all
//! is still logged by tower-sessions as suspicious.

use async_trait::async_trait;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::Result,
};

/// The session layer's store, counting loads of a session that no longer exists. The layer
/// loads a record only for the id of a request's cookie, so each such load is one request with
/// the cookie of an ended session (or of one that never existed: the two look the same).
#[derive(Clone, Debug)]
pub struct CountEndedSessions<S>(pub S);

#[async_trait]
impl<S: SessionStore> SessionStore for CountEndedSessions<S> {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.0.create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.0.save(record).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let found = self.0.load(id).await?;
        if found.is_none() {
            crate::metrics::ended_session_cookie();
        }
        Ok(found)
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.0.delete(id).await
    }
}
