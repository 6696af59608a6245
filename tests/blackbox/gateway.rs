//! The gateway way in over HTTP: a page request with a JWT from a trusted peer signs the user
//! in; the same header from an untrusted peer means nothing; bad JWTs land on the login page
//! with a reason and leave no session; malformed headers get a 400; another user's JWT
//! replaces the session. The trusted peer is 127.0.0.2: the client binds its connections to it.
//! The gateway's JWT itself is worthless from any other address, on every way in.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use jsonwebtoken::Algorithm;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};

use crate::support::*;

const GATEWAY_ISS: &str = "https://gateway.test";
const GATEWAY_PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn gateway_issuers() -> Vec<Value> {
    vec![
        json!({"name": "gateway", "issuer": GATEWAY_ISS, "audiences": [AUDIENCE],
               "algorithms": ["RS256"], "jwks_file": fixture("issuer-rsa-a.jwks.json"),
               "policy": {"any_role": ["web-ui"]}}),
        // Trusted for the API, but not allowed to sign users in through the gateway header.
        json!({"name": "other", "issuer": "https://other.test", "audiences": [AUDIENCE],
               "algorithms": ["RS256"], "jwks_file": fixture("issuer-rsa-b.jwks.json")}),
    ]
}

async fn spawn_gateway_app(header: &str) -> TestApp {
    spawn_app_with(AppOptions {
        // No silent SSO: an ignored header must show as a plain anonymous page.
        silent_sso: false,
        issuers: gateway_issuers(),
        gateway: Some(json!({"issuers": ["gateway"], "header": header,
                             "trusted_proxies": ["127.0.0.2/32"]})),
        ..AppOptions::default()
    })
    .await
}

fn claims(user: &str) -> Value {
    json!({"iss": GATEWAY_ISS, "sub": format!("sub-{user}"), "aud": AUDIENCE,
           "iat": now(), "exp": now() + 300, "preferred_username": user,
           "realm_access": {"roles": ["web-ui"]}})
}

fn gateway_jwt(claims: &Value) -> String {
    sign_with("issuer-rsa-a", Algorithm::RS256, None, claims)
}

/// A browser whose connections come from `peer` (the gateway's address, or not).
fn browser_from(peer: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .local_address(peer)
        .build()
        .unwrap()
}

/// A page navigation carrying `value` in `header`.
async fn open_page(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    header: &str,
    value: &str,
) -> reqwest::Response {
    client
        .get(format!("{}{path}", app.address))
        .header("sec-fetch-mode", "navigate")
        .header(header, value)
        .send()
        .await
        .unwrap()
}

/// A page navigation with `Authorization: Bearer <jwt>`.
async fn open_page_with_bearer(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    jwt: &str,
) -> reqwest::Response {
    open_page(app, client, path, "authorization", &format!("Bearer {jwt}")).await
}

/// `GET path` at the bridge from `client`'s address, with `jwt` as Bearer.
async fn api_from(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    jwt: &str,
) -> reqwest::Response {
    client
        .get(format!("{}{path}", app.address))
        .bearer_auth(jwt)
        .send()
        .await
        .unwrap()
}

