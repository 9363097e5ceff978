//! Rate limits: named policies (`[rate_limits.NAME]`), each a GCRA bucket per key (governor),
//! checked by the pipeline on the routes that list them, on both codecs.
//!
//! A policy counts requests by a key — the client address, a header's value, or the route —
//! hashed with a per-process random key so that no header value a client picks is stored or
//! can aim at another key. Each tier of a policy is a quota of its own. The state lives in the
//! [`Registry`], outside the config snapshot: a reload keeps the counters of every policy
//! whose settings did not change.
//!
//! What a decision tells the client: `RateLimit-Policy` and `RateLimit` fields as in
//! draft-ietf-httpapi-ratelimit-headers (RFC 9651 lists: `"name";q=LIMIT;w=SECONDS` and
//! `"name";r=REMAINING;t=SECONDS`), on every response of a limited route, and `Retry-After` on
//! a 429 ([`Verdict`]).

mod store;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::{Quota, RateLimiter};
use palisade_config::RateLimitConfig;
use palisade_telemetry::audit::{AuditCategory, AuditEvent, AuditOutcome, AuditSink};
use palisade_telemetry::metrics::{Metrics, RateLimitMetrics};

use store::CappedStore;

/// How often idle keys are swept.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// The clock of every limiter: tokio's, so tests run on its paused clock, or one set by hand
/// (`palisade ratelimit simulate`). Instants are durations since a process-wide origin.
#[derive(Clone, Debug)]
pub enum LimiterClock {
    Tokio,
    Manual(Arc<Mutex<Duration>>),
}

static ORIGIN: LazyLock<tokio::time::Instant> = LazyLock::new(tokio::time::Instant::now);

impl Clock for LimiterClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        match self {
            Self::Tokio => tokio::time::Instant::now().saturating_duration_since(*ORIGIN),
            Self::Manual(now) => *now.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }
}

type Limiter = RateLimiter<u64, CappedStore, LimiterClock, StateInformationMiddleware>;

/// What requests are counted by.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyRule {
    ClientIp,
    /// A request header's first value, its name in lowercase; the client address without it.
    Header(String),
    /// Every request of the route in one bucket.
    Route,
}

/// One quota: its limiter and what the fields say about it.
struct Bucket {
    limiter: Limiter,
    limit: u32,
    /// `per` in whole seconds (at least 1), the `w` the client is told.
    window: u64,
    burst: u32,
    /// The time one request's cell takes to come back.
    emission: Duration,
    /// This quota's member of `RateLimit-Policy`, written once: `"name";q=LIMIT;w=SECONDS`.
    policy_item: String,
    /// The start of its member of `RateLimit`: `"name";r=`.
    limit_prefix: String,
}

impl Bucket {
    fn new(
        name: &str,
        limit: u32,
        per: Duration,
        burst: Option<u32>,
        cfg: &RateLimitConfig,
        clock: &LimiterClock,
        metrics: &RateLimitMetrics,
    ) -> Self {
        let limit = limit.max(1);
        let burst = burst.unwrap_or(limit).max(1);
        let emission = (per / limit).max(Duration::from_nanos(1));
        let quota = Quota::with_period(emission)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        let store = CappedStore::new(cfg.max_keys.max(1), metrics.clone());
        Self {
            limiter: Limiter::new(quota, store, clock.clone()),
            limit,
            window: per.as_secs().max(1),
            burst,
            emission,
            // Policy names are [a-z0-9_-]: an RFC 9651 string needs no escaping.
            policy_item: format!("\"{name}\";q={limit};w={}", per.as_secs().max(1)),
            limit_prefix: format!("\"{name}\";r="),
        }
    }
}

/// The answer of one policy to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests the key may still make at once (`r`).
    pub remaining: u32,
    /// Seconds until the key is back at a full burst (`t`), rounded up.
    pub reset: u64,
    /// On a refusal: seconds until one request is admitted again, rounded up (at least 1).
    pub retry_after: u64,
    /// The quota the key is on (`q`, `w`).
    pub limit: u32,
    pub window: u64,
}

/// A compiled policy.
pub struct Policy {
    pub name: Arc<str>,
    config: RateLimitConfig,
    key: KeyRule,
    /// Lowercase; absent: no tiers.
    tier_header: Option<String>,
    default: Bucket,
    tiers: Vec<(String, Bucket)>,
    hasher: RandomState,
    metrics: RateLimitMetrics,
    audit: AuditSink,
}

/// What a request offers to be counted by.
pub struct KeyInput<'a> {
    pub client_ip: IpAddr,
    pub route: &'a str,
    /// The first value of a request header, by lowercase name.
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
}

