//! systemd's readiness protocol (`Type=notify`, `login_bridge::notify`): the bridge may say
//! `READY=1` only once `/readyz` would answer 200. The packaged binary's `NOTIFY_SOCKET`
//! datagrams are checked end to end by scripts/test-deb.sh; this checks the wait itself, in
//! process, against a provider that starts only after the bridge.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use login_bridge::startup::Application;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

async fn readyz_status(port: u16) -> StatusCode {
    reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_bridge_tells_systemd_it_is_ready_only_once_readyz_says_200_with_a_provider_that_starts_late()
 {
    // A provider address where nothing listens yet.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let idp_port = parked.local_addr().unwrap().port();
    drop(parked);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    // With [authority], as the package configures it: its keys are part of readiness too.
    let mut settings = bridge_settings(
        port,
        &format!("http://127.0.0.1:{idp_port}"),
        dir.path(),
        &AppOptions {
            authority: Some(json!({})),
            ..AppOptions::default()
        },
    );
    // Discovery retries at least every second, so readiness follows the provider promptly.
    settings.oidc.discovery_max_backoff_secs = 1;
    let app = Application::build_with_listener(settings.compile().unwrap(), listener)
        .await
        .unwrap();
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped());
    let (waiting_tx, mut waiting_rx) = tokio::sync::mpsc::unbounded_channel();
    let notifier = tokio::spawn(async move {
        login_bridge::notify::wait_until_ready(&state, |reason| {
            let _ = waiting_tx.send(reason.to_owned());
        })
        .await;
    });

    // Not ready while the provider is down: the notifier says why and waits.
    let reason = tokio::time::timeout(Duration::from_secs(10), waiting_rx.recv())
        .await
        .expect("the notifier reports why it waits")
        .unwrap();
    assert!(reason.contains("cannot reach the OIDC issuer"), "{reason}");
    assert_eq!(readyz_status(port).await, StatusCode::SERVICE_UNAVAILABLE);
    // A few more of its checks fail (each one a poll) and still it has not said ready.
    for _ in 0..3 {
        tokio::time::timeout(Duration::from_secs(10), waiting_rx.recv())
            .await
            .expect("the notifier keeps checking")
            .unwrap();
    }
    assert!(!notifier.is_finished(), "ready without a provider");

    let _idp = TestIdp::start(&IdpOptions {
        redirect_uri: format!("http://localhost:{port}/auth/callback"),
        post_logout_redirect_uri: format!("http://localhost:{port}/login?signed_out=1"),
        access_token_ttl: 300,
        backchannel_logout: false,
        refresh_token_ttl: None,
        extra_args: vec!["--port".into(), idp_port.to_string()],
    })
    .await;
    tokio::time::timeout(Duration::from_secs(30), notifier)
        .await
        .expect("ready within 30 s of the provider starting")
        .unwrap();

    // What systemd hears as READY=1 is what /readyz says at that moment.
    assert_eq!(readyz_status(port).await, StatusCode::OK);
    server.abort();
}
