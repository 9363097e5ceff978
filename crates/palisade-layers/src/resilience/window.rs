//! Counters over a sliding time window, kept in buckets: what the retry budget counts requests
//! and retries with, and the circuit breaker requests and failures.
//!
//! A window is [`BUCKETS`] buckets of `window / BUCKETS` each. Its totals cover the current
//! bucket and the `BUCKETS - 1` before it, so an event leaves them between 0.9 × `window` and
//! `window` after it was counted. A call costs O(1), at most `BUCKETS` steps after an idle
//! spell; the totals are kept up to date rather than summed.

use std::time::Duration;

use tokio::time::Instant;

/// Buckets per window: a tenth of the window is the granularity of expiry.
pub(crate) const BUCKETS: usize = 10;

/// `N` counters over a sliding window.
#[derive(Debug)]
pub(crate) struct Window<const N: usize> {
    origin: Instant,
    width_nanos: u128,
    /// The number of the current bucket since `origin`.
    head: u64,
    buckets: [[u64; N]; BUCKETS],
    totals: [u64; N],
}

impl<const N: usize> Window<N> {
    pub(crate) fn new(window: Duration, now: Instant) -> Self {
        let width = (window / BUCKETS as u32).max(Duration::from_micros(1));
        Self {
            origin: now,
            width_nanos: width.as_nanos(),
            head: 0,
            buckets: [[0; N]; BUCKETS],
            totals: [0; N],
        }
    }

    /// Counts `n` events on counter `counter` at `now`.
    pub(crate) fn add(&mut self, now: Instant, counter: usize, n: u64) {
        self.advance(now);
        let slot = (self.head % BUCKETS as u64) as usize;
        self.buckets[slot][counter] = self.buckets[slot][counter].saturating_add(n);
        self.totals[counter] = self.totals[counter].saturating_add(n);
    }

    /// Every counter's total over the window that ends at `now`.
    pub(crate) fn totals(&mut self, now: Instant) -> [u64; N] {
        self.advance(now);
        self.totals
    }

    /// Forgets everything counted so far.
    pub(crate) fn clear(&mut self) {
        self.buckets = [[0; N]; BUCKETS];
        self.totals = [0; N];
    }

    /// Empties the buckets that `now` has moved past.
    fn advance(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        let index = u64::try_from(elapsed / self.width_nanos).unwrap_or(u64::MAX);
        if index <= self.head {
            return;
        }
        let steps = index - self.head;
        if steps >= BUCKETS as u64 {
            self.clear();
        } else {
            for step in 1..=steps {
                let slot = ((self.head + step) % BUCKETS as u64) as usize;
                for (total, count) in self.totals.iter_mut().zip(self.buckets[slot]) {
                    *total = total.saturating_sub(count);
                }
                self.buckets[slot] = [0; N];
            }
        }
        self.head = index;
    }
}
