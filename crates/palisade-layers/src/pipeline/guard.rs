//! Before the upstream call, on both codecs: the route's concurrency limit (a slot, or 503 at
//! once when the queue is full or the wait too long) and the upstream's circuit breaker (a
//! permit, or the fallback / 503 with `Retry-After` while it is open). After the call the codec
//! says how it ended ([`Slot::answered`], [`Slot::failed`]), which the breaker counts.

use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use palisade_config::{BreakerSettings, FallbackConfig};
use palisade_telemetry::metrics::{BreakerMetrics, ShedMetrics};

use super::{Rejection, RequestCtx};
use crate::problem::ProxyError;
use crate::resilience::{
    Breaker, BreakerConfig, BreakerPermit, BreakerState, ConcurrencyConfig, ConcurrencyLimit,
    ConcurrencyPermit, Observer, Transition, Trip,
};
use crate::upstream::Upstream;

/// A route's concurrency limit with its metrics.
#[derive(Debug)]
pub struct RouteLimit {
    pub limit: ConcurrencyLimit,
    pub metrics: ShedMetrics,
}

impl RouteLimit {
    pub fn new(
        limit: usize,
        queue: usize,
        queue_timeout: std::time::Duration,
        metrics: ShedMetrics,
    ) -> Self {
        Self {
            limit: ConcurrencyLimit::new(ConcurrencyConfig {
                limit,
                queue,
                queue_timeout,
            }),
            metrics,
        }
    }
}

/// An upstream's breaker, what counts as its failures, and its fallback.
#[derive(Debug)]
pub struct UpstreamGuard {
    pub breaker: Breaker,
    failure_on: FailureOn,
    pub fallback: Option<Arc<Fallback>>,
    /// `fallback.upstream`: its name, and the upstream once the snapshot has built it (weak:
    /// two upstreams may fall back on each other).
    pub fallback_upstream: Option<(String, OnceLock<Weak<Upstream>>)>,
}

/// The failures a breaker counts (`failure_on`).
#[derive(Debug, Clone, Copy)]
struct FailureOn {
    server_error: bool,
    timeout: bool,
    connect: bool,
}

/// The static response served while the breaker is open.
#[derive(Debug)]
pub struct Fallback {
    pub status: StatusCode,
    pub content_type: HeaderValue,
    pub body: Bytes,
}

/// The breaker settings of `[upstreams.NAME.breaker]`.
pub fn breaker_config(cfg: &BreakerSettings) -> BreakerConfig {
    let trip = match cfg.consecutive_failures {
        Some(failures) => Trip::Consecutive { failures },
        None => Trip::FailureRate {
            rate: cfg.failure_rate,
            min_requests: cfg.min_requests,
            window: cfg.window.get(),
        },
    };
    BreakerConfig {
        trip,
        open_for: cfg.open_for.get(),
        max_open_for: cfg.open_for.get(),
        half_open_probes: cfg.half_open_probes,
    }
}

/// Reports an upstream's breaker transitions: the state gauge, the counter and a log line.
pub fn observer(upstream: &str, metrics: BreakerMetrics) -> Observer {
    let upstream = upstream.to_owned();
    Arc::new(move |t: Transition| {
        metrics.state(t.to.gauge());
        metrics.transition(t.to.as_str());
        match t.to {
            BreakerState::Open => tracing::warn!(
                upstream = %upstream,
                from = t.from.as_str(),
                open_for_ms = t.open_for.map_or(0, |d| d.as_millis() as u64),
                "circuit breaker opened: calls to the upstream stop for now"
            ),
            _ => tracing::info!(
                upstream = %upstream,
                from = t.from.as_str(),
                to = t.to.as_str(),
                "circuit breaker changed state"
            ),
        }
    })
}

impl UpstreamGuard {
    pub fn new(breaker: Breaker, cfg: &BreakerSettings, fallback: Option<&FallbackConfig>) -> Self {
        let on = |name: &str| cfg.failure_on.iter().any(|f| f == name);
        let fallback_upstream = fallback
            .and_then(|f| f.upstream.clone())
            .map(|name| (name, OnceLock::new()));
        let fallback = fallback.filter(|f| f.upstream.is_none()).map(|f| {
            Arc::new(Fallback {
                status: StatusCode::from_u16(f.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                content_type: HeaderValue::from_str(&f.content_type)
                    .unwrap_or(HeaderValue::from_static("application/json")),
                body: Bytes::from(f.body.clone()),
            })
        });
        Self {
            breaker,
            failure_on: FailureOn {
                server_error: on("5xx"),
                timeout: on("timeout"),
                connect: on("connect"),
            },
            fallback,
            fallback_upstream,
        }
    }
}

/// What a request holds while it is upstream: its place under the route's limit (until the
/// response is done) and the breaker's permission (until the upstream answered or failed).
/// Dropped without a word (the client left), the breaker counts nothing.
pub struct Slot {
    slot: Option<ConcurrencyPermit>,
    permit: Option<(BreakerPermit, FailureOn)>,
    /// The fallback upstream to call instead, while the route's upstream's breaker is open.
    pub instead: Option<Arc<Upstream>>,
}

impl Slot {
    /// The upstream answered with `status`.
    pub fn answered(&mut self, status: u16) {
        if let Some((permit, on)) = self.permit.take() {
            permit.record(!(status >= 500 && on.server_error));
        }
    }

    /// The call failed: `timeout` when no response head came in time, else the connection
    /// failed or broke.
    pub fn failed(&mut self, timeout: bool) {
        if let Some((permit, on)) = self.permit.take() {
            let counted = if timeout { on.timeout } else { on.connect };
            if counted {
                permit.failure();
            }
        }
    }

    /// The place under the route's limit, for the response body to hold until it ends.
    pub fn into_place(mut self) -> Option<ConcurrencyPermit> {
        self.slot.take()
    }
}

/// Takes a slot under the route's limit, then the breaker's permission. Refused, the context
/// holds the `Retry-After` (and the fallback, which [`super::reject::render`] serves).
pub async fn enter(
    route: &crate::routing::Route,
    ctx: &mut RequestCtx,
    close: bool,
) -> Result<Slot, Rejection> {
    let slot = match &route.concurrency {
        None => None,
        Some(limit) => match limit.limit.acquire().await {
            Ok(permit) => {
                limit.metrics.waited(permit.queued().as_secs_f64());
                Some(permit)
            }
            Err(shed) => {
                limit.metrics.shed(shed.reason.as_str());
                ctx.retry_after = Some(HeaderValue::from(shed.retry_after));
                let error = ProxyError::Overloaded;
                return Err(Rejection { error, close });
            }
        },
    };
    let permit = match &route.upstream.guard {
        None => None,
        Some(guard) => match guard.breaker.try_acquire() {
            Ok(permit) => Some((permit, guard.failure_on)),
            Err(rejected) => {
                let instead = guard.fallback_upstream.as_ref();
                if let Some(instead) = instead.and_then(|(_, up)| up.get()?.upgrade()) {
                    return Ok(Slot {
                        slot,
                        permit: None,
                        instead: Some(instead),
                    });
                }
                ctx.retry_after = Some(HeaderValue::from(rejected.retry_after));
                ctx.fallback = guard.fallback.clone();
                let error = ProxyError::CircuitOpen;
                return Err(Rejection { error, close });
            }
        },
    };
    Ok(Slot {
        slot,
        permit,
        instead: None,
    })
}
