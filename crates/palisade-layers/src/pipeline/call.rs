//! The upstream call: which endpoint, how many attempts, and which failures may be tried again.
//! Both codecs drive it through [`Exchange`], which performs one attempt on one endpoint.
//!
//! A request that never reached the upstream — the connection was refused or timed out, or a
//! reused connection failed while the request was being written — goes to the next endpoint
//! (as NGINX's default `proxy_next_upstream error timeout`), and an endpoint that refused a
//! connection is skipped for a short backoff. A request that may have reached the upstream is
//! sent again only when it is safe to repeat and its connection was a reused one that closed
//! before a complete final response head (the upstream closing an idle connection as it was
//! being reused), as NGINX's `proxy_next_upstream error` does. Past those, the upstream's
//! retry policy ([`Retry`], `[upstreams.NAME.retry]`) sends a failed request again after a
//! jittered backoff, within its attempts, budget and the route's deadline. The route's timeout
//! covers every attempt; the codec enforces it around [`call`].

use std::sync::Arc;
use std::time::Duration;

use palisade_telemetry::metrics::{RetryMetrics, UpstreamErrorKind};
use tokio::time::Instant;

use crate::pool::Endpoint;
use crate::resilience::{
    AttemptFailure, FailureClass, RetryBudget, RetryDecision, RetryPolicy, StopReason,
};
use crate::upstream::Upstream;

/// How far an attempt got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection: refused, unreachable or timed out. Nothing was sent.
    Connect,
    /// A reused connection failed while the request was written: nothing was delivered.
    StaleBeforeSend,
    /// A reused connection closed after the request was written, before a complete final
    /// response head.
    StaleAfterSend,
    /// Anything else, after the request may have been delivered.
    Exchange(UpstreamErrorKind),
    /// The client ended the request while its body was being sent (it closed the connection
    /// or stopped sending): not the upstream's failure, never tried again.
    Client,
}

impl Failure {
    /// The `kind` label this failure counts under when it ends the call.
    pub fn kind(self) -> UpstreamErrorKind {
        match self {
            Self::Connect => UpstreamErrorKind::Connect,
            Self::StaleBeforeSend | Self::StaleAfterSend => UpstreamErrorKind::Protocol,
            Self::Exchange(kind) => kind,
            Self::Client => UpstreamErrorKind::Other,
        }
    }
}

/// One failed attempt: how far it got and the cause, for the operator's log.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct AttemptError {
    pub failure: Failure,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl AttemptError {
    /// The attempt ran out of time (the retry policy's `try_timeout`).
    pub fn timed_out(&self) -> bool {
        self.failure == Failure::Exchange(UpstreamErrorKind::Timeout)
    }

    pub fn new(
        failure: Failure,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            failure,
            source: source.into(),
        }
    }
}

/// One attempt of a request on one endpoint, as a codec performs it.
pub trait Exchange {
    type Output;

    /// Sends the request to `endpoint` and reads the response head. `fresh` asks for a new
    /// connection rather than a pooled one.
    fn attempt(
        &mut self,
        endpoint: &Arc<Endpoint>,
        fresh: bool,
    ) -> impl Future<Output = Result<Self::Output, AttemptError>>;

    /// The status of an attempt's response head and the wait its `Retry-After` asks for, for
    /// the retry decision. Dropping the output abandons the response.
    fn status(output: &Self::Output) -> (u16, Option<Duration>);
}

/// An upstream's retries: the policy, the budget they draw on, and their metrics.
#[derive(Debug)]
pub struct Retry {
    pub policy: RetryPolicy,
    /// Kept across reloads while the upstream's retry settings are unchanged.
    pub budget: Arc<RetryBudget>,
    pub metrics: RetryMetrics,
    /// Longest wait for one attempt's response head.
    pub try_timeout: Option<Duration>,
    /// Bodies up to this many bytes are read whole first so a retry can send them again.
    pub replay_body: u64,
}

