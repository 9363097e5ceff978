//! The retry decision: each stop reason, the order of the checks, the deadline, and the budget
//! counted when a retry is decided.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::time::{Instant, advance};

use super::{ms, secs};
use crate::resilience::{
    AttemptFailure, Backoff, BudgetConfig, FailureClass, RetryBudget, RetryDecision, RetryOn,
    RetryPolicy, StopReason, UnknownRetryOn,
};

/// A failed first attempt of a GET with a 502.
fn get_502() -> AttemptFailure {
    AttemptFailure {
        attempt: 1,
        failure: FailureClass::Status(502),
        idempotent: true,
        idempotency_key: false,
        body_replayable: true,
        retry_after: None,
        deadline: None,
    }
}

fn post(failure: FailureClass) -> AttemptFailure {
    AttemptFailure {
        failure,
        idempotent: false,
        ..get_502()
    }
}

fn decide(policy: &RetryPolicy, failed: AttemptFailure) -> RetryDecision {
    policy.decide(&failed, None, &mut StdRng::seed_from_u64(1))
}

fn stop(policy: &RetryPolicy, failed: AttemptFailure) -> StopReason {
    match decide(policy, failed) {
        RetryDecision::Stop(reason) => reason,
        retry => panic!("expected a stop, got {retry:?}"),
    }
}

fn retry_after(policy: &RetryPolicy, failed: AttemptFailure) -> Duration {
    match decide(policy, failed) {
        RetryDecision::Retry { after } => after,
        stop => panic!("expected a retry, got {stop:?}"),
    }
}

#[test]
fn the_default_retries_an_idempotent_request_once_on_its_failures() {
    let policy = RetryPolicy::default();
    for failure in [502, 503, 504]
        .map(FailureClass::Status)
        .into_iter()
        .chain([FailureClass::Connect, FailureClass::Reset])
    {
        let failed = AttemptFailure {
            failure,
            ..get_502()
        };
        assert!(retry_after(&policy, failed) <= ms(25), "{failure:?}");
        let second = AttemptFailure {
            attempt: 2,
            ..failed
        };
        assert_eq!(stop(&policy, second), StopReason::AttemptsExhausted);
    }
    for failure in [500, 429, 404]
        .map(FailureClass::Status)
        .into_iter()
        .chain([FailureClass::Timeout])
    {
        let failed = AttemptFailure {
            failure,
            ..get_502()
        };
        assert_eq!(
            stop(&policy, failed),
            StopReason::NotRetryable,
            "{failure:?}"
        );
    }
}

#[test]
fn one_attempt_turns_retries_off() {
    let policy = RetryPolicy {
        attempts: 1,
        ..RetryPolicy::default()
    };
    assert_eq!(stop(&policy, get_502()), StopReason::AttemptsExhausted);
}

#[test]
fn a_non_idempotent_request_is_retried_only_with_a_key_or_when_nothing_was_sent() {
    let policy = RetryPolicy::default();
    assert_eq!(
        stop(&policy, post(FailureClass::Reset)),
        StopReason::NotIdempotent
    );
    assert_eq!(
        stop(&policy, post(FailureClass::Status(503))),
        StopReason::NotIdempotent
    );
    let keyed = AttemptFailure {
        idempotency_key: true,
        ..post(FailureClass::Status(503))
    };
    retry_after(&policy, keyed);
    let ignoring_keys = RetryPolicy {
        idempotency_key: false,
        ..RetryPolicy::default()
    };
    assert_eq!(stop(&ignoring_keys, keyed), StopReason::NotIdempotent);
    // A connection that never opened sent nothing: any request may go again.
    retry_after(&ignoring_keys, post(FailureClass::Connect));
}

#[test]
fn a_body_that_is_gone_cannot_be_sent_again() {
    let failed = AttemptFailure {
        body_replayable: false,
        ..get_502()
    };
    assert_eq!(
        stop(&RetryPolicy::default(), failed),
        StopReason::BodyNotReplayable
    );
}

#[test]
fn the_backoff_grows_with_the_attempt() {
    let policy = RetryPolicy {
        attempts: 10,
        ..RetryPolicy::default()
    };
    for attempt in 1..10 {
        let ceiling = policy.backoff.ceiling(attempt - 1);
        for seed in 0..50 {
            let failed = AttemptFailure {
                attempt,
                ..get_502()
            };
            let decision = policy.decide(&failed, None, &mut StdRng::seed_from_u64(seed));
            assert!(
                matches!(decision, RetryDecision::Retry { after } if after <= ceiling),
                "attempt {attempt}: {decision:?}"
            );
        }
    }
}

