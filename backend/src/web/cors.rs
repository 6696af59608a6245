//! CORS for SPAs served from another origin (`[cors] allowed_origins`): off unless origins are
//! listed; then exactly those origins, with credentials, and their preflights answered by the
//! bridge.
//!
//! tower-http's `CorsLayer` does the CORS work, but it answers every `OPTIONS` as a preflight
//! and gives any origin `Access-Control-Allow-Credentials`, `-Methods` and `-Headers`. So a
//! gate ([`CorsGate`]) lets only a request from an allowed origin through it, and an `OPTIONS`
//! only when it is a preflight (`Origin` and `Access-Control-Request-Method`). Everything else
//! is an ordinary request: no CORS header at all, and an `OPTIONS` authenticated and proxied
//! like any other method. A preflight answer gets the bridge's security headers (it is written
//! by the bridge, outside the shell that sets them on the bridge's routes).

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, Method, Request, Response, header},
};
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, Cors, CorsLayer};

use super::headers::SecurityHeaders;
use crate::settings::CorsSettings;

/// What an answer's CORS headers depend on, for caches: the same on every answer that passes
/// the gate, whether or not it got CORS headers (tower-http's default list).
const VARY: HeaderValue = HeaderValue::from_static(
    "origin, access-control-request-method, access-control-request-headers",
);

/// The origins and headers the gate needs, shared by every clone (one `Arc` per request).
pub struct Policy {
    origins: Arc<[HeaderValue]>,
    headers: SecurityHeaders,
}

/// The layer, when origins are configured (checked at startup: exact origins, no wildcard).
#[derive(Clone)]
pub struct CorsGateLayer {
    cors: CorsLayer,
    policy: Arc<Policy>,
}

/// The gate, when `[cors]` lists origins; `headers` go on the preflight answers.
pub fn layer(settings: &CorsSettings, headers: SecurityHeaders) -> Option<CorsGateLayer> {
    let origins: Arc<[HeaderValue]> = settings
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    let allowed = origins.clone();
    let cors = CorsLayer::new()
        // The gate already checked the origin; the list is checked again here all the same.
        // A predicate over a shared list: cloning the layer per request copies no list.
        .allow_origin(AllowOrigin::predicate(move |origin, _| {
            allowed.contains(origin)
        }))
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
            // RFC 9449: the proof that goes with a bound token.
            HeaderName::from_static("dpop"),
        ])
        // What a DPoP client reads off an answer: the challenge (which error, which `algs`) and
        // the server nonce; neither is a CORS-safelisted response header.
        .expose_headers([
            header::WWW_AUTHENTICATE,
            HeaderName::from_static(crate::dpop::NONCE_HEADER),
        ])
        .max_age(Duration::from_secs(600))
        // Set by the gate on every answer instead (tower-http builds its value per request).
        .vary([]);
    Some(CorsGateLayer {
        cors,
        policy: Arc::new(Policy { origins, headers }),
    })
}

impl<S> Layer<S> for CorsGateLayer {
    type Service = CorsGate<S>;

    fn layer(&self, inner: S) -> CorsGate<S> {
        CorsGate {
            cors: self.cors.layer(inner),
            policy: self.policy.clone(),
        }
    }
}

/// Sends a request through tower-http's CORS only when it comes from an allowed origin (and,
/// for an `OPTIONS`, is a preflight); everything else goes straight to the inner service.
#[derive(Clone)]
pub struct CorsGate<S> {
    cors: Cors<S>,
    policy: Arc<Policy>,
}

/// How a request passes the gate.
enum Way {
    /// Not a CORS request of an allowed origin: no CORS headers.
    Plain,
    /// An allowed origin's request: CORS headers added to the inner answer.
    Cors,
    /// An allowed origin's preflight: answered here, with the security headers.
    Preflight,
}

impl<S> CorsGate<S> {
    fn way<B>(&self, request: &Request<B>) -> Way {
        let headers = request.headers();
        let allowed = headers
            .get(header::ORIGIN)
            .is_some_and(|o| self.policy.origins.contains(o));
        if !allowed {
            Way::Plain
        } else if request.method() != Method::OPTIONS {
            Way::Cors
        } else if headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
            Way::Preflight
        } else {
            // An allowed origin's actual `OPTIONS` request (its preflight would have been
            // refused: OPTIONS is not an allowed method): an ordinary request.
            Way::Plain
        }
    }
}