impl Policy {
    fn new(
        name: &str,
        cfg: &RateLimitConfig,
        clock: &LimiterClock,
        metrics: &Metrics,
        audit: AuditSink,
    ) -> Self {
        let metrics = metrics.ratelimit(name);
        let key = match cfg.key.split_once(':') {
            Some(("header", header)) => KeyRule::Header(header.to_ascii_lowercase()),
            _ if cfg.key == "route" => KeyRule::Route,
            _ => KeyRule::ClientIp,
        };
        let per = cfg.per.get();
        let tiers = cfg
            .tiers
            .iter()
            .map(|(tier, t)| {
                let per = t.per.map_or(per, |p| p.get());
                (
                    tier.clone(),
                    Bucket::new(name, t.limit, per, t.burst, cfg, clock, &metrics),
                )
            })
            .collect();
        Self {
            name: Arc::from(name),
            config: cfg.clone(),
            key,
            tier_header: cfg.tier_header.as_ref().map(|h| h.to_ascii_lowercase()),
            default: Bucket::new(name, cfg.limit, per, cfg.burst, cfg, clock, &metrics),
            tiers,
            hasher: RandomState::new(),
            metrics,
            audit,
        }
    }

    /// Counts one request and answers whether it may pass.
    pub fn check(&self, input: &KeyInput<'_>) -> Decision {
        self.decide(input).1
    }

    /// Counts one request whose key is `key` itself, on the policy's own quota (its tiers
    /// aside), and answers as [`check`](Self::check) does: the bucket is the one of those bytes,
    /// whatever the policy's `key` rule. For `palisade ratelimit simulate`.
    pub fn check_key(&self, key: &[u8]) -> Decision {
        self.count(&self.default, self.hasher.hash_one(("key", key)))
    }

    /// Counts one request: the quota it was counted on, and the answer.
    fn decide(&self, input: &KeyInput<'_>) -> (&Bucket, Decision) {
        let bucket = self.bucket(input);
        (bucket, self.count(bucket, self.key_hash(input)))
    }

    fn count(&self, bucket: &Bucket, key: u64) -> Decision {
        match bucket.limiter.check_key(&key) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                self.metrics.allowed();
                Decision {
                    allowed: true,
                    remaining,
                    reset: ceil_secs(
                        bucket.emission * (bucket.burst - remaining.min(bucket.burst)),
                    ),
                    retry_after: 0,
                    limit: bucket.limit,
                    window: bucket.window,
                }
            }
            Err(not_until) => {
                self.metrics.limited(self.config.shadow);
                let wait = not_until.wait_time_from(bucket.limiter.clock().now());
                Decision {
                    allowed: false,
                    remaining: 0,
                    reset: ceil_secs(wait + bucket.emission * (bucket.burst - 1)),
                    retry_after: ceil_secs(wait).max(1),
                    limit: bucket.limit,
                    window: bucket.window,
                }
            }
        }
    }

    /// Whether this policy only counts and logs (shadow mode).
    pub fn shadow(&self) -> bool {
        self.config.shadow
    }

    fn bucket(&self, input: &KeyInput<'_>) -> &Bucket {
        let tier = self.tier_header.as_deref().and_then(|h| (input.header)(h));
        tier.and_then(|tier| {
            self.tiers
                .iter()
                .find(|(name, _)| name.as_bytes() == tier.trim_ascii())
                .map(|(_, bucket)| bucket)
        })
        .unwrap_or(&self.default)
    }

    fn key_hash(&self, input: &KeyInput<'_>) -> u64 {
        let by_ip = || self.hasher.hash_one(("ip", input.client_ip));
        match &self.key {
            KeyRule::ClientIp => by_ip(),
            KeyRule::Route => self.hasher.hash_one(("route", input.route)),
            KeyRule::Header(name) => match (input.header)(name) {
                Some(value) => self.hasher.hash_one(("header", value)),
                None => by_ip(),
            },
        }
    }

    /// A short, stable, non-reversible name of the key a request was counted by, for the
    /// audit log (the hash is per process).
    fn key_label(&self, input: &KeyInput<'_>) -> String {
        format!("{:016x}", self.key_hash(input))
    }

    fn buckets(&self) -> impl Iterator<Item = &Bucket> {
        std::iter::once(&self.default).chain(self.tiers.iter().map(|(_, b)| b))
    }

    /// Drops keys back at a full burst and reports how many are tracked.
    fn sweep(&self) {
        let mut keys = 0;
        for bucket in self.buckets() {
            bucket.limiter.retain_recent();
            keys += bucket.limiter.len();
        }
        self.metrics.set_keys(keys);
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The policies of the running config and the ones before it, by name.
pub struct Registry {
    policies: Mutex<HashMap<String, Arc<Policy>>>,
    clock: LimiterClock,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new(LimiterClock::Tokio)
    }
}

