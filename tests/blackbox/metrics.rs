//! `/metrics`: served on its own listener only when `[metrics]` asks for it, never on the
//! public one, and its counters move as a real sign-in, API calls, refreshes and a logout
//! happen.
//!
//! The metrics recorder is one per process and every test of this binary shares it: so each test
//! here that counts runs alone in a child process of this test binary
//! ([`in_a_process_of_its_own`]), where every sample is its own bridge's, and asserts exact
//! deltas.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jsonwebtoken::Algorithm;
use reqwest::{StatusCode, header};
use serde_json::json;

use crate::{
    api_and_session::{SHORT_TTL, end_the_provider_session, wait_until_refresh_is_due},
    support::*,
};

/// The metrics text of the app's metrics listener.
pub(crate) async fn scrape(app: &TestApp) -> String {
    let Some(port) = app.metrics_port else {
        panic!("the app has no metrics listener");
    };
    let r = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let content_type = r.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    r.text().await.unwrap()
}

/// The sum of the samples of `name` whose labels include all of `labels` (0 when none).
pub(crate) fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, number) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let matches = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|l| l == format!("{k}=\"{v}\"")));
            matches.then(|| number.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// How much the series grew between the two scrapes.
fn delta(before: &str, after: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(after, name, labels) - value(before, name, labels)
}

/// Whether this process is to run the calling test's body. In the test process: runs `test`
/// (its full name) alone in a child process of this same test binary (`--exact`), so the
/// process-wide recorder holds nothing of other tests' bridges; fails with its output if it
/// failed; returns false. In that child: returns true.
async fn in_a_process_of_its_own(test: &str) -> bool {
    const ALONE: &str = "LOGIN_BRIDGE_METRICS_TEST_ALONE";
    if std::env::var(ALONE).as_deref() == Ok(test) {
        return true;
    }
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1"])
        .env(ALONE, test)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test}, alone in a process:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    false
}

