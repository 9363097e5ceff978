//! The concurrency limit: shedding on a full queue and after the queue timeout, FIFO service,
//! and never more than the limit in flight.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;
use tokio::time::{Instant, advance};

use super::{ms, secs};
use crate::resilience::{ConcurrencyConfig, ConcurrencyLimit, Shed, ShedReason};

fn limit(limit: usize, queue: usize, queue_timeout: Duration) -> ConcurrencyLimit {
    ConcurrencyLimit::new(ConcurrencyConfig {
        limit,
        queue,
        queue_timeout,
    })
}

/// Lets spawned tasks run until `n` are waiting in the queue.
async fn until_queued(limit: &ConcurrencyLimit, n: usize) {
    while limit.queued() != n {
        tokio::task::yield_now().await;
    }
}

fn waiter(limit: &ConcurrencyLimit) -> JoinHandle<Result<Duration, Shed>> {
    let limit = limit.clone();
    tokio::spawn(async move { limit.acquire().await.map(|p| p.queued()) })
}

#[tokio::test(start_paused = true)]
async fn below_the_limit_a_call_is_admitted_at_once() {
    let limit = limit(2, 0, secs(1));
    let a = limit.acquire().await.unwrap();
    let b = limit.acquire().await.unwrap();
    assert_eq!((a.queued(), b.queued()), (Duration::ZERO, Duration::ZERO));
    assert_eq!(limit.in_flight(), 2);
    drop(a);
    assert_eq!(limit.in_flight(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_sheds_at_once() {
    let limit = limit(1, 1, ms(1500));
    let _held = limit.acquire().await.unwrap();
    let queued = waiter(&limit);
    until_queued(&limit, 1).await;
    let start = Instant::now();
    assert_eq!(
        limit.acquire().await.unwrap_err(),
        Shed {
            reason: ShedReason::QueueFull,
            retry_after: 2,
            waited: Duration::ZERO
        }
    );
    assert_eq!(Instant::now(), start, "no time passed");
    queued.abort();
}

#[tokio::test(start_paused = true)]
async fn no_queue_sheds_as_soon_as_the_limit_is_reached() {
    let limit = limit(1, 0, secs(1));
    let _held = limit.acquire().await.unwrap();
    let shed = limit.acquire().await.unwrap_err();
    assert_eq!(shed.reason, ShedReason::QueueFull);
    assert_eq!(shed.retry_after, 1);
}

#[tokio::test(start_paused = true)]
async fn a_queued_call_is_shed_after_the_queue_timeout() {
    let limit = limit(1, 5, ms(800));
    let _held = limit.acquire().await.unwrap();
    let start = Instant::now();
    let shed = limit.acquire().await.unwrap_err();
    assert_eq!(
        shed,
        Shed {
            reason: ShedReason::QueueTimeout,
            retry_after: 1,
            waited: ms(800)
        }
    );
    assert_eq!(start.elapsed(), ms(800));
    assert_eq!(limit.queued(), 0, "its place is given back");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_waits_reports_how_long() {
    let limit = limit(1, 1, secs(1));
    let held = limit.acquire().await.unwrap();
    let queued = waiter(&limit);
    until_queued(&limit, 1).await;
    advance(ms(300)).await;
    drop(held);
    assert_eq!(queued.await.unwrap(), Ok(ms(300)));
}

#[tokio::test(start_paused = true)]
async fn the_queue_is_served_in_arrival_order() {
    let limit = limit(1, 10, secs(60));
    let held = limit.acquire().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for id in 0..10 {
        let (limit2, order) = (limit.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = limit2.acquire().await.unwrap();
            order.lock().unwrap().push(id);
            tokio::task::yield_now().await;
        }));
        until_queued(&limit, id + 1).await;
    }
    // A newcomer does not overtake the queue when a slot frees up: it is shed.
    drop(held);
    assert_eq!(
        limit.acquire().await.unwrap_err().reason,
        ShedReason::QueueFull
    );
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_goes_away_gives_its_place_back() {
    let limit = limit(1, 1, secs(60));
    let held = limit.acquire().await.unwrap();
    let gone = waiter(&limit);
    until_queued(&limit, 1).await;
    gone.abort();
    until_queued(&limit, 0).await;
    let next = waiter(&limit);
    until_queued(&limit, 1).await;
    drop(held);
    assert_eq!(next.await.unwrap(), Ok(Duration::ZERO));
}

/// Many tasks with random hold times on the paused clock: never more than the limit in
/// flight, never more than the queue waiting, every call admitted or shed.
#[tokio::test(start_paused = true)]
async fn many_tasks_never_exceed_the_limit_or_the_queue() {
    for seed in 0..20 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (max, queue) = (rng.random_range(1..8), rng.random_range(0..20));
        let limit = limit(max, queue, ms(rng.random_range(1..200)));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..300 {
            let (limit2, in_flight, peak) = (limit.clone(), in_flight.clone(), peak.clone());
            let hold = ms(rng.random_range(0..50));
            let start = ms(rng.random_range(0..500));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(start).await;
                let slot = limit2.acquire().await;
                if slot.is_ok() {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(hold).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                }
                assert!(limit2.queued() <= limit2.config().queue);
                slot.is_ok()
            }));
        }
        let mut admitted = 0;
        for task in tasks {
            admitted += usize::from(task.await.unwrap());
        }
        assert!(peak.load(Ordering::SeqCst) <= max, "seed {seed}");
        assert!(admitted >= max.min(300), "seed {seed}: {admitted} admitted");
        assert_eq!((limit.in_flight(), limit.queued()), (0, 0), "seed {seed}");
    }
}

/// The same on real threads, with no timers at all: tasks race for slots on two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_racing_never_exceed_the_limit() {
    let limit = limit(7, 1000, secs(3600));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let (limit, in_flight, peak) = (limit.clone(), in_flight.clone(), peak.clone());
            tokio::spawn(async move {
                let _slot = limit.acquire().await.expect("the queue holds everyone");
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                in_flight.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 7);
    assert_eq!((limit.in_flight(), limit.queued()), (0, 0));
}
