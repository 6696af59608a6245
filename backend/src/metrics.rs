//! Prometheus metrics: the names the bridge records, the one process-wide recorder, the
//! request counters the shell records (`crate::web::shell`), and the `/metrics` router served on its own listener.
//!
//! The `metrics` facade has one global recorder per process, and tests run many bridges in
//! one process: so the recorder is installed once ([`install`]) and every bridge with
//! `[metrics]` shares its handle. Without `[metrics]` nothing is installed and every
//! `counter!` below is a no-op. This module sits low: it knows axum and the metrics crates,
//! never the bridge's own modules, which call the small functions here with fixed label
//! values (a label is never a path, a user or a token: cardinality and privacy).

use std::{sync::OnceLock, time::Duration};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Requests answered, by route class and status class.
pub const HTTP_REQUESTS: &str = "login_bridge_http_requests_total";
/// Time until the response headers, by route class.
pub const HTTP_REQUEST_DURATION: &str = "login_bridge_http_request_duration_seconds";
/// Token verifications by the trust engine, by outcome and reason.
pub const TOKEN_VERIFICATIONS: &str = "login_bridge_token_verifications_total";
/// Fetches of a remote key set, by outcome.
pub const JWKS_FETCHES: &str = "login_bridge_jwks_fetches_total";
/// Provider refreshes actually started (one per refresh token, whatever the callers).
pub const REFRESHES_STARTED: &str = "login_bridge_refreshes_started_total";
/// Callers that shared a refresh another caller started.
pub const REFRESHES_COALESCED: &str = "login_bridge_refreshes_coalesced_total";
/// Refreshes that gave no new tokens, by reason (`refused`, `unavailable`).
pub const REFRESHES_FAILED: &str = "login_bridge_refreshes_failed_total";
/// Session store failures that became an error answer, by source (`session`, `index`).
pub const STORE_ERRORS: &str = "login_bridge_store_errors_total";
/// Sign-ins that created a session.
pub const SESSIONS_CREATED: &str = "login_bridge_sessions_created_total";
/// Signed-in sessions that ended, by reason.
pub const SESSIONS_ENDED: &str = "login_bridge_sessions_ended_total";
pub const LOCAL_SIGN_INS: &str = "login_bridge_local_sign_ins_total";
/// Requests that carried the cookie of a session that has ended (logout, back-channel
/// logout, idle or absolute timeout): an ordinary event, counted rather than logged.
pub const ENDED_SESSION_COOKIES: &str = "login_bridge_ended_session_cookies_total";
/// Configuration reloads (SIGHUP), by result (`applied`, `refused`).
pub const CONFIG_RELOADS: &str = "login_bridge_config_reloads_total";
/// DPoP replay records the bridge holds in memory (SQLite store; the shared stores hold none),
/// as of the last record added or expired.
pub const DPOP_REPLAY_RECORDS_HELD: &str = "login_bridge_dpop_replay_records_held";

/// Buckets of [`HTTP_REQUEST_DURATION`]: from a cached-token API call (well under a
/// millisecond) to a slow upstream.
const DURATION_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// How often histogram samples are folded into buckets between scrapes: without it they
/// pile up in memory when nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(1);

/// Why the recorder could not be installed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetricsError {
    #[error("metrics recorder: {0}")]
    Build(String),
    #[error("another metrics recorder is already installed in this process")]
    AlreadyInstalled,
}

static RECORDER: OnceLock<Result<PrometheusHandle, MetricsError>> = OnceLock::new();

/// Installs the Prometheus recorder as the process's global recorder, once; later calls get
/// the same handle. Also starts the histogram upkeep of the calling runtime.
pub fn install() -> Result<PrometheusHandle, MetricsError> {
    let handle = RECORDER.get_or_init(build_and_install).clone()?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP_EVERY).await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

