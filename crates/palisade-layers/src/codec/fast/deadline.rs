//! One timer per connection for all of its deadlines (head read, keep-alive idle, route
//! timeout), so a request costs no timer-wheel insert or removal in the common case.
//!
//! The timer is armed at most `period` ahead — the shortest timeout the connection can meet —
//! so any new deadline is later than the armed instant and needs no re-arm. When the timer
//! fires before the current deadline, it is moved to the deadline or one period on, whichever
//! comes first; a deadline is therefore met exactly, and an idle connection wakes once a period.

use std::future::Future;
use std::pin::{Pin, pin};
use std::time::Duration;

use tokio::time::{Instant, Sleep, sleep_until};

use crate::codec::RouteDeadline;

pub struct Deadlines {
    sleep: Pin<Box<Sleep>>,
    armed: Instant,
    period: Duration,
}

impl Deadlines {
    pub fn new(period: Duration) -> Self {
        let period = period.max(Duration::from_millis(1));
        let armed = Instant::now() + period;
        Self {
            sleep: Box::pin(sleep_until(armed)),
            armed,
            period,
        }
    }

    /// Runs `fut` to completion, or gives up with `None` once `deadline` has passed.
    pub async fn run<F: Future>(&mut self, deadline: Instant, fut: F) -> Option<F::Output> {
        self.run_until(|| deadline, fut).await
    }

    /// Like [`Deadlines::run`] with a deadline that may move later while `fut` runs (a
    /// route's timeout during an upload).
    pub async fn run_moving<F: Future>(
        &mut self,
        deadline: &RouteDeadline,
        fut: F,
    ) -> Option<F::Output> {
        self.run_until(|| deadline.at(), fut).await
    }

    async fn run_until<F: Future>(
        &mut self,
        deadline: impl Fn() -> Instant,
        fut: F,
    ) -> Option<F::Output> {
        let first = deadline();
        if first < self.armed {
            self.arm(first);
        }
        let mut fut = pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = &mut self.sleep => {
                    let now = Instant::now();
                    let deadline = deadline();
                    if now >= deadline {
                        self.arm(now + self.period);
                        return None;
                    }
                    self.arm(deadline.min(now + self.period));
                }
            }
        }
    }

    fn arm(&mut self, at: Instant) {
        self.armed = at;
        self.sleep.as_mut().reset(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_longer_than_the_period_is_met_exactly() {
        let mut d = Deadlines::new(Duration::from_secs(1));
        let start = Instant::now();
        let out = d
            .run(
                start + Duration::from_millis(3500),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(out, None);
        assert_eq!(start.elapsed(), Duration::from_millis(3500));
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_shorter_than_the_period_is_met_exactly() {
        let mut d = Deadlines::new(Duration::from_secs(10));
        let start = Instant::now();
        let out = d
            .run(
                start + Duration::from_millis(200),
                std::future::pending::<()>(),
            )
            .await;
        assert_eq!(out, None);
        assert_eq!(start.elapsed(), Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn work_that_finishes_in_time_returns_its_output() {
        let mut d = Deadlines::new(Duration::from_millis(100));
        let start = Instant::now();
        let slow = async {
            tokio::time::sleep(Duration::from_millis(450)).await;
            7
        };
        assert_eq!(d.run(start + Duration::from_secs(1), slow).await, Some(7));
        // The same timer serves the next deadline.
        let again = d.run(
            Instant::now() + Duration::from_millis(50),
            std::future::pending::<()>(),
        );
        assert_eq!(again.await, None);
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }
}
