//! Which request headers reach an upstream and which response headers come back.
//!
//! Removed on the way in: the caller's `Authorization` (the upstream gets its own token), the
//! bridge's session cookie, hop-by-hop headers (RFC 9110 section 7.6.1, and any the
//! `Connection` header names), `Host`, client-sent `Forwarded`/`X-Forwarded-*`, client-sent
//! copies of the claim headers, and the configured `strip_headers`. Set: the outgoing token,
//! the claim headers, `X-Forwarded-For`/`-Proto`/`-Host`.

use crate::trust::claims::{Claims, Value};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::trust::mapping::lookup;

/// Hop-by-hop headers: meaningful for one connection only, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The bridge's session cookie names (plain and `__Host-`).
const SESSION_COOKIES: [&str; 2] = ["lb_session", "__Host-lb_session"];

fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
    {
        headers.remove(name);
    }
}

/// The `Cookie` header without the bridge's session cookie (other cookies of the site pass).
fn without_session_cookie(headers: &mut HeaderMap) {
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split('=').next().unwrap_or_default();
            !c.is_empty() && !SESSION_COOKIES.contains(&name)
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

/// What the proxy knows about the call, for the forwarding headers.
pub struct Forwarding<'a> {
    pub peer: Option<std::net::IpAddr>,
    /// `http` or `https`: how the browser reached the bridge.
    pub proto: &'a str,
    /// The host (and port) the browser used.
    pub host: Option<&'a str>,
}

/// The request headers for the upstream, made from the caller's (taken, not copied).
pub fn outgoing(
    incoming: HeaderMap,
    strip: &[HeaderName],
    claim_headers: &[(HeaderName, String)],
    claims: Option<&Claims>,
    token: Option<(&HeaderName, HeaderValue)>,
    forwarding: &Forwarding<'_>,
) -> HeaderMap {
    let mut out = incoming;
    drop_hop_by_hop(&mut out);
    without_session_cookie(&mut out);
    for name in [
        header::AUTHORIZATION,
        header::HOST,
        header::FORWARDED,
        HeaderName::from_static("x-forwarded-for"),
        HeaderName::from_static("x-forwarded-proto"),
        HeaderName::from_static("x-forwarded-host"),
        HeaderName::from_static("x-real-ip"),
    ] {
        out.remove(name);
    }
    for name in strip {
        out.remove(name);
    }
    for (name, _) in claim_headers {
        out.remove(name);
    }
    for (name, path) in claim_headers {
        if let Some(value) = claims.and_then(|c| lookup(c, path)).and_then(claim_text)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            out.insert(name.clone(), value);
        }
    }
    if let Some((name, value)) = token {
        out.insert(name.clone(), value);
    }
    if let Some(peer) = forwarding.peer
        && let Ok(v) = HeaderValue::from_str(&peer.to_string())
    {
        out.insert(HeaderName::from_static("x-forwarded-for"), v);
    }
    if let Ok(v) = HeaderValue::from_str(forwarding.proto) {
        out.insert(HeaderName::from_static("x-forwarded-proto"), v);
    }
    if let Some(host) = forwarding.host
        && let Ok(v) = HeaderValue::from_str(host)
    {
        out.insert(HeaderName::from_static("x-forwarded-host"), v);
    }
    out
}

/// A claim as header text: strings as they are, numbers and booleans printed, lists of those
/// joined by commas; objects are not sent.
fn claim_text(value: &Value) -> Option<String> {
    match value {
        Value::Str(s) => Some(s.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| match i {
                    Value::Array(_) | Value::Object(_) => None,
                    other => claim_text(other),
                })
                .collect();
            parts.map(|p| p.join(","))
        }
        _ => None,
    }
}

/// The upstream's response headers for the caller: without hop-by-hop headers.
pub fn returned(mut headers: HeaderMap) -> HeaderMap {
    drop_hop_by_hop(&mut headers);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_caller_s_credentials_forged_claims_and_hop_by_hop_headers_do_not_pass() {
        let mut incoming = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer caller-token"),
            (
                "cookie",
                "theme=dark; lb_session=abc; __Host-lb_session=def",
            ),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("x-auth-user", "mallory"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-internal", "drop me"),
            ("accept", "application/json"),
            ("host", "bridge.example.org"),
        ] {
            incoming.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let claims = json!({"preferred_username": "alice", "groups": ["a", "b"]});
        let claims =
            Claims::from_map(claims.as_object().unwrap_or(&serde_json::Map::new())).unwrap();
        let token_header = HeaderName::from_static("authorization");
        let out = outgoing(
            incoming,
            &[HeaderName::from_static("x-internal")],
            &[
                (
                    HeaderName::from_static("x-auth-user"),
                    "preferred_username".into(),
                ),
                (HeaderName::from_static("x-auth-groups"), "groups".into()),
                (HeaderName::from_static("x-auth-email"), "email".into()),
            ],
            Some(&claims),
            Some((&token_header, HeaderValue::from_static("minted"))),
            &Forwarding {
                peer: "10.0.0.7".parse().ok(),
                proto: "https",
                host: Some("bridge.example.org"),
            },
        );
        let get = |k: &str| out.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get("authorization").as_deref(), Some("minted"));
        assert_eq!(get("cookie").as_deref(), Some("theme=dark"));
        assert_eq!(get("x-auth-user").as_deref(), Some("alice"));
        assert_eq!(get("x-auth-groups").as_deref(), Some("a,b"));
        assert_eq!(get("x-auth-email"), None, "a forged copy never survives");
        assert_eq!(get("x-forwarded-for").as_deref(), Some("10.0.0.7"));
        assert_eq!(get("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(
            get("x-forwarded-host").as_deref(),
            Some("bridge.example.org")
        );
        assert_eq!(get("accept").as_deref(), Some("application/json"));
        for gone in ["connection", "x-secret-hop", "te", "x-internal", "host"] {
            assert_eq!(get(gone), None, "{gone}");
        }
        assert_eq!(out.get_all("x-auth-user").iter().count(), 1);
    }
}
