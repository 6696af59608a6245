//! Headers every answer carries: no sniffing, no referrer, no framing, a CSP, and HSTS when
//! served over https. The CSP is the SPA's for HTML documents (the SPA's pages, the bridge's
//! own small pages); anything else (JSON, the SPA's files) gets `default-src 'none';
//! frame-ancestors 'none'`, the OWASP REST cheat sheet's policy for API answers: nothing a
//! browser might render from it may load or frame anything, and the answer stays small.

use axum::{
    Router,
    http::{HeaderValue, Response, header},
};
use tower::ServiceBuilder;
use tower_http::{
    limit::RequestBodyLimitLayer,
    set_header::{MakeHeaderValue, SetResponseHeaderLayer},
};

/// The CSP of every answer that is not an HTML document.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Chooses the CSP by the answer's content type.
#[derive(Clone)]
struct CspFor {
    document: HeaderValue,
}

impl<B> MakeHeaderValue<Response<B>> for CspFor {
    fn make_header_value(&mut self, response: &Response<B>) -> Option<HeaderValue> {
        let html = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
        Some(if html {
            self.document.clone()
        } else {
            HeaderValue::from_static(API_CSP)
        })
    }
}

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
    /// `track`, when given, counts every answer outermost (request metrics).
    pub fn around(
        self,
        inner: Router,
        body_limit: usize,
        track: Option<crate::metrics::TrackRequestsLayer>,
    ) -> Router {
        let set = SetResponseHeaderLayer::overriding;
        let hsts = self.hsts.then(|| {
            set(
                header::STRICT_TRANSPORT_SECURITY,
                HeaderValue::from_static("max-age=31536000"),
            )
        });
        let service = ServiceBuilder::new()
            .option_layer(track)
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
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                CspFor { document: self.csp },
            ))
            .option_layer(hsts)
            .layer(RequestBodyLimitLayer::new(body_limit))
            .service(inner);
        Router::new().fallback_service(service)
    }
}
