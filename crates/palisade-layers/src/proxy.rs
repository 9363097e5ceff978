//! The proxy's state: the current config snapshot, the process-wide metrics, and what must
//! outlive a reload ([`Retained`]: endpoints with their pools and backoff state, rate-limit
//! counters).
//!
//! A config snapshot ([`Snapshot`]) holds everything built from one config; [`Proxy`] swaps
//! snapshots atomically, so each request sees exactly one config from start to end.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use http::{HeaderValue, Request, Response, Version, header};
use hyper::body::Incoming;
use palisade_config::LoadedConfig;
use palisade_telemetry::audit::AuditSink;
use palisade_telemetry::metrics::{Metrics, NO_ROUTE, RouteMetrics};

use crate::codec::general::body::ResponseBody;
use crate::forwarded::TrustedProxies;
use crate::pool::EndpointHealth;
use crate::ratelimit;
use crate::routing::{Route, Router};
use crate::upstream::{EndpointRegistry, Upstream, UpstreamBuildError};

/// Why a validated config could not be built into a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Upstream(#[from] UpstreamBuildError),
    #[error("route {route:?}: {problem}")]
    Schema { route: String, problem: String },
    #[error(transparent)]
    Verifier(#[from] crate::verifiers::VerifierError),
}

/// Retry budgets by upstream name: a reload that leaves an upstream's `[retry]` as it was
/// keeps its budget, recent traffic included.
pub type RetainedBudgets =
    crate::kept::Kept<String, palisade_config::RetryConfig, Arc<crate::resilience::RetryBudget>>;

/// The retries of `[upstreams.NAME.retry]`, or `None` when `attempts = 1`.
fn retry(
    name: &str,
    cfg: &palisade_config::RetryConfig,
    metrics: palisade_telemetry::metrics::RetryMetrics,
    budgets: &RetainedBudgets,
) -> Option<crate::pipeline::call::Retry> {
    use crate::resilience::{Backoff, BudgetConfig, RetryBudget, RetryOn, RetryPolicy};
    if cfg.attempts <= 1 {
        return None;
    }
    let on = RetryOn::parse(cfg.on.iter().map(String::as_str)).unwrap_or_default();
    Some(crate::pipeline::call::Retry {
        policy: RetryPolicy {
            attempts: cfg.attempts,
            on,
            backoff: Backoff::new(cfg.backoff.get(), cfg.max_backoff.get()),
            idempotency_key: cfg.idempotency_key,
        },
        budget: budgets.get_or(name.to_owned(), cfg, || {
            Arc::new(RetryBudget::new(BudgetConfig {
                ratio: cfg.budget,
                window: cfg.budget_window.get(),
                ..BudgetConfig::default()
            }))
        }),
        metrics,
        try_timeout: cfg.try_timeout.map(|t| t.get()),
        replay_body: cfg.replay_body.as_u64(),
    })
}

/// What outlives a config reload: endpoints with their pools and backoff state, rate-limit
/// policies with their counters, and the audit sink refusals are reported to.
pub struct Retained {
    pub endpoints: EndpointRegistry,
    pub limiters: ratelimit::Registry,
    pub audit: AuditSink,
    /// The JWT verifier, with its cached JWK Set, while `[auth.jwt]` stays the same.
    pub jwt: crate::verifiers::RetainedJwt,
    /// Upstreams' circuit breakers, by upstream name, while their settings stay the same: a
    /// reload does not close an open breaker.
    pub breakers: crate::resilience::Breakers<String>,
    /// Upstreams' retry budgets, likewise.
    pub budgets: RetainedBudgets,
}

impl Retained {
    /// `redis`: the `[redis]` server Redis-backed policies decide on, fixed for the process.
    pub fn new(audit: AuditSink, redis: Option<Arc<ratelimit::redis::RedisBackend>>) -> Self {
        Self {
            endpoints: EndpointRegistry::default(),
            limiters: ratelimit::Registry::default().with_redis(redis),
            audit,
            jwt: Default::default(),
            breakers: Default::default(),
            budgets: Default::default(),
        }
    }
}

impl Default for Retained {
    fn default() -> Self {
        Self::new(AuditSink::off(), None)
    }
}

/// Everything the request path needs from one config, built once per load or reload.
pub struct Snapshot {
    pub router: Router,
    pub upstreams: Vec<Arc<Upstream>>,
    pub trusted: TrustedProxies,
    pub access_log: bool,
    /// `server.request_body_timeout`: longest wait for the next request body bytes.
    pub request_body_timeout: std::time::Duration,
    /// `server.send_timeout`: longest wait for a client to take more response bytes.
    pub send_timeout: std::time::Duration,
    pub version: String,
    no_route: RouteMetrics,
}

