//! Whether to try a failed call again, and when: the retry rules of `[upstreams.NAME.retry]`
//! as one decision, for the upstream call and for Palisade's own outbound calls alike.
//!
//! [`RetryPolicy::decide`] takes what is known after a failed attempt ([`AttemptFailure`]) and
//! answers [`RetryDecision::Retry`] with the delay to sleep, or [`RetryDecision::Stop`] with a
//! [`StopReason`] whose `as_str()` is a stable metric label. The checks, in order:
//!
//! 1. `not_retryable`: the failure is not one of `on`.
//! 2. `attempts_exhausted`: this was attempt `attempts` (`attempts = 1`: never retry).
//! 3. `not_idempotent`: the request may have reached the upstream and is not safe to repeat: its
//!    method is not idempotent and it has no `Idempotency-Key` (or `idempotency_key` is off). A
//!    *connect* failure is exempt: nothing was sent, so any request may go again.
//! 4. `body_not_replayable`: the body was streamed and is gone.
//! 5. `retry_after_too_long`: the upstream's `Retry-After` exceeds `max_backoff`
//!    ([`super::backoff`]).
//! 6. `deadline`: the backoff would end at or past the request's deadline (its total timeout).
//! 7. `budget_exhausted`: the [`RetryBudget`] refuses. It is asked last, so a retry is
//!    withdrawn from the budget only when it will happen.

use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::budget::RetryBudget;

/// How an attempt failed, as far as retrying is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureClass {
    /// No connection (refused, unreachable, connect timeout): nothing was sent.
    Connect,
    /// The connection was reset or closed before a complete response head: the request may
    /// have been delivered.
    Reset,
    /// No response head within the per-try timeout: the request may have been delivered.
    Timeout,
    /// The upstream answered with this status.
    Status(u16),
}

/// Which failures may be retried (`on`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RetryOn {
    connect: bool,
    reset: bool,
    timeout: bool,
    /// Sorted, without duplicates.
    statuses: Vec<u16>,
}

/// An `on` entry that is not a failure Palisade can retry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a retryable failure: use \"connect\", \"reset\", \"timeout\" or a status from 400 to 599"
)]
pub struct UnknownRetryOn(pub String);

impl Default for RetryOn {
    /// `["connect", "reset", "502", "503", "504"]`.
    fn default() -> Self {
        Self {
            connect: true,
            reset: true,
            timeout: false,
            statuses: vec![502, 503, 504],
        }
    }
}

impl RetryOn {
    /// Nothing: no failure is retried.
    pub fn none() -> Self {
        Self {
            connect: false,
            reset: false,
            timeout: false,
            statuses: Vec::new(),
        }
    }

    /// The set named by `tokens`: `connect`, `reset`, `timeout`, or a status from 400 to 599.
    pub fn parse<'a>(tokens: impl IntoIterator<Item = &'a str>) -> Result<Self, UnknownRetryOn> {
        let mut on = Self::none();
        for token in tokens {
            match token {
                "connect" => on.connect = true,
                "reset" => on.reset = true,
                "timeout" => on.timeout = true,
                status => match status.parse::<u16>() {
                    Ok(code @ 400..=599) if status.len() == 3 => on.statuses.push(code),
                    _ => return Err(UnknownRetryOn(status.to_owned())),
                },
            }
        }
        on.statuses.sort_unstable();
        on.statuses.dedup();
        Ok(on)
    }

    pub fn matches(&self, failure: FailureClass) -> bool {
        match failure {
            FailureClass::Connect => self.connect,
            FailureClass::Reset => self.reset,
            FailureClass::Timeout => self.timeout,
            FailureClass::Status(code) => self.statuses.binary_search(&code).is_ok(),
        }
    }
}

/// The retry rules of one upstream (or one outbound client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total tries, the first included (at least 1; 1 turns retries off).
    pub attempts: u32,
    pub on: RetryOn,
    pub backoff: Backoff,
    /// Also retry non-idempotent requests that carry an `Idempotency-Key`.
    pub idempotency_key: bool,
}

