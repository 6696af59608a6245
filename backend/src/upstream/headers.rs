//! Which request headers reach an upstream and which response headers come back.
//!
//! Removed on the way in: the caller's `Authorization` (the upstream gets its own token), the
//! bridge's session cookie, hop-by-hop headers (RFC 9110 section 7.6.1, `Proxy-Connection`, and
//! any the `Connection` header names), `Host`, client-sent `Forwarded`/`X-Forwarded-*`,
//! client-sent copies of the claim headers and of the outgoing token header, and the configured
//! `strip_headers` (with the custom gateway header), and the caller's `DPoP` proof unless the
//! upstream gets the caller's own token (`forward`). Set: the outgoing token, the claim
//! headers, `X-Forwarded-For`/`-Proto`/`-Host`.
//!
//! The headers the bridge sets or strips are removed under every spelling a backend may read
//! as the same name: nginx (`underscores_in_headers`), CGI, PHP, WSGI and Rails fold `_` into
//! `-`, so a client's `X_Auth_User: mallory` beside the bridge's `X-Auth-User: alice` would
//! otherwise reach the application as a second, forged value (see [`GuardedHeaders`]).
//!
//! On the way back: hop-by-hop headers go, a `Set-Cookie` for the bridge's own session cookie
//! is dropped (an upstream never sets or clears a bridge session), and `nosniff` is added when
//! the upstream sent no `X-Content-Type-Options`; the upstream's other headers stay as they are.

use crate::trust::claims::{Claims, Value};
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, header,
    header::{InvalidHeaderName, SET_COOKIE, X_CONTENT_TYPE_OPTIONS},
};

use crate::trust::mapping::lookup;

