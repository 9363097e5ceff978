//! The resilience blocks on tokio's paused clock: time moves only when a test advances it (or
//! when every task is idle and a timer is due), so each bound is checked exactly.

mod backoff;
mod breaker;
mod budget;
mod concurrency;
mod policy;
mod proptests;

use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
