//! APIs behind the bridge (`[[upstreams]]`): a test upstream records every request it gets, so
//! the tests see exactly what leaves the bridge: the configured token and headers only, and
//! nothing at all for a call the bridge refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::HeaderMap,
    routing::any,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::*;

/// What the test upstream saw of one request.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) path: String,
    pub(crate) method: String,
    pub(crate) headers: HeaderMap,
}

/// A small API that records every request; `/slow` answers after 3 s; a path containing
/// `/answer-headers` answers with headers a proxy must not pass on as they are (a hop-by-hop
/// one, the bridge's session cookie) beside some it must keep.
pub(crate) struct TestUpstream {
    pub(crate) url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestUpstream {
    pub(crate) async fn start() -> TestUpstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let app = Router::new()
            .fallback(any(
                |State(seen): State<Arc<Mutex<Vec<Seen>>>>, request: Request| async move {
                    let path = request.uri().to_string();
                    seen.lock().unwrap().push(Seen {
                        path: path.clone(),
                        method: request.method().to_string(),
                        headers: request.headers().clone(),
                    });
                    if path.starts_with("/slow") {
                        tokio::time::sleep(Duration::from_secs(3)).await;
                    }
                    let status = if path.contains("/deny") {
                        axum::http::StatusCode::UNAUTHORIZED
                    } else {
                        axum::http::StatusCode::OK
                    };
                    let mut headers = HeaderMap::new();
                    if path.contains("/answer-headers") {
                        for (name, value) in [
                            ("proxy-connection", "keep-alive"),
                            ("set-cookie", "lb_session=forged; Path=/; HttpOnly"),
                            ("set-cookie", "__Host-lb_session=forged; Path=/; Secure"),
                            ("set-cookie", "theme=dark; Path=/"),
                            ("x-frame-options", "SAMEORIGIN"),
                            ("x-upstream", "kept"),
                        ] {
                            headers.append(name, value.parse().unwrap());
                        }
                    }
                    (
                        status,
                        headers,
                        Json(json!({"path": path, "method": request.method().as_str()})),
                    )
                },
            ))
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestUpstream {
            url: format!("http://{addr}"),
            seen,
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    pub(crate) fn last(&self) -> Seen {
        self.seen
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("no request reached the upstream")
    }
}

fn header<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    seen.headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// A signed-in browser (cookie jar holding the bridge session) and its `auth_token`.
async fn signed_in(app: &TestApp, user: &str, password: &str) -> (reqwest::Client, String) {
    let client = browser();
    app.sign_in(&client, user, password).await;
    let token = app.session_info(&client).await.auth_token;
    (client, token)
}

#[tokio::test]
async fn the_upstream_gets_the_configured_token_and_claims_and_nothing_of_the_caller_s() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        authority: Some(json!({})),
        token_profiles: vec![json!({
            "name": "pi", "header": "authorization", "scheme": "",
            "claims": {"username": "{username}", "role": "user"},
        })],
        upstreams: vec![
            json!({"name": "fwd", "prefix": "/fwd/", "url": up.url,
                   "forward_claims": {"X-Auth-User": "preferred_username", "X-Auth-Groups": "groups"},
                   "strip_headers": ["X-Internal"]}),
            json!({"name": "pi", "prefix": "/pi/", "url": format!("{}/base/", up.url),
                   "token": "profile:pi", "ui": "privacyidea"}),
        ],
        ..AppOptions::default()
    })
    .await;
    let (client, token) = signed_in(&app, "alice", "wonderland").await;

    // The browser's client carries the bridge's session cookie; add what an attacker would.
    let r = client
        .get(format!("{}/fwd/items/7?q=1", app.address))
        .bearer_auth(&token)
        .header("X-Auth-User", "mallory")
        .header("X-Internal", "secret")
        .header("Connection", "x-hop")
        .header("X-Hop", "1")
        .header("X-Forwarded-For", "6.6.6.6")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["path"], "/items/7?q=1");
    let seen = up.last();
    assert_eq!(
        header(&seen, "authorization"),
        vec![format!("Bearer {token}")]
    );
    assert!(
        header(&seen, "cookie")
            .iter()
            .all(|c| !c.contains("lb_session")),
        "{seen:?}"
    );
    assert_eq!(
        header(&seen, "x-auth-user"),
        vec!["alice"],
        "never the forged copy"
    );
    assert_eq!(
        header(&seen, "x-auth-groups"),
        vec!["admins,users,pi-admins"]
    );
    assert!(header(&seen, "x-internal").is_empty());
    assert!(
        header(&seen, "x-hop").is_empty(),
        "a hop-by-hop header named by Connection"
    );
    assert_eq!(header(&seen, "x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(header(&seen, "x-forwarded-proto"), vec!["http"]);

    // A profile upstream gets a token minted for it, bare, in the configured header; the
    // same minted token on the next call (kept until a third of its life is left).
    let r = client
        .post(format!("{}/pi/token/init", app.address))
        .bearer_auth(&token)
        .form(&[("type", "hotp")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.path, "/base/token/init");
    let minted = header(&seen, "authorization")[0].to_string();
    assert_ne!(minted, token);
    assert!(!minted.starts_with("Bearer"));
    let claims = app
        .api_get("/api/me", Some(&minted))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(claims["user"]["username"], "alice");
    assert_eq!(claims["issuer"], app.authority().issuer.as_str());
    client
        .get(format!("{}/pi/token/", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(header(&up.last(), "authorization")[0], minted);

    // The SPA learns which pages the upstreams offer.
    let listed: Value = reqwest::get(format!("{}/auth/upstreams", app.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!({"upstreams": [{"name": "pi", "prefix": "/pi/", "ui": "privacyidea"}]})
    );
}

#[tokio::test]
async fn without_upstreams_the_listing_is_an_empty_list_not_a_missing_route() {
    // The SPA asks on every page load; a 404 would be a failed request in every console.
    let app = spawn_app().await;

    let r = reqwest::get(format!("{}/auth/upstreams", app.address))
        .await
        .unwrap();

    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"upstreams": []}));
}

#[tokio::test]
async fn refused_calls_never_reach_the_upstream() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        upstreams: vec![json!({"prefix": "/up/", "url": up.url})],
        route_policies: vec![json!({"prefix": "/up/admin/", "any_role": ["superuser"]})],
        ..AppOptions::default()
    })
    .await;
    let (client, token) = signed_in(&app, "alice", "wonderland").await;
    let claims = |patch: Value| {
        let mut c = json!({"iss": app.idp.issuer, "sub": ALICE_SUB, "aud": AUDIENCE,
                           "iat": now(), "exp": now() + 300, "preferred_username": "alice"});
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let forged = with_tampered_signature(&token);
    let cases = [
        ("missing", None, "/up/x", StatusCode::UNAUTHORIZED),
        ("forged", Some(forged), "/up/x", StatusCode::UNAUTHORIZED),
        (
            "expired",
            Some(sign_as_idp(&claims(json!({"exp": now() - 120})))),
            "/up/x",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "wrong audience",
            Some(sign_as_idp(&claims(json!({"aud": "another-api"})))),
            "/up/x",
            StatusCode::UNAUTHORIZED,
        ),
        (
            "policy-refused",
            Some(token.clone()),
            "/up/admin/x",
            StatusCode::FORBIDDEN,
        ),
        (
            "escaping the prefix",
            Some(token.clone()),
            "/up/a%2f%2e%2e%2fb",
            StatusCode::BAD_REQUEST,
        ),
    ];
    for (why, bearer, path, status) in cases {
        // The session cookie rides along (the browser's client): it must not count.
        let mut req = client.get(format!("{}{path}", app.address));
        if let Some(t) = &bearer {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), status, "{why}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{why}: JSON error, got {body}");
    }
    assert_eq!(up.count(), 0, "no refused call reached the upstream");
    // And a good one does.
    let r = client
        .get(format!("{}/up/x", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_a_slow_one_504_saying_nothing_internal() {
    let up = TestUpstream::start().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let app = spawn_app_with(AppOptions {
        upstreams: vec![
            json!({"prefix": "/down/", "url": closed}),
            json!({"prefix": "/slow/", "url": up.url, "strip_prefix": false, "timeout_secs": 1}),
        ],
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    for (path, status, code) in [
        ("/down/x", StatusCode::BAD_GATEWAY, "bad_gateway"),
        ("/slow/x", StatusCode::GATEWAY_TIMEOUT, "gateway_timeout"),
    ] {
        let started = std::time::Instant::now();
        let r = app.api_get(path, Some(&token)).await;
        assert_eq!(r.status(), status, "{path}");
        let text = r.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["error"], code);
        for internal in ["127.0.0.1", "error sending", "timed out", "connect"] {
            assert!(!text.contains(internal), "{path}: {text}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{path}: the timeout applies"
        );
    }
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origin() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        upstreams: vec![json!({"prefix": "/up/", "url": up.url})],
        cors: Some(json!({"allowed_origins": ["https://ui.example.org"]})),
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str| {
        http.request(reqwest::Method::OPTIONS, format!("{}/up/x", app.address))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let r = preflight("https://ui.example.org").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example.org"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(allowed.contains("authorization"), "{allowed}");
    assert_eq!(up.count(), 0, "the bridge answers the preflight itself");
    let r = http
        .post(format!("{}/up/x", app.address))
        .header("Origin", "https://ui.example.org")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example.org"
    );
    // Any other origin: no CORS headers at all.
    let r = preflight("https://evil.example.org").await.unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
    let r = http
        .get(format!("{}/up/x", app.address))
        .header("Origin", "https://evil.example.org")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert!(!r.headers().contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn a_trusted_gateway_s_jwt_header_authenticates_proxied_calls_and_stays_behind() {
    use std::net::{IpAddr, Ipv4Addr};
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        issuers: vec![json!({"name": "gateway", "issuer": "https://gateway.test",
                             "audiences": [AUDIENCE], "algorithms": ["RS256"],
                             "jwks_file": fixture("issuer-rsa-a.jwks.json")})],
        gateway: Some(json!({"issuers": ["gateway"], "header": "x-custom-tkn",
                             "trusted_proxies": ["127.0.0.2/32"]})),
        upstreams: vec![json!({"prefix": "/up/", "url": up.url,
                               "forward_claims": {"X-Auth-User": "preferred_username"}})],
        ..AppOptions::default()
    })
    .await;
    let jwt = sign_with(
        "issuer-rsa-a",
        jsonwebtoken::Algorithm::RS256,
        None,
        &json!({"iss": "https://gateway.test", "sub": "sub-carol", "aud": AUDIENCE,
                "iat": now(), "exp": now() + 300, "preferred_username": "carol"}),
    );
    let from = |peer: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::from(peer)))
            .build()
            .unwrap()
    };
    // From the gateway's address: authenticated, forwarded, the gateway header not passed on.
    let r = from([127, 0, 0, 2])
        .get(format!("{}/up/x", app.address))
        .header("x-custom-tkn", &jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(header(&seen, "x-auth-user"), vec!["carol"]);
    assert_eq!(
        header(&seen, "authorization"),
        vec![format!("Bearer {jwt}")]
    );
    assert!(header(&seen, "x-custom-tkn").is_empty());
    // From anyone else the header is nothing: 401, and the upstream sees no request.
    let r = from([127, 0, 0, 1])
        .get(format!("{}/up/x", app.address))
        .header("x-custom-tkn", &jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn an_upstream_refusing_the_bridge_s_own_token_is_502_but_the_caller_s_token_401() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        authority: Some(json!({})),
        token_profiles: vec![json!({"name": "p", "claims": {"username": "{username}"}})],
        upstreams: vec![
            json!({"prefix": "/minted/", "url": up.url, "token": "profile:p"}),
            json!({"prefix": "/fwd/", "url": up.url}),
        ],
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    // The upstream refused a token the bridge made: the caller can do nothing about it.
    let r = app.api_get("/minted/deny", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "bad_gateway");
    // It refused the caller's own token: the caller hears it (and may refresh).
    let r = app.api_get("/fwd/deny", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), 2);
}

/// A header name as nginx, CGI, PHP, WSGI and Rails read it: any case, `_` for `-`.
fn folded(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Every value the upstream saw under a name that folds to `name`.
fn folded_values<'a>(seen: &'a Seen, name: &str) -> Vec<&'a str> {
    seen.headers
        .iter()
        .filter(|(n, _)| folded(n.as_str()) == name)
        .map(|(_, v)| v.to_str().unwrap())
        .collect()
}

/// The headers every answer the bridge writes itself carries (the API policy: JSON, no HTML).
fn assert_security_headers(r: &reqwest::Response, what: &str) {
    let h = r.headers();
    let get = |name: &str| h.get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(
        get("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(get("x-frame-options").as_deref(), Some("DENY"), "{what}");
    assert_eq!(
        get("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        get("content-security-policy").as_deref(),
        Some("default-src 'none'; frame-ancestors 'none'"),
        "{what}"
    );
}

fn cors_headers(r: &reqwest::Response) -> Vec<String> {
    r.headers()
        .keys()
        .map(|k| k.as_str().to_string())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test]
async fn proxy_connection_is_hop_by_hop_and_dropped_both_ways() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        upstreams: vec![json!({"prefix": "/up/", "url": up.url})],
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    let r = reqwest::Client::new()
        .get(format!("{}/up/answer-headers", app.address))
        .bearer_auth(&token)
        .header("Proxy-Connection", "keep-alive")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        !r.headers().contains_key("proxy-connection"),
        "the upstream's Proxy-Connection came back: {:?}",
        r.headers()
    );
    assert_eq!(r.headers()["x-upstream"], "kept");
    let seen = up.last();
    assert!(header(&seen, "proxy-connection").is_empty(), "{seen:?}");
}

#[tokio::test]
async fn headers_the_bridge_sets_or_strips_cannot_be_smuggled_under_another_spelling() {
    use std::net::{IpAddr, Ipv4Addr};
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        issuers: vec![json!({"name": "gateway", "issuer": "https://gateway.test",
                             "audiences": [AUDIENCE], "algorithms": ["RS256"],
                             "jwks_file": fixture("issuer-rsa-a.jwks.json")})],
        gateway: Some(json!({"issuers": ["gateway"], "header": "x-custom-tkn",
                             "trusted_proxies": ["127.0.0.2/32"]})),
        upstreams: vec![json!({"prefix": "/up/", "url": up.url,
                               "forward_claims": {"X-Auth-User": "preferred_username",
                                                  "X_Auth_Name": "preferred_username"},
                               "strip_headers": ["X-Internal"]})],
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "alice", "wonderland").await;

    // A caller's own token, and forged copies under the spellings backends fold together.
    let r = reqwest::Client::new()
        .get(format!("{}/up/x", app.address))
        .bearer_auth(&token)
        .header("X_Auth_User", "mallory")
        .header("x-auth_user", "mallory")
        .header("X-Auth-Name", "mallory")
        .header("X_Internal", "secret")
        .header("X_Forwarded_For", "6.6.6.6")
        .header("X_Custom_Tkn", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        folded_values(&seen, "x-auth-user"),
        vec!["alice"],
        "{seen:?}"
    );
    assert_eq!(
        folded_values(&seen, "x-auth-name"),
        vec!["alice"],
        "{seen:?}"
    );
    assert!(folded_values(&seen, "x-internal").is_empty(), "{seen:?}");
    assert_eq!(
        folded_values(&seen, "x-forwarded-for"),
        vec!["127.0.0.1"],
        "{seen:?}"
    );
    assert!(folded_values(&seen, "x-custom-tkn").is_empty(), "{seen:?}");

    // From the trusted gateway: its header authenticates, and neither it nor a second copy
    // under another spelling goes on.
    let jwt = sign_with(
        "issuer-rsa-a",
        jsonwebtoken::Algorithm::RS256,
        None,
        &json!({"iss": "https://gateway.test", "sub": "sub-carol", "aud": AUDIENCE,
                "iat": now(), "exp": now() + 300, "preferred_username": "carol"}),
    );
    let r = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap()
        .get(format!("{}/up/x", app.address))
        .header("x-custom-tkn", &jwt)
        .header("X_Custom_Tkn", "forged")
        .header("X_Auth_User", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(
        folded_values(&seen, "x-auth-user"),
        vec!["carol"],
        "{seen:?}"
    );
    assert!(folded_values(&seen, "x-custom-tkn").is_empty(), "{seen:?}");
}

#[tokio::test]
async fn a_preflight_from_a_foreign_origin_gets_no_cors_header_at_all() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        upstreams: vec![json!({"prefix": "/up/", "url": up.url})],
        cors: Some(json!({"allowed_origins": ["https://ui.example.org"]})),
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    let http = reqwest::Client::new();
    for path in ["/up/x", "/api/me", "/auth/session"] {
        let r = http
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.address))
            .header("Origin", "https://evil.example.org")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "authorization")
            .send()
            .await
            .unwrap();
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "preflight {path}");
        let r = http
            .get(format!("{}{path}", app.address))
            .header("Origin", "https://evil.example.org")
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(cors_headers(&r), Vec::<String>::new(), "GET {path}");
    }
    // The allowed origin still gets its preflight answered.
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{}/up/x", app.address))
        .header("Origin", "https://ui.example.org")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ui.example.org"
    );
    assert_eq!(up.count(), 1, "only the GET with a valid token");
}

