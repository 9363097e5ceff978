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

pub mod redis;
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
use palisade_config::{OnBackendError, RateLimitBackend, RateLimitConfig};
use palisade_telemetry::audit::{AuditCategory, AuditEvent, AuditOutcome, AuditSink};
use palisade_telemetry::metrics::{Metrics, RateLimitMetrics};

use redis::{Answer, RedisBackend};
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
    /// The verified caller's id (a JWT's user claim or an API key's id); the client address
    /// for anonymous requests.
    Identity,
    /// The id of the API key the caller presented; the client address for anyone else.
    ApiKey,
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
    /// The tier this quota serves ("default" for the policy's own), in Redis keys.
    tier: String,
    /// This quota's member of `RateLimit-Policy`, written once: `"name";q=LIMIT;w=SECONDS`.
    policy_item: String,
    /// The start of its member of `RateLimit`: `"name";r=`.
    limit_prefix: String,
}

impl Bucket {
    /// The quota `(limit, per, burst)` of tier `tier` of policy `name`.
    fn new(
        name: &str,
        tier: &str,
        (limit, per, burst): (u32, Duration, Option<u32>),
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
            tier: tier.to_owned(),
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

impl Decision {
    /// An admitted request whose key's theoretical arrival time is now `ahead` (GCRA, as
    /// governor and the Redis script compute it).
    fn allowed(bucket: &Bucket, ahead: Duration) -> Self {
        let cell = bucket.emission;
        let capacity = cell * bucket.burst;
        let remaining = (capacity.saturating_sub(ahead).as_nanos() / cell.as_nanos().max(1)) as u32;
        Self::admitted(bucket, remaining.min(bucket.burst))
    }

    fn admitted(bucket: &Bucket, remaining: u32) -> Self {
        Self {
            allowed: true,
            remaining,
            reset: ceil_secs(bucket.emission * (bucket.burst - remaining.min(bucket.burst))),
            retry_after: 0,
            limit: bucket.limit,
            window: bucket.window,
        }
    }

    /// A refused request: one is admitted again after `wait`.
    fn refused(bucket: &Bucket, wait: Duration) -> Self {
        Self {
            allowed: false,
            remaining: 0,
            reset: ceil_secs(wait + bucket.emission * (bucket.burst - 1)),
            retry_after: ceil_secs(wait).max(1),
            limit: bucket.limit,
            window: bucket.window,
        }
    }
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
    /// Set for `backend = "redis"`.
    remote: Option<Arc<RedisBackend>>,
}

/// What a request offers to be counted by.
pub struct KeyInput<'a> {
    pub client_ip: IpAddr,
    pub route: &'a str,
    /// The first value of a request header, by lowercase name.
    pub header: &'a dyn Fn(&str) -> Option<&'a [u8]>,
    /// The verified caller, on a route with `auth`.
    pub identity: Option<&'a crate::identity::Identity>,
}

impl KeyInput<'_> {
    /// The caller's id when `rule` counts by it.
    fn caller(&self, rule: &KeyRule) -> Option<&str> {
        let identity = self.identity?;
        let counts = match rule {
            KeyRule::Identity => true,
            KeyRule::ApiKey => identity.method == crate::identity::Method::ApiKey,
            _ => false,
        };
        counts.then_some(identity.subject.as_str())
    }
}

