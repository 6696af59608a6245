//! What real third-party providers do that the demo provider does not by default, switched on
//! through its options: ID tokens with several audiences (LemonLDAP::NG puts a client's
//! "additional audiences" into them, OIDC Core §3.1.3.7), and kept-alive connections closed
//! while idle (Node and Apache after 5 s), which a request may meet just as it is reused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::*;

/// The provider adds the API's audience and another one to every ID token, with `azp`.
fn several_audiences() -> Vec<String> {
    [
        "--id-token-audience",
        AUDIENCE,
        "--id-token-audience",
        "lemonldap-extra",
    ]
    .map(String::from)
    .to_vec()
}

#[tokio::test]
async fn an_id_token_with_trusted_extra_audiences_signs_in_and_an_untrusted_one_is_refused() {
    // `api_audience` is always trusted; the other one because it is listed.
    let trusting = spawn_app_with(AppOptions {
        provider_args: several_audiences(),
        trusted_id_token_audiences: vec!["lemonldap-extra".into()],
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    trusting.sign_in(&client, "alice", "wonderland").await;
    let info = trusting.session_info(&client).await;
    assert_eq!(info.user.username.as_deref(), Some("alice"));

    // Without the listing, the same provider's ID token is refused.
    let strict = spawn_app_with(AppOptions {
        provider_args: several_audiences(),
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    let callback = strict.callback_for(&client, "alice", "wonderland").await;
    let answer = client.get(&callback).send().await.unwrap();
    strict.assert_refused_without_session(&client, answer).await;
}

/// One sign-in in a fresh browser; the callback's status (a redirect when signed in).
async fn sign_in_status(app: &TestApp) -> StatusCode {
    let client = browser();
    let login = client
        .get(format!("{}/auth/login?return_to=%2F", app.address))
        .send()
        .await
        .unwrap();
    if !login.status().is_redirection() {
        return login.status();
    }
    let callback = app
        .authorize_at_idp(&client, &location(&login), "alice", "wonderland")
        .await;
    client.get(&callback).send().await.unwrap().status()
}

#[tokio::test]
async fn sign_ins_succeed_when_the_provider_resets_connections_that_sat_idle() {
    // Any bridge request on a connection idle for 300 ms is met by a reset: the bridge's
    // pooled connections (kept up to 4 s) all are, so each provider call after a pause is
    // sent again on a new connection.
    let app = spawn_app_with(AppOptions {
        provider_args: vec!["--reset-idle-connections-ms".into(), "300".into()],
        ..AppOptions::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(sign_in_status(&app).await);
        // The pause is the scenario: the connection sits idle past the provider's limit.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        statuses.iter().all(|s| s.is_redirection()),
        "every sign-in succeeds: {statuses:?}"
    );
    // A reset connection leaves the pool; the next call opens a new one, which the pause
    // after it makes idle again: every other sign-in meets a reset.
    assert!(
        app.idp.stat("idle_connection_resets").await >= 2,
        "the provider did reset connections: {}",
        app.idp.stats().await
    );
}

#[tokio::test]
async fn the_bridge_drops_idle_provider_connections_before_a_common_keep_alive_timeout() {
    // Like Node's and Apache's 5 s keep-alive, a little shorter: a connection idle for 4.2 s
    // is gone at the provider when the bridge reuses it.
    let app = spawn_app_with(AppOptions {
        provider_args: vec!["--reset-idle-connections-ms".into(), "4200".into()],
        ..AppOptions::default()
    })
    .await;
    assert!(sign_in_status(&app).await.is_redirection());
    // The one wait: past the provider's keep-alive timeout (the scenario, not a sync).
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(sign_in_status(&app).await);
    }
    assert!(
        statuses.iter().all(|s| s.is_redirection()),
        "every sign-in succeeds: {statuses:?}"
    );
    // Not by luck or by sending again: the bridge no longer had the idle connection.
    assert_eq!(app.idp.stat("idle_connection_resets").await, 0);
}
