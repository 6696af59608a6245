//! The HTTP client the bridge talks to its provider with (discovery, the reachability probe,
//! the key set, the token endpoint).
//!
//! A provider closes kept-alive connections that sit idle: Node (the demo provider,
//! oidc-provider) after 5 s, Apache's default `KeepAliveTimeout` after 5 s. A request written
//! on such a connection just as the provider closes it fails before any answer, which turned
//! about one sign-in in seven into a 503 page when it came 6 s after the last provider call.
//! So idle pooled connections are dropped after [`POOL_IDLE`], before any common keep-alive
//! timeout ends, and a request that meets a connection closed or reset before any response
//! arrived is sent once more, on a connection of its own.
//!
//! Why a second try is safe for every request here, the token endpoint's POST included: it
//! happens only when no response at all arrived (never after a timeout, never after any byte
//! of an answer), which is what a connection the provider closed while idle looks like: the
//! request never reached it. Should a request have reached the provider all the same (it
//! crashed before answering), the second try cannot do harm: an authorization code and a
//! rotated refresh token are single-use, so the provider refuses the repeat (`invalid_grant`),
//! the same end the lost answer would have had; GETs change nothing.

use std::time::Duration;

use oauth2::{AsyncHttpClient, HttpClientError, HttpRequest, HttpResponse};

/// Idle pooled connections are closed by the bridge after this long: shorter than the
/// keep-alive timeout of common servers (Node and Apache: 5 s; nginx: 75 s).
pub const POOL_IDLE: Duration = Duration::from_secs(4);

/// The pooled client, and the one a lost request is sent again on.
#[derive(Clone, Debug)]
pub struct ProviderHttp {
    pooled: reqwest::Client,
    /// Keeps no idle connection, so every request on it opens a new one.
    fresh: reqwest::Client,
}

impl ProviderHttp {
    /// Both clients: `timeout` per request, no redirects followed.
    pub fn new(timeout: Duration) -> reqwest::Result<Self> {
        let builder = || {
            reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .user_agent(concat!("login-bridge/", env!("CARGO_PKG_VERSION")))
        };
        Ok(Self {
            pooled: builder().pool_idle_timeout(POOL_IDLE).build()?,
            fresh: builder().pool_max_idle_per_host(0).build()?,
        })
    }

    /// The pooled client, for callers that retry by themselves (the key sets).
    pub fn client(&self) -> &reqwest::Client {
        &self.pooled
    }

    /// Sends `request`; once more on a new connection when the first one was lost before
    /// any answer (see the module's comment).
    pub async fn execute(&self, request: reqwest::Request) -> reqwest::Result<reqwest::Response> {
        let again = request.try_clone();
        match (self.pooled.execute(request).await, again) {
            (Err(e), Some(again)) if connection_lost(&e) => {
                tracing::debug!(error = %e, "provider connection lost before an answer; sending again on a new one");
                self.fresh.execute(again).await
            }
            (result, _) => result,
        }
    }

    /// `GET url`, with `timeout` instead of the client's when given.
    pub async fn get(
        &self,
        url: &str,
        timeout: Option<Duration>,
    ) -> reqwest::Result<reqwest::Response> {
        let mut request = self.pooled.get(url);
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        self.execute(request.build()?).await
    }
}

/// Whether `e` says the connection was closed or reset before any response arrived: not a
/// timeout, not a failed connect (a new connection would fail alike), not a bad answer.
pub fn connection_lost(e: &reqwest::Error) -> bool {
    if e.is_timeout() || e.is_connect() || e.is_status() || e.is_decode() || e.is_body() {
        return false;
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = err.source();
    }
    false
}

/// The `oauth2` crate's calls (code exchange, refresh) go through [`ProviderHttp::execute`].
impl<'c> AsyncHttpClient<'c> for ProviderHttp {
    type Error = HttpClientError<reqwest::Error>;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = self
                .execute(request.try_into().map_err(Box::new)?)
                .await
                .map_err(Box::new)?;
            let mut builder = oauth2::http::Response::builder()
                .status(response.status())
                .version(response.version());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            builder
                .body(response.bytes().await.map_err(Box::new)?.to_vec())
                .map_err(HttpClientError::Http)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// A server that answers each connection's first request, then resets the connection when
    /// the next request arrives on it (a keep-alive connection closed just as it is reused);
    /// returns its address and how many connections it accepted.
    async fn resetting_server() -> (String, Arc<AtomicUsize>) {
        let Ok(listener) = TcpListener::bind("127.0.0.1:0").await else {
            panic!("bind");
        };
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    // The next request: closed unread, which the kernel answers with a reset.
                    let _ = socket.readable().await;
                    drop(socket);
                });
            }
        });
        (format!("http://{address}/"), connections)
    }

    #[tokio::test]
    async fn a_request_on_a_connection_reset_before_any_answer_is_sent_again_on_a_new_one() {
        let (url, connections) = resetting_server().await;
        let Ok(http) = ProviderHttp::new(Duration::from_secs(5)) else {
            panic!("client");
        };
        for _ in 0..3 {
            let answer = http.get(&url, None).await.map(|r| r.status().as_u16());
            assert_eq!(answer.ok(), Some(200));
        }
        // Plain reqwest on the same kind of server fails the second request.
        let plain = reqwest::Client::new();
        let (url, _) = resetting_server().await;
        assert!(plain.get(&url).send().await.is_ok());
        let lost = plain.get(&url).send().await;
        assert!(lost.as_ref().is_err_and(connection_lost), "{lost:?}");
        // The client's three answers took a second connection for the lost request.
        assert_eq!(connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_sent_again() {
        let Ok(listener) = std::net::TcpListener::bind("127.0.0.1:0") else {
            panic!("bind");
        };
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
        drop(listener);
        let Ok(http) = ProviderHttp::new(Duration::from_secs(5)) else {
            panic!("client");
        };
        let refused = http.get(&format!("http://127.0.0.1:{port}/"), None).await;
        assert!(
            refused.as_ref().is_err_and(|e| !connection_lost(e)),
            "{refused:?}"
        );
    }
}
