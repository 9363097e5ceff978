//! The breaker's states and trips: minimum volume, the rate threshold, `Retry-After`, half-open
//! probes, growing open time, consecutive failures, and the observer.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::advance;

use super::{ms, secs};
use crate::resilience::{
    Breaker, BreakerConfig, BreakerState, Breakers, Rejected, Transition, Trip,
};

fn rate(min_requests: u32) -> BreakerConfig {
    BreakerConfig {
        trip: Trip::FailureRate {
            rate: 0.5,
            min_requests,
            window: secs(10),
        },
        open_for: secs(5),
        max_open_for: secs(5),
        half_open_probes: 3,
    }
}

fn consecutive(failures: u32) -> BreakerConfig {
    BreakerConfig {
        trip: Trip::Consecutive { failures },
        ..rate(1)
    }
}

fn fail(breaker: &Breaker, n: u32) {
    for _ in 0..n {
        breaker.try_acquire().expect("admitted").failure();
    }
}

fn succeed(breaker: &Breaker, n: u32) {
    for _ in 0..n {
        breaker.try_acquire().expect("admitted").success();
    }
}

/// A breaker opened by 20 failures at the current instant.
fn opened() -> Breaker {
    let breaker = Breaker::new(rate(20));
    fail(&breaker, 20);
    assert_eq!(breaker.state(), BreakerState::Open);
    breaker
}

fn rejected(breaker: &Breaker) -> Rejected {
    breaker.try_acquire().expect_err("rejected")
}

#[tokio::test(start_paused = true)]
async fn below_min_requests_even_every_failure_keeps_it_closed() {
    let breaker = Breaker::new(rate(20));
    fail(&breaker, 19);
    assert_eq!(breaker.state(), BreakerState::Closed);
    let snapshot = breaker.snapshot();
    assert_eq!((snapshot.requests, snapshot.failures), (19, 19));
    // They leave the window; the next failure is the first again.
    advance(secs(10)).await;
    fail(&breaker, 19);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn it_opens_when_the_rate_reaches_the_threshold() {
    let breaker = Breaker::new(rate(20));
    succeed(&breaker, 10);
    fail(&breaker, 9);
    assert_eq!(breaker.state(), BreakerState::Closed, "9 of 19");
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open, "10 of 20");
}

#[tokio::test(start_paused = true)]
async fn exactly_the_threshold_trips_and_just_below_does_not() {
    let breaker = Breaker::new(rate(20));
    succeed(&breaker, 11);
    fail(&breaker, 10);
    assert_eq!(breaker.state(), BreakerState::Closed, "10 of 21");
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open, "11 of 22");
}

#[tokio::test(start_paused = true)]
async fn a_rejection_says_how_long_is_left_in_whole_seconds() {
    let breaker = opened();
    assert_eq!(
        rejected(&breaker),
        Rejected {
            state: BreakerState::Open,
            retry_after: 5,
            remaining: secs(5)
        }
    );
    advance(ms(1500)).await;
    let r = rejected(&breaker);
    assert_eq!((r.retry_after, r.remaining), (4, ms(3500)));
    advance(ms(3200)).await;
    let r = rejected(&breaker);
    assert_eq!((r.retry_after, r.remaining), (1, ms(300)));
    let snapshot = breaker.snapshot();
    assert_eq!(snapshot.open_remaining, Some(ms(300)));
}

#[tokio::test(start_paused = true)]
async fn it_half_opens_after_open_for() {
    let breaker = opened();
    advance(secs(5) - Duration::from_nanos(1)).await;
    assert_eq!(breaker.state(), BreakerState::Open);
    advance(Duration::from_nanos(1)).await;
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert!(breaker.try_acquire().expect("a probe").is_probe());
}