/// An API behind the bridge that answers 200 to everything and counts what reaches it.
pub(crate) async fn counting_upstream() -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().fallback(move || {
        seen.fetch_add(1, Ordering::SeqCst);
        async { "ok" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, count)
}

async fn assert_invalid_token(r: reqwest::Response, what: &str) -> String {
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{what}: {body}");
    body["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn sets_a_session_cookie(r: &reqwest::Response) -> bool {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|v| v.to_str().unwrap_or("").starts_with("lb_session="))
}

#[tokio::test]
async fn a_page_request_with_a_gateway_jwt_from_the_trusted_peer_signs_in_at_once() {
    let app = spawn_gateway_app("authorization").await;
    let client = browser_from(GATEWAY_PEER);
    let jwt = gateway_jwt(&claims("carol"));

    let r = open_page_with_bearer(&app, &client, "/api-demo?tab=2", &jwt).await;
    assert_eq!(r.status(), StatusCode::OK, "the page itself, no detour");
    assert!(sets_a_session_cookie(&r));

    let info = app.session_info(&client).await;
    assert_eq!(info.user.username.as_deref(), Some("carol"));
    assert_eq!(info.auth_token, jwt, "the SPA gets the gateway's JWT");
    let exp = claims("carol")["exp"].as_i64().unwrap();
    assert!(
        (info.expires_at - exp).abs() <= 2,
        "the JWT's exp bounds the session"
    );
    // The API accepts it as Bearer through the gateway (the gateway issuer is a trusted
    // issuer, for the gateway's requests).
    let me = api_from(&client, &app, "/api/me", &info.auth_token).await;
    assert_eq!(me.status(), StatusCode::OK);
    assert_eq!(app.idp.stat("silent_authorization_requests").await, 0);
}

#[tokio::test]
async fn a_custom_header_carries_the_bare_jwt_and_a_fresh_one_renews_the_session() {
    let app = spawn_gateway_app("x-custom-tkn").await;
    let client = browser_from(GATEWAY_PEER);
    let first = gateway_jwt(&claims("carol"));
    let r = open_page(&app, &client, "/", "x-custom-tkn", &first).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.session_info(&client).await.auth_token, first);

    let mut later = claims("carol");
    later["exp"] = json!(now() + 600);
    let second = gateway_jwt(&later);
    let r = open_page(&app, &client, "/", "x-custom-tkn", &second).await;
    assert_eq!(r.status(), StatusCode::OK);
    let info = app.session_info(&client).await;
    assert_eq!(info.auth_token, second, "renewed with the fresh JWT");
    assert_eq!(info.expires_at, later["exp"].as_i64().unwrap());
}

#[tokio::test]
async fn the_same_header_from_an_untrusted_peer_is_ignored() {
    let app = spawn_gateway_app("authorization").await;
    let client = browser_from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let jwt = gateway_jwt(&claims("carol"));
    let r = open_page_with_bearer(&app, &client, "/", &jwt).await;
    assert_eq!(r.status(), StatusCode::OK, "the page, anonymously");
    assert!(!sets_a_session_cookie(&r), "no session");
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_custom_header_from_an_untrusted_peer_is_ignored_too() {
    let app = spawn_gateway_app("x-custom-tkn").await;
    let client = browser_from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let r = open_page(
        &app,
        &client,
        "/",
        "x-custom-tkn",
        &gateway_jwt(&claims("carol")),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!sets_a_session_cookie(&r));
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn rejected_gateway_jwts_land_on_the_login_page_with_a_reason_and_no_session() {
    let app = spawn_gateway_app("authorization").await;
    let mut expired = claims("carol");
    expired["iat"] = json!(now() - 600);
    expired["exp"] = json!(now() - 300);
    let mut wrong_aud = claims("carol");
    wrong_aud["aud"] = json!("someone-else");
    let mut no_role = claims("carol");
    no_role["realm_access"] = json!({"roles": ["other"]});
    let mut foreign = claims("carol");
    foreign["iss"] = json!("https://stranger.test");
    let mut other_issuer = claims("carol");
    other_issuer["iss"] = json!("https://other.test");
    let cases = [
        ("expired", gateway_jwt(&expired)),
        ("wrong_audience", gateway_jwt(&wrong_aud)),
        ("policy", gateway_jwt(&no_role)),
        ("untrusted_issuer", gateway_jwt(&foreign)),
        (
            "untrusted_issuer",
            sign_with("issuer-rsa-b", Algorithm::RS256, None, &other_issuer),
        ),
        (
            "bad_signature",
            sign_with("issuer-rsa-b", Algorithm::RS256, None, &claims("carol")),
        ),
    ];
    for (reason, jwt) in cases {
        let client = browser_from(GATEWAY_PEER);
        let r = open_page_with_bearer(&app, &client, "/deep", &jwt).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{reason}");
        let to = location(&r);
        assert_eq!(
            to,
            login_bridge::auth::gateway::rejected_location(reason, "/deep"),
        );
        assert!(!to.contains(&jwt), "never the token");
        assert!(!sets_a_session_cookie(&r), "{reason}: no session row");
        assert_eq!(
            app.session(&client).await.status(),
            StatusCode::UNAUTHORIZED,
            "{reason}"
        );
    }
}

#[tokio::test]
async fn malformed_gateway_headers_get_a_400_and_store_nothing() {
    let app = spawn_gateway_app("x-custom-tkn").await;
    let jwt = gateway_jwt(&claims("carol"));
    let alg_none = raw_jwt(&json!({"alg": "none", "typ": "JWT"}), &claims("carol"), b"");
    let alg_none = format!("{}.", alg_none.trim_end_matches('.'));

    let client = browser_from(GATEWAY_PEER);
    let two = client
        .get(format!("{}/", app.address))
        .header("sec-fetch-mode", "navigate")
        .header("x-custom-tkn", &jwt)
        .header("x-custom-tkn", &jwt)
        .send()
        .await
        .unwrap();
    let oversized = open_page(&app, &client, "/", "x-custom-tkn", &"a".repeat(20 * 1024)).await;
    let none = open_page(&app, &client, "/", "x-custom-tkn", &alg_none).await;
    for (what, r) in [
        ("two values", two),
        ("oversized", oversized),
        ("alg none", none),
    ] {
        assert!(r.status().is_client_error(), "{what}: {}", r.status());
        assert!(!sets_a_session_cookie(&r), "{what}: nothing stored");
    }
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn another_users_gateway_jwt_replaces_the_session_and_the_old_id_stops_working() {
    let app = spawn_gateway_app("authorization").await;
    let client = browser_from(GATEWAY_PEER);
    let r = open_page_with_bearer(&app, &client, "/", &gateway_jwt(&claims("carol"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let carol_cookie = session_cookie(&r);

    let r = open_page_with_bearer(&app, &client, "/", &gateway_jwt(&claims("dave"))).await;
    assert_eq!(r.status(), StatusCode::OK);
    let dave_cookie = session_cookie(&r);
    assert_ne!(carol_cookie, dave_cookie, "a new session id");
    let info = app.session_info(&client).await;
    assert_eq!(
        info.user.username.as_deref(),
        Some("dave"),
        "the gateway identity wins"
    );

    // Carol's old session id no longer works.
    let stale = reqwest::Client::new()
        .get(format!("{}/auth/session", app.address))
        .header(shared::session::CSRF_HEADER, "1")
        .header(header::COOKIE, format!("lb_session={carol_cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
}

async fn spawn_round_trip_app(ttl_secs: u64) -> TestApp {
    spawn_app_with(AppOptions {
        silent_sso: false,
        issuers: gateway_issuers(),
        gateway: Some(json!({"issuers": ["gateway"], "header": "x-custom-tkn",
                             "trusted_proxies": ["127.0.0.2/32"],
                             "jwt_endpoint": "https://app.test/jwt-login",
                             "jwt_binding_ttl_secs": ttl_secs})),
        ..AppOptions::default()
    })
    .await
}

/// "Sign in" in `client`: the bridge's redirect to the app's JWT endpoint, and the URL the app
/// sends the browser on to (the bridge's callback with the same binding parameters).
async fn start_round_trip(app: &TestApp, client: &reqwest::Client, return_to: &str) -> String {
    let r = client
        .get(format!("{}/auth/login", app.address))
        .query(&[("return_to", return_to)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = url::Url::parse(&location(&r)).unwrap();
    assert_eq!(to.origin().ascii_serialization(), "https://app.test");
    assert_eq!(to.path(), "/jwt-login");
    let param = |name: &str| {
        to.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no {name} in {to}"))
    };
    let callback = param("callback");
    assert_eq!(callback, format!("{}/auth/jwt/callback", app.address));
    format!(
        "{callback}?state={}&expires={}",
        urlencoding::encode(&param("state")),
        param("expires")
    )
}

async fn come_back(client: &reqwest::Client, callback: &str, jwt: &str) -> reqwest::Response {
    client
        .get(callback)
        .header("x-custom-tkn", jwt)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_jwt_endpoint_round_trip_signs_in_once_and_returns_to_the_page() {
    let app = spawn_round_trip_app(300).await;
    let client = browser_from(GATEWAY_PEER);
    let jwt = gateway_jwt(&claims("carol"));
    let callback = start_round_trip(&app, &client, "/api-demo?tab=2").await;

    let r = come_back(&client, &callback, &jwt).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&r), "/api-demo?tab=2");
    let info = app.session_info(&client).await;
    assert_eq!(info.user.username.as_deref(), Some("carol"));
    assert_eq!(info.auth_token, jwt);

    // Replayed: the binding is single-use.
    let again = come_back(&client, &callback, &jwt).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.idp.stat("authorization_requests").await,
        0,
        "no OIDC detour"
    );
}

#[tokio::test]
async fn forged_altered_cross_browser_and_tokenless_bindings_are_refused() {
    let app = spawn_round_trip_app(300).await;
    let jwt = gateway_jwt(&claims("carol"));

    // Forged state.
    let client = browser_from(GATEWAY_PEER);
    let callback = start_round_trip(&app, &client, "/").await;
    let forged = with_param(&callback, "state", "forged-state");
    assert_eq!(
        come_back(&client, &forged, &jwt).await.status(),
        StatusCode::BAD_REQUEST
    );

    // Altered expiry (the binding is taken by the attempt and gone afterwards).
    let callback = start_round_trip(&app, &client, "/").await;
    let altered = with_param(&callback, "expires", &(now() + 86_400).to_string());
    assert_eq!(
        come_back(&client, &altered, &jwt).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        come_back(&client, &callback, &jwt).await.status(),
        StatusCode::BAD_REQUEST
    );

    // Another browser with a valid binding of the first.
    let callback = start_round_trip(&app, &client, "/").await;
    let other = browser_from(GATEWAY_PEER);
    assert_eq!(
        come_back(&other, &callback, &jwt).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(app.session(&other).await.status(), StatusCode::UNAUTHORIZED);

    // Back without the gateway's header (an untrusted peer's header is stripped).
    let direct = browser_from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let callback = start_round_trip(&app, &direct, "/").await;
    assert_eq!(
        come_back(&direct, &callback, &jwt).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.session(&direct).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_expired_binding_is_refused() {
    let app = spawn_round_trip_app(1).await;
    let client = browser_from(GATEWAY_PEER);
    let callback = start_round_trip(&app, &client, "/").await;
    let expires: i64 = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "expires")
        .unwrap()
        .1
        .parse()
        .unwrap();
    // The expiry itself is what is tested: let the wall clock pass it.
    while now() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let r = come_back(&client, &callback, &gateway_jwt(&claims("carol"))).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn open_redirect_payloads_stay_refused_on_the_round_trip() {
    let app = spawn_round_trip_app(300).await;
    let client = browser_from(GATEWAY_PEER);
    for evil in [
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/%09/evil.example",
    ] {
        let r = client
            .get(format!("{}/auth/login", app.address))
            .query(&[("return_to", evil)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{evil}");
    }
}

#[tokio::test]
async fn a_silent_sign_in_without_a_provider_session_can_continue_through_the_jwt_endpoint() {
    let app = spawn_app_with(AppOptions {
        issuers: gateway_issuers(),
        gateway: Some(json!({"issuers": ["gateway"], "header": "x-custom-tkn",
                             "trusted_proxies": ["127.0.0.2/32"],
                             "jwt_endpoint": "https://app.test/jwt-login",
                             "jwt_endpoint_after_silent_miss": true})),
        ..AppOptions::default()
    })
    .await;
    let client = browser_from(GATEWAY_PEER);
    let r = client
        .get(format!("{}/api-demo", app.address))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    let authorize = location(&r);
    assert_eq!(query_param(&authorize, "prompt").as_deref(), Some("none"));
    let r = client.get(&authorize).send().await.unwrap();
    let callback = resolve(&authorize, &location(&r));
    let r = client.get(&callback).send().await.unwrap();
    let to = location(&r);
    assert!(to.starts_with("https://app.test/jwt-login?state="), "{to}");

    // The app sends the browser on; the gateway adds the JWT; the deep link is kept.
    let to = url::Url::parse(&to).unwrap();
    let param = |n: &str| {
        to.query_pairs()
            .find(|(k, _)| k == n)
            .unwrap()
            .1
            .into_owned()
    };
    let back = format!(
        "{}?state={}&expires={}",
        param("callback"),
        urlencoding::encode(&param("state")),
        param("expires")
    );
    let r = come_back(&client, &back, &gateway_jwt(&claims("carol"))).await;
    assert_eq!(location(&r), "/api-demo");
    assert_eq!(app.session(&client).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_gateway_may_carry_the_login_providers_own_access_token() {
    // privacyIDEA's case: a proxy in front injects the user's Keycloak access token, and that
    // Keycloak realm is also the bridge's login provider (`oidc`).
    let app = spawn_app_with(AppOptions {
        silent_sso: false,
        gateway: Some(json!({"issuers": ["oidc"], "trusted_proxies": ["127.0.0.2/32"]})),
        ..AppOptions::default()
    })
    .await;
    let token = sign_as_idp(&json!({
        "iss": app.idp.issuer, "sub": ALICE_SUB, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 300, "preferred_username": "alice",
    }));
    let client = browser_from(GATEWAY_PEER);
    let r = open_page_with_bearer(&app, &client, "/", &token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let info = app.session_info(&client).await;
    assert_eq!(info.user.username.as_deref(), Some("alice"));
    assert_eq!(info.auth_token, token);
    assert_eq!(app.idp.stat("authorization_requests").await, 0);
}

/// A stolen gateway JWT must be worthless away from the gateway: `/api` (also once the token
/// is in the verified-token cache) and the upstreams refuse it from any other address, and a
/// session the gateway signed in does not hand it out there; behind the gateway all of it
/// keeps working. Any `[[issuers]]` entry can be limited the same way.
#[tokio::test]
async fn a_gateway_jwt_works_only_through_the_gateway_on_every_path() {
    let (upstream, reached) = counting_upstream().await;
    let mut issuers = gateway_issuers();
    issuers.push(json!({"name": "proxied", "issuer": "https://proxied.test",
                        "audiences": [AUDIENCE], "algorithms": ["RS256"],
                        "jwks_file": fixture("issuer-rsa-b.jwks.json"),
                        "trusted_proxies": ["127.0.0.3/32"]}));
    let app = spawn_app_with(AppOptions {
        silent_sso: false,
        issuers,
        gateway: Some(json!({"issuers": ["gateway"], "trusted_proxies": ["127.0.0.2/32"]})),
        upstreams: vec![json!({"prefix": "/up/", "url": upstream})],
        ..AppOptions::default()
    })
    .await;
    let gateway = browser_from(GATEWAY_PEER);
    let outsider = browser_from(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let jwt = gateway_jwt(&claims("carol"));

    // /api: refused from elsewhere, before and after the gateway's call put it in the cache.
    let why = assert_invalid_token(
        api_from(&outsider, &app, "/api/me", &jwt).await,
        "from elsewhere",
    )
    .await;
    assert!(why.contains("trusted proxies"), "{why}");
    let me = api_from(&gateway, &app, "/api/me", &jwt).await;
    assert_eq!(me.status(), StatusCode::OK, "through the gateway");
    assert_invalid_token(
        api_from(&outsider, &app, "/api/me", &jwt).await,
        "from elsewhere, cached",
    )
    .await;

    // An upstream: never reached from elsewhere.
    assert_invalid_token(
        api_from(&outsider, &app, "/up/x", &jwt).await,
        "upstream from elsewhere",
    )
    .await;
    assert_eq!(reached.load(Ordering::SeqCst), 0);
    let r = api_from(&gateway, &app, "/up/x", &jwt).await;
    assert_eq!(r.status(), StatusCode::OK, "upstream through the gateway");
    assert_eq!(reached.load(Ordering::SeqCst), 1);

    // A session signed in through the gateway hands the JWT out through the gateway only.
    let r = open_page_with_bearer(&app, &gateway, "/", &jwt).await;
    let cookie = format!("lb_session={}", session_cookie(&r));
    assert_eq!(app.session_info(&gateway).await.auth_token, jwt);
    let r = outsider
        .get(format!("{}/auth/session", app.address))
        .header(
            shared::session::CSRF_HEADER,
            shared::session::CSRF_HEADER_VALUE,
        )
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let text = r.text().await.unwrap();
    assert!(!text.contains(&jwt), "never the token: {text}");
    assert!(text.contains("only through the gateway"), "{text}");
    // The session itself stays, for the browser behind the gateway.
    assert_eq!(app.session_info(&gateway).await.auth_token, jwt);

    // Any trusted issuer may be limited to its proxies (`trusted_proxies` on the entry).
    let proxied = sign_with(
        "issuer-rsa-b",
        Algorithm::RS256,
        None,
        &json!({"iss": "https://proxied.test", "sub": "sub-dave", "aud": AUDIENCE,
                "iat": now(), "exp": now() + 300, "preferred_username": "dave"}),
    );
    let its_proxy = browser_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)));
    let me = api_from(&its_proxy, &app, "/api/me", &proxied).await;
    assert_eq!(me.status(), StatusCode::OK);
    for elsewhere in [&outsider, &gateway] {
        assert_invalid_token(
            api_from(elsewhere, &app, "/api/me", &proxied).await,
            "another issuer's proxy",
        )
        .await;
    }
}

/// A claim the issuer's mapping names is required unless marked optional: a gateway JWT
/// without the mapped username signs nobody in (the login page says why) and is refused at
/// the API, rather than naming the user by `sub` alone.
#[tokio::test]
async fn a_gateway_jwt_without_the_mapped_username_signs_nobody_in_and_is_refused_at_the_api() {
    let app = spawn_gateway_app("authorization").await;
    let mut nameless = claims("carol");
    nameless
        .as_object_mut()
        .unwrap()
        .remove("preferred_username");
    let jwt = gateway_jwt(&nameless);
    let client = browser_from(GATEWAY_PEER);

    let r = open_page_with_bearer(&app, &client, "/deep", &jwt).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        location(&r),
        login_bridge::auth::gateway::rejected_location("missing_claim", "/deep")
    );
    assert!(!sets_a_session_cookie(&r));
    assert_eq!(
        app.session(&client).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let why =
        assert_invalid_token(api_from(&client, &app, "/api/me", &jwt).await, "at the API").await;
    assert!(why.contains("preferred_username"), "{why}");
    // With the username, the same JWT signs in.
    let r = open_page_with_bearer(&app, &client, "/", &gateway_jwt(&claims("carol"))).await;
    assert!(sets_a_session_cookie(&r));
}
