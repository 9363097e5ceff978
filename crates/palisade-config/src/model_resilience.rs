//! The resilience part of the config tree: `[upstreams.NAME.retry]`, `.breaker`, `.fallback`
//! and `.health_check` (see [`crate::model`] for the conventions every field follows).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::default_true;
use crate::units::{ByteSize, Duration};

/// Active health checks of an upstream's endpoints.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// The path asked, e.g. "/healthz"; a status from 200 to 399 passes.
    pub path: String,
    /// How often each endpoint is asked.
    #[serde(default = "default_check_interval")]
    pub interval: Duration,
    /// Longest wait for the answer's status line; longer is a failed check.
    #[serde(default = "default_check_timeout")]
    pub timeout: Duration,
    /// Failed checks in a row that take an endpoint out.
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that bring it back.
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_threshold() -> u32 {
    2
}

/// Retries of failed upstream requests.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Tries in all, the first included; 1 turns retries off.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// What is retried: "connect" (no connection), "reset" (the connection broke before a
    /// response), "timeout" (no response head within the route's timeout; off by default),
    /// or a status from 400 to 599.
    #[serde(default = "default_retry_on")]
    pub on: Vec<String>,
    /// The base of exponential backoff with full jitter: retry n waits a random time up to
    /// `backoff` × 2^n, at most `max_backoff`. An upstream's `Retry-After` is honoured when it
    /// is within `max_backoff`; a longer one is not retried and its answer goes to the client.
    #[serde(default = "default_backoff")]
    pub backoff: Duration,
    /// The longest wait before a retry.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Retries may add at most this share to the requests over `budget_window` (0.2: 20 %),
    /// plus one a second whatever the traffic: a failing upstream is not hit with a retry storm.
    #[serde(default = "default_budget")]
    pub budget: f64,
    /// The sliding window of the budget.
    #[serde(default = "default_budget_window")]
    pub budget_window: Duration,
    /// Also retry requests of other methods that carry `Idempotency-Key` (the sender promises
    /// a repeat is harmless).
    #[serde(default = "default_true")]
    pub idempotency_key: bool,
    /// Request bodies up to this size are read whole before they go upstream, so a retry can
    /// send them again (requests safe to repeat only: idempotent methods, or
    /// `Idempotency-Key`). Larger bodies, and chunked ones, are not retried (counted as
    /// `body_not_replayable`). 0 (the default): bodies are streamed and never sent twice.
    #[serde(default = "default_replay_body")]
    pub replay_body: ByteSize,
    /// Longest wait for one attempt's response head; past it the attempt is abandoned (and
    /// retried when `on` lists "timeout"). The route's `timeout` stays the total for all
    /// attempts. Absent: no per-try limit.
    #[serde(default)]
    pub try_timeout: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            on: default_retry_on(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            budget: default_budget(),
            budget_window: default_budget_window(),
            idempotency_key: true,
            replay_body: default_replay_body(),
            try_timeout: None,
        }
    }
}

fn default_replay_body() -> ByteSize {
    ByteSize::bytes(0)
}

fn default_attempts() -> u32 {
    2
}

fn default_retry_on() -> Vec<String> {
    ["connect", "reset", "502", "503", "504"]
        .map(str::to_owned)
        .to_vec()
}

fn default_backoff() -> Duration {
    Duration::from_millis(25)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_budget() -> f64 {
    0.2
}

fn default_budget_window() -> Duration {
    Duration::from_secs(10)
}

/// When an upstream's circuit breaker opens and how it recovers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Open when at least this share of the calls in `window` failed ...
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    /// ... and at least this many calls were made in it: a few failures of a quiet upstream do
    /// not open it.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// The sliding window the failure rate is counted over.
    #[serde(default = "default_breaker_window")]
    pub window: Duration,
    /// How long the breaker stays open before it lets probes through.
    #[serde(default = "default_open_for")]
    pub open_for: Duration,
    /// Calls let through while half-open; if they all succeed the breaker closes, if one fails
    /// it opens again.
    #[serde(default = "default_half_open_probes")]
    pub half_open_probes: u32,
    /// Open after this many failures in a row instead, whatever the rate and volume (the
    /// consecutive-failure mode). Absent: the failure rate decides.
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// What counts as a failure: "5xx" (a response status of 500 or more), "timeout" (no
    /// response head within the route's timeout), "connect" (no connection, or a broken one).
    #[serde(default = "default_failure_on")]
    pub failure_on: Vec<String>,
}

/// What answers while an upstream's breaker is open: another upstream, or a static response.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// The status, e.g. 503, or 200 for a degraded but useful answer.
    #[serde(default = "default_fallback_status")]
    pub status: u16,
    /// The body, e.g. '{"error":"temporarily unavailable"}'.
    #[serde(default)]
    pub body: String,
    /// The body's media type.
    #[serde(default = "default_fallback_content_type")]
    pub content_type: String,
    /// Another upstream (a key of `[upstreams]`, HTTP/1.1) that serves the requests instead,
    /// e.g. a cache or a read-only replica; `status`, `body` and `content_type` are then unused.
    #[serde(default)]
    pub upstream: Option<String>,
}

fn default_failure_rate() -> f64 {
    0.5
}

fn default_min_requests() -> u32 {
    20
}

fn default_breaker_window() -> Duration {
    Duration::from_secs(10)
}

fn default_open_for() -> Duration {
    Duration::from_secs(5)
}

fn default_half_open_probes() -> u32 {
    3
}

fn default_failure_on() -> Vec<String> {
    ["5xx", "timeout", "connect"].map(str::to_owned).to_vec()
}

fn default_fallback_status() -> u16 {
    503
}

fn default_fallback_content_type() -> String {
    "application/json".to_owned()
}