#[test]
fn retry_after_is_honoured_or_stops_the_retry() {
    let policy = RetryPolicy::default();
    let asked = |d| AttemptFailure {
        retry_after: Some(d),
        ..get_502()
    };
    assert!(retry_after(&policy, asked(ms(400))) >= ms(400));
    assert_eq!(retry_after(&policy, asked(secs(1))), secs(1));
    assert_eq!(
        stop(&policy, asked(ms(1001))),
        StopReason::RetryAfterTooLong
    );
}

#[tokio::test(start_paused = true)]
async fn no_retry_whose_backoff_ends_at_or_past_the_deadline() {
    let policy = RetryPolicy {
        backoff: Backoff::new(ms(100), ms(100)),
        ..RetryPolicy::default()
    };
    let by = |deadline| AttemptFailure {
        deadline: Some(deadline),
        retry_after: Some(ms(100)),
        ..get_502()
    };
    let now = Instant::now();
    assert_eq!(retry_after(&policy, by(now + ms(101))), ms(100));
    assert_eq!(stop(&policy, by(now + ms(100))), StopReason::Deadline);
    advance(ms(50)).await;
    assert_eq!(stop(&policy, by(now + ms(101))), StopReason::Deadline);
    assert_eq!(stop(&policy, by(now)), StopReason::Deadline);
}

#[tokio::test(start_paused = true)]
async fn a_retry_is_counted_in_the_budget_when_it_is_decided() {
    let budget = RetryBudget::new(BudgetConfig {
        ratio: 0.2,
        window: secs(10),
        min_per_second: 0.0,
    });
    for _ in 0..10 {
        budget.deposit();
    }
    let policy = RetryPolicy::default();
    let mut rng = StdRng::seed_from_u64(9);
    // Two retries decided and still sleeping their backoff: the third finds the budget spent.
    for _ in 0..2 {
        let decision = policy.decide(&get_502(), Some(&budget), &mut rng);
        assert!(matches!(decision, RetryDecision::Retry { .. }));
    }
    assert_eq!(
        policy.decide(&get_502(), Some(&budget), &mut rng),
        RetryDecision::Stop(StopReason::BudgetExhausted)
    );
    assert_eq!(budget.snapshot().retries, 2);
}

#[tokio::test(start_paused = true)]
async fn a_stop_for_another_reason_leaves_the_budget_alone() {
    let budget = RetryBudget::new(BudgetConfig::default());
    let policy = RetryPolicy::default();
    let mut rng = StdRng::seed_from_u64(9);
    for failed in [
        post(FailureClass::Reset),
        AttemptFailure {
            attempt: 2,
            ..get_502()
        },
        AttemptFailure {
            deadline: Some(Instant::now()),
            ..get_502()
        },
    ] {
        assert!(matches!(
            policy.decide(&failed, Some(&budget), &mut rng),
            RetryDecision::Stop(_)
        ));
    }
    assert_eq!(budget.snapshot().retries, 0);
}

#[test]
fn retry_on_reads_the_config_tokens() {
    let on = RetryOn::parse(["connect", "503", "timeout", "503", "429"]).unwrap();
    assert!(on.matches(FailureClass::Connect));
    assert!(on.matches(FailureClass::Timeout));
    assert!(on.matches(FailureClass::Status(429)));
    assert!(on.matches(FailureClass::Status(503)));
    assert!(!on.matches(FailureClass::Reset));
    assert!(!on.matches(FailureClass::Status(502)));
    assert_eq!(
        RetryOn::parse(["connect", "reset", "502", "503", "504"]).unwrap(),
        RetryOn::default()
    );
    for bad in ["5xx", "200", "600", "0502", "+502", "Connect", ""] {
        assert_eq!(RetryOn::parse([bad]), Err(UnknownRetryOn(bad.to_owned())));
    }
    let message = RetryOn::parse(["5xx"]).unwrap_err().to_string();
    assert!(
        message.contains("`5xx`") && message.contains("400 to 599"),
        "{message}"
    );
    assert!(!RetryOn::none().matches(FailureClass::Connect));
}

#[test]
fn stop_reasons_have_stable_labels() {
    use StopReason::*;
    let labels = [
        NotRetryable,
        AttemptsExhausted,
        NotIdempotent,
        BodyNotReplayable,
        RetryAfterTooLong,
        Deadline,
        BudgetExhausted,
    ]
    .map(StopReason::as_str);
    assert_eq!(
        labels,
        [
            "not_retryable",
            "attempts_exhausted",
            "not_idempotent",
            "body_not_replayable",
            "retry_after_too_long",
            "deadline",
            "budget_exhausted",
        ]
    );
}
