//! The request path: request id and trace context → route match → body-size check →
//! forwarding headers → pooled upstream request under the route's timeout → streamed response.
//!
//! A config snapshot ([`Snapshot`]) holds everything built from one config; [`Proxy`] swaps
//! snapshots atomically, so each request sees exactly one config from start to end.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use palisade_config::LoadedConfig;
use palisade_telemetry::metrics::{Metrics, NO_ROUTE, RouteMetrics, UpstreamErrorKind};

use crate::access::AccessRecord;
use crate::body::{RequestBody, RequestBodyError, ResponseBody};
use crate::forwarded::TrustedProxies;
use crate::headers::{is_websocket_upgrade, strip_hop_by_hop};
use crate::problem::{ProxyError, problem_parts};
use crate::request_id::{self, X_REQUEST_ID};
use crate::routing::{Route, Router};
use crate::trace_context::{TRACERESPONSE, TraceContext};
use crate::upstream::{Upstream, UpstreamBuildError, UpstreamError};

/// Everything the request path needs from one config, built once per load or reload.
pub struct Snapshot {
    pub router: Router,
    pub upstreams: Vec<Arc<Upstream>>,
    pub trusted: TrustedProxies,
    pub access_log: bool,
    pub version: String,
    no_route: RouteMetrics,
}

impl Snapshot {
    pub fn build(loaded: &LoadedConfig, metrics: &Metrics) -> Result<Self, UpstreamBuildError> {
        let cfg = &loaded.config;
        let mut upstreams = Vec::with_capacity(cfg.upstreams.len());
        for (name, up) in &cfg.upstreams {
            upstreams.push(Arc::new(Upstream::new(name, up, metrics.upstream(name))?));
        }
        let routes = cfg
            .routes
            .iter()
            .filter_map(|r| {
                let up = upstreams.iter().find(|u| u.name == r.upstream)?;
                Some(Arc::new(Route::new(r, up.clone(), metrics.route(&r.name))))
            })
            .collect();
        Ok(Self {
            router: Router::new(routes),
            upstreams,
            trusted: TrustedProxies::new(cfg.server.trusted_proxies.clone()),
            access_log: cfg.log.access_log,
            version: loaded.version.clone(),
            no_route: metrics.route(NO_ROUTE),
        })
    }

    /// The metrics of requests that matched no route.
    pub fn no_route(&self) -> &RouteMetrics {
        &self.no_route
    }

    /// The shortest route timeout, if there is a route.
    pub fn shortest_route_timeout(&self) -> Option<std::time::Duration> {
        self.router.routes().iter().map(|r| r.timeout).min()
    }
}

/// The proxy: the current snapshot and the process-wide metrics.
pub struct Proxy {
    snapshot: ArcSwap<Snapshot>,
    metrics: Arc<Metrics>,
    draining: AtomicBool,
}

