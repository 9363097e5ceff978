//! Any sequence of calls, outcomes and time steps: the breaker never panics, never has more
//! than `half_open_probes` probes out, and its count of probes out matches the permits held.

use std::time::Duration;

use proptest::prelude::*;

use crate::resilience::{
    Breaker, BreakerConfig, BreakerPermit, BreakerState, BudgetConfig, RetryBudget, Trip,
};

#[derive(Debug, Clone)]
enum Op {
    Acquire,
    /// Settle the permit at this index (modulo those held): success, failure or abandon.
    Succeed(usize),
    Fail(usize),
    Abandon(usize),
    Advance(Duration),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Acquire),
        2 => any::<usize>().prop_map(Op::Succeed),
        2 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Abandon),
        2 => (0u64..8_000).prop_map(|ms| Op::Advance(Duration::from_millis(ms))),
    ]
}

fn config() -> impl Strategy<Value = BreakerConfig> {
    let rate = (0.0f64..=1.0, 0u32..30, 1u64..20_000).prop_map(|(rate, min_requests, ms)| {
        Trip::FailureRate {
            rate,
            min_requests,
            window: Duration::from_millis(ms),
        }
    });
    let consecutive = (0u32..6).prop_map(|failures| Trip::Consecutive { failures });
    (
        prop_oneof![rate, consecutive],
        0u64..10_000,
        0u64..60_000,
        0u32..5,
    )
        .prop_map(|(trip, open_ms, max_ms, probes)| BreakerConfig {
            trip,
            open_for: Duration::from_millis(open_ms),
            max_open_for: Duration::from_millis(max_ms),
            half_open_probes: probes,
        })
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime")
}

fn settle(held: &mut Vec<BreakerPermit>, index: usize, outcome: Option<bool>) {
    if held.is_empty() {
        return;
    }
    let permit = held.swap_remove(index % held.len());
    match outcome {
        Some(success) => permit.record(success),
        None => drop(permit),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_breaker_never_has_more_probes_out_than_allowed(
        config in config(),
        ops in proptest::collection::vec(op(), 0..200),
    ) {
        paused_runtime().block_on(async {
            let breaker = Breaker::new(config);
            let probes = config.half_open_probes.max(1) as usize;
            let mut held: Vec<BreakerPermit> = Vec::new();
            for op in ops {
                match op {
                    Op::Acquire => {
                        if let Ok(permit) = breaker.try_acquire() {
                            held.push(permit);
                        }
                    }
                    Op::Succeed(i) => settle(&mut held, i, Some(true)),
                    Op::Fail(i) => settle(&mut held, i, Some(false)),
                    Op::Abandon(i) => settle(&mut held, i, None),
                    Op::Advance(d) => tokio::time::advance(d).await,
                }
                let generation = breaker.generation();
                let current_probes = held
                    .iter()
                    .filter(|p| p.is_probe() && p.generation() == generation)
                    .count();
                let state = breaker.state();
                prop_assert!(current_probes <= probes);
                if state == BreakerState::HalfOpen && breaker.generation() == generation {
                    prop_assert_eq!(breaker.probes_out() as usize, current_probes);
                } else {
                    prop_assert_eq!(breaker.probes_out(), 0);
                }
            }
            Ok(())
        })?;
    }

    #[test]
    fn the_budget_never_grants_more_than_it_allows(
        ratio in 0.0f64..2.0,
        min_per_second in 0.0f64..3.0,
        steps in proptest::collection::vec((0u32..20, 0u32..20, 0u64..3_000), 0..60),
    ) {
        paused_runtime().block_on(async {
            let budget = RetryBudget::new(BudgetConfig {
                ratio,
                window: Duration::from_secs(10),
                min_per_second,
            });
            for (requests, retries, ms) in steps {
                (0..requests).for_each(|_| budget.deposit());
                for _ in 0..retries {
                    let before = budget.snapshot();
                    let granted = budget.try_withdraw();
                    prop_assert_eq!(granted, before.retries < before.allowed);
                }
                tokio::time::advance(Duration::from_millis(ms)).await;
            }
            Ok(())
        })?;
    }
}
