//! Per-policy rate-limit metrics: decisions by result, tracked keys, swept keys and requests
//! counted in the overflow bucket.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// The labels of `palisade_ratelimit_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct DecisionLabels {
    pub(super) policy: Arc<str>,
    pub(super) result: &'static str,
}

/// The labels of the other per-policy families.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct PolicyLabels {
    pub(super) policy: Arc<str>,
}

/// The labels of `palisade_ratelimit_backend_fallbacks_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FallbackLabels {
    pub(super) policy: Arc<str>,
    pub(super) reason: &'static str,
}

/// Upper bounds of the Redis decision latency buckets, in seconds: 100 µs to 100 ms.
const REDIS_BUCKETS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

pub(super) fn redis_histogram() -> Histogram {
    Histogram::new(REDIS_BUCKETS)
}

/// The families every policy's handle records into.
#[derive(Clone, Debug)]
pub(super) struct RateLimitFamilies {
    pub(super) decisions: Family<DecisionLabels, Counter>,
    pub(super) keys: Family<PolicyLabels, Gauge>,
    pub(super) swept: Family<PolicyLabels, Counter>,
    pub(super) overflow: Family<PolicyLabels, Counter>,
    pub(super) fallbacks: Family<FallbackLabels, Counter>,
    pub(super) redis_seconds: Family<PolicyLabels, Histogram, fn() -> Histogram>,
}

impl Default for RateLimitFamilies {
    fn default() -> Self {
        Self {
            decisions: Family::default(),
            keys: Family::default(),
            swept: Family::default(),
            overflow: Family::default(),
            fallbacks: Family::default(),
            redis_seconds: Family::new_with_constructor(redis_histogram),
        }
    }
}

/// One policy's metrics, its series resolved once. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RateLimitMetrics {
    allowed: Counter,
    limited: Counter,
    shadow_limited: Counter,
    keys: Gauge,
    swept: Counter,
    overflow: Counter,
    policy: Arc<str>,
    fallbacks: Family<FallbackLabels, Counter>,
    redis_seconds: Histogram,
}

impl RateLimitMetrics {
    pub(super) fn new(policy: &str, families: &RateLimitFamilies) -> Self {
        let policy: Arc<str> = Arc::from(policy);
        let decision = |result| {
            families.decisions.get_or_create_owned(&DecisionLabels {
                policy: policy.clone(),
                result,
            })
        };
        let labels = PolicyLabels {
            policy: policy.clone(),
        };
        Self {
            allowed: decision("allowed"),
            limited: decision("limited"),
            shadow_limited: decision("shadow_limited"),
            keys: families.keys.get_or_create_owned(&labels),
            swept: families.swept.get_or_create_owned(&labels),
            overflow: families.overflow.get_or_create_owned(&labels),
            redis_seconds: families.redis_seconds.get_or_create_owned(&labels),
            fallbacks: families.fallbacks.clone(),
            policy,
        }
    }

    /// Counts a request the policy admitted.
    pub fn allowed(&self) {
        self.allowed.inc();
    }

    /// Counts a request the policy refused (429), or would have refused in shadow mode.
    pub fn limited(&self, shadow: bool) {
        if shadow {
            self.shadow_limited.inc();
        } else {
            self.limited.inc();
        }
    }

    /// Sets how many keys the policy tracks now.
    pub fn set_keys(&self, keys: usize) {
        self.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
    }

    /// Counts keys dropped by a sweep because they were back at a full burst.
    pub fn swept(&self, keys: usize) {
        self.swept.inc_by(keys as u64);
    }

    /// Counts a request with a new key counted in the overflow bucket (the key cap was reached).
    pub fn overflow(&self) {
        self.overflow.inc();
    }

    /// Counts a decision the policy's `on_backend_error` made because Redis could not;
    /// `reason` is `timeout`, `error` or `breaker_open`.
    pub fn fallback(&self, reason: &'static str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                policy: self.policy.clone(),
                reason,
            })
            .inc();
    }

    /// Records how long one Redis decision took.
    pub fn redis_latency(&self, seconds: f64) {
        self.redis_seconds.observe(seconds);
    }
}
