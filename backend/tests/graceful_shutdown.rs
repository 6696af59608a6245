//! SIGTERM finishes the requests in flight: the real `login-bridge` binary proxies a request to
//! an upstream that holds its answer; SIGTERM arrives meanwhile; the bridge stops accepting new
//! connections, still delivers the held answer, and exits cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{sync::Arc, time::Duration};

use axum::{Router, routing::get};
use tokio::sync::{Mutex, Notify};

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_then_exits() {
    // The upstream tells the test when the request arrived, and answers when the test says.
    let arrived = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let held = Arc::new(Mutex::new(()));
    let app = Router::new().route(
        "/slow",
        get({
            let (arrived, release, held) = (arrived.clone(), release.clone(), held.clone());
            move || async move {
                let _one_at_a_time = held.lock().await;
                arrived.notify_one();
                release.notified().await;
                "finished after SIGTERM"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut bridge = common::Bridge::start(upstream, "timeout_secs = 60").await;
    let (pid, base) = (bridge.pid(), bridge.base.clone());
    let http = reqwest::Client::new();
    let token = common::gateway_token();

    let in_flight = tokio::spawn({
        let (http, url) = (http.clone(), format!("{base}/files/slow"));
        async move {
            let r = http.get(url).bearer_auth(token).send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    });
    arrived.notified().await;

    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // It stops accepting connections (a fresh client: no pooled connection to reuse)...
    let refused = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let fresh = reqwest::Client::new();
            if fresh.get(format!("{base}/healthz")).send().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(refused.is_ok(), "still accepting connections after SIGTERM");
    // ...while the request in flight is still waiting, and it is not dropped.
    assert!(!in_flight.is_finished());
    assert!(
        bridge.process.try_wait().unwrap().is_none(),
        "exited before finishing"
    );

    release.notify_one();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), in_flight)
        .await
        .expect("the request in flight was answered")
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, "finished after SIGTERM");
    let exit = tokio::time::timeout(Duration::from_secs(10), bridge.process.wait())
        .await
        .expect("the bridge exits once the request is done")
        .unwrap();
    assert!(exit.success(), "clean exit: {exit:?}");
}
