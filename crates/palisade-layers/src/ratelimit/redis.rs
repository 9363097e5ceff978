//! The Redis backend: each decision is one atomic Lua script run on Redis's own clock (`TIME`),
//! the same GCRA arithmetic governor runs locally, so every replica that shares the Redis
//! shares the counters and a policy answers the same on either backend.
//!
//! Every call is bounded by `[redis] timeout`; a circuit breaker (the one upstreams use,
//! [`crate::resilience::Breaker`]) stops calling a Redis that keeps failing: it opens after
//! [`TRIP_AFTER`] failures in a row, for [`OPEN_FOR`], then lets one call through; while Redis
//! cannot answer, the policy's `on_backend_error` does ([`super::check_remote`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use palisade_config::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};

use crate::resilience::{Breaker, BreakerConfig, BreakerState, Trip};

/// Failures in a row that open the breaker.
const TRIP_AFTER: u32 = 3;
/// How long an open breaker skips Redis before it lets one call through.
const OPEN_FOR: Duration = Duration::from_secs(5);

/// GCRA as governor computes it (`tau` = emission × (burst − 1)), in microseconds on Redis's
/// clock. Returns `{1, tat − now}` when the request is admitted (its new theoretical arrival
/// time, from which `remaining` follows) or `{0, wait}` when it is refused. The key expires
/// once it would be back at a full burst, so idle keys cost Redis nothing.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
local earliest = tat - tau
if now < earliest then
  return {0, earliest - now}
end
local next = math.max(tat, now) + emission
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1)
return {1, next - now}
";

/// What Redis answered for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Admitted; the key's theoretical arrival time is this far ahead.
    Allowed { ahead: Duration },
    /// Refused; one request is admitted again after this wait.
    Refused { wait: Duration },
}

/// Why Redis gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisFailure {
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the circuit breaker is open after repeated redis failures")]
    BreakerOpen,
}

impl RedisFailure {
    /// The `reason` label of the fallback metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Redis(_) => "error",
            Self::BreakerOpen => "breaker_open",
        }
    }
}

/// The connection to `[redis]`, shared by every Redis-backed policy.
pub struct RedisBackend {
    connection: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
    prefix: String,
    breaker: Breaker,
    /// The last call: 0 none yet, 1 answered, 2 failed.
    last: AtomicU8,
}

impl RedisBackend {
    /// A backend that connects on first use and reconnects after failures; a Redis that is
    /// down at start-up is a fallback, not a failed start. Call it within the tokio runtime.
    pub fn new(cfg: &RedisConfig) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(cfg.url.expose())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(cfg.timeout.get()))
            .set_response_timeout(Some(cfg.timeout.get()))
            .set_number_of_retries(1);
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            script: redis::Script::new(GCRA),
            timeout: cfg.timeout.get(),
            prefix: cfg.prefix.clone(),
            breaker: Breaker::with_observer(
                BreakerConfig {
                    trip: Trip::Consecutive {
                        failures: TRIP_AFTER,
                    },
                    open_for: OPEN_FOR,
                    max_open_for: OPEN_FOR,
                    half_open_probes: 1,
                },
                Arc::new(|t: crate::resilience::Transition| {
                    if t.to == BreakerState::Open {
                        tracing::warn!(
                            open_for_ms = OPEN_FOR.as_millis() as u64,
                            "redis keeps failing: rate-limit decisions skip it for a while"
                        );
                    }
                }),
            ),
            last: AtomicU8::new(0),
        })
    }

    /// The Redis key of one bucket: the prefix, the policy and tier (config names), and a
    /// SHA-256 of the request's key, so no client text reaches Redis or another key.
    pub fn key(&self, policy: &str, tier: &str, key: &[u8]) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = Sha256::digest(key);
        let mut out = String::with_capacity(self.prefix.len() + policy.len() + tier.len() + 40);
        out.push_str(&self.prefix);
        out.push_str(":rl:");
        out.push_str(policy);
        out.push(':');
        out.push_str(tier);
        out.push(':');
        for byte in &digest[..16] {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }

    /// Records `material` (a webhook delivery's replay key) for `keep`: true the first time,
    /// false when it was already there. The key is hashed, as a bucket's is.
    pub async fn first_seen(&self, material: &[u8], keep: Duration) -> Result<bool, RedisFailure> {
        let key = self.key("webhook", "replay", material);
        let mut connection = self.connection.clone();
        let mut set = redis::cmd("SET");
        set.arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(keep.as_millis().max(1) as u64);
        let call = set.query_async::<Option<String>>(&mut connection);
        Ok(self.guarded(call).await?.is_some())
    }

    /// Runs the GCRA script for one request on `key`.
    pub async fn decide(
        &self,
        key: &str,
        emission: Duration,
        burst: u32,
    ) -> Result<Answer, RedisFailure> {
        let emission_us = emission.as_micros().max(1) as u64;
        let tau_us = emission_us * u64::from(burst.saturating_sub(1));
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(emission_us).arg(tau_us);
        let call = invocation.invoke_async::<(i64, i64)>(&mut connection);
        let (allowed, micros) = self.guarded(call).await?;
        let span = Duration::from_micros(micros.max(0) as u64);
        Ok(if allowed == 1 {
            Answer::Allowed { ahead: span }
        } else {
            Answer::Refused { wait: span }
        })
    }

    /// The state `/health` shows: `up` (the last call answered), `failing`, `breaker_open`
    /// (decisions skip Redis for now) or `unused` (no call yet).
    pub fn state(&self) -> &'static str {
        if self.breaker.state() == BreakerState::Open {
            return "breaker_open";
        }
        match self.last.load(Ordering::Relaxed) {
            1 => "up",
            2 => "failing",
            _ => "unused",
        }
    }

    /// Runs `call` unless the breaker is open, bounded by the timeout, and records how it went.
    async fn guarded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, RedisFailure> {
        let permit = self
            .breaker
            .try_acquire()
            .map_err(|_| RedisFailure::BreakerOpen)?;
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(error)) => Err(RedisFailure::Redis(error)),
            Err(_) => Err(RedisFailure::Timeout(self.timeout)),
        };
        permit.record(result.is_ok());
        self.last
            .store(if result.is_ok() { 1 } else { 2 }, Ordering::Relaxed);
        result
    }
}
