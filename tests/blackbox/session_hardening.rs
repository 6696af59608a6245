//! Session hardening (the browser-apps BCP's list): an absolute timeout whatever the activity,
//! tampered or foreign cookies treated as anonymous and cleared, the cookie's `SameSite`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use reqwest::{StatusCode, header};

use crate::support::*;

/// `GET /auth/session` with exactly this `Cookie` header (no jar).
async fn session_with_cookie(app: &TestApp, cookie: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}/auth/session", app.address))
        .header(header::COOKIE, cookie)
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .send()
        .await
        .unwrap()
}

/// The `Set-Cookie` of `lb_session` on `response`, if any.
fn set_session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("lb_session="))
        .map(str::to_owned)
}

/// Signs alice in, then uses the session every 200 ms (far inside the 8 h idle timeout) until
/// it is refused; that must come 1 to 4 s after the sign-in (sign-in times are whole seconds,
/// the limits under test are 2 s).
async fn signed_in_until_it_ends(app: &TestApp, client: &reqwest::Client) {
    app.sign_in(client, "alice", "wonderland").await;
    let signed_in = Instant::now();
    let ended_after = loop {
        let r = app.session(client).await;
        if r.status() == StatusCode::UNAUTHORIZED {
            break signed_in.elapsed();
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            signed_in.elapsed() < Duration::from_secs(4),
            "still signed in {:?} after the sign-in",
            signed_in.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ended_after >= Duration::from_secs(1), "{ended_after:?}");
}

#[tokio::test]
async fn a_session_ends_at_its_absolute_timeout_however_active_it_is() {
    let app = spawn_app_with(AppOptions {
        absolute_timeout_secs: Some(2),
        ..Default::default()
    })
    .await;
    let client = browser();
    signed_in_until_it_ends(&app, &client).await;
    // Ended, not just refused: the session is gone, and stays gone.
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_session_never_outlives_the_providers_refresh_token() {
    // Keycloak says how long its refresh token lasts (`refresh_expires_in`); past that nothing
    // could renew the session, so it ends then, long before its own 24 h.
    let app = spawn_app_with(AppOptions {
        refresh_token_ttl: Some(2),
        ..Default::default()
    })
    .await;
    let client = browser();
    signed_in_until_it_ends(&app, &client).await;
    // The access token (300 s) was still valid: it was the refresh token's end.
    assert_eq!(app.idp.stat("token_requests.refresh_token").await, 0);
}

#[tokio::test]
async fn a_session_left_idle_past_its_idle_timeout_ends() {
    let app = spawn_app_with(AppOptions {
        idle_timeout_secs: Some(2),
        ..Default::default()
    })
    .await;
    let client = browser();
    app.sign_in(&client, "alice", "wonderland").await;
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);
    // No request at all for longer than the idle timeout: the store has let the record go.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_tampered_or_foreign_cookie_counts_as_anonymous_and_is_cleared() {
    let app = spawn_app().await;
    let client = browser();
    let r = client
        .get(format!("{}/auth/login?return_to=/", app.address))
        .send()
        .await
        .unwrap();
    let genuine = session_cookie(&r);
    let callback = app.callback_for(&client, "alice", "wonderland").await;
    let signed_in_cookie = session_cookie(&client.get(&callback).send().await.unwrap());
    let r = app.session(&client).await;
    assert_eq!(r.status(), StatusCode::OK);
    // The sign-in rotated the id: the jar holds the signed-in session's cookie now.
    let signed_in = client
        .get(format!("{}/auth/session", app.address))
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::OK);

    // The signed-in session's own cookie works as such; one character changed in its middle
    // (all of whose bits are the id's: the last one may carry only padding bits), it does not.
    let control = session_with_cookie(&app, &format!("lb_session={signed_in_cookie}")).await;
    assert_eq!(control.status(), StatusCode::OK);
    let flipped = with_a_middle_char_changed(&signed_in_cookie);
    let forged = [
        "not-a-session-id".to_string(),
        flipped,
        // Well formed, but no session of this bridge has it.
        "AAAAAAAAAAAAAAAAAAAAAA".to_string(),
        genuine,
    ];
    for value in forged {
        let r = session_with_cookie(&app, &format!("lb_session={value}")).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "cookie {value:?}");
        let set =
            set_session_cookie(&r).unwrap_or_else(|| panic!("cookie {value:?} was not cleared"));
        assert!(
            set.contains("Max-Age=0") || set.contains("max-age=0"),
            "cookie {value:?}: {set}"
        );
    }
    // The real session was not touched by any of it.
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_session_cookie_is_lax_by_default_and_strict_when_configured() {
    for (strict, expected) in [(false, "SameSite=Lax"), (true, "SameSite=Strict")] {
        let app = spawn_app_with(AppOptions {
            same_site_strict: strict,
            ..Default::default()
        })
        .await;
        let r = browser()
            .get(format!("{}/auth/login?return_to=/", app.address))
            .send()
            .await
            .unwrap();
        let set = set_session_cookie(&r).expect("a session cookie");
        assert!(set.contains(expected), "{set}");
        assert!(set.contains("HttpOnly"), "{set}");
    }
}

#[tokio::test]
async fn with_strict_cookies_the_providers_cross_site_return_hops_once_and_signs_in() {
    let app = spawn_app_with(AppOptions {
        same_site_strict: true,
        ..Default::default()
    })
    .await;
    let client = browser();
    let callback = app.callback_for(&client, "alice", "wonderland").await;
    // As a browser sends it after the provider's redirect: cross-site, so without the Strict
    // cookie. The bridge answers a page that comes back to the same URL from its own origin.
    let hop = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&callback)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(hop.status(), StatusCode::OK);
    assert_eq!(
        hop.headers().get(header::CACHE_CONTROL).unwrap(),
        "no-store"
    );
    let page = hop.text().await.unwrap();
    let query = callback.split_once('?').unwrap().1.replace('&', "&amp;");
    assert!(
        page.contains(&format!("content=\"0;url=/auth/callback?{query}\"")),
        "{page}"
    );
    // Nothing was completed by the cross-site request: the same-site one (with the cookie)
    // signs in.
    let r = client
        .get(&callback)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);
}