impl Default for RetryPolicy {
    /// The defaults of `[upstreams.NAME.retry]`: 2 attempts on connect, reset, 502, 503, 504;
    /// backoff from 25 ms to 1 s; `Idempotency-Key` honoured.
    fn default() -> Self {
        Self {
            attempts: 2,
            on: RetryOn::default(),
            backoff: Backoff::new(Duration::from_millis(25), Duration::from_secs(1)),
            idempotency_key: true,
        }
    }
}

/// What is known after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptFailure {
    /// The attempt that failed, 1 for the first.
    pub attempt: u32,
    pub failure: FailureClass,
    /// The request's method is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
    pub idempotent: bool,
    /// The request carries an `Idempotency-Key`.
    pub idempotency_key: bool,
    /// The body can be sent again (none, or buffered whole).
    pub body_replayable: bool,
    /// The upstream's `Retry-After`, parsed ([`super::parse_retry_after`]).
    pub retry_after: Option<Duration>,
    /// When the request's total timeout ends, if it has one.
    pub deadline: Option<Instant>,
}

/// Why a failed call is not tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    NotRetryable,
    AttemptsExhausted,
    NotIdempotent,
    BodyNotReplayable,
    RetryAfterTooLong,
    Deadline,
    BudgetExhausted,
}

impl StopReason {
    /// The metric label; stable.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotRetryable => "not_retryable",
            Self::AttemptsExhausted => "attempts_exhausted",
            Self::NotIdempotent => "not_idempotent",
            Self::BodyNotReplayable => "body_not_replayable",
            Self::RetryAfterTooLong => "retry_after_too_long",
            Self::Deadline => "deadline",
            Self::BudgetExhausted => "budget_exhausted",
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Sleep `after`, then make the next attempt. The retry is already counted in the budget.
    Retry {
        after: Duration,
    },
    Stop(StopReason),
}

impl RetryPolicy {
    /// Whether to retry after `failed`; see the module documentation for the checks. `budget`:
    /// the budget to withdraw from, if there is one. `rng` draws the jitter.
    pub fn decide<R: Rng + ?Sized>(
        &self,
        failed: &AttemptFailure,
        budget: Option<&RetryBudget>,
        rng: &mut R,
    ) -> RetryDecision {
        match self.check(failed, budget, rng) {
            Ok(after) => RetryDecision::Retry { after },
            Err(reason) => RetryDecision::Stop(reason),
        }
    }

    fn check<R: Rng + ?Sized>(
        &self,
        failed: &AttemptFailure,
        budget: Option<&RetryBudget>,
        rng: &mut R,
    ) -> Result<Duration, StopReason> {
        if !self.on.matches(failed.failure) {
            return Err(StopReason::NotRetryable);
        }
        if failed.attempt >= self.attempts {
            return Err(StopReason::AttemptsExhausted);
        }
        let repeatable = failed.failure == FailureClass::Connect
            || failed.idempotent
            || (self.idempotency_key && failed.idempotency_key);
        if !repeatable {
            return Err(StopReason::NotIdempotent);
        }
        if !failed.body_replayable {
            return Err(StopReason::BodyNotReplayable);
        }
        let retry = failed.attempt.saturating_sub(1);
        let after = self
            .backoff
            .delay(retry, failed.retry_after, rng)
            .map_err(|_| StopReason::RetryAfterTooLong)?;
        if let Some(deadline) = failed.deadline {
            let wakes = Instant::now().checked_add(after);
            if wakes.is_none_or(|wakes| wakes >= deadline) {
                return Err(StopReason::Deadline);
            }
        }
        if budget.is_some_and(|budget| !budget.try_withdraw()) {
            return Err(StopReason::BudgetExhausted);
        }
        Ok(after)
    }
}
