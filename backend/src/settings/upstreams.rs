//! `[[upstreams]]`: REST APIs reached through the bridge under a path prefix, and their checks.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::authority::profile::TokenProfileSettings;

/// One `[[upstreams]]` entry: calls under `prefix` are authenticated like `/api`, then sent
/// on to `url` with the token that API accepts.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct UpstreamSettings {
    /// A short name for logs (default: the prefix).
    #[serde(default)]
    pub name: Option<String>,
    /// Path prefix, starting and ending with `/` (e.g. `/pi/`); may not overlap the bridge's own
    /// paths (`/auth/`, `/api/`, `/oauth/`, `/.well-known/`, `/healthz`, `/readyz`).
    pub prefix: String,
    /// Base URL of the API.
    pub url: Url,
    /// Drop the prefix from the forwarded path (`/pi/token/` → `<url>/token/`).
    #[serde(default = "yes")]
    pub strip_prefix: bool,
    /// The token the upstream gets: `forward` (the validated incoming one), `profile:<name>`
    /// (minted from a `[[token_profiles]]` entry for the caller, kept per caller token while
    /// more than a third of its life is left) or `none`.
    #[serde(default = "default_upstream_token")]
    pub token: String,
    /// Header of the outgoing token (default: the profile's, else `authorization`).
    #[serde(default)]
    pub header: Option<String>,
    /// Scheme before the outgoing token, empty for the bare token (default: the profile's,
    /// else `Bearer`).
    #[serde(default)]
    pub scheme: Option<String>,
    /// Claims sent as headers: header name → claim path (`X-Auth-User = "preferred_username"`);
    /// lists are joined by commas. Client-sent copies of these headers are always removed,
    /// under every spelling (case, `_` for `-`).
    #[serde(default)]
    pub forward_claims: std::collections::BTreeMap<String, String>,
    /// More request headers to remove before forwarding (under every spelling).
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// How long to wait for the upstream's response headers (then 504); the body then streams
    /// as long as it takes.
    #[serde(default = "default_upstream_timeout")]
    pub timeout_secs: u64,
    /// Largest request body forwarded (larger: 413).
    #[serde(default = "default_upstream_body")]
    pub max_body_bytes: usize,
    /// A page of the SPA that works with this API (`privacyidea`), announced at
    /// `GET /auth/upstreams`.
    #[serde(default)]
    pub ui: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_upstream_token() -> String {
    "forward".into()
}
fn default_upstream_timeout() -> u64 {
    30
}
fn default_upstream_body() -> usize {
    10 * 1024 * 1024
}

/// Prefixes that clash with nothing, known token profiles, valid header names.
pub(super) fn check(
    upstreams: &[UpstreamSettings],
    token_profiles: &[TokenProfileSettings],
    problems: &mut Vec<String>,
) {
    const RESERVED: [&str; 6] = [
        "/auth/",
        "/api/",
        "/oauth/",
        "/.well-known/",
        "/healthz",
        "/readyz",
    ];
    let mut seen = std::collections::HashSet::new();
    for u in upstreams {
        let at = format!("upstreams[{}]", u.name.as_deref().unwrap_or(&u.prefix));
        let prefix_ok = u.prefix.len() > 2
            && u.prefix.starts_with('/')
            && u.prefix.ends_with('/')
            && !u.prefix.contains("//")
            && u.prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-_.~".contains(c));
        if !prefix_ok {
            problems.push(format!(
                "{at}.prefix: {:?} must start and end with '/' (e.g. \"/pi/\")",
                u.prefix
            ));
        } else if RESERVED
            .iter()
            .any(|r| u.prefix.starts_with(r) || r.starts_with(&u.prefix))
        {
            problems.push(format!(
                "{at}.prefix: {:?} overlaps the bridge's own paths",
                u.prefix
            ));
        }
        if !seen.insert(u.prefix.clone()) {
            problems.push(format!("{at}.prefix: {:?} is configured twice", u.prefix));
        }
        if !matches!(u.url.scheme(), "http" | "https") {
            problems.push(format!("{at}.url: must be an http(s) URL"));
        }
        match u.token.as_str() {
            "forward" | "none" => {}
            t => match t.strip_prefix("profile:") {
                Some(name) if token_profiles.iter().any(|p| p.name == name) => {}
                Some(name) => problems.push(format!(
                    "{at}.token: {name:?} is not the name of a [[token_profiles]] entry"
                )),
                None => problems.push(format!(
                    "{at}.token: {t:?} is not \"forward\", \"profile:<name>\" or \"none\""
                )),
            },
        }
        let headers = u
            .header
            .iter()
            .chain(u.forward_claims.keys())
            .chain(u.strip_headers.iter());
        for h in headers {
            if axum::http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                problems.push(format!("{at}: {h:?} is not a valid header name"));
            }
        }
        if u.timeout_secs == 0 {
            problems.push(format!("{at}.timeout_secs: must be positive"));
        }
    }
}