#[tokio::test(start_paused = true)]
async fn it_closes_after_every_probe_succeeds() {
    let breaker = opened();
    advance(secs(5)).await;
    let probes: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    let mut probes = probes.into_iter();
    probes.next().unwrap().success();
    probes.next().unwrap().success();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    probes.next().unwrap().success();
    assert_eq!(breaker.state(), BreakerState::Closed);
    // Closed afresh: the window starts empty.
    let permit = breaker.try_acquire().unwrap();
    assert!(!permit.is_probe());
    assert_eq!(breaker.snapshot().requests, 0);
    fail(&breaker, 19);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn a_failed_probe_opens_it_again() {
    let breaker = opened();
    advance(secs(5)).await;
    let first = breaker.try_acquire().unwrap();
    let second = breaker.try_acquire().unwrap();
    first.success();
    second.failure();
    assert_eq!(breaker.state(), BreakerState::Open);
    assert_eq!(rejected(&breaker).remaining, secs(5));
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_at_most_the_probes_through() {
    let breaker = opened();
    advance(secs(5)).await;
    let probes: Vec<_> = (0..3).map(|_| breaker.try_acquire().unwrap()).collect();
    assert_eq!(
        rejected(&breaker),
        Rejected {
            state: BreakerState::HalfOpen,
            retry_after: 1,
            remaining: secs(1)
        }
    );
    // A probe abandoned without an outcome (the client went away) frees its place.
    let mut probes = probes.into_iter();
    drop(probes.next());
    let replacement = breaker.try_acquire().expect("the freed place");
    assert!(rejected(&breaker).state == BreakerState::HalfOpen);
    // A success keeps its place: 1 success + 2 out = 3.
    probes.next().unwrap().success();
    assert_eq!(rejected(&breaker).state, BreakerState::HalfOpen);
    replacement.success();
    probes.next().unwrap().success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn outcomes_from_before_a_transition_do_not_count() {
    let breaker = Breaker::new(rate(20));
    let slow = breaker.try_acquire().unwrap();
    fail(&breaker, 20);
    advance(secs(5)).await;
    let probe = breaker.try_acquire().unwrap();
    // The request sent while closed fails late: not a probe, changes nothing.
    slow.failure();
    assert_eq!(breaker.state(), BreakerState::HalfOpen);
    assert_eq!(breaker.probes_out(), 1);
    probe.success();
    assert_eq!(breaker.probes_out(), 0);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_permit_counts_as_neither() {
    let breaker = Breaker::new(rate(20));
    for _ in 0..50 {
        drop(breaker.try_acquire().unwrap());
    }
    assert_eq!(breaker.snapshot().requests, 0);
    fail(&breaker, 19);
    assert_eq!(breaker.state(), BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn open_time_doubles_on_failed_probes_up_to_the_cap_and_resets_on_close() {
    let breaker = Breaker::new(BreakerConfig {
        max_open_for: secs(30),
        ..consecutive(1)
    });
    let mut open_times = Vec::new();
    fail(&breaker, 1);
    for _ in 0..5 {
        let left = rejected(&breaker).remaining;
        open_times.push(left.as_secs());
        advance(left).await;
        fail(&breaker, 1);
    }
    assert_eq!(open_times, [5, 10, 20, 30, 30]);
    advance(secs(30)).await;
    succeed(&breaker, 3);
    assert_eq!(breaker.state(), BreakerState::Closed);
    fail(&breaker, 1);
    assert_eq!(rejected(&breaker).remaining, secs(5));
}

#[tokio::test(start_paused = true)]
async fn consecutive_mode_ejects_after_n_failures_in_a_row() {
    let breaker = Breaker::new(consecutive(5));
    fail(&breaker, 4);
    succeed(&breaker, 1);
    fail(&breaker, 4);
    assert_eq!(breaker.state(), BreakerState::Closed);
    assert_eq!(breaker.snapshot().consecutive_failures, 4);
    fail(&breaker, 1);
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn transitions_are_reported_in_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let breaker = Breaker::with_observer(
        consecutive(2),
        Arc::new(move |t: Transition| record.lock().unwrap().push(t)),
    );
    fail(&breaker, 2);
    advance(secs(5)).await;
    let probe = breaker.try_acquire().unwrap();
    probe.failure();
    advance(secs(5)).await;
    succeed(&breaker, 3);
    use BreakerState::*;
    let t = |from, to, open: Option<u64>| Transition {
        from,
        to,
        open_for: open.map(secs),
    };
    assert_eq!(
        *seen.lock().unwrap(),
        [
            t(Closed, Open, Some(5)),
            t(Open, HalfOpen, None),
            t(HalfOpen, Open, Some(5)),
            t(Open, HalfOpen, None),
            t(HalfOpen, Closed, None),
        ]
    );
}

#[test]
fn states_have_stable_labels_and_gauge_values() {
    use BreakerState::*;
    let labels = [Closed, Open, HalfOpen].map(|s| (s.as_str(), s.gauge()));
    assert_eq!(labels, [("closed", 0), ("open", 1), ("half_open", 2)]);
    assert_eq!(Open.to_string(), "open");
}

#[tokio::test(start_paused = true)]
async fn the_registry_keeps_a_breaker_while_its_settings_do_not_change() {
    let breakers = Breakers::new();
    let made = Arc::new(Mutex::new(0));
    let observer = |_: &&str| {
        *made.lock().unwrap() += 1;
        None
    };
    let a = breakers.get(&"a", &consecutive(1), observer);
    fail(&a, 1);
    // A reload with the same settings: the open breaker is kept.
    let again = breakers.get(&"a", &consecutive(1), observer);
    assert_eq!(again.state(), BreakerState::Open);
    // New settings: a new breaker.
    let changed = breakers.get(&"a", &consecutive(2), observer);
    assert_eq!(changed.state(), BreakerState::Closed);
    let b = breakers.get(&"b", &consecutive(1), observer);
    assert_eq!(*made.lock().unwrap(), 3);
    fail(&b, 1);
    let mut states = breakers.states();
    states.sort_by_key(|(k, _)| *k);
    assert_eq!(
        states,
        [("a", BreakerState::Closed), ("b", BreakerState::Open)]
    );
    breakers.retain(|k| *k == "a");
    assert_eq!(breakers.states().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn absurd_settings_neither_panic_nor_admit_forever() {
    let breaker = Breaker::new(BreakerConfig {
        trip: Trip::Consecutive { failures: 0 },
        open_for: Duration::MAX,
        max_open_for: Duration::MAX,
        half_open_probes: 0,
    });
    fail(&breaker, 1);
    assert!(rejected(&breaker).remaining > secs(86_400 * 365));
    advance(secs(86_400)).await;
    assert_eq!(breaker.state(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn zero_probes_still_lets_one_through() {
    let breaker = Breaker::new(BreakerConfig {
        half_open_probes: 0,
        ..consecutive(1)
    });
    fail(&breaker, 1);
    advance(secs(5)).await;
    let probe = breaker.try_acquire().expect("one probe");
    assert_eq!(rejected(&breaker).state, BreakerState::HalfOpen);
    probe.success();
    assert_eq!(breaker.state(), BreakerState::Closed);
}
