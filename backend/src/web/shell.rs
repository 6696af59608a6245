//! The one service around the whole router, run on every request: the client's address for
//! the handlers, the request body limit, the security headers of every answer, and the request
//! metrics. One plain tower service and one future instead of a stack of layers (each with its
//! own clone, future and boxed body per request) inside a router of their own (a second
//! routing, a boxed service cloned and a boxed future per request): on a cached-token API call
//! the stack was a good part of the bridge's own work (bench/hot-path.sh (a)).
//!
//! `axum::serve` gets the shell itself as its make-service ([`Shell`] is one per connection,
//! with that connection's peer address), so no router wraps it.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::{Body, HttpBody as _},
    extract::ConnectInfo,
    http::{Request, Response, header},
    serve::IncomingStream,
};
use tokio::net::TcpListener;

use crate::metrics::{RequestMetrics, RouteClass};

use super::headers::SecurityHeaders;

/// What the shell adds; each part is optional (see [`Shell::new`]).
pub struct ShellParts {
    /// Request counters and latency; `None` without `[metrics]`.
    pub track: Option<RequestMetrics>,
    /// The security headers; `None` where an inner shell already sets them.
    pub headers: Option<SecurityHeaders>,
    /// Request bodies larger than this are refused (413) or cut short; `None`: no limit here.
    pub body_limit: Option<usize>,
}

/// The service around `S` (the router). Cloned per connection and per request: an `Arc` and
/// the inner service.
#[derive(Clone)]
pub struct Shell<S> {
    inner: S,
    parts: Arc<ShellParts>,
    /// The connection's peer, given to handlers as `ConnectInfo<SocketAddr>`.
    peer: Option<SocketAddr>,
}

impl<S> Shell<S> {
    pub fn new(inner: S, parts: ShellParts) -> Self {
        Self {
            inner,
            parts: Arc::new(parts),
            peer: None,
        }
    }

    /// This shell for a connection from `peer` (see [`crate::reload`], which picks the shell
    /// per request).
    pub(crate) fn for_peer(&self, peer: Option<SocketAddr>) -> Self
    where
        S: Clone,
    {
        Self {
            inner: self.inner.clone(),
            parts: self.parts.clone(),
            peer,
        }
    }
}

/// `axum::serve`'s make-service: the shell of one connection knows its peer's address.
impl<'a, S: Clone> tower::Service<IncomingStream<'a, TcpListener>> for Shell<S> {
    type Response = Shell<S>;
    type Error = Infallible;
    type Future = Ready<Result<Shell<S>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, stream: IncomingStream<'a, TcpListener>) -> Self::Future {
        let mut connection = self.clone();
        connection.peer = Some(*stream.remote_addr());
        ready(Ok(connection))
    }
}

impl<S> tower::Service<Request<Body>> for Shell<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ShellFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let tracked = self
            .parts
            .track
            .as_ref()
            .map(|m| (m.classify(request.uri().path()), Instant::now()));
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let limited = match self.parts.body_limit {
            Some(limit) => limit_body(request, limit),
            None => Ok(request),
        };
        let state = match limited {
            Ok(request) => State::Inner {
                future: self.inner.call(request),
            },
            Err(()) => State::TooLarge,
        };
        ShellFuture {
            state,
            parts: self.parts.clone(),
            tracked,
        }
    }
}

/// The request with its body limited to `limit` bytes, or `Err` when its `Content-Length`
/// says it is larger (answered 413 before the body is read). A body known to be empty (a GET)
/// is left as it is: nothing to limit, and no second boxing. Also the upstreams' limit
/// (`max_body_bytes`), in their handler.
pub(crate) fn limit_body(request: Request<Body>, limit: usize) -> Result<Request<Body>, ()> {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(());
    }
    if request.body().is_end_stream() {
        return Ok(request);
    }
    let limit = declared.map_or(limit, |len| len.min(limit));
    Ok(request.map(|body| Body::new(http_body_util::Limited::new(body, limit))))
}

/// The bridge's JSON error (413 `invalid_request`, `no-store`), like a body that turns out
/// too large while an extractor reads it (see [`crate::extract`]).
pub(crate) fn payload_too_large(limit: usize) -> Response<Body> {
    use axum::response::IntoResponse;
    crate::error::AppError::PayloadTooLarge(format!(
        "the request body is larger than {limit} bytes"
    ))
    .into_response()
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        TooLarge,
        Inner { #[pin] future: F },
    }
}

pin_project_lite::pin_project! {
    /// The answer of [`Shell`]: the inner answer with the headers set, counted when ready.
    pub struct ShellFuture<F> {
        #[pin]
        state: State<F>,
        parts: Arc<ShellParts>,
        tracked: Option<(RouteClass, Instant)>,
    }
}

impl<F> std::future::Future for ShellFuture<F>
where
    F: std::future::Future<Output = Result<Response<Body>, Infallible>>,
{
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.state.project() {
            StateProj::TooLarge => payload_too_large(this.parts.body_limit.unwrap_or_default()),
            StateProj::Inner { future } => match std::task::ready!(future.poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            },
        };
        if let Some(headers) = &this.parts.headers {
            headers.apply(response.headers_mut());
        }
        if let (Some(track), Some((class, started))) = (&this.parts.track, this.tracked) {
            track.record(*class, response.status(), started.elapsed());
        }
        Poll::Ready(Ok(response))
    }
}
