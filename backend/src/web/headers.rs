//! Headers every answer carries: no sniffing, no referrer, no framing, the SPA's CSP, and
//! HSTS when served over https.

use axum::{
    Router,
    http::{HeaderValue, header},
};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

/// What the layers add, fixed at startup.
#[derive(Clone)]
pub struct SecurityHeaders {
    pub csp: HeaderValue,
    pub hsts: bool,
}

impl SecurityHeaders {
    /// `router` with the headers set on every answer (replacing any a handler set). tower-http
    /// layers: no boxed future or service per request.
    pub fn apply<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        let set = SetResponseHeaderLayer::overriding;
        let router = router.layer(
            ServiceBuilder::new()
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
                .layer(set(header::CONTENT_SECURITY_POLICY, self.csp)),
        );
        if self.hsts {
            router.layer(set(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            ))
        } else {
            router
        }
    }
}