impl Proxy {
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            draining: AtomicBool::new(false),
        })
    }

    /// From now on, HTTP/1 responses carry `Connection: close`, so clients move their next
    /// request to another replica while this one drains.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Handles one request and, while draining, asks HTTP/1 clients to close the connection.
    pub async fn serve(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
        let http1 = req.version() <= Version::HTTP_11;
        let mut resp = self.handle(req, peer).await;
        if http1
            && self.draining.load(Ordering::Relaxed)
            && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS
        {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// Replaces the config snapshot; requests already running finish on the old one.
    pub fn swap(&self, snapshot: Snapshot) {
        self.snapshot.store(Arc::new(snapshot));
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// Handles one request end to end. Never fails: every problem becomes a response.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ResponseBody> {
        let start = Instant::now();
        let in_flight = self.metrics.in_flight();
        let snap = self.snapshot.load_full();
        let request_id = request_id::resolve(req.headers().get(&X_REQUEST_ID));
        let trace = TraceContext::from_headers(req.headers());
        let host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        let client_ip = snap
            .trusted
            .apply(req.headers_mut(), peer.ip(), host.as_ref());
        let bytes_in = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());

        let route = snap
            .router
            .find(
                host.as_ref().and_then(|h| h.to_str().ok()),
                req.uri().path(),
                req.method(),
            )
            .cloned();
        let mut record = AccessRecord {
            start,
            metrics: route
                .as_ref()
                .map_or_else(|| snap.no_route.clone(), |r| r.metrics.clone()),
            method: req.method().clone(),
            // Only the access log reads the path; skip the copy when it is off.
            path: if snap.access_log {
                req.uri().path().to_owned()
            } else {
                String::new()
            },
            status: 0,
            client_ip,
            request_id: request_id.clone(),
            trace,
            bytes_in,
            log: snap.access_log,
            in_flight,
        };
        let Some(route) = route else {
            return problem(ProxyError::NoRoute, record);
        };
        if let (Some(limit), Some(len)) = (route.max_request_body, bytes_in)
            && len > limit
        {
            return problem(ProxyError::PayloadTooLarge, record);
        }

        let websocket = req.version() == Version::HTTP_11 && is_websocket_upgrade(req.headers());
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut req));
        let upstream = &route.upstream;
        let (mut parts, body) = req.into_parts();
        let headers = &mut parts.headers;
        strip_hop_by_hop(headers, websocket);
        if !headers.contains_key(header::HOST)
            && let Some(h) = &host
        {
            headers.insert(header::HOST, h.clone());
        }
        headers.insert(X_REQUEST_ID, request_id.clone());
        let traceparent = trace.header_value();
        trace.apply_upstream(headers, traceparent.clone());
        for (name, value) in upstream.extra_headers() {
            headers.insert(name.clone(), value.clone());
        }
        parts.version = Version::HTTP_11;
        let outbound = Request::from_parts(parts, RequestBody::new(body, route.max_request_body));

        let sent = tokio::time::timeout(route.timeout, upstream.send(outbound)).await;
        let (mut resp, checkout) = match sent {
            Ok(Ok(sent)) => sent,
            Ok(Err(error)) => {
                let problem_kind = match classify(&error) {
                    Failure::BodyTooLarge => ProxyError::PayloadTooLarge,
                    Failure::Upstream(kind) => {
                        upstream.metrics.error(kind);
                        ProxyError::UpstreamUnavailable
                    }
                };
                tracing::warn!(
                    request_id = request_id.to_str().unwrap_or_default(),
                    route = &*route.name,
                    upstream = %upstream.name,
                    error = %ErrorChain(&error),
                    "upstream request failed"
                );
                return problem(problem_kind, record);
            }
            Err(_) => {
                upstream.metrics.error(UpstreamErrorKind::Timeout);
                tracing::warn!(
                    request_id = request_id.to_str().unwrap_or_default(),
                    route = &*route.name,
                    upstream = %upstream.name,
                    timeout_ms = route.timeout.as_millis() as u64,
                    "upstream did not answer within the route timeout"
                );
                return problem(ProxyError::UpstreamTimeout, record);
            }
        };

        let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        if let (true, Some(client_upgrade)) = (switching, client_upgrade) {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(tunnel(client_upgrade, upstream_upgrade));
        }
        strip_hop_by_hop(resp.headers_mut(), switching);
        resp.headers_mut().insert(X_REQUEST_ID, request_id);
        resp.headers_mut().insert(TRACERESPONSE, traceparent);
        record.status = resp.status().as_u16();
        let (parts, body) = resp.into_parts();
        // An upgraded connection is the tunnel's now; it never goes back to the pool.
        let checkout = if switching { None } else { checkout };
        Response::from_parts(parts, ResponseBody::upstream(body, Some(record), checkout))
    }
}

/// Copies bytes both ways between an upgraded client connection and the upstream's.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut c, mut u) = (TokioIo::new(client), TokioIo::new(upstream));
            if let Err(error) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                tracing::debug!(%error, "upgraded connection closed with an error");
            }
        }
        Err(error) => tracing::debug!(%error, "connection upgrade failed"),
    }
}

enum Failure {
    BodyTooLarge,
    Upstream(UpstreamErrorKind),
}

fn classify(error: &UpstreamError) -> Failure {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(RequestBodyError::TooLarge { .. }) = e.downcast_ref::<RequestBodyError>() {
            return Failure::BodyTooLarge;
        }
        source = e.source();
    }
    if error.is_connect() {
        Failure::Upstream(UpstreamErrorKind::Connect)
    } else if matches!(error, UpstreamError::Http1(_)) || source_is::<hyper::Error>(error) {
        Failure::Upstream(UpstreamErrorKind::Protocol)
    } else {
        Failure::Upstream(UpstreamErrorKind::Other)
    }
}

fn source_is<T: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    let mut source = error.source();
    while let Some(e) = source {
        if e.is::<T>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// Displays an error with its sources, for the operator's log (never for a client).
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

fn problem(error: ProxyError, mut record: AccessRecord) -> Response<ResponseBody> {
    let request_id = record.request_id.clone();
    let (status, content_type, body) =
        problem_parts(error, request_id.to_str().unwrap_or_default());
    record.status = status.as_u16();
    let traceresponse = record.trace.header_value();
    let mut resp = Response::new(ResponseBody::full(body, Some(record)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(X_REQUEST_ID, request_id);
    h.insert(TRACERESPONSE, traceresponse);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
