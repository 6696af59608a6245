//! Headers every answer carries: no sniffing, no referrer, no framing, the SPA's CSP, and
//! HSTS when served over https.

use axum::{
    Router,
    http::{HeaderValue, header},
};
use tower::ServiceBuilder;
use tower_http::{limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer};

/// What the layers add, fixed at startup.
#[derive(Clone)]
pub struct SecurityHeaders {
    pub csp: HeaderValue,
    pub hsts: bool,
}

impl SecurityHeaders {
    /// `inner` as one service with the headers set on every answer (replacing any a handler
    /// set) and request bodies limited to `body_limit` bytes. Wrapped once around the whole
    /// router, not per route: axum's `Router::layer` boxes each route's stack and clones it,
    /// box by box, on every request.
    pub fn around(self, inner: Router, body_limit: usize) -> Router {
        let set = SetResponseHeaderLayer::overriding;
        let hsts = self.hsts.then(|| {
            set(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            )
        });
        let service = ServiceBuilder::new()
            .layer(set(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(set(
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ))
            .layer(set(
                header::X_FRAME_OPTIONS,
                HeaderValue::from_static("DENY"),
            ))
            .layer(set(header::CONTENT_SECURITY_POLICY, self.csp))
            .option_layer(hsts)
            .layer(RequestBodyLimitLayer::new(body_limit))
            .service(inner);
        Router::new().fallback_service(service)
    }
}
