//! An upstream service: its endpoints (used round-robin), a pooled keep-alive client, and the
//! headers added to every request sent to it.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderName, HeaderValue, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use palisade_config::UpstreamConfig;
use palisade_telemetry::metrics::UpstreamMetrics;

use crate::body::RequestBody;

/// One named upstream of a config snapshot.
pub struct Upstream {
    pub name: String,
    endpoints: Vec<Authority>,
    next: AtomicUsize,
    client: Client<HttpConnector, RequestBody>,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub required: bool,
    pub connect_timeout: Duration,
    pub metrics: UpstreamMetrics,
}

impl fmt::Debug for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("endpoints", &self.endpoints)
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
                bare.parse::<Authority>()
                    .map_err(|_| err(format!("endpoint {e:?} is not host:port")))
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

        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout.get()));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout.get())
            .pool_max_idle_per_host(cfg.pool_max_idle_per_endpoint)
            .http2_only(cfg.http2)
            .build(connector);
        Ok(Self {
            name: name.to_owned(),
            endpoints,
            next: AtomicUsize::new(0),
            client,
            headers,
            required: cfg.required,
            connect_timeout: cfg.connect_timeout.get(),
            metrics,
        })
    }

    /// The pooled client requests to this upstream go through.
    pub fn client(&self) -> &Client<HttpConnector, RequestBody> {
        &self.client
    }

    /// Headers configured to be added to every request.
    pub fn extra_headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The URI of the next endpoint in round-robin order, with the request's path and query.
    pub fn next_uri(
        &self,
        path_and_query: Option<&http::uri::PathAndQuery>,
    ) -> Result<Uri, http::Error> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.endpoints.len().max(1);
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(Scheme::HTTP);
        parts.authority = self.endpoints.get(i).cloned();
        parts.path_and_query = Some(
            path_and_query
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        Ok(Uri::from_parts(parts)?)
    }

    /// True when at least one endpoint accepts a TCP connection within the connect timeout.
    /// Used by the background readiness check, never on the request path.
    pub async fn probe(&self) -> bool {
        for ep in &self.endpoints {
            let addr = ep.as_str().to_owned();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_used_round_robin() {
        let cfg: UpstreamConfig =
            toml::from_str("endpoints = ['127.0.0.1:1', 'http://127.0.0.1:2']").unwrap();
        let metrics = palisade_telemetry::metrics::Metrics::new("test");
        let up = Upstream::new("app", &cfg, metrics.upstream("app")).unwrap();
        let pq = http::uri::PathAndQuery::from_static("/a?b=1");
        let uris: Vec<String> = (0..3)
            .map(|_| up.next_uri(Some(&pq)).unwrap().to_string())
            .collect();
        assert_eq!(
            uris,
            [
                "http://127.0.0.1:1/a?b=1",
                "http://127.0.0.1:2/a?b=1",
                "http://127.0.0.1:1/a?b=1"
            ]
        );
    }
}