/// Hop-by-hop headers: meaningful for one connection only, never forwarded. `Proxy-Connection`
/// is not standard, but RFC 9110 section 7.6.1 names it and every proxy drops it.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What the bridge always removes from a request and sets itself (or never passes on).
const BRIDGE_SET: [&str; 7] = [
    "authorization",
    "host",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

/// The bridge's session cookie names (plain and `__Host-`).
const SESSION_COOKIES: [&str; 2] = ["lb_session", "__Host-lb_session"];

/// A header-name byte as backends that fold names read it: lowercase, `_` as `-`.
fn fold_byte(b: u8) -> u8 {
    if b == b'_' {
        b'-'
    } else {
        b.to_ascii_lowercase()
    }
}

/// Whether two header names are one name to a backend that ignores case and reads `_` as `-`.
/// Compares in place: no allocation on the request path.
pub fn same_when_folded(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .all(|(x, y)| fold_byte(x) == fold_byte(y))
}

/// The header names no caller may send to an upstream under any spelling: the ones the bridge
/// sets or strips, folded once at startup (lowercase, `-` for `_`).
pub struct GuardedHeaders {
    names: Box<[HeaderName]>,
}

impl GuardedHeaders {
    /// The bridge's own ([`BRIDGE_SET`]) and `configured` (claim headers, the outgoing token's
    /// header, `strip_headers`, the gateway header), in any case or spelling.
    pub fn new<'a>(
        configured: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, InvalidHeaderName> {
        let mut names: Vec<HeaderName> = Vec::new();
        for name in BRIDGE_SET.into_iter().chain(configured) {
            let folded: Vec<u8> = name.bytes().map(fold_byte).collect();
            let folded = HeaderName::from_bytes(&folded)?;
            if !names.contains(&folded) {
                names.push(folded);
            }
        }
        Ok(Self {
            names: names.into(),
        })
    }

    /// Removes every header whose name folds to a guarded one.
    fn remove_from(&self, headers: &mut HeaderMap) {
        for name in self.names.iter() {
            headers.remove(name);
        }
        // Left: only names with a `_` can still fold to a guarded one (names arrive lowercase).
        // Rare, so the common request only walks its names once and allocates nothing.
        let smuggled: Vec<HeaderName> = headers
            .keys()
            .filter(|n| {
                n.as_str().contains('_')
                    && self
                        .names
                        .iter()
                        .any(|g| same_when_folded(n.as_str(), g.as_str()))
            })
            .cloned()
            .collect();
        for name in smuggled {
            headers.remove(name);
        }
    }
}

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
    guarded: &GuardedHeaders,
    claim_headers: &[(HeaderName, String)],
    claims: Option<&Claims>,
    token: Option<(&HeaderName, HeaderValue)>,
    forwarding: &Forwarding<'_>,
) -> HeaderMap {
    let mut out = incoming;
    drop_hop_by_hop(&mut out);
    without_session_cookie(&mut out);
    guarded.remove_from(&mut out);
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

/// The upstream's response headers for the caller: without hop-by-hop headers and without a
/// `Set-Cookie` for the bridge's session cookie; with `nosniff` when the upstream sent no
/// `X-Content-Type-Options` (the rest stays the upstream's: its own CSP, framing and so on).
pub fn returned(mut headers: HeaderMap) -> HeaderMap {
    drop_hop_by_hop(&mut headers);
    without_session_set_cookie(&mut headers);
    if !headers.contains_key(X_CONTENT_TYPE_OPTIONS) {
        headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    }
    headers
}

/// Whether a `Set-Cookie` value sets (or clears) one of the bridge's session cookies.
fn sets_session_cookie(value: &HeaderValue) -> bool {
    let pair = value
        .as_bytes()
        .split(|b| *b == b';')
        .next()
        .unwrap_or_default();
    let name = pair
        .split(|b| *b == b'=')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    SESSION_COOKIES.iter().any(|c| c.as_bytes() == name)
}

/// Drops the upstream's `Set-Cookie`s for the bridge's session (other cookies pass). Only an
/// answer that has one pays for rebuilding the list.
fn without_session_set_cookie(headers: &mut HeaderMap) {
    if !headers.get_all(SET_COOKIE).iter().any(sets_session_cookie) {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(SET_COOKIE)
        .iter()
        .filter(|v| !sets_session_cookie(v))
        .cloned()
        .collect();
    headers.remove(SET_COOKIE);
    for value in kept {
        headers.append(SET_COOKIE, value);
    }
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
        let guarded = match GuardedHeaders::new([
            "x-internal",
            "X-Auth-User",
            "x-auth-groups",
            "x-auth-email",
        ]) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        };
        let out = outgoing(
            incoming,
            &guarded,
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

    fn guarded(names: &[&str]) -> GuardedHeaders {
        match GuardedHeaders::new(names.iter().copied()) {
            Ok(g) => g,
            Err(e) => panic!("{e}"),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn forwarding() -> Forwarding<'static> {
        Forwarding {
            peer: None,
            proto: "https",
            host: None,
        }
    }

    #[test]
    fn proxy_connection_is_hop_by_hop_both_ways() {
        let out = outgoing(
            map(&[("proxy-connection", "keep-alive"), ("accept", "*/*")]),
            &guarded(&[]),
            &[],
            None,
            None,
            &forwarding(),
        );
        assert!(!out.contains_key("proxy-connection"));
        assert!(out.contains_key("accept"));
        let back = returned(map(&[("proxy-connection", "keep-alive"), ("x-a", "1")]));
        assert!(!back.contains_key("proxy-connection"));
        assert!(back.contains_key("x-a"));
    }

    #[test]
    fn headers_the_bridge_sets_or_strips_are_removed_under_every_folded_spelling() {
        let guarded = guarded(&["X-Auth-User", "X_Auth_Name", "x-internal", "X-Custom-Tkn"]);
        let out = outgoing(
            map(&[
                ("x_auth_user", "mallory"),
                ("x-auth_user", "mallory"),
                ("x-auth-name", "mallory"),
                ("x_auth_name", "mallory"),
                ("x_internal", "secret"),
                ("x_custom_tkn", "forged"),
                ("x_forwarded_for", "6.6.6.6"),
                ("x_real_ip", "6.6.6.6"),
                ("x_other", "kept"),
            ]),
            &guarded,
            &[],
            None,
            None,
            &forwarding(),
        );
        let mut names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, vec!["x-forwarded-proto", "x_other"]);
        assert!(same_when_folded("X_Auth-USER", "x-auth_user"));
        assert!(!same_when_folded("x-auth-user", "x-auth-users"));
        assert!(!same_when_folded("x.auth-user", "x-auth-user"));
    }

    #[test]
    fn an_upstream_answer_gets_nosniff_and_never_sets_the_bridge_s_session_cookie() {
        let back = returned(map(&[
            ("set-cookie", "lb_session=forged; Path=/"),
            ("set-cookie", " __Host-lb_session=; Max-Age=0"),
            ("set-cookie", "theme=dark; Path=/"),
            ("set-cookie", "lb_session_other=1"),
            ("content-security-policy", "default-src 'self'"),
        ]));
        let cookies: Vec<&str> = back
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(cookies, vec!["theme=dark; Path=/", "lb_session_other=1"]);
        assert_eq!(back["x-content-type-options"], "nosniff");
        assert_eq!(back["content-security-policy"], "default-src 'self'");
        assert!(!back.contains_key("x-frame-options"), "no policy forced");
        // An upstream's own choice stays.
        let back = returned(map(&[("x-content-type-options", "nosniff")]));
        assert_eq!(back.get_all("x-content-type-options").iter().count(), 1);
    }
}
