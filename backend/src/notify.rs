//! systemd's readiness protocol (`Type=notify`, sd_notify(3)), through the `sd-notify` crate.
//!
//! Under a unit with `Type=notify`, systemd sets `NOTIFY_SOCKET` and counts the service as
//! started only when it sends `READY=1`; units ordered after it (a reverse proxy, a health
//! check) wait until then. Listening is not enough: the bridge is ready when `/readyz` would
//! answer 200 (provider discovered, store answering, signing keys loaded), which may be long
//! after the listener is bound when the provider is still down. So the notifier asks
//! [`health::readiness`] until it says yes, then sends `READY=1`; meanwhile `STATUS=` says why
//! not yet (shown by `systemctl status`). `STOPPING=1` goes out when a shutdown signal arrives.
//! Without `NOTIFY_SOCKET` (not under systemd, or another unit type) nothing is sent and no
//! task runs.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::{health, state::AppState};

/// How often readiness is asked while the bridge is not yet ready. Three conditions from three
/// places (discovery with its back-off, the store, the key ring) make up readiness and none
/// signals a change, so it is polled; each check is one cheap store query.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Whether a service manager listens (`NOTIFY_SOCKET` is set).
fn under_service_manager() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

/// Under systemd, sends `READY=1` once the bridge is ready (see the module doc); else nothing.
/// Call it when the listener serves.
pub fn spawn_ready_notification(state: AppState) {
    if !under_service_manager() {
        return;
    }
    tokio::spawn(async move {
        let mut last_reason = String::new();
        wait_until_ready(&state, |reason| {
            if reason != last_reason {
                send(&[NotifyState::Status(&format!("not ready: {reason}"))]);
                last_reason = reason.to_owned();
            }
        })
        .await;
        send(&[NotifyState::Ready, NotifyState::Status("ready")]);
        tracing::info!("told systemd the bridge is ready (READY=1)");
    });
}

/// Returns once [`health::readiness`] says ready (what `/readyz` answers 200 to), calling
/// `waiting` with the reason each time it does not.
pub async fn wait_until_ready(state: &AppState, mut waiting: impl FnMut(&str)) {
    loop {
        match health::readiness(&state.provider, &state.store, state.authority.as_deref()).await {
            Ok(()) => return,
            Err(reason) => waiting(&reason),
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Under systemd, says the bridge is stopping (it then finishes in-flight requests).
pub fn stopping() {
    if under_service_manager() {
        send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}