fn build_and_install() -> Result<PrometheusHandle, MetricsError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_REQUEST_DURATION.into()),
            &DURATION_BUCKETS,
        )
        .map_err(|e| MetricsError::Build(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    ::metrics::set_global_recorder(recorder).map_err(|_| MetricsError::AlreadyInstalled)?;
    describe();
    Ok(handle)
}

/// The `# HELP` lines.
fn describe() {
    use ::metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        HTTP_REQUESTS,
        "Requests answered, by route class and status class"
    );
    describe_histogram!(
        HTTP_REQUEST_DURATION,
        Unit::Seconds,
        "Time until the response headers, by route class"
    );
    describe_counter!(
        TOKEN_VERIFICATIONS,
        "Token verifications by outcome and reason"
    );
    describe_counter!(JWKS_FETCHES, "Fetches of remote key sets by outcome");
    describe_counter!(REFRESHES_STARTED, "Provider refreshes started");
    describe_counter!(
        REFRESHES_COALESCED,
        "Callers that shared a refresh already under way"
    );
    describe_counter!(REFRESHES_FAILED, "Refreshes without new tokens, by reason");
    describe_counter!(
        STORE_ERRORS,
        "Session store failures answered with an error"
    );
    describe_counter!(SESSIONS_CREATED, "Sessions created by a sign-in");
    describe_counter!(SESSIONS_ENDED, "Signed-in sessions ended, by reason");
    describe_counter!(
        LOCAL_SIGN_INS,
        "Local-account sign-in attempts, by outcome (signed_in, failed, limited)"
    );
    describe_counter!(
        CONFIG_RELOADS,
        "Configuration reloads by result (applied, refused)"
    );
    ::metrics::describe_gauge!(
        DPOP_REPLAY_RECORDS_HELD,
        "DPoP replay records held in memory (SQLite store)"
    );
    describe_counter!(
        ENDED_SESSION_COOKIES,
        "Requests with the cookie of a session that has ended (logout, timeout)"
    );
}

/// The router of the metrics listener: `GET /metrics` and nothing else.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .with_state(handle)
}

async fn render(State(handle): State<PrometheusHandle>) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

/// The DPoP replay records held in memory (SQLite store): a handle the holder sets as the
/// number changes (an atomic store; the registry is looked up once).
pub fn dpop_replay_records_held() -> ::metrics::Gauge {
    ::metrics::gauge!(DPOP_REPLAY_RECORDS_HELD)
}

/// A token verification: `valid` with `cached`/`verified`, or `invalid` with a short reason.
///
/// Every verification passes here, so each known reason is spelled as a literal: the
/// `counter!` macro then keeps the key in a `static` instead of building a label vector per
/// call. An unknown reason still counts, at that cost.
pub fn token_verification(valid: bool, reason: &'static str) {
    // The two outcomes of every API call with a good token are resolved once, after the
    // recorder is installed (before that, and without `[metrics]`, counting is a no-op).
    static VALID: OnceLock<[::metrics::Counter; 2]> = OnceLock::new();
    if valid && matches!(RECORDER.get(), Some(Ok(_))) {
        let [cached, verified] = VALID.get_or_init(|| {
            ["cached", "verified"].map(
                |r| ::metrics::counter!(TOKEN_VERIFICATIONS, "outcome" => "valid", "reason" => r),
            )
        });
        match reason {
            "cached" => return cached.increment(1),
            "verified" => return verified.increment(1),
            _ => {}
        }
    }
    macro_rules! count {
        ($outcome:literal: $($known:literal),*) => {
            match reason {
                $($known => ::metrics::counter!(
                    TOKEN_VERIFICATIONS, "outcome" => $outcome, "reason" => $known
                ),)*
                other => ::metrics::counter!(
                    TOKEN_VERIFICATIONS, "outcome" => $outcome, "reason" => other
                ),
            }
            .increment(1)
        };
    }
    if valid {
        count!("valid": "cached", "verified")
    } else {
        count!("invalid": "malformed", "signature", "expired", "unknown_key", "audience",
            "issuer", "claims", "algorithm", "policy", "too_large", "forbidden_header",
            "not_yet_valid", "azp", "type", "nonce")
    }
}

/// A configuration reload: applied, or refused (the running configuration stayed).
pub fn config_reload(applied: bool) {
    let result = if applied { "applied" } else { "refused" };
    ::metrics::counter!(CONFIG_RELOADS, "result" => result).increment(1);
}

pub fn jwks_fetch(ok: bool) {
    if ok {
        ::metrics::counter!(JWKS_FETCHES, "outcome" => "ok").increment(1);
    } else {
        ::metrics::counter!(JWKS_FETCHES, "outcome" => "error").increment(1);
    }
}

pub fn refresh_started() {
    ::metrics::counter!(REFRESHES_STARTED).increment(1);
}

pub fn refresh_coalesced() {
    ::metrics::counter!(REFRESHES_COALESCED).increment(1);
}

/// `reason`: `refused` (the session ends) or `unavailable` (tried again later).
pub fn refresh_failed(reason: &'static str) {
    ::metrics::counter!(REFRESHES_FAILED, "reason" => reason).increment(1);
}

/// `source`: `session` (the session data) or `index` (the session index).
pub fn store_error(source: &'static str) {
    ::metrics::counter!(STORE_ERRORS, "source" => source).increment(1);
}

pub fn session_created() {
    ::metrics::counter!(SESSIONS_CREATED).increment(1);
}