impl Policy {
    fn new(
        name: &str,
        cfg: &RateLimitConfig,
        clock: &LimiterClock,
        metrics: &Metrics,
        audit: AuditSink,
        redis: Option<&Arc<RedisBackend>>,
    ) -> Self {
        let metrics = metrics.ratelimit(name);
        let key = match cfg.key.split_once(':') {
            Some(("header", header)) => KeyRule::Header(header.to_ascii_lowercase()),
            _ if cfg.key == "route" => KeyRule::Route,
            _ if cfg.key == "identity" => KeyRule::Identity,
            _ if cfg.key == "api_key" => KeyRule::ApiKey,
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
                    Bucket::new(name, tier, (t.limit, per, t.burst), cfg, clock, &metrics),
                )
            })
            .collect();
        Self {
            name: Arc::from(name),
            config: cfg.clone(),
            key,
            tier_header: cfg.tier_header.as_ref().map(|h| h.to_ascii_lowercase()),
            default: Bucket::new(
                name,
                "default",
                (cfg.limit, per, cfg.burst),
                cfg,
                clock,
                &metrics,
            ),
            tiers,
            hasher: RandomState::new(),
            metrics,
            audit,
            remote: redis
                .filter(|_| cfg.backend == RateLimitBackend::Redis)
                .cloned(),
        }
    }

    /// Whether the policy's counters are in Redis: its decisions are awaited.
    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// Counts one request and answers whether it may pass.
    pub fn check(&self, input: &KeyInput<'_>) -> Decision {
        self.decide(input).2
    }

    /// Counts one request whose key is `key` itself, on the policy's own quota (its tiers
    /// aside), and answers as [`check`](Self::check) does: the bucket is the one of those bytes,
    /// whatever the policy's `key` rule. For `palisade ratelimit simulate`.
    pub fn check_key(&self, key: &[u8]) -> Decision {
        self.count(&self.default, self.hasher.hash_one(("key", key)))
    }

    /// Counts one request: the quota it was counted on, its key's hash, and the answer.
    fn decide(&self, input: &KeyInput<'_>) -> (&Bucket, u64, Decision) {
        let bucket = self.bucket(input);
        let key = self.key_hash(input);
        (bucket, key, self.count(bucket, key))
    }

    fn count(&self, bucket: &Bucket, key: u64) -> Decision {
        let decision = match bucket.limiter.check_key(&key) {
            Ok(snapshot) => Decision::admitted(bucket, snapshot.remaining_burst_capacity()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(bucket.limiter.clock().now());
                Decision::refused(bucket, wait)
            }
        };
        self.counted(&decision);
        decision
    }

    fn counted(&self, decision: &Decision) {
        if decision.allowed {
            self.metrics.allowed();
        } else {
            self.metrics.limited(self.config.shadow);
        }
    }

    /// Decides on Redis; while Redis cannot, `on_backend_error` decides (counted and logged).
    async fn count_remote(
        &self,
        redis: &RedisBackend,
        bucket: &Bucket,
        local_key: u64,
        key: &[u8],
    ) -> Decision {
        let started = std::time::Instant::now();
        let remote_key = redis.key(&self.name, &bucket.tier, key);
        let answer = redis
            .decide(&remote_key, bucket.emission, bucket.burst)
            .await;
        let decision = match answer {
            Ok(answer) => {
                self.metrics.redis_latency(started.elapsed().as_secs_f64());
                match answer {
                    Answer::Allowed { ahead } => Decision::allowed(bucket, ahead),
                    Answer::Refused { wait } => Decision::refused(bucket, wait),
                }
            }
            Err(failure) => {
                self.metrics.fallback(failure.reason());
                tracing::warn!(
                    policy = &*self.name,
                    error = %failure,
                    on_backend_error = ?self.config.on_backend_error,
                    "rate limit decided without redis"
                );
                match self.config.on_backend_error {
                    // Counted by the local bucket itself.
                    OnBackendError::Local => return self.count(bucket, local_key),
                    OnBackendError::Allow => Decision::admitted(bucket, bucket.burst),
                    OnBackendError::Deny => Decision::refused(bucket, Duration::from_secs(1)),
                }
            }
        };
        self.counted(&decision);
        decision
    }

    /// Whether this policy only counts and logs (shadow mode).
    pub fn shadow(&self) -> bool {
        self.config.shadow
    }

    fn bucket(&self, input: &KeyInput<'_>) -> &Bucket {
        self.bucket_at(self.bucket_index(input))
    }

    /// 0 for the policy's own quota, else 1 + the index of the request's tier.
    fn bucket_index(&self, input: &KeyInput<'_>) -> usize {
        // A verified caller's tier wins over any header, which a client could set.
        let verified = input
            .identity
            .and_then(|i| i.tier.as_deref())
            .map(str::as_bytes);
        let tier = verified.or_else(|| self.tier_header.as_deref().and_then(|h| (input.header)(h)));
        tier.and_then(|tier| {
            self.tiers
                .iter()
                .position(|(name, _)| name.as_bytes() == tier.trim_ascii())
        })
        .map_or(0, |i| i + 1)
    }

    fn bucket_at(&self, index: usize) -> &Bucket {
        match index {
            0 => &self.default,
            i => self.tiers.get(i - 1).map_or(&self.default, |(_, b)| b),
        }
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
            rule @ (KeyRule::Identity | KeyRule::ApiKey) => match input.caller(rule) {
                Some(id) => self.hasher.hash_one(("caller", id)),
                None => by_ip(),
            },
        }
    }

    /// The bytes a request is counted by, tagged by kind, the same on every replica: what a
    /// Redis key is made from.
    fn key_bytes(&self, input: &KeyInput<'_>) -> Vec<u8> {
        let tagged = |tag: &str, value: &[u8]| [tag.as_bytes(), value].concat();
        let by_ip = || tagged("ip:", input.client_ip.to_string().as_bytes());
        match &self.key {
            KeyRule::ClientIp => by_ip(),
            KeyRule::Route => tagged("route:", input.route.as_bytes()),
            KeyRule::Header(name) => match (input.header)(name) {
                Some(value) => tagged("header:", value),
                None => by_ip(),
            },
            rule @ (KeyRule::Identity | KeyRule::ApiKey) => match input.caller(rule) {
                Some(id) => tagged("caller:", id.as_bytes()),
                None => by_ip(),
            },
        }
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
    /// The `[redis]` server of Redis-backed policies, fixed at start-up.
    redis: Option<Arc<RedisBackend>>,
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
            redis: None,
        }
    }

    /// The `[redis]` server, when one is configured.
    pub fn redis(&self) -> Option<&Arc<RedisBackend>> {
        self.redis.as_ref()
    }

    /// The registry whose Redis-backed policies decide on `redis`.
    pub fn with_redis(mut self, redis: Option<Arc<RedisBackend>>) -> Self {
        self.redis = redis;
        self
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
                    _ => Arc::new(Policy::new(
                        name,
                        cfg,
                        &self.clock,
                        metrics,
                        audit.clone(),
                        self.redis.as_ref(),
                    )),
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
    /// The verified caller's id, the actor of an audit event; else the client address is.
    pub caller: Option<&'a str>,
}

