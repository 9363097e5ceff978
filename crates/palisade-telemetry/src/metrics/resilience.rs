//! Circuit breakers per upstream and load shedding per route. Label values come from the
//! config (upstream and route names) and from fixed lists (states, shed reasons).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamLabel {
    upstream: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct TransitionLabels {
    upstream: Arc<str>,
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RetryLabels {
    upstream: Arc<str>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct ShedLabels {
    route: Arc<str>,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RouteLabel {
    route: Arc<str>,
}

/// Queue waits from 1 ms to 10 s.
const WAIT_BUCKETS: [f64; 10] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0,
];

fn wait_histogram() -> Histogram {
    Histogram::new(WAIT_BUCKETS)
}

#[derive(Clone, Debug)]
pub(super) struct ResilienceFamilies {
    pub(super) breaker_state: Family<UpstreamLabel, Gauge>,
    pub(super) transitions: Family<TransitionLabels, Counter>,
    pub(super) shed: Family<ShedLabels, Counter>,
    pub(super) retries: Family<RetryLabels, Counter>,
    pub(super) retry_stops: Family<RetryLabels, Counter>,
    pub(super) queue_wait: Family<RouteLabel, Histogram, fn() -> Histogram>,
}

impl Default for ResilienceFamilies {
    fn default() -> Self {
        Self {
            breaker_state: Family::default(),
            transitions: Family::default(),
            shed: Family::default(),
            retries: Family::default(),
            retry_stops: Family::default(),
            queue_wait: Family::new_with_constructor(wait_histogram),
        }
    }
}

/// An upstream's breaker handle.
#[derive(Clone, Debug)]
pub struct BreakerMetrics {
    upstream: Arc<str>,
    families: ResilienceFamilies,
}

impl BreakerMetrics {
    pub(super) fn new(upstream: &str, families: &ResilienceFamilies) -> Self {
        let this = Self {
            upstream: Arc::from(upstream),
            families: families.clone(),
        };
        this.state(0);
        this
    }

    /// Sets the state gauge: 0 closed, 1 open, 2 half-open.
    pub fn state(&self, gauge: i64) {
        let label = UpstreamLabel {
            upstream: self.upstream.clone(),
        };
        self.families.breaker_state.get_or_create(&label).set(gauge);
    }

    /// Counts a transition into `to` (`closed`, `open`, `half_open`).
    pub fn transition(&self, to: &'static str) {
        let labels = TransitionLabels {
            upstream: self.upstream.clone(),
            to,
        };
        self.families.transitions.get_or_create(&labels).inc();
    }
}

/// An upstream's retry handle.
#[derive(Clone, Debug)]
pub struct RetryMetrics {
    upstream: Arc<str>,
    families: ResilienceFamilies,
}

impl RetryMetrics {
    pub(super) fn new(upstream: &str, families: &ResilienceFamilies) -> Self {
        Self {
            upstream: Arc::from(upstream),
            families: families.clone(),
        }
    }

    /// Counts a retry, by what failed: `connect`, `reset`, `timeout`, `status_4xx`, `status_5xx`.
    pub fn retried(&self, reason: &'static str) {
        let labels = RetryLabels {
            upstream: self.upstream.clone(),
            reason,
        };
        self.families.retries.get_or_create(&labels).inc();
    }

    /// Counts a retryable failure that was not retried, by why (`budget_exhausted`,
    /// `attempts_exhausted`, `deadline`, `retry_after_too_long`, `body_not_replayable`, ...).
    pub fn stopped(&self, reason: &'static str) {
        let labels = RetryLabels {
            upstream: self.upstream.clone(),
            reason,
        };
        self.families.retry_stops.get_or_create(&labels).inc();
    }
}

/// A route's load-shedding handle.
#[derive(Clone, Debug)]
pub struct ShedMetrics {
    route: Arc<str>,
    families: ResilienceFamilies,
}

impl ShedMetrics {
    pub(super) fn new(route: &str, families: &ResilienceFamilies) -> Self {
        Self {
            route: Arc::from(route),
            families: families.clone(),
        }
    }

    /// Counts a request shed: `queue_full` or `queue_timeout`.
    pub fn shed(&self, reason: &'static str) {
        let labels = ShedLabels {
            route: self.route.clone(),
            reason,
        };
        self.families.shed.get_or_create(&labels).inc();
    }

    /// Observes how long an admitted request waited in the queue.
    pub fn waited(&self, seconds: f64) {
        let label = RouteLabel {
            route: self.route.clone(),
        };
        self.families
            .queue_wait
            .get_or_create(&label)
            .observe(seconds);
    }
}