/// `login_bridge_dpop_replay_records_held` counts the records of the proofs the bridge accepted
/// (SQLite store): a replay adds none.
#[tokio::test]
async fn the_held_dpop_records_gauge_counts_each_accepted_proof_once() {
    let Some(app) =
        alone_with_metrics("metrics::the_held_dpop_records_gauge_counts_each_accepted_proof_once")
            .await
    else {
        return;
    };
    let held = |text: &str| value(text, "login_bridge_dpop_replay_records_held", &[]);
    assert_eq!(held(&scrape(&app).await), 0.0);
    let key = crate::support::dpop::DpopKey::generate();
    let mut claims = access_claims(&app);
    claims["cnf"] = json!({"jkt": key.jkt()});
    let token = sign_as_idp(&claims);
    let url = format!("{}/api/me", app.address);
    let call = |proof: String| {
        reqwest::Client::new()
            .get(&url)
            .header(header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
    };
    let mut last = String::new();
    for _ in 0..5 {
        last = key.proof("GET", &url, Some(&token));
        assert_eq!(call(last.clone()).await.unwrap().status(), StatusCode::OK);
    }
    assert_eq!(
        call(last).await.unwrap().status(),
        StatusCode::UNAUTHORIZED,
        "a replay"
    );
    assert_eq!(held(&scrape(&app).await), 5.0);
}

/// A bridge with `[metrics]` and the default options when this process runs `test` alone
/// ([`in_a_process_of_its_own`]); `None` in the process that started it.
async fn alone_with_metrics(test: &str) -> Option<TestApp> {
    if !in_a_process_of_its_own(test).await {
        return None;
    }
    Some(
        spawn_app_with(AppOptions {
            metrics: true,
            ..AppOptions::default()
        })
        .await,
    )
}

/// Asserts that the series grew between the two scrapes.
pub(crate) fn assert_moved(before: &str, after: &str, name: &str, labels: &[(&str, &str)]) {
    let (b, a) = (value(before, name, labels), value(after, name, labels));
    assert!(a > b, "{name}{labels:?} did not move: {b} -> {a}\n{after}");
}

fn access_claims(app: &TestApp) -> serde_json::Value {
    json!({
        "iss": app.idp.issuer, "sub": ALICE_SUB, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 300, "preferred_username": "alice",
    })
}

#[tokio::test]
async fn metrics_count_a_sign_in_api_calls_and_a_logout_on_their_own_listener() {
    let Some(app) = alone_with_metrics(
        "metrics::metrics_count_a_sign_in_api_calls_and_a_logout_on_their_own_listener",
    )
    .await
    else {
        return;
    };
    let before = scrape(&app).await;

    // A sign-in, the SPA's session call, API calls with a valid and invalid tokens, a logout.
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let token = app.session_info(&client).await.auth_token;
    assert_eq!(
        app.api_get("/api/me", Some(&token)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.api_get("/api/me", Some("garbage")).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let mut expired = access_claims(&app);
    expired["exp"] = json!(now() - 60);
    assert_eq!(
        app.api_get("/api/me", Some(&sign_as_idp(&expired)))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // An unknown `kid` makes the bridge fetch the provider's key set once more.
    let unknown_kid = sign_with(
        "issuer-rsa-a",
        Algorithm::RS256,
        Some("not-a-provider-kid"),
        &access_claims(&app),
    );
    assert_eq!(
        app.api_get("/api/me", Some(&unknown_kid)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = client
        .post(format!("{}/auth/logout", app.address))
        .header(shared::session::CSRF_HEADER, "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.api_get("/healthz", None).await.status(), StatusCode::OK);

    let after = scrape(&app).await;
    let requests = "login_bridge_http_requests_total";
    // Exactly what this test did: one good and three refused API calls, one health check, one
    // sign-in, three refused tokens (one per reason), one logout.
    let exactly = |n: f64, name: &str, labels: &[(&str, &str)]| {
        assert_eq!(
            delta(&before, &after, name, labels),
            n,
            "{name}{labels:?}\n{after}"
        );
    };
    exactly(1.0, requests, &[("class", "api"), ("status", "2xx")]);
    exactly(3.0, requests, &[("class", "api"), ("status", "4xx")]);
    exactly(1.0, requests, &[("class", "health"), ("status", "2xx")]);
    exactly(1.0, "login_bridge_sessions_created_total", &[]);
    exactly(
        1.0,
        "login_bridge_sessions_ended_total",
        &[("reason", "logout")],
    );
    for reason in ["malformed", "expired", "unknown_key"] {
        exactly(
            1.0,
            "login_bridge_token_verifications_total",
            &[("outcome", "invalid"), ("reason", reason)],
        );
    }
    assert_moved(
        &before,
        &after,
        requests,
        &[("class", "auth"), ("status", "2xx")],
    );
    assert_moved(
        &before,
        &after,
        requests,
        &[("class", "auth"), ("status", "3xx")],
    );
    assert_moved(
        &before,
        &after,
        requests,
        &[("class", "api"), ("status", "2xx")],
    );
    assert_moved(
        &before,
        &after,
        requests,
        &[("class", "api"), ("status", "4xx")],
    );
    assert_moved(
        &before,
        &after,
        requests,
        &[("class", "health"), ("status", "2xx")],
    );
    assert_moved(
        &before,
        &after,
        "login_bridge_http_request_duration_seconds_count",
        &[("class", "api")],
    );
    let verifications = "login_bridge_token_verifications_total";
    assert_moved(&before, &after, verifications, &[("outcome", "valid")]);
    for reason in ["malformed", "expired", "unknown_key"] {
        assert_moved(
            &before,
            &after,
            verifications,
            &[("outcome", "invalid"), ("reason", reason)],
        );
    }
    assert_moved(
        &before,
        &after,
        "login_bridge_jwks_fetches_total",
        &[("outcome", "ok")],
    );
    assert_moved(&before, &after, "login_bridge_sessions_created_total", &[]);
    assert_moved(
        &before,
        &after,
        "login_bridge_sessions_ended_total",
        &[("reason", "logout")],
    );
    // No label is a path, a user or a token.
    assert!(!after.contains("/api/me"), "{after}");
    assert!(!after.contains("alice"), "{after}");
    assert!(!after.contains(&token), "{after}");

    // The public listener does not serve them.
    let public = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    let body = public.text().await.unwrap();
    assert!(!body.contains("login_bridge_"), "public /metrics: {body}");
}

/// Each answer is counted once, not once per layer that wraps the router.
#[tokio::test]
async fn each_answer_is_counted_once() {
    const CALLS: f64 = 200.0;
    let Some(app) = alone_with_metrics("metrics::each_answer_is_counted_once").await else {
        return;
    };
    let health = [("class", "health"), ("status", "2xx")];
    let requests = "login_bridge_http_requests_total";
    let durations = "login_bridge_http_request_duration_seconds_count";
    let before = scrape(&app).await;
    let client = reqwest::Client::new();
    for _ in 0..CALLS as usize {
        let r = client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let after = scrape(&app).await;
    let counted = delta(&before, &after, requests, &health);
    assert_eq!(counted, CALLS, "{CALLS} calls counted as {counted}");
    let timed = delta(&before, &after, durations, &health[..1]);
    assert_eq!(timed, CALLS, "{CALLS} calls timed {timed} times");
}

#[tokio::test]
async fn without_a_metrics_section_there_is_no_metrics_listener() {
    let app = spawn_app().await;

    assert_eq!(app.settings.metrics.listen, None);
    assert_eq!(app.metrics_port, None, "no second listener");
    let public = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    let body = public.text().await.unwrap();
    assert!(!body.contains("login_bridge_"), "public /metrics: {body}");
}

#[tokio::test]
async fn concurrent_refreshes_count_one_started_and_the_others_coalesced() {
    if !in_a_process_of_its_own(
        "metrics::concurrent_refreshes_count_one_started_and_the_others_coalesced",
    )
    .await
    {
        return;
    }
    let app = spawn_app_with(AppOptions {
        access_token_ttl: SHORT_TTL,
        refresh_before_expiry_secs: 60,
        metrics: true,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let first = app.session_info(&client).await;
    wait_until_refresh_is_due(first.expires_at).await;
    let before = scrape(&app).await;

    let answers = futures::future::join_all((0..10).map(|_| app.session(&client))).await;

    assert!(answers.iter().all(|a| a.status() == StatusCode::OK));
    let after = scrape(&app).await;
    // One refresh started, and the provider saw exactly one refresh grant.
    let started = delta(&before, &after, "login_bridge_refreshes_started_total", &[]);
    assert_eq!(started, 1.0, "{after}");
    assert_eq!(app.idp.stat("token_requests.refresh_token").await, 1);
    // Every other call that held the old refresh token shared it; a call that loaded the
    // session once the refreshed one was saved needed no refresh, so it is in neither count.
    let coalesced = delta(
        &before,
        &after,
        "login_bridge_refreshes_coalesced_total",
        &[],
    );
    assert!((1.0..=9.0).contains(&coalesced), "{coalesced}\n{after}");
}

#[tokio::test]
async fn a_refused_refresh_counts_as_failed_and_ends_the_session() {
    if !in_a_process_of_its_own("metrics::a_refused_refresh_counts_as_failed_and_ends_the_session")
        .await
    {
        return;
    }
    let app = spawn_app_with(AppOptions {
        // The provider ends its session without telling the bridge: the refresh finds out.
        provider_backchannel_logout: false,
        access_token_ttl: SHORT_TTL,
        refresh_before_expiry_secs: 60,
        metrics: true,
        ..AppOptions::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    let info = app.session_info(&client).await;
    end_the_provider_session(&app, &client).await;
    wait_until_refresh_is_due(info.expires_at).await;
    let before = scrape(&app).await;

    let r = app.session(&client).await;

    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let after = scrape(&app).await;
    let failed = [("reason", "refused")];
    let ended = [("reason", "refresh_refused")];
    assert_eq!(
        delta(
            &before,
            &after,
            "login_bridge_refreshes_failed_total",
            &failed
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(&before, &after, "login_bridge_sessions_ended_total", &ended),
        1.0,
        "{after}"
    );
}