/// Checks every policy of a route; the policy that asks for the longest wait refuses. Every
/// policy counts the request, also when another one refuses it.
pub fn check(policies: &[Arc<Policy>], input: &KeyInput<'_>, who: &Requester<'_>) -> Verdict {
    let mut verdict = Verdict::for_policies(policies.len());
    for policy in policies {
        let (bucket, key, decision) = policy.decide(input);
        let counted = Counted {
            client_ip: input.client_ip,
            route: input.route,
            key,
        };
        verdict.add(policy, bucket, &decision, &counted, who);
    }
    verdict
}

/// Who and what a decision counted, for its log line and audit event.
struct Counted<'a> {
    client_ip: IpAddr,
    route: &'a str,
    /// The key's hash in this process (non-reversible), for the audit event.
    key: u64,
}

impl Verdict {
    fn for_policies(n: usize) -> Self {
        Self {
            policy_field: String::with_capacity(48 * n),
            limit_field: String::with_capacity(48 * n),
            refused: None,
        }
    }

    /// Adds one policy's decision: its members of both fields and, when it refuses, the log
    /// line, the audit event and the refusal if its wait is the longest so far.
    fn add(
        &mut self,
        policy: &Policy,
        bucket: &Bucket,
        decision: &Decision,
        counted: &Counted<'_>,
        who: &Requester<'_>,
    ) {
        if !self.policy_field.is_empty() {
            self.policy_field.push_str(", ");
            self.limit_field.push_str(", ");
        }
        self.policy_field.push_str(&bucket.policy_item);
        self.limit_field.push_str(&bucket.limit_prefix);
        let mut digits = [0; 20];
        let r = crate::pipeline::forward::decimal(u64::from(decision.remaining), &mut digits);
        self.limit_field
            .push_str(std::str::from_utf8(r).unwrap_or_default());
        self.limit_field.push_str(";t=");
        let t = crate::pipeline::forward::decimal(decision.reset, &mut digits);
        self.limit_field
            .push_str(std::str::from_utf8(t).unwrap_or_default());
        if decision.allowed {
            return;
        }
        tracing::info!(
            request_id = who.request_id,
            policy = &*policy.name,
            route = counted.route,
            client_ip = %counted.client_ip,
            shadow = policy.shadow(),
            retry_after = decision.retry_after,
            "rate limit exhausted"
        );
        if policy.shadow() {
            return;
        }
        // Built only when written: a refusal under attack should cost no more than it must.
        if policy.audit.is_on() {
            policy.audit.emit(
                AuditEvent::now(
                    AuditCategory::RateLimit,
                    "request_limited",
                    AuditOutcome::Denied,
                )
                .actor(
                    who.caller
                        .map_or_else(|| counted.client_ip.to_string(), str::to_owned),
                )
                .route(counted.route)
                .request_id(who.request_id)
                .trace_id(who.trace_id)
                .details(serde_json::json!({
                    "policy": &*policy.name,
                    "key": format!("{:016x}", counted.key),
                    "limit": decision.limit,
                    "window_seconds": decision.window,
                    "retry_after_seconds": decision.retry_after,
                })),
            );
        }
        if self
            .refused
            .as_ref()
            .is_none_or(|(_, wait)| decision.retry_after > *wait)
        {
            self.refused = Some((policy.name.clone(), decision.retry_after));
        }
    }
}

