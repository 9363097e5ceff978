//! Resilience building blocks for outbound calls: backoff, a retry budget, a circuit breaker, a
//! concurrency limit and the retry decision. One implementation for the upstream call and for
//! Palisade's own calls (Redis, JWKS fetches, webhook delivery); nothing here knows HTTP
//! beyond a status code and the bytes of a `Retry-After` value.
//!
//! - [`backoff`]: exponential backoff with full jitter; `Retry-After` parsed and capped.
//! - [`budget`]: retries as a share of requests over a sliding window, with a minimum rate.
//! - [`breaker`]: a circuit breaker tripped by a failure rate (with a minimum volume) or by
//!   consecutive failures; [`registry`] keeps breakers by key across reloads.
//! - [`concurrency`]: a concurrency limit with a bounded FIFO queue and a queue timeout.
//! - [`policy`]: [`RetryPolicy::decide`], retry or stop, with a reason for the metric label.
//!
//! The pieces are state plus decisions: none sleeps, spawns, logs or counts a metric. The caller
//! sleeps the delay it is given and reports what it is told through return values and the
//! breaker's [`Observer`]. All time is tokio's [`Instant`](tokio::time::Instant), so tests run
//! on a paused clock. One call, in order (as the request path runs them):
//!
//! ```ignore
//! let _slot = route_limit.acquire().await?;            // Shed → 503 + Retry-After
//! budget.deposit();                                    // once per request
//! for attempt in 1.. {
//!     let permit = breaker.try_acquire()?;             // Rejected → 503 + Retry-After
//!     let failure = match send().await {
//!         Ok(response) => { permit.success(); return Ok(response) }
//!         Err(failure) => { permit.failure(); failure }
//!     };
//!     let failed = AttemptFailure { attempt, failure, /* request facts */ .. };
//!     match policy.decide(&failed, Some(&budget), &mut rand::rng()) {
//!         RetryDecision::Retry { after } => tokio::time::sleep(after).await,
//!         RetryDecision::Stop(reason) => return Err(/* counted under reason.as_str() */),
//!     }
//! }
//! ```

pub mod backoff;
pub mod breaker;
pub mod budget;
pub mod concurrency;
pub mod policy;
pub mod registry;
mod window;

#[cfg(test)]
mod tests;

pub use backoff::{Backoff, RetryAfterTooLong, parse_retry_after};
pub use breaker::{
    Breaker, BreakerConfig, BreakerPermit, BreakerSnapshot, BreakerState, Observer, Rejected,
    Transition, Trip,
};
pub use budget::{BudgetConfig, BudgetSnapshot, RetryBudget};
pub use concurrency::{ConcurrencyConfig, ConcurrencyLimit, ConcurrencyPermit, Shed, ShedReason};
pub use policy::{
    AttemptFailure, FailureClass, RetryDecision, RetryOn, RetryPolicy, StopReason, UnknownRetryOn,
};
pub use registry::Breakers;
