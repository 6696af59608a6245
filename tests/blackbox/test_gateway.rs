//! A test gateway: the small reverse proxy in front of the bridge that issue 7's users have
//! (nginx, Traefik, an API gateway) once they have authenticated the user. It listens where the
//! browser goes, forwards every request to the bridge over a connection from **127.0.0.2** (the
//! trusted proxy address the bridge is configured with; the bridge itself listens on 127.0.0.1),
//! puts its JWT in the configured header, and hands the bridge's answer back unchanged.
//!
//! The JWT is signed with the fixture key `issuer-rsa-a` (public JWKS in
//! `issuer-rsa-a.jwks.json`), which the bridge trusts as the `[[issuers]]` entry
//! [`GATEWAY_ISSUER_NAME`]. What the browser itself sent in `Authorization` is recorded, so a
//! test can tell the SPA's own Bearer calls from what the gateway injects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::{
    net::{IpAddr, Ipv4Addr},
    sync::{Arc, Mutex},
};

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, HeaderValue},
    response::Response,
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::support::{AUDIENCE, fixture, now, sign_with};

/// The `[[issuers]]` name of the gateway's key, as `[gateway] issuers` names it.
pub const GATEWAY_ISSUER_NAME: &str = "gateway";
/// The `iss` of the gateway's JWTs.
pub const GATEWAY_ISSUER: &str = "https://gateway.test";
/// The address the gateway connects to the bridge from.
pub const GATEWAY_SOURCE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The `[[issuers]]` entry for the gateway's key.
pub fn gateway_issuer() -> Value {
    json!({
        "name": GATEWAY_ISSUER_NAME, "issuer": GATEWAY_ISSUER, "audiences": [AUDIENCE],
        "algorithms": ["RS256"], "jwks_file": fixture("issuer-rsa-a.jwks.json"),
    })
}

/// `[gateway]` trusting the gateway's issuer from `trusted_proxies`, reading `header`.
pub fn gateway_settings(header: &str, trusted_proxies: &[&str]) -> Value {
    json!({
        "issuers": [GATEWAY_ISSUER_NAME], "header": header, "trusted_proxies": trusted_proxies,
    })
}

/// A JWT as the gateway would put on a request for this user, valid from `iat` to `exp`.
pub fn gateway_jwt(sub: &str, username: &str, exp: i64) -> String {
    sign_with(
        "issuer-rsa-a",
        jsonwebtoken::Algorithm::RS256,
        Some("rsa-a"),
        &json!({
            "iss": GATEWAY_ISSUER, "sub": sub, "aud": AUDIENCE, "iat": now() - 60, "exp": exp,
            "preferred_username": username, "email": format!("{username}@gateway.test"),
        }),
    )
}

/// One request as the browser sent it to the gateway.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    /// The browser's own `Authorization` value, before the gateway touched the request.
    pub authorization: Option<String>,
}

/// The running gateway; stops on drop.
pub struct TestGateway {
    /// `http://localhost:<port>`: what the browser opens, and the bridge's `public_url`.
    pub url: String,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
    listener: Option<TcpListener>,
}

struct Shared {
    bridge: Mutex<String>,
    /// When set, the JWT goes only on requests under this path (a gateway that protects just
    /// the bridge's JWT-endpoint callback, as in ZITADEL's JWT IdP setup).
    inject_only_under: Mutex<Option<String>>,
    header: HeaderName,
    token: Mutex<String>,
    seen: Mutex<Vec<SeenRequest>>,
    upstream: reqwest::Client,
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the framing the proxy redoes itself.
const NOT_FORWARDED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "content-length",
];

impl TestGateway {
    /// Binds the gateway's port first: the bridge must know its public URL before it starts,
    /// and the gateway the bridge's port only after. `header` is where the JWT goes
    /// (`authorization` → `Bearer <jwt>`, anything else → the bare JWT).
    pub async fn bind(header: &str, token: String) -> TestGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = reqwest::Client::builder()
            .local_address(GATEWAY_SOURCE)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        TestGateway {
            url: format!("http://localhost:{port}"),
            shared: Arc::new(Shared {
                bridge: Mutex::new(String::new()),
                inject_only_under: Mutex::new(None),
                header: HeaderName::from_bytes(header.as_bytes()).unwrap(),
                token: Mutex::new(token),
                seen: Mutex::new(Vec::new()),
                upstream,
            }),
            task: None,
            listener: Some(listener),
        }
    }

    /// Starts forwarding to the bridge listening on 127.0.0.1:`bridge_port`.
    pub fn start(&mut self, bridge_port: u16) {
        *self.shared.bridge.lock().unwrap() = format!("http://127.0.0.1:{bridge_port}");
        let listener = self.listener.take().expect("started once");
        let app = axum::Router::new()
            .fallback(forward)
            .with_state(self.shared.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// From now on the JWT goes only on requests whose path starts with `prefix`.
    pub fn inject_only_under(&self, prefix: &str) {
        *self.shared.inject_only_under.lock().unwrap() = Some(prefix.to_owned());
    }

    /// The JWT the gateway puts on every request from now on.
    pub fn set_token(&self, token: String) {
        *self.shared.token.lock().unwrap() = token;
    }

    /// Every request the browser sent through the gateway, in order.
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }
}

/// Where the test gateway plays "the existing app" of the JWT-endpoint round trip.
pub const JWT_ENDPOINT_PATH: &str = "/jwt-login";

/// The existing app's JWT endpoint: sends the browser on to the bridge's `callback` with the
/// same `state` and `expires` (the gateway adds the JWT on that request).
fn existing_app(query: Option<&str>) -> Response {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let get = |n: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let mut to = url::Url::parse(&get("callback")).unwrap();
    to.query_pairs_mut()
        .append_pair("state", &get("state"))
        .append_pair("expires", &get("expires"));
    Response::builder()
        .status(303)
        .header("location", to.as_str())
        .body(Body::empty())
        .unwrap()
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    shared.seen.lock().unwrap().push(SeenRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        authorization: parts
            .headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
    });
    if parts.uri.path() == JWT_ENDPOINT_PATH {
        return existing_app(parts.uri.query());
    }

    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !NOT_FORWARDED.contains(&name.as_str()) && name != shared.header {
            headers.append(name, value.clone());
        }
    }
    // A real gateway replaces whatever the client sent in its header with its own JWT.
    let inject = shared
        .inject_only_under
        .lock()
        .unwrap()
        .as_ref()
        .is_none_or(|prefix| parts.uri.path().starts_with(prefix.as_str()));
    if inject {
        let token = shared.token.lock().unwrap().clone();
        let value = if shared.header == "authorization" {
            format!("Bearer {token}")
        } else {
            token
        };
        headers.insert(
            shared.header.clone(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }

    let body = to_bytes(body, usize::MAX).await.unwrap();
    let url = format!("{}{path}", shared.bridge.lock().unwrap());
    // The browser's `Host` is kept, so the bridge sees the public address it was opened on.
    let answer = shared
        .upstream
        .request(parts.method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
        .expect("the bridge did not answer the gateway");

    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    let body = answer.bytes().await.unwrap();
    response.body(Body::from(body)).unwrap()
}
