//! An upstream service: its endpoints (used round-robin), keep-alive connections to them, and
//! the headers added to every request sent to it.
//!
//! HTTP/1.1 upstreams use the pool in [`crate::pool`]; h2c upstreams (`http2 = true`) use
//! hyper-util's client, which multiplexes requests over one connection per endpoint.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use palisade_config::UpstreamConfig;
use palisade_telemetry::metrics::UpstreamMetrics;

use crate::body::RequestBody;
use crate::pool::{Checkout, Endpoint, SendError};

/// One named upstream of a config snapshot.
pub struct Upstream {
    pub name: String,
    endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
    /// Set for h2c upstreams.
    http2: Option<Client<HttpConnector, RequestBody>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub required: bool,
    pub connect_timeout: Duration,
    pub metrics: UpstreamMetrics,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let endpoints: Vec<&str> = self
            .endpoints
            .iter()
            .map(|e| e.authority.as_str())
            .collect();
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("endpoints", &endpoints)
            .finish_non_exhaustive()
    }
}

/// Why an upstream could not be built from an already validated config.
#[derive(Debug, thiserror::Error)]
#[error("upstream {upstream:?}: {problem}")]
pub struct UpstreamBuildError {
    pub upstream: String,
    pub problem: String,
}

/// Why a request to an upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error(transparent)]
    Http1(#[from] SendError),
    #[error(transparent)]
    Http2(#[from] hyper_util::client::legacy::Error),
    #[error("the request URI cannot be forwarded")]
    Uri(#[from] http::Error),
    /// Config validation requires an endpoint, so this is never seen in practice.
    #[error("the upstream has no endpoint")]
    NoEndpoint,
}

impl UpstreamError {
    pub fn is_connect(&self) -> bool {
        match self {
            Self::Http1(e) => e.is_connect(),
            Self::Http2(e) => e.is_connect(),
            Self::Uri(_) | Self::NoEndpoint => false,
        }
    }
}

impl Upstream {
    pub fn new(
        name: &str,
        cfg: &UpstreamConfig,
        metrics: UpstreamMetrics,
    ) -> Result<Self, UpstreamBuildError> {
        let err = |problem: String| UpstreamBuildError {
            upstream: name.to_owned(),
            problem,
        };
        let endpoints = cfg
            .endpoints
            .iter()
            .map(|e| {
                let bare = e.strip_prefix("http://").unwrap_or(e).trim_end_matches('/');
                let authority = bare
                    .parse::<Authority>()
                    .map_err(|_| err(format!("endpoint {e:?} is not host:port")))?;
                Ok(Arc::new(Endpoint::new(
                    authority,
                    cfg.pool_max_idle_per_endpoint,
                    cfg.pool_idle_timeout.get(),
                    cfg.connect_timeout.get(),
                )))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = cfg
            .request_headers
            .iter()
            .map(|(k, v)| {
                let name = HeaderName::from_bytes(k.as_bytes())
                    .map_err(|_| err(format!("request header name {k:?} is invalid")))?;
                let mut value = HeaderValue::from_str(v.expose())
                    .map_err(|_| err(format!("request header {k:?} has an invalid value")))?;
                value.set_sensitive(true);
                Ok((name, value))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            endpoints,
            next: AtomicUsize::new(0),
            http2: cfg.http2.then(|| http2_client(cfg)),
            headers,
            required: cfg.required,
            connect_timeout: cfg.connect_timeout.get(),
            metrics,
        })
    }

    /// Headers configured to be added to every request.
    pub fn extra_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// True for an h2c upstream, which only the hyper path speaks to.
    pub fn is_http2(&self) -> bool {
        self.http2.is_some()
    }

    /// The next endpoint in round-robin order.
    pub fn next_endpoint(&self) -> Option<&Arc<Endpoint>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len().max(1);
        self.endpoints.get(i)
    }

    /// Sends `req` to the next endpoint in round-robin order. The request's URI only needs its
    /// path and query. For HTTP/1.1 the [`Checkout`] must be released once the response body
    /// has ended, so the connection serves the next request.
    pub async fn send(
        &self,
        mut req: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Option<Checkout>), UpstreamError> {
        let Some(endpoint) = self.next_endpoint() else {
            return Err(UpstreamError::NoEndpoint);
        };
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        match &self.http2 {
            None => {
                *req.uri_mut() = Uri::from(path);
                let (resp, checkout) = endpoint.send(req).await?;
                Ok((resp, Some(checkout)))
            }
            Some(client) => {
                let mut parts = http::uri::Parts::default();
                parts.scheme = Some(Scheme::HTTP);
                parts.authority = Some(endpoint.authority.clone());
                parts.path_and_query = Some(path);
                *req.uri_mut() = Uri::from_parts(parts).map_err(http::Error::from)?;
                *req.version_mut() = http::Version::HTTP_2;
                Ok((client.request(req).await?, None))
            }
        }
    }

    /// True when at least one endpoint accepts a TCP connection within the connect timeout.
    /// Used by the background readiness check, never on the request path.
    pub async fn probe(&self) -> bool {
        for ep in &self.endpoints {
            let addr = ep.authority.as_str().to_owned();
            let attempt =
                tokio::time::timeout(self.connect_timeout, tokio::net::TcpStream::connect(addr));
            if matches!(attempt.await, Ok(Ok(_))) {
                return true;
            }
        }
        false
    }

    #[cfg(test)]
    pub(crate) fn for_tests(name: &str) -> Self {
        let cfg: UpstreamConfig =
            toml::from_str("endpoints = ['127.0.0.1:9']").expect("valid test config");
        let metrics = palisade_telemetry::metrics::Metrics::new("test");
        Self::new(name, &cfg, metrics.upstream(name)).expect("valid test upstream")
    }
}

fn http2_client(cfg: &UpstreamConfig) -> Client<HttpConnector, RequestBody> {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(cfg.connect_timeout.get()));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(cfg.pool_idle_timeout.get())
        .http2_only(true)
        .build(connector)
}