impl Registry {
    pub fn new(clock: LimiterClock) -> Self {
        Self {
            policies: Mutex::new(HashMap::new()),
            clock,
        }
    }

    /// The policies of `configs`: a policy whose settings are unchanged keeps its counters;
    /// the others start afresh, and policies no longer configured are dropped.
    pub fn build(
        &self,
        configs: &BTreeMap<String, RateLimitConfig>,
        metrics: &Metrics,
        audit: &AuditSink,
    ) -> HashMap<String, Arc<Policy>> {
        let mut kept = self.policies.lock().unwrap_or_else(|e| e.into_inner());
        let built: HashMap<String, Arc<Policy>> = configs
            .iter()
            .map(|(name, cfg)| {
                let policy = match kept.get(name) {
                    Some(old) if old.config == *cfg => old.clone(),
                    _ => Arc::new(Policy::new(name, cfg, &self.clock, metrics, audit.clone())),
                };
                (name.clone(), policy)
            })
            .collect();
        *kept = built.clone();
        built
    }

    /// Sweeps every policy's idle keys; run every [`SWEEP_INTERVAL`].
    pub fn sweep(&self) {
        let policies: Vec<Arc<Policy>> = self
            .policies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for policy in policies {
            policy.sweep();
        }
    }
}

/// What the route's policies decided about one request: the fields for the client, and the
/// policy that refused it, if one did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// `RateLimit-Policy`: each policy with its quota.
    pub policy_field: String,
    /// `RateLimit`: each policy with what is left of it.
    pub limit_field: String,
    /// The policy that refused the request (not in shadow mode), and `Retry-After`.
    pub refused: Option<(Arc<str>, u64)>,
}

/// Who a request came from, for the audit event of a refusal.
pub struct Requester<'a> {
    pub request_id: &'a str,
    pub trace_id: &'a str,
}

/// Checks every policy of a route; the policy that asks for the longest wait refuses. Every
/// policy counts the request, also when another one refuses it.
pub fn check(policies: &[Arc<Policy>], input: &KeyInput<'_>, who: &Requester<'_>) -> Verdict {
    let mut verdict = Verdict {
        policy_field: String::with_capacity(48 * policies.len()),
        limit_field: String::with_capacity(48 * policies.len()),
        refused: None,
    };
    for policy in policies {
        let (bucket, decision) = policy.decide(input);
        if !verdict.policy_field.is_empty() {
            verdict.policy_field.push_str(", ");
            verdict.limit_field.push_str(", ");
        }
        verdict.policy_field.push_str(&bucket.policy_item);
        verdict.limit_field.push_str(&bucket.limit_prefix);
        let mut digits = [0; 20];
        let r = crate::pipeline::forward::decimal(u64::from(decision.remaining), &mut digits);
        verdict
            .limit_field
            .push_str(std::str::from_utf8(r).unwrap_or_default());
        verdict.limit_field.push_str(";t=");
        let t = crate::pipeline::forward::decimal(decision.reset, &mut digits);
        verdict
            .limit_field
            .push_str(std::str::from_utf8(t).unwrap_or_default());
        if decision.allowed {
            continue;
        }
        tracing::info!(
            request_id = who.request_id,
            policy = &*policy.name,
            route = input.route,
            client_ip = %input.client_ip,
            shadow = policy.shadow(),
            retry_after = decision.retry_after,
            "rate limit exhausted"
        );
        if policy.shadow() {
            continue;
        }
        // Built only when written: a refusal under attack should cost no more than it must.
        if policy.audit.is_on() {
            policy.audit.emit(
                AuditEvent::now(
                    AuditCategory::RateLimit,
                    "request_limited",
                    AuditOutcome::Denied,
                )
                .actor(input.client_ip.to_string())
                .route(input.route)
                .request_id(who.request_id)
                .trace_id(who.trace_id)
                .details(serde_json::json!({
                    "policy": &*policy.name,
                    "key": policy.key_label(input),
                    "limit": decision.limit,
                    "window_seconds": decision.window,
                    "retry_after_seconds": decision.retry_after,
                })),
            );
        }
        if verdict
            .refused
            .as_ref()
            .is_none_or(|(_, wait)| decision.retry_after > *wait)
        {
            verdict.refused = Some((policy.name.clone(), decision.retry_after));
        }
    }
    verdict
}

#[cfg(test)]
mod tests;