/// The rate-limit check of a route with Redis-backed policies: made from the request head in
/// [`crate::pipeline::admit`] (so it owns what it needs), awaited by the codec before the
/// request goes upstream.
pub struct Pending {
    asks: Vec<Ask>,
    client_ip: IpAddr,
    route: Arc<str>,
}

/// One policy's part of a [`Pending`] check.
struct Ask {
    policy: Arc<Policy>,
    bucket: usize,
    /// The key's hash in this process: the local bucket and the audit label.
    local_key: u64,
    /// The key's bytes, tagged by kind, hashed into the Redis key.
    key: Vec<u8>,
}

impl Pending {
    pub fn new(policies: &[Arc<Policy>], input: &KeyInput<'_>, route: &Arc<str>) -> Self {
        let asks = policies
            .iter()
            .map(|policy| Ask {
                policy: policy.clone(),
                bucket: policy.bucket_index(input),
                local_key: policy.key_hash(input),
                key: policy.key_bytes(input),
            })
            .collect();
        Self {
            asks,
            client_ip: input.client_ip,
            route: route.clone(),
        }
    }

    /// Counts the request against every policy, in order, Redis-backed ones on Redis.
    pub async fn run(self, who: &Requester<'_>) -> Verdict {
        let mut verdict = Verdict::for_policies(self.asks.len());
        for ask in &self.asks {
            let policy = &ask.policy;
            let bucket = policy.bucket_at(ask.bucket);
            let decision = match &policy.remote {
                Some(redis) => {
                    policy
                        .count_remote(redis, bucket, ask.local_key, &ask.key)
                        .await
                }
                None => policy.count(bucket, ask.local_key),
            };
            let counted = Counted {
                client_ip: self.client_ip,
                route: &self.route,
                key: ask.local_key,
            };
            verdict.add(policy, bucket, &decision, &counted, who);
        }
        verdict
    }
}

#[cfg(test)]
mod tests;
