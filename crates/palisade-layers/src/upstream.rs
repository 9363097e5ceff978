//! An upstream service: its endpoints (used round-robin), keep-alive connections to them, and
//! the headers added to every request sent to it.
//!
//! HTTP/1.1 upstreams use the pool in [`crate::pool`]; h2c upstreams (`http2 = true`) use
//! hyper-util's client, which multiplexes requests over one connection per endpoint.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::Authority;
use http::{HeaderName, HeaderValue};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use palisade_config::UpstreamConfig;
use palisade_telemetry::metrics::UpstreamMetrics;

use crate::codec::general::body::RequestBody;
use crate::pool::Endpoint;

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
    /// `[upstreams.NAME.breaker]`: its circuit breaker and fallback.
    pub guard: Option<crate::pipeline::guard::UpstreamGuard>,
    /// `[upstreams.NAME.retry]`, unless `attempts = 1`.
    pub retry: Option<crate::pipeline::call::Retry>,
    /// `deadline_header`: the header telling the upstream how long an attempt may take.
    pub deadline_header: Option<HeaderName>,
}

impl Upstream {
    /// The endpoints, for the active health checks.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.endpoints
    }
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

/// Endpoints by upstream name and address, kept across config reloads so that a reload keeps
/// their pooled connections and their backoff state.
#[derive(Default)]
pub struct EndpointRegistry {
    endpoints: Mutex<HashMap<(String, String), Arc<Endpoint>>>,
}

impl EndpointRegistry {
    /// The endpoint `authority` of upstream `upstream`: the one already known when its
    /// settings are unchanged, else a new one.
    fn endpoint(
        &self,
        upstream: &str,
        authority: Authority,
        cfg: &UpstreamConfig,
    ) -> Arc<Endpoint> {
        let (max_idle, idle, connect) = (
            cfg.pool_max_idle_per_endpoint,
            cfg.pool_idle_timeout.get(),
            cfg.connect_timeout.get(),
        );
        let key = (upstream.to_owned(), authority.as_str().to_owned());
        let Ok(mut known) = self.endpoints.lock() else {
            return Arc::new(Endpoint::new(authority, max_idle, idle, connect));
        };
        match known.get(&key) {
            Some(e) if e.same_settings(max_idle, idle, connect) => e.clone(),
            _ => {
                let e = Arc::new(Endpoint::new(authority, max_idle, idle, connect));
                known.insert(key, e.clone());
                e
            }
        }
    }

    /// Forgets the endpoints no upstream of `kept` uses any more.
    pub fn retain(&self, kept: &[Arc<Upstream>]) {
        if let Ok(mut known) = self.endpoints.lock() {
            known.retain(|(up, _), e| {
                kept.iter()
                    .any(|u| &u.name == up && u.endpoints.iter().any(|k| Arc::ptr_eq(k, e)))
            });
        }
    }
}

impl Upstream {
    pub fn new(
        name: &str,
        cfg: &UpstreamConfig,
        metrics: UpstreamMetrics,
        registry: &EndpointRegistry,
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
                Ok(registry.endpoint(name, authority, cfg))
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
            guard: None,
            retry: None,
            deadline_header: cfg
                .deadline_header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
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

    pub fn endpoint_count(&self) -> usize {
        self.endpoints.len()
    }

    /// What `/health` shows of each endpoint.
    pub fn health(&self) -> Vec<crate::pool::EndpointHealth> {
        self.endpoints.iter().map(|e| e.health()).collect()
    }

    /// The next endpoint in round-robin order that is not in backoff after refused
    /// connections; when all are, the next one anyway.
    pub fn pick(&self) -> Option<Arc<Endpoint>> {
        let n = self.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.endpoints[(start + k) % n])
            .find(|e| !e.skipped())
            .or_else(|| self.endpoints.get(start % n.max(1)))
            .cloned()
    }

    /// The endpoint to try after `failed`: the next one in order not in backoff, else the
    /// next one; `None` when `failed` is the only one.
    pub fn pick_after(&self, failed: &Arc<Endpoint>) -> Option<Arc<Endpoint>> {
        let n = self.endpoints.len();
        let at = self.endpoints.iter().position(|e| Arc::ptr_eq(e, failed))?;
        let others = (1..n).map(|k| &self.endpoints[(at + k) % n]);
        others
            .clone()
            .find(|e| !e.skipped())
            .or_else(|| others.clone().next())
            .cloned()
    }

    /// The h2c client of an upstream with `http2 = true`.
    pub(crate) fn http2_client(&self) -> Option<&Client<HttpConnector, RequestBody>> {
        self.http2.as_ref()
    }

    /// True when at least one endpoint accepts a TCP connection within the connect timeout
    /// (with active health checks: is healthy, and accepts one). Used by the background
    /// readiness check, never on the request path.
    pub async fn probe(&self) -> bool {
        for ep in self.endpoints.iter().filter(|e| !e.is_unhealthy()) {
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
        Self::new(
            name,
            &cfg,
            metrics.upstream(name),
            &EndpointRegistry::default(),
        )
        .expect("valid test upstream")
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