#[tokio::test]
async fn an_options_request_that_is_not_a_preflight_is_authenticated_and_proxied() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        upstreams: vec![json!({"prefix": "/up/", "url": up.url})],
        cors: Some(json!({"allowed_origins": ["https://ui.example.org"]})),
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    let http = reqwest::Client::new();
    let options = || http.request(reqwest::Method::OPTIONS, format!("{}/up/x", app.address));
    // Without a token: refused like any other call, and the upstream sees nothing.
    let r = options().send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "unauthenticated");
    let r = options()
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "no Origin: no preflight"
    );
    let r = options()
        .header("Origin", "https://ui.example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "no Access-Control-Request-Method: no preflight"
    );
    assert_eq!(up.count(), 0);
    // With one: the upstream gets the OPTIONS and answers it.
    for origin in [None, Some("https://ui.example.org")] {
        let mut request = options().bearer_auth(&token);
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let r = request.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{origin:?}");
        assert_eq!(r.json::<Value>().await.unwrap()["method"], "OPTIONS");
        let seen = up.last();
        assert_eq!(seen.method, "OPTIONS");
        assert_eq!(
            header(&seen, "authorization"),
            vec![format!("Bearer {token}")]
        );
    }
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn every_answer_the_bridge_writes_under_an_upstream_prefix_carries_its_security_headers() {
    let up = TestUpstream::start().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let app = spawn_app_with(AppOptions {
        upstreams: vec![
            json!({"prefix": "/up/", "url": up.url, "max_body_bytes": 64, "ui": "demo"}),
            json!({"prefix": "/down/", "url": closed}),
            json!({"prefix": "/slow/", "url": up.url, "strip_prefix": false, "timeout_secs": 1}),
        ],
        route_policies: vec![json!({"prefix": "/up/admin/", "any_role": ["superuser"]})],
        cors: Some(json!({"allowed_origins": ["https://ui.example.org"]})),
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    let http = reqwest::Client::new();
    let get = |path: &str, bearer: Option<&str>| {
        let mut r = http.get(format!("{}{path}", app.address));
        if let Some(t) = bearer {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let cases = [
        ("/up/x", None, StatusCode::UNAUTHORIZED),
        ("/up/x", Some("not-a-jwt"), StatusCode::UNAUTHORIZED),
        ("/up/admin/x", Some(token.as_str()), StatusCode::FORBIDDEN),
        (
            "/up/a%2f%2e%2e%2fb",
            Some(token.as_str()),
            StatusCode::BAD_REQUEST,
        ),
        ("/down/x", Some(token.as_str()), StatusCode::BAD_GATEWAY),
        ("/slow/x", Some(token.as_str()), StatusCode::GATEWAY_TIMEOUT),
        ("/auth/upstreams", None, StatusCode::OK),
    ];
    for (path, bearer, status) in cases {
        let r = get(path, bearer).await.unwrap();
        assert_eq!(r.status(), status, "{path}");
        assert_security_headers(&r, path);
    }
    let r = http
        .post(format!("{}/up/x", app.address))
        .bearer_auth(&token)
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_security_headers(&r, "a body over max_body_bytes");
    let r = http
        .request(reqwest::Method::OPTIONS, format!("{}/up/x", app.address))
        .header("Origin", "https://ui.example.org")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_security_headers(&r, "a CORS preflight");
    assert_eq!(up.count(), 1, "only the slow call reached the upstream");
    assert_eq!(up.last().path, "/slow/x");
}

#[tokio::test]
async fn a_proxied_answer_gets_nosniff_and_never_sets_the_bridge_s_session_cookie() {
    let up = TestUpstream::start().await;
    let app = spawn_app_with(AppOptions {
        upstreams: vec![json!({"prefix": "/up/", "url": up.url})],
        ..AppOptions::default()
    })
    .await;
    let (_client, token) = signed_in(&app, "bob", "builder").await;
    let r = app.api_get("/up/answer-headers", Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers();
    assert_eq!(h["x-content-type-options"], "nosniff");
    // The upstream's own headers stay as they are; the bridge adds no policy of its own.
    assert_eq!(h["x-frame-options"], "SAMEORIGIN");
    assert_eq!(h["x-upstream"], "kept");
    assert!(!h.contains_key("content-security-policy"), "{h:?}");
    let cookies: Vec<&str> = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies, vec!["theme=dark; Path=/"]);
}