impl Retry {
    /// Whether a body of `length` bytes (`None`: chunked) of a request of this kind is read
    /// whole first, so a retry can replay it.
    pub fn replays(&self, length: Option<u64>, idempotent: bool, idempotency_key: bool) -> bool {
        let safe = idempotent || (idempotency_key && self.policy.idempotency_key);
        safe && length.is_some_and(|n| n > 0 && n <= self.replay_body)
    }
}

/// What makes a request safe to send again after it may have been delivered.
#[derive(Debug, Clone, Copy)]
pub struct Repeat {
    /// The method is idempotent (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The request carries `Idempotency-Key`: its sender made a repeat harmless (the retry
    /// policy's `idempotency_key` decides whether that counts).
    pub idempotency_key: bool,
    /// The whole body, if any, is at hand to be sent again.
    pub body: bool,
}

impl Repeat {
    /// Safe for the transport's own second try (a pooled connection the upstream had closed).
    fn stale_safe(self) -> bool {
        self.idempotent && self.body
    }
}

/// Calls `upstream` for one request before `deadline`; `repeat` says when it may go again.
///
/// Transport failures first go to the next endpoint at once, as before (an unreachable
/// endpoint, a pooled connection the upstream had closed). Past that, the upstream's
/// [`Retry`] policy decides: a refused connection, a reset, or a listed status is tried again
/// after a jittered backoff, within the attempts, the budget and the deadline; what it does not
/// retry is counted with the reason and answered as it came.
pub async fn call<X: Exchange>(
    upstream: &Upstream,
    repeat: Repeat,
    exchange: &mut X,
    deadline: Instant,
) -> Result<X::Output, AttemptError> {
    let mut endpoint = upstream
        .pick()
        .ok_or_else(|| AttemptError::new(Failure::Connect, "the upstream has no endpoint"))?;
    let retry = upstream.retry.as_ref();
    if let Some(retry) = retry {
        retry.budget.deposit();
    }
    let mut endpoints_left = upstream.endpoint_count().saturating_sub(1);
    let (mut fresh, mut repeated, mut attempt) = (false, false, 1);
    loop {
        let attempted = match retry.and_then(|r| r.try_timeout) {
            None => exchange.attempt(&endpoint, fresh).await,
            Some(limit) => {
                match tokio::time::timeout(limit, exchange.attempt(&endpoint, fresh)).await {
                    Ok(attempted) => attempted,
                    Err(_) => Err(AttemptError::new(
                        Failure::Exchange(UpstreamErrorKind::Timeout),
                        format!("no response head within the try timeout of {limit:?}"),
                    )),
                }
            }
        };
        let error = match attempted {
            Ok(out) => {
                endpoint.connected();
                let (status, retry_after) = X::status(&out);
                if endpoint.answered(status) {
                    upstream.metrics.ejected("5xx");
                }
                let Some(retry) = retry else { return Ok(out) };
                let failure = FailureClass::Status(status);
                if !retry.policy.on.matches(failure) {
                    return Ok(out);
                }
                match decide(retry, attempt, failure, repeat, retry_after, deadline) {
                    Some(after) => {
                        drop(out);
                        let reason = if status >= 500 {
                            "status_5xx"
                        } else {
                            "status_4xx"
                        };
                        retry.metrics.retried(reason);
                        tracing::debug!(upstream = %upstream.name, status, attempt, after_ms = after.as_millis() as u64, "retrying");
                        tokio::time::sleep(after).await;
                        attempt += 1;
                        endpoint = upstream.pick_after(&endpoint).unwrap_or(endpoint);
                        fresh = false;
                        continue;
                    }
                    None => return Ok(out),
                }
            }
            Err(error) => error,
        };
        let class = match error.failure {
            Failure::Connect => {
                endpoint.refused();
                let next = upstream.pick_after(&endpoint);
                match next {
                    Some(next) if endpoints_left > 0 => {
                        endpoints_left -= 1;
                        upstream.metrics.failover();
                        tracing::debug!(
                            upstream = %upstream.name,
                            from = %endpoint.authority,
                            to = %next.authority,
                            error = %error,
                            "endpoint unreachable; trying the next one"
                        );
                        (endpoint, fresh) = (next, false);
                        continue;
                    }
                    _ => FailureClass::Connect,
                }
            }
            Failure::StaleBeforeSend if !fresh => {
                fresh = true;
                continue;
            }
            Failure::StaleAfterSend if !fresh && repeat.stale_safe() && !repeated => {
                (fresh, repeated) = (true, true);
                continue;
            }
            Failure::Client => return Err(error),
            _ if error.timed_out() => FailureClass::Timeout,
            _ => FailureClass::Reset,
        };
        let Some(retry) = retry.filter(|r| r.policy.on.matches(class)) else {
            return Err(error);
        };
        match decide(retry, attempt, class, repeat, None, deadline) {
            Some(after) => {
                let reason = match class {
                    FailureClass::Connect => "connect",
                    FailureClass::Timeout => "timeout",
                    _ => "reset",
                };
                retry.metrics.retried(reason);
                tokio::time::sleep(after).await;
                attempt += 1;
                endpoints_left = upstream.endpoint_count().saturating_sub(1);
                endpoint = upstream.pick().unwrap_or(endpoint);
                fresh = true;
            }
            None => return Err(error),
        }
    }
}

