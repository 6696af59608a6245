//! CORS for SPAs served from another origin (`[cors] allowed_origins`): off unless origins are
//! listed; then exactly those origins, with credentials, and preflights answered by the bridge.
//! Any other origin gets no CORS headers at all, so browsers keep its pages out.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::settings::CorsSettings;

/// The layer, when origins are configured (checked at startup: exact origins, no wildcard).
pub fn layer(settings: &CorsSettings) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = settings
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static(shared::session::CSRF_HEADER),
            ])
            .max_age(Duration::from_secs(600)),
    )
}