/// `reason`: `logout`, `replaced`, `refresh_refused`, `gateway_expired`, `absolute_timeout`,
/// `account_changed`.
pub fn session_ended(reason: &'static str) {
    ::metrics::counter!(SESSIONS_ENDED, "reason" => reason).increment(1);
}

/// A local account's sign-in attempt: `signed_in`, `failed` (wrong username or password) or
/// `limited` (refused by the attempt limits before any password was checked).
pub fn local_sign_in(outcome: &'static str) {
    ::metrics::counter!(LOCAL_SIGN_INS, "outcome" => outcome).increment(1);
}

/// A request carried the cookie of a session the store no longer holds.
pub fn ended_session_cookie() {
    ::metrics::counter!(ENDED_SESSION_COOKIES).increment(1);
}

/// What a request was for: a small fixed set, never the path itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteClass {
    /// `/auth/*`: sign-in, callback, session, logout.
    Auth,
    /// `/api/*`: the bridge's own API.
    Api,
    /// An `[[upstreams]]` prefix.
    Upstream,
    /// The authority's endpoints: `/oauth/*`, `/.well-known/*`.
    Oauth,
    /// `/healthz`, `/readyz`.
    Health,
    /// Everything else: the SPA's pages and assets.
    Page,
}

impl RouteClass {
    const ALL: [RouteClass; 6] = [
        RouteClass::Auth,
        RouteClass::Api,
        RouteClass::Upstream,
        RouteClass::Oauth,
        RouteClass::Health,
        RouteClass::Page,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteClass::Auth => "auth",
            RouteClass::Api => "api",
            RouteClass::Upstream => "upstream",
            RouteClass::Oauth => "oauth",
            RouteClass::Health => "health",
            RouteClass::Page => "page",
        }
    }
}

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The request counters and latency histograms, resolved once per bridge so a request pays
/// an atomic increment, not a registry lookup.
pub struct RequestMetrics {
    upstream_prefixes: Vec<String>,
    requests: [[::metrics::Counter; 5]; 6],
    durations: [::metrics::Histogram; 6],
}

impl RequestMetrics {
    /// `upstream_prefixes`: the `[[upstreams]]` prefixes (`/pi/`), classed `upstream`.
    pub fn new(upstream_prefixes: Vec<String>) -> Self {
        let requests = RouteClass::ALL.map(|class| {
            STATUS_CLASSES.map(|status| {
                ::metrics::counter!(HTTP_REQUESTS, "class" => class.as_str(), "status" => status)
            })
        });
        let durations = RouteClass::ALL
            .map(|class| ::metrics::histogram!(HTTP_REQUEST_DURATION, "class" => class.as_str()));
        Self {
            upstream_prefixes,
            requests,
            durations,
        }
    }

    pub fn classify(&self, path: &str) -> RouteClass {
        let under = |prefix: &str| {
            path.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        if under("/auth") {
            RouteClass::Auth
        } else if under("/api") {
            RouteClass::Api
        } else if under("/oauth") || under("/.well-known") {
            RouteClass::Oauth
        } else if path == "/healthz" || path == "/readyz" {
            RouteClass::Health
        } else if self
            .upstream_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_str()) || path == p.trim_end_matches('/'))
        {
            RouteClass::Upstream
        } else {
            RouteClass::Page
        }
    }

    /// Counts one answer of `class` (see [`crate::web::shell`]).
    pub fn record(&self, class: RouteClass, status: StatusCode, elapsed: Duration) {
        // `ALL` lists the classes in declaration order, so `class as usize` is in range; the
        // status class is clamped to 1xx..5xx.
        let status = usize::from((status.as_u16() / 100).clamp(1, 5)) - 1;
        self.requests[class as usize][status].increment(1);
        self.durations[class as usize].record(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_fall_into_a_small_fixed_set_of_classes() {
        let m = RequestMetrics::new(vec!["/pi/".into()]);
        let cases = [
            ("/auth/session", RouteClass::Auth),
            ("/authority", RouteClass::Page),
            ("/api/me", RouteClass::Api),
            ("/api", RouteClass::Api),
            ("/apiary", RouteClass::Page),
            ("/oauth/token", RouteClass::Oauth),
            ("/.well-known/jwks.json", RouteClass::Oauth),
            ("/healthz", RouteClass::Health),
            ("/pi/token/", RouteClass::Upstream),
            ("/pi", RouteClass::Upstream),
            ("/pine", RouteClass::Page),
            ("/", RouteClass::Page),
            ("/metrics", RouteClass::Page),
        ];
        for (path, class) in cases {
            assert_eq!(m.classify(path), class, "{path}");
        }
    }
}