/// The policy's answer for a failed attempt: the wait before the next, or `None` (counted with
/// its reason when a retry was wanted).
fn decide(
    retry: &Retry,
    attempt: u32,
    failure: FailureClass,
    repeat: Repeat,
    retry_after: Option<Duration>,
    deadline: Instant,
) -> Option<Duration> {
    // Nothing was sent when no connection could be made: any request can go again.
    let unsent = failure == FailureClass::Connect;
    let failed = AttemptFailure {
        attempt,
        failure,
        idempotent: repeat.idempotent || unsent,
        idempotency_key: repeat.idempotency_key,
        body_replayable: repeat.body || unsent,
        retry_after,
        deadline: Some(deadline),
    };
    match retry
        .policy
        .decide(&failed, Some(&retry.budget), &mut rand::rng())
    {
        RetryDecision::Retry { after } => Some(after),
        RetryDecision::Stop(reason) => {
            if reason != StopReason::NotRetryable {
                retry.metrics.stopped(reason.as_str());
            }
            None
        }
    }
}

/// The answer to a request whose call failed (`error`), or found no response head within the
/// route's timeout (`None`): counted under the upstream's errors and logged with the request
/// id, once for both codecs.
pub fn failed(
    route: &crate::routing::Route,
    ctx: &super::RequestCtx,
    error: Option<&AttemptError>,
    close: bool,
) -> super::Rejection {
    let upstream = &route.upstream;
    let request_id = ctx.record.request_id.to_str().unwrap_or_default();
    let error = match error {
        Some(error) if error.timed_out() => {
            upstream.metrics.error(UpstreamErrorKind::Timeout);
            tracing::warn!(
                request_id,
                route = &*route.name,
                upstream = %upstream.name,
                error = %error,
                "upstream did not answer within the try timeout"
            );
            crate::problem::ProxyError::UpstreamTimeout
        }
        Some(error) => {
            upstream.metrics.error(error.failure.kind());
            tracing::warn!(
                request_id,
                route = &*route.name,
                upstream = %upstream.name,
                error = %crate::proxy::ErrorChain(error),
                "upstream request failed"
            );
            crate::problem::ProxyError::UpstreamUnavailable
        }
        None => {
            upstream.metrics.error(UpstreamErrorKind::Timeout);
            tracing::warn!(
                request_id,
                route = &*route.name,
                upstream = %upstream.name,
                timeout_ms = route.timeout.as_millis() as u64,
                "upstream did not answer within the route timeout"
            );
            crate::problem::ProxyError::UpstreamTimeout
        }
    };
    super::Rejection { error, close }
}
