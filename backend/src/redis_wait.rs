//! `WAIT` after a Redis write (`session.redis_wait_replicas`), shared by every Redis writer of
//! the bridge (sessions, the refresh lock, DPoP and assertion replay records). Its own module,
//! below `session` and `authority`, so neither has to import the other for it.

use fred::{
    clients::Client,
    interfaces::{ClientLike, ServerInterface},
    types::{ClusterHash, config::Options},
};

/// How long a write waits for its replicas (`session.redis_wait_replicas`), below the
/// command timeout so the answer is a clear "not confirmed" rather than a timeout.
const WAIT_TIMEOUT_MS: i64 = 1_000;

/// Waits until `replicas` replicas have every write `client` sent so far, `key`'s among them
/// (`WAIT` counts the writes of its own connection: so it goes on the connection that wrote
/// `key`, on a cluster the one to `key`'s primary). Nothing to do when `replicas` is 0.
pub async fn confirm_replicated(client: &Client, key: &str, replicas: u32) -> Result<(), String> {
    if replicas == 0 {
        return Ok(());
    }
    let options = Options {
        cluster_hash: Some(ClusterHash::Custom(fred::util::redis_keyslot(
            key.as_bytes(),
        ))),
        ..Options::default()
    };
    let confirmed: i64 = client
        .with_options(&options)
        .wait(i64::from(replicas), WAIT_TIMEOUT_MS)
        .await
        .map_err(|e| e.to_string())?;
    if confirmed < i64::from(replicas) {
        return Err(format!(
            "the write reached {confirmed} of {replicas} replica(s) within {WAIT_TIMEOUT_MS} ms"
        ));
    }
    Ok(())
}
