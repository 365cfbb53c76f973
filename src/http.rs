//! HttpClient: the one way libnorman talks HTTP to Norman.
//!
//! One pooled reqwest client (rustls) per handle; routes joined under the base URL as PROTOCOL.md §1
//! says; bearer token held as a secret; timeouts; retries with exponential backoff and full jitter;
//! responses as JSON, text, bytes or a byte stream. Errors carry the status and a bounded excerpt of
//! the body, never the token.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::config::AppConfig;
use crate::error::{Error, Result};
use crate::sensitive::Sensitive;

/// Longest body excerpt an error carries.
pub const ERROR_EXCERPT_LIMIT: usize = 512;
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(2);

/// A pooled HTTP client bound to one base URL and, optionally, one bearer token. Cloning is cheap and
/// shares the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    base: Url,
    token: Option<std::sync::Arc<Sensitive<String>>>,
    timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", &self.base.as_str())
            .field("token", &self.token.as_ref().map(|_| crate::sensitive::REDACTED))
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .finish()
    }
}

/// A streamed response body: raw bytes as they arrive, with the length when the server gave one.
pub struct ByteStream {
    /// The Content-Length the server announced, if any.
    pub content_length: Option<u64>,
    /// The HTTP status.
    pub status: u16,
    stream: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ByteStream")
            .field("status", &self.status)
            .field("content_length", &self.content_length)
            .finish()
    }
}

impl ByteStream {
    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes>> {
        self.stream.next().await
    }

    /// The body as an `AsyncRead`.
    pub fn into_reader(self) -> impl tokio::io::AsyncRead + Send + Unpin {
        tokio_util::io::StreamReader::new(self.stream.map_err(std::io::Error::other))
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes>;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.stream.as_mut().poll_next(cx)
    }
}

