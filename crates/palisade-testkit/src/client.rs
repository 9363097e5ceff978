//! One-call HTTP helpers for tests: send a request, get status, headers and the whole body.
//!
//! They use hyper's pooling client, so a test that wants to observe connection reuse can keep
//! one [`Client`] from [`client`] and send through it repeatedly.

use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// hyper's pooling HTTP/1.1 client with a buffered request body.
pub type Client = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// How long [`send`] waits for the whole response before giving up.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A response read to its end.
#[derive(Debug, Clone)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    /// The body as UTF-8 (lossy), for assertions and failure messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("response body is not JSON: {:?}", self.text()))
    }

    /// A header's value as a string, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A new HTTP/1.1 pooling client.
pub fn client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http()
}

/// A new client that speaks only HTTP/2 with prior knowledge (h2c).
pub fn h2c_client() -> Client {
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// `GET url` on a fresh client.
pub async fn get(url: &str) -> anyhow::Result<TestResponse> {
    request(Method::GET, url, Bytes::new()).await
}

/// `method url` with `body` on a fresh client.
pub async fn request(
    method: Method,
    url: &str,
    body: impl Into<Bytes>,
) -> anyhow::Result<TestResponse> {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(body.into()))
        .with_context(|| format!("building a request to {url}"))?;
    send(&client(), request).await
}

/// Sends `request` through `client` and reads the whole response.
pub async fn send(client: &Client, request: Request<Full<Bytes>>) -> anyhow::Result<TestResponse> {
    let target = format!("{} {}", request.method(), request.uri());
    let exchange = async {
        let response = client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        anyhow::Ok(TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(RESPONSE_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{target}: no complete response within {RESPONSE_TIMEOUT:?}"))?
        .with_context(|| format!("{target} failed"))
}
