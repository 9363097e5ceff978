//! The retry budget: the ratio under sustained failure, the window sliding, the minimum rate.

use tokio::time::advance;

use super::{ms, secs};
use crate::resilience::{BudgetConfig, BudgetSnapshot, RetryBudget};

fn budget(ratio: f64, min_per_second: f64) -> RetryBudget {
    RetryBudget::new(BudgetConfig {
        ratio,
        window: secs(10),
        min_per_second,
    })
}

/// `n` requests, each of which asks for a retry: how many were granted.
fn failing_requests(budget: &RetryBudget, n: u32) -> u32 {
    (0..n)
        .map(|_| {
            budget.deposit();
            u32::from(budget.try_withdraw())
        })
        .sum()
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_ratio_under_sustained_failure() {
    let budget = budget(0.2, 0.0);
    let mut granted = 0;
    for _ in 0..300 {
        // 100 requests a second, every one failing and asking for a retry.
        granted += failing_requests(&budget, 10);
        let BudgetSnapshot {
            requests,
            retries,
            allowed,
        } = budget.snapshot();
        assert!(retries <= allowed, "{retries} retries, {allowed} allowed");
        assert!(retries * 5 <= requests, "{retries} retries of {requests}");
        advance(ms(100)).await;
    }
    // 20 % of 3000 requests, give or take what a sliding window lets through at its edges.
    assert!((540..=600).contains(&granted), "{granted} retries granted");
}

#[tokio::test(start_paused = true)]
async fn an_exhausted_budget_recovers_after_the_window() {
    let budget = budget(0.2, 0.0);
    assert_eq!(failing_requests(&budget, 10), 2);
    assert!(!budget.try_withdraw());
    advance(secs(5)).await;
    // Still inside the window: new requests earn new retries, the old ones still count.
    assert_eq!(failing_requests(&budget, 5), 1);
    assert!(!budget.try_withdraw());
    advance(secs(5)).await;
    // The first requests and their retries have left the window; the later ones have not.
    assert_eq!(
        budget.snapshot(),
        BudgetSnapshot {
            requests: 5,
            retries: 1,
            allowed: 1
        }
    );
    advance(secs(5)).await;
    assert_eq!(budget.snapshot().requests, 0);
    assert_eq!(failing_requests(&budget, 10), 2);
}

#[tokio::test(start_paused = true)]
async fn a_retry_leaves_the_window_after_it() {
    // A reserve of exactly one retry per 10 s window.
    let budget = budget(0.0, 0.1);
    assert!(budget.try_withdraw());
    advance(ms(9500)).await;
    assert!(!budget.try_withdraw(), "still inside the window");
    advance(ms(500)).await;
    assert!(budget.try_withdraw(), "10 s later");
}

#[tokio::test(start_paused = true)]
async fn the_minimum_rate_lets_low_traffic_retry() {
    // One request a minute: 20 % of it is no retry at all.
    let strict = budget(0.2, 0.0);
    assert_eq!(failing_requests(&strict, 1), 0);

    // With 1 retry a second in reserve, a 10 s window allows 10 retries whatever the traffic.
    let budget = budget(0.2, 1.0);
    budget.deposit();
    let granted = (0..20).filter(|_| budget.try_withdraw()).count();
    assert_eq!(granted, 10);
    advance(secs(60)).await;
    budget.deposit();
    assert!(budget.try_withdraw(), "a minute later, the reserve is back");
}

#[tokio::test(start_paused = true)]
async fn the_reserve_adds_to_the_ratio() {
    let budget = budget(0.2, 1.0);
    for _ in 0..100 {
        budget.deposit();
    }
    assert_eq!(budget.snapshot().allowed, 30);
    assert_eq!((0..50).filter(|_| budget.try_withdraw()).count(), 30);
}

#[tokio::test(start_paused = true)]
async fn ratios_that_are_not_exact_in_binary_round_as_written() {
    let budget = budget(0.1, 0.0);
    for _ in 0..30 {
        budget.deposit();
    }
    // 0.1 × 30 is 3.0000000000000004 or 2.9999999999999996 depending on the path taken.
    assert_eq!(budget.snapshot().allowed, 3);
}

#[tokio::test(start_paused = true)]
async fn nonsense_settings_allow_no_retries_rather_than_panic() {
    for ratio in [f64::NAN, -1.0, f64::NEG_INFINITY] {
        let budget = budget(ratio, f64::NAN);
        assert_eq!(failing_requests(&budget, 10), 0, "ratio {ratio}");
    }
}
