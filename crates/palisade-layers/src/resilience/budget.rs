//! A retry budget: retries may add at most `ratio` to the requests of a sliding window, plus a
//! small reserve so that low traffic can still retry.
//!
//! Without a budget, retries multiply load exactly when an upstream is struggling: with three
//! attempts, a failing upstream sees three times the traffic. The budget caps the extra load at
//! `ratio` (0.2: at most 20 % more requests) over `window`, whatever the per-request attempts.
//!
//! - [`RetryBudget::deposit`] once per request that could be retried: its first attempt, not
//!   each attempt.
//! - [`RetryBudget::try_withdraw`] when a retry is *decided*, before its backoff sleep. The
//!   retry counts from then on, so retries waiting in backoff are counted too: a budget that
//!   counts only retries in flight (Envoy's `retry_budget`, which caps active retries) lets a
//!   burst of failures schedule any number of retries while they sleep.
//!
//! The allowance over the window is `ratio × requests + min_per_second × window`: with the
//! defaults (0.2, 10 s, 1/s), ten retries in any ten seconds are always allowed, which is what
//! lets a route with a request a minute retry at all, and is noise at a thousand requests a
//! second. Set `min_per_second` to 0 for a strict ratio. A withdrawn retry is not given back
//! when it is not sent after all (the client went away, the deadline passed during the sleep).
//!
//! One budget serves many requests (an upstream's, say); each call takes a short mutex and is
//! O(1).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::window::Window;

const REQUESTS: usize = 0;
const RETRIES: usize = 1;

/// Tolerance for `ratio × requests` landing a hair below a whole number (0.1 × 30).
const EPSILON: f64 = 1e-9;

/// The settings of a [`RetryBudget`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Retries per request over the window (`budget`): 0.2 allows 20 % more requests.
    pub ratio: f64,
    /// The sliding window the ratio is kept over (`budget_window`).
    pub window: Duration,
    /// Retries per second allowed whatever the traffic, as a reserve over the window.
    pub min_per_second: f64,
}

impl Default for BudgetConfig {
    /// The defaults of `[upstreams.NAME.retry]`: 0.2 over 10 s, and 1 retry a second.
    fn default() -> Self {
        Self {
            ratio: 0.2,
            window: Duration::from_secs(10),
            min_per_second: 1.0,
        }
    }
}

/// What a budget has counted over its window, for metrics and `/health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSnapshot {
    pub requests: u64,
    pub retries: u64,
    /// The retries the window allows now.
    pub allowed: u64,
}

/// Retries as a share of requests over a sliding window; see the module documentation.
#[derive(Debug)]
pub struct RetryBudget {
    config: BudgetConfig,
    /// Counters `REQUESTS` and `RETRIES`.
    window: Mutex<Window<2>>,
}

impl RetryBudget {
    pub fn new(config: BudgetConfig) -> Self {
        Self {
            window: Mutex::new(Window::new(config.window, Instant::now())),
            config,
        }
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    /// Counts one request that may be retried.
    pub fn deposit(&self) {
        self.lock().add(Instant::now(), REQUESTS, 1);
    }

    /// Counts one retry if the budget allows it now; `false` (and nothing counted) if not.
    pub fn try_withdraw(&self) -> bool {
        let now = Instant::now();
        let mut window = self.lock();
        let [requests, retries] = window.totals(now);
        if retries >= self.allowed(requests) {
            return false;
        }
        window.add(now, RETRIES, 1);
        true
    }

    pub fn snapshot(&self) -> BudgetSnapshot {
        let [requests, retries] = self.lock().totals(Instant::now());
        BudgetSnapshot {
            requests,
            retries,
            allowed: self.allowed(requests),
        }
    }

    /// `ratio × requests + min_per_second × window`, rounded down; negative or NaN settings
    /// count as 0.
    fn allowed(&self, requests: u64) -> u64 {
        let ratio = self.config.ratio.max(0.0);
        let reserve = self.config.min_per_second.max(0.0) * self.config.window.as_secs_f64();
        // `as` saturates: an absurd ratio allows everything rather than wrapping.
        (ratio * requests as f64 + reserve + EPSILON).floor() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window<2>> {
        self.window.lock().unwrap_or_else(|e| e.into_inner())
    }
}