impl HttpClient {
    /// A client for `config` (base URL, timeouts, retries), without a token.
    pub fn new(config: &AppConfig) -> Result<Self> {
        config.validate()?;
        let base = parse_base_url(&config.base_url)?;
        let inner = reqwest::Client::builder()
            .connect_timeout(config.timeout)
            // Per read, so a long download that keeps moving is never cut off by a total timeout.
            .read_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .user_agent(concat!("libnorman/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::InvalidConfig(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self { inner, base, token: None, timeout: config.timeout, retries: config.retries })
    }

    /// The same client (same pool) sending `token` as its bearer token.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self { token: Some(std::sync::Arc::new(Sensitive::new(token.into()))), ..self.clone() }
    }

    /// The same client sending no token.
    pub fn without_token(&self) -> Self {
        Self { token: None, ..self.clone() }
    }

    /// Whether a bearer token is set.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The base URL routes are joined under.
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `route` under the base URL. A leading `/` does not reset the path (PROTOCOL.md §1).
    ///
    /// Every request goes through here, and the bearer token goes with it: a route is a path under
    /// the base URL, so anything that would leave it (an absolute URL in any case, `//host`, `\\host`,
    /// leading blanks the URL parser strips, credentials, `..` above the base path) is refused. The
    /// joined URL is checked rather than the route's text, so no parser quirk can slip through.
    pub fn url(&self, route: &str) -> Result<Url> {
        let url = self
            .base
            .join(route.trim_start_matches('/'))
            .map_err(|e| Error::InvalidArgument(format!("route {route:?} does not form a URL: {e}")))?;
        let base = &self.base;
        let same_origin = url.scheme() == base.scheme()
            && url.host() == base.host()
            && url.port_or_known_default() == base.port_or_known_default()
            && url.username() == base.username()
            && url.password() == base.password();
        if !same_origin || !url.path().starts_with(base.path()) {
            return Err(Error::InvalidArgument(format!(
                "route {route:?} leaves the base URL: routes are paths under it, never another scheme, host, port or parent path"
            )));
        }
        Ok(url)
    }

    /// Sends a request and decodes a JSON response.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<T> {
        let bytes = self.bytes(method.clone(), route, body).await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| Error::Decode { what: format!("{method} {route} response"), message: e.to_string() })
    }

    /// Sends a request and returns the body as text (lossless UTF-8 or an error).
    pub async fn text(
        &self,
        method: Method,
        route: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<String> {
        let bytes = self.bytes(method.clone(), route, body).await?;
        String::from_utf8(bytes.to_vec()).map_err(|e| Error::Decode {
            what: format!("{method} {route} response"),
            message: format!("not UTF-8: {e}"),
        })
    }

    /// Sends a request and returns the whole body. Bounded by the request timeout.
    pub async fn bytes(
        &self,
        method: Method,
        route: &str,
        body: Option<&(impl Serialize + ?Sized)>,
    ) -> Result<Bytes> {
        let response = self.send(method.clone(), route, body, Some(self.timeout)).await?;
        response.bytes().await.map_err(|e| network(&method, route, e))
    }

    /// Sends a request and streams the body (no total timeout; each read waits at most the timeout).
    pub async fn stream(
        &self,
        method: Method,
        route: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<ByteStream> {
        let response = self.send_with(method.clone(), route, body, None, range).await?;
        let status = response.status().as_u16();
        let content_length = response.content_length();
        let route = route.to_owned();
        let stream = response.bytes_stream().map(move |chunk| chunk.map_err(|e| network(&method, &route, e)));
        Ok(ByteStream { content_length, status, stream: Box::pin(stream) })
    }

    /// The escape hatch: any method and route, an optional JSON body, the status and raw body back
    /// (non-2xx is returned, not an error, so callers can inspect it).
    pub async fn request(
        &self,
        method: Method,
        route: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(u16, Bytes)> {
        let (status, bytes) = match self.send(method.clone(), route, body, Some(self.timeout)).await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.bytes().await.map_err(|e| network(&method, route, e))?)
            }
            Err(Error::Http { status, body, .. }) => (status, Bytes::from(body.full)),
            Err(e) => return Err(e),
        };
        Ok((status, bytes))
    }

    async fn send(
        &self,
        method: Method,
        route: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response> {
        self.send_with(method, route, body, timeout, None).await
    }

    async fn send_with(
        &self,
        method: Method,
        route: &str,
        body: Option<&(impl Serialize + ?Sized)>,
        timeout: Option<Duration>,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<reqwest::Response> {
        let url = self.url(route)?;
        let payload = match body {
            Some(b) => Some(
                serde_json::to_vec(b).map_err(|e| Error::InvalidArgument(format!("request body: {e}")))?,
            ),
            None => None,
        };
        let idempotent =
            matches!(method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS);
        let mut attempt = 0u32;
        loop {
            let mut request = self
                .inner
                .request(method.clone(), url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json");
            if let Some(token) = &self.token {
                request = request.bearer_auth(token.expose());
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            if let Some((start, end)) = range {
                let end = end.map(|e| e.to_string()).unwrap_or_default();
                request = request.header(reqwest::header::RANGE, format!("bytes={start}-{end}"));
            }
            if let Some(payload) = &payload {
                request = request.body(payload.clone());
            }
            let retry = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(response),
                Ok(response) => {
                    let status = response.status();
                    let retryable = idempotent
                        && matches!(
                            status,
                            StatusCode::BAD_GATEWAY
                                | StatusCode::SERVICE_UNAVAILABLE
                                | StatusCode::GATEWAY_TIMEOUT
                        );
                    if !retryable || attempt >= self.retries {
                        return Err(self.status_error(&method, route, response).await);
                    }
                    true
                }
                // A refused connection never reached the server, so any method may retry it.
                Err(e) if e.is_connect() && attempt < self.retries => true,
                Err(e) if e.is_timeout() => {
                    return Err(Error::Timeout {
                        during: "waiting for the Norman API",
                        after_ms: self.timeout.as_millis(),
                    })
                }
                Err(e) if e.is_connect() => {
                    let addr = format!(
                        "{}:{}",
                        url.host_str().unwrap_or(""),
                        url.port_or_known_default().unwrap_or(0)
                    );
                    return Err(Error::Connect { addr, source: std::io::Error::other(error_chain(&e)) });
                }
                Err(e) => return Err(network(&method, route, e)),
            };
            debug_assert!(retry);
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }

    async fn status_error(&self, method: &Method, route: &str, response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let full = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        let mut excerpt = String::from_utf8_lossy(&full[..full.len().min(ERROR_EXCERPT_LIMIT)]).into_owned();
        if let Some(token) = &self.token {
            // A server that echoes the Authorization header must not make the token reach a log.
            if !token.expose().is_empty() {
                excerpt = excerpt.replace(token.expose().as_str(), crate::sensitive::REDACTED);
            }
        }
        Error::Http {
            method: method.to_string(),
            route: route.to_owned(),
            status,
            body: crate::error::HttpBody { excerpt, full },
        }
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)].
fn backoff(attempt: u32) -> Duration {
    let ceiling = BACKOFF_BASE.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_CAP);
    ceiling.mul_f64(rand::random::<f64>())
}

fn network(method: &Method, route: &str, e: reqwest::Error) -> Error {
    if e.is_timeout() {
        return Error::Timeout { during: "waiting for the Norman API", after_ms: 0 };
    }
    Error::Network { what: format!("{method} {route}"), message: error_chain(&e.without_url()) }
}

/// reqwest's own message is generic ("error sending request"); the cause is in its sources.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn parse_base_url(raw: &str) -> Result<Url> {
    if raw.contains('<') {
        return Err(Error::InvalidConfig(format!(
            "base_url {raw:?} is a placeholder: set it (or NORMAN_BASE_URL) to your Norman API, e.g. http://127.0.0.1:8080/v0/"
        )));
    }
    let mut url = Url::parse(raw.trim())
        .map_err(|e| Error::InvalidConfig(format!("base_url {raw:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidConfig(format!("base_url {raw:?} must be http or https")));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(Error::InvalidConfig(format!("base_url {raw:?} has no host")));
    }
    // Url::join replaces the last segment unless the path ends in '/'.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> HttpClient {
        HttpClient::new(&AppConfig { base_url: base.into(), ..AppConfig::default() }).unwrap()
    }

    #[test]
    fn routes_join_under_the_base_path() {
        for base in ["http://h:1/v0", "http://h:1/v0/"] {
            let c = client(base);
            assert_eq!(c.url("persist/flags/get").unwrap().as_str(), "http://h:1/v0/persist/flags/get");
            assert_eq!(c.url("/persist/flags/get").unwrap().as_str(), "http://h:1/v0/persist/flags/get");
            assert_eq!(c.url("retrieve/asset/a/b/c").unwrap().as_str(), "http://h:1/v0/retrieve/asset/a/b/c");
        }
        assert_eq!(client("https://x.example").url("a").unwrap().as_str(), "https://x.example/a");
    }

    #[test]
    fn routes_that_leave_the_base_url_are_refused() {
        let c = client("http://h:1/v0/");
        for route in [
            "http://other/x",
            "HTTP://other/x",
            "https://h:1/v0/x",
            "http://h:2/v0/x",
            " http://other/x",
            "\thttp://other/x",
            "\nhttp://other/x",
            "ht\ttp://other/x",
            "\\\\other/x",
            "/\\other/x",
            "\\/other/x",
            "//other:1/x",
            "\t//other/x",
            " //other/x",
            "http://h:1@other/x",
            "file:///etc/passwd",
            "mailto:a@b",
            "localhost:1/x",
            "../x",
            "a/../../x",
            "%2e%2e/x",
            "..",
        ] {
            match c.url(route) {
                Err(Error::InvalidArgument(message)) => assert!(message.contains("route"), "{message}"),
                other => panic!("{route:?} gave {other:?}"),
            }
        }
        // Absolute URLs inside the base, queries and dots that stay under it are still paths.
        assert_eq!(c.url("http://h:1/v0/x").unwrap().as_str(), "http://h:1/v0/x");
        assert_eq!(c.url("a/../b?c=//d").unwrap().as_str(), "http://h:1/v0/b?c=//d");
        assert!(c.url("a:b").is_err(), "a scheme is never a path");
        assert_eq!(client("http://h/").url("a/../b").unwrap().as_str(), "http://h/b");
    }

    #[test]
    fn bad_base_urls_are_config_errors() {
        for bad in ["", "not a url", "ftp://h/v0", "mailto:x@y", crate::config::DEFAULT_BASE_URL] {
            let err = HttpClient::new(&AppConfig { base_url: bad.into(), ..AppConfig::default() });
            assert!(matches!(err, Err(Error::InvalidConfig(_))), "{bad:?}");
        }
    }

    #[test]
    fn debug_hides_the_token() {
        let c = client("http://h/v0").with_token("tok-very-secret");
        let debug = format!("{c:?}");
        assert!(!debug.contains("tok-very-secret") && debug.contains("<redacted>"), "{debug}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        for attempt in 0..40 {
            let d = backoff(attempt);
            assert!(d <= BACKOFF_CAP);
            assert!(d <= BACKOFF_BASE * 2u32.pow(attempt.min(16)));
        }
    }
}