impl Snapshot {
    /// Builds the snapshot of `loaded`. Endpoints already in `retained` with the same settings
    /// are reused, so a reload keeps their pooled connections and backoff state; so are
    /// rate-limit policies whose settings are unchanged, with their counters.
    pub fn build(
        loaded: &LoadedConfig,
        metrics: &Metrics,
        retained: &Retained,
    ) -> Result<Self, BuildError> {
        let cfg = &loaded.config;
        let mut upstreams = Vec::with_capacity(cfg.upstreams.len());
        for (name, up) in &cfg.upstreams {
            let upstream_metrics = metrics.upstream(name);
            let mut upstream = Upstream::new(name, up, upstream_metrics, &retained.endpoints)?;
            upstream.retry = retry(name, &up.retry, metrics.retries(name), &retained.budgets);
            if let Some(settings) = &up.breaker {
                use crate::pipeline::guard;
                let breaker =
                    retained
                        .breakers
                        .get(name, &guard::breaker_config(settings), |name| {
                            Some(guard::observer(name, metrics.breaker(name)))
                        });
                upstream.guard = Some(guard::UpstreamGuard::new(
                    breaker,
                    settings,
                    up.fallback.as_ref(),
                ));
            }
            let upstream = Arc::new(upstream);
            if let Some(check) = &up.health_check {
                crate::health_check::spawn(&upstream, check);
            }
            upstreams.push(upstream);
        }
        retained
            .breakers
            .retain(|name| cfg.upstreams.get(name).is_some_and(|u| u.breaker.is_some()));
        retained
            .budgets
            .retain(|name| cfg.upstreams.contains_key(name));
        for up in &upstreams {
            if let Some((name, slot)) = up.guard.as_ref().and_then(|g| g.fallback_upstream.as_ref())
                && let Some(other) = upstreams.iter().find(|u| &u.name == name)
            {
                let _ = slot.set(Arc::downgrade(other));
            }
        }
        retained.endpoints.retain(&upstreams);
        let policies = retained
            .limiters
            .build(&cfg.rate_limits, metrics, &retained.audit);
        let verifiers = crate::verifiers::Verifiers::build(&cfg.auth, &retained.jwt)?;
        let mut routes = Vec::with_capacity(cfg.routes.len());
        for (index, r) in cfg.routes.iter().enumerate() {
            let Some(up) = upstreams.iter().find(|u| u.name == r.upstream) else {
                continue;
            };
            let limits = r
                .rate_limits
                .iter()
                .filter_map(|name| policies.get(name).cloned())
                .collect();
            // Read again: the file may have changed since the config was validated.
            let schema = match &r.json_schema {
                Some(path) => Some(Arc::new(palisade_config::load_schema(path).map_err(
                    |problem| BuildError::Schema {
                        route: r.name.clone(),
                        problem,
                    },
                )?)),
                None => None,
            };
            let mut route = Route::new(r, up.clone(), metrics.route(&r.name), limits, schema);
            let production = cfg.mode == palisade_config::Mode::Production;
            route.sanitize_errors = r.sanitize_errors.unwrap_or(production);
            route.auth = verifiers.route_auth(r, metrics, &retained.audit);
            route.identity_headers =
                Arc::new(verifiers.headers.with_deadline(up.deadline_header.clone()));
            route.concurrency = r.concurrency_limit.map(|limit| {
                let shedding = metrics.shedding(&r.name);
                crate::pipeline::guard::RouteLimit::new(
                    limit,
                    r.queue,
                    r.queue_timeout.get(),
                    shedding,
                )
            });
            let development = cfg.mode == palisade_config::Mode::Development;
            let redis = retained.limiters.redis();
            route.webhook = crate::verifiers::route_webhook(
                index,
                r,
                development,
                redis,
                metrics,
                &retained.audit,
            )?;
            routes.push(Arc::new(route));
        }
        Ok(Self {
            router: Router::new(routes),
            upstreams,
            trusted: TrustedProxies::new(cfg.server.trusted_proxies.clone()),
            access_log: cfg.log.access_log,
            request_body_timeout: cfg.server.request_body_timeout.get(),
            send_timeout: cfg.server.send_timeout.get(),
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
    retained: Arc<Retained>,
    draining: AtomicBool,
}

impl Proxy {
    /// `retained` must be the one `snapshot` was built with.
    pub fn new(snapshot: Snapshot, metrics: Arc<Metrics>, retained: Arc<Retained>) -> Arc<Self> {
        Arc::new(Self {
            snapshot: ArcSwap::from_pointee(snapshot),
            metrics,
            retained,
            draining: AtomicBool::new(false),
        })
    }

    /// The state kept across reloads; build the next snapshot with it.
    pub fn retained(&self) -> &Retained {
        &self.retained
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

    /// Handles one request end to end on the general codec. Never fails.
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ResponseBody> {
        crate::codec::general::handle(self, req, peer).await
    }

    /// The health of every endpoint of the current config, by upstream.
    pub fn endpoint_health(&self) -> Vec<(String, Vec<EndpointHealth>)> {
        let snap = self.snapshot();
        snap.upstreams
            .iter()
            .map(|u| (u.name.clone(), u.health()))
            .collect()
    }
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