impl<S> Service<Request<Body>> for CorsGate<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = CorsGateFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.cors.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let way = self.way(&request);
        let policy = self.policy.clone();
        match way {
            Way::Plain => CorsGateFuture::Plain {
                future: self.cors.get_mut().call(request),
                policy,
            },
            Way::Cors => CorsGateFuture::Cors {
                future: self.cors.call(request),
                policy,
                preflight: false,
            },
            Way::Preflight => CorsGateFuture::Cors {
                future: self.cors.call(request),
                policy,
                preflight: true,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`CorsGate`]: `Vary` on every answer, the security headers on preflights.
    #[project = CorsGateProj]
    pub enum CorsGateFuture<F> {
        Plain { #[pin] future: F, policy: Arc<Policy> },
        Cors {
            #[pin] future: tower_http::cors::ResponseFuture<F>,
            policy: Arc<Policy>,
            preflight: bool,
        },
    }
}

impl<F, E> std::future::Future for CorsGateFuture<F>
where
    F: std::future::Future<Output = Result<Response<Body>, E>>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (result, policy, preflight) = match self.project() {
            CorsGateProj::Plain { future, policy } => {
                (std::task::ready!(future.poll(cx)), policy, false)
            }
            CorsGateProj::Cors {
                future,
                policy,
                preflight,
            } => (std::task::ready!(future.poll(cx)), policy, *preflight),
        };
        Poll::Ready(result.map(|mut response| {
            let headers = response.headers_mut();
            headers.append(header::VARY, VARY);
            if preflight {
                policy.headers.apply(headers);
            }
            response
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use axum::http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    /// The answer of the service behind the gate: a teapot, so a passed-on request shows.
    type Answer = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn teapot(_: Request<Body>) -> Answer {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::IM_A_TEAPOT;
        std::future::ready(Ok(r))
    }

    type Teapot = tower::util::ServiceFn<fn(Request<Body>) -> Answer>;

    fn gate() -> CorsGate<Teapot> {
        let settings = CorsSettings {
            allowed_origins: vec!["https://ui.example.org/".into()],
        };
        let headers = SecurityHeaders {
            csp: HeaderValue::from_static("default-src 'self'"),
            hsts: false,
        };
        let Some(layer) = layer(&settings, headers) else {
            panic!("origins are configured")
        };
        layer.layer(tower::service_fn(teapot as fn(_) -> _))
    }

    async fn call(method: Method, pairs: &[(&str, &str)]) -> Response<Body> {
        let mut request = Request::builder().method(method).uri("/up/x");
        for (k, v) in pairs {
            request = request.header(*k, *v);
        }
        let Ok(response) = gate().oneshot(request.body(Body::empty()).unwrap()).await;
        response
    }

    fn cors_names(r: &Response<Body>) -> Vec<&str> {
        r.headers()
            .keys()
            .map(HeaderName::as_str)
            .filter(|k| k.starts_with("access-control-"))
            .collect()
    }

    const ALLOWED: (&str, &str) = ("origin", "https://ui.example.org");
    const FOREIGN: (&str, &str) = ("origin", "https://evil.example.org");
    const ACRM: (&str, &str) = ("access-control-request-method", "POST");

    #[tokio::test]
    async fn only_an_allowed_origin_s_preflight_is_answered_here() {
        let r = call(Method::OPTIONS, &[ALLOWED, ACRM]).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://ui.example.org"
        );
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
        for pairs in [&[FOREIGN, ACRM][..], &[ACRM], &[ALLOWED], &[]] {
            let r = call(Method::OPTIONS, pairs).await;
            assert_eq!(r.status(), StatusCode::IM_A_TEAPOT, "{pairs:?}: passed on");
            assert!(cors_names(&r).is_empty(), "{pairs:?}");
        }
    }

    #[tokio::test]
    async fn a_foreign_origin_gets_no_cors_header_and_an_allowed_one_its_own() {
        let r = call(Method::GET, &[FOREIGN]).await;
        assert!(cors_names(&r).is_empty());
        assert!(r.headers().contains_key("vary"));
        let r = call(Method::GET, &[ALLOWED]).await;
        assert_eq!(r.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(
            r.headers()["access-control-allow-origin"],
            "https://ui.example.org"
        );
        assert_eq!(r.headers()["access-control-allow-credentials"], "true");
        assert!(
            !r.headers().contains_key("x-frame-options"),
            "the inner answer's own"
        );
    }
}
