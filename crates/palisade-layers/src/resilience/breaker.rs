//! A circuit breaker: stop sending to a peer that keeps failing, let a few probes through after
//! a pause, close again when they succeed.
//!
//! States: **Closed** (everything passes, outcomes are counted) → **Open** for `open_for`
//! (everything is [`Rejected`] with the time left) → **HalfOpen** (at most `half_open_probes`
//! probes; when that many have succeeded the breaker closes, and the first failure opens it
//! again). Two rules trip a closed breaker ([`Trip`]):
//!
//! - `FailureRate`: at least `rate` of the requests of a sliding `window` failed, and the window
//!   saw at least `min_requests`, so that two failures out of three requests on a quiet route do
//!   not cut it off. The rate is checked when a failure is recorded.
//! - `Consecutive`: `failures` failures in a row, for per-endpoint outlier ejection, where an
//!   endpoint's own traffic is too thin for a rate.
//!
//! When a half-open breaker opens again its open time doubles, up to `max_open_for`
//! (`open_for`, the default, keeps it fixed): an ejected endpoint that keeps failing its probes
//! is tried less and less often. Closing resets it.
//!
//! Per call: [`Breaker::try_acquire`] gives a [`BreakerPermit`] or [`Rejected`]; the permit
//! records [`success`](BreakerPermit::success) or [`failure`](BreakerPermit::failure). A permit
//! dropped without either counts as neither (the client went away, the call was cancelled): a
//! probe's place is given back for another probe. Outcomes of calls admitted before the last
//! transition are ignored: a slow request sent while closed does not count against the
//! half-open probes. What counts as a failure is the caller's choice (for an upstream: connect
//! failures, resets, timeouts and 5xx).
//!
//! Time moves the breaker from Open to HalfOpen lazily, on the first call that looks
//! ([`try_acquire`](Breaker::try_acquire), [`state`](Breaker::state) or
//! [`snapshot`](Breaker::snapshot)); every transition is reported to the optional [`Observer`],
//! in order, under the breaker's lock: the observer should count and log, and must not call
//! back into the same breaker.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::window::Window;

const REQUESTS: usize = 0;
const FAILURES: usize = 1;

/// What a breaker reports, as `/health` shows it and as a gauge (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The label: `closed`, `open`, `half_open`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub const fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What opens a closed breaker.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Trip {
    /// At least `rate` (0–1) of the last `window`'s requests failed, and there were at least
    /// `min_requests` of them.
    FailureRate {
        rate: f64,
        min_requests: u32,
        window: Duration,
    },
    /// `failures` failures in a row (at least 1).
    Consecutive { failures: u32 },
}

/// The settings of a [`Breaker`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub trip: Trip,
    /// How long the breaker stays open before it lets probes through.
    pub open_for: Duration,
    /// The longest open time after failed probes double it; at most `open_for` keeps it fixed.
    pub max_open_for: Duration,
    /// Probes let through while half-open (at least 1); this many successes close it.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    /// The defaults of `[upstreams.NAME.breaker]`: 50 % of at least 20 requests over 10 s, open
    /// for 5 s, 3 probes.
    fn default() -> Self {
        Self {
            trip: Trip::FailureRate {
                rate: 0.5,
                min_requests: 20,
                window: Duration::from_secs(10),
            },
            open_for: Duration::from_secs(5),
            max_open_for: Duration::from_secs(5),
            half_open_probes: 3,
        }
    }
}

/// One change of state, as the observer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: BreakerState,
    pub to: BreakerState,
    /// On a transition to Open: how long it stays open.
    pub open_for: Option<Duration>,
}

/// Told of every transition; see the module documentation for what it may do.
pub type Observer = Arc<dyn Fn(Transition) + Send + Sync>;

/// A call the breaker did not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the circuit breaker is {state}; retry after {retry_after}s")]
pub struct Rejected {
    pub state: BreakerState,
    /// Seconds until the breaker may let a call through, rounded up (at least 1): the
    /// `Retry-After` of the answer.
    pub retry_after: u64,
    /// The same, exactly: the open time left, or 1 s while every probe is out.
    pub remaining: Duration,
}

impl Rejected {
    fn new(state: BreakerState, remaining: Duration) -> Self {
        let whole = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
        Self {
            state,
            retry_after: whole.max(1),
            remaining,
        }
    }
}

/// What a breaker has counted, for `/health` and the admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    /// Requests and failures in the current window (closed state only).
    pub requests: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// While open: the time left.
    pub open_remaining: Option<Duration>,
}

/// A circuit breaker; clones share one state. See the module documentation.
#[derive(Clone)]
pub struct Breaker {
    shared: Arc<Shared>,
}

struct Shared {
    settings: Settings,
    core: Mutex<Core>,
}

struct Settings {
    config: BreakerConfig,
    observer: Option<Observer>,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed,
    Open {
        until: Instant,
    },
    /// `out` probes in flight, `succeeded` done.
    HalfOpen {
        out: u32,
        succeeded: u32,
    },
}

impl Phase {
    fn state(self) -> BreakerState {
        match self {
            Self::Closed => BreakerState::Closed,
            Self::Open { .. } => BreakerState::Open,
            Self::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }
}

struct Core {
    phase: Phase,
    /// Bumped on every transition: a permit's outcome counts only in the phase it was given in.
    generation: u64,
    /// Counters `REQUESTS` and `FAILURES` while closed.
    window: Window<2>,
    consecutive: u32,
    /// Times a half-open breaker opened again since it last closed: the open time's doubling.
    reopened: u32,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Self::build(config, None)
    }

    /// A breaker that reports its transitions to `observer`.
    pub fn with_observer(config: BreakerConfig, observer: Observer) -> Self {
        Self::build(config, Some(observer))
    }

    fn build(config: BreakerConfig, observer: Option<Observer>) -> Self {
        let window = match config.trip {
            Trip::FailureRate { window, .. } => window,
            Trip::Consecutive { .. } => Duration::from_secs(10),
        };
        let core = Core {
            phase: Phase::Closed,
            generation: 0,
            window: Window::new(window, Instant::now()),
            consecutive: 0,
            reopened: 0,
        };
        Self {
            shared: Arc::new(Shared {
                settings: Settings { config, observer },
                core: Mutex::new(core),
            }),
        }
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.shared.settings.config
    }

    /// Lets a call through, or says how long until one may go.
    pub fn try_acquire(&self) -> Result<BreakerPermit, Rejected> {
        let now = Instant::now();
        let settings = &self.shared.settings;
        let mut core = self.lock();
        core.poll(now, settings);
        let probe = match core.phase {
            Phase::Closed => false,
            Phase::Open { until } => {
                return Err(Rejected::new(BreakerState::Open, until - now));
            }
            Phase::HalfOpen { out, succeeded }
                if out.saturating_add(succeeded) < settings.probes() =>
            {
                core.phase = Phase::HalfOpen {
                    out: out + 1,
                    succeeded,
                };
                true
            }
            Phase::HalfOpen { .. } => {
                return Err(Rejected::new(
                    BreakerState::HalfOpen,
                    Duration::from_secs(1),
                ));
            }
        };
        Ok(BreakerPermit {
            shared: self.shared.clone(),
            generation: core.generation,
            probe,
            outcome: None,
        })
    }

    /// The state now (a breaker whose open time is over is half-open).
    pub fn state(&self) -> BreakerState {
        let mut core = self.lock();
        core.poll(Instant::now(), &self.shared.settings);
        core.phase.state()
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let now = Instant::now();
        let mut core = self.lock();
        core.poll(now, &self.shared.settings);
        let [requests, failures] = core.window.totals(now);
        BreakerSnapshot {
            state: core.phase.state(),
            requests,
            failures,
            consecutive_failures: core.consecutive,
            open_remaining: match core.phase {
                Phase::Open { until } => Some(until - now),
                _ => None,
            },
        }
    }

    /// Probes out in the current half-open phase.
    #[cfg(test)]
    pub(crate) fn probes_out(&self) -> u32 {
        match self.lock().phase {
            Phase::HalfOpen { out, .. } => out,
            _ => 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> MutexGuard<'_, Core> {
        self.shared.core.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("config", self.config())
            .field("state", &self.lock().phase.state())
            .finish_non_exhaustive()
    }
}

impl Settings {
    fn probes(&self) -> u32 {
        self.config.half_open_probes.max(1)
    }

    /// The open time after `reopened` failed half-open phases in a row.
    fn open_time(&self, reopened: u32) -> Duration {
        let base = self.config.open_for;
        let cap = self.config.max_open_for.max(base);
        let factor = 1u32.checked_shl(reopened).unwrap_or(u32::MAX);
        base.saturating_mul(factor).min(cap)
    }
}

impl Core {
    /// Moves an open breaker whose time is over to half-open.
    fn poll(&mut self, now: Instant, settings: &Settings) {
        if let Phase::Open { until } = self.phase
            && now >= until
        {
            let probing = Phase::HalfOpen {
                out: 0,
                succeeded: 0,
            };
            self.transition(probing, None, settings);
        }
    }

    /// Records the outcome (`None`: abandoned) of a call admitted in `generation`.
    fn record(
        &mut self,
        generation: u64,
        probe: bool,
        outcome: Option<bool>,
        now: Instant,
        settings: &Settings,
    ) {
        if generation != self.generation {
            return;
        }
        match (self.phase, outcome) {
            (Phase::Closed, Some(success)) => self.closed_outcome(success, now, settings),
            (Phase::HalfOpen { out, succeeded }, None) if probe => {
                self.phase = Phase::HalfOpen {
                    out: out.saturating_sub(1),
                    succeeded,
                };
            }
            (Phase::HalfOpen { out, succeeded }, Some(true)) if probe => {
                let succeeded = succeeded + 1;
                if succeeded >= settings.probes() {
                    self.transition(Phase::Closed, None, settings);
                } else {
                    self.phase = Phase::HalfOpen {
                        out: out.saturating_sub(1),
                        succeeded,
                    };
                }
            }
            (Phase::HalfOpen { .. }, Some(false)) if probe => {
                self.reopened = self.reopened.saturating_add(1);
                self.open(now, settings);
            }
            _ => {}
        }
    }

    fn closed_outcome(&mut self, success: bool, now: Instant, settings: &Settings) {
        self.window.add(now, REQUESTS, 1);
        if success {
            self.consecutive = 0;
            return;
        }
        self.window.add(now, FAILURES, 1);
        self.consecutive = self.consecutive.saturating_add(1);
        let tripped = match settings.config.trip {
            Trip::FailureRate {
                rate, min_requests, ..
            } => {
                let [requests, failures] = self.window.totals(now);
                requests >= u64::from(min_requests.max(1))
                    && failures as f64 >= rate * requests as f64
            }
            Trip::Consecutive { failures } => self.consecutive >= failures.max(1),
        };
        if tripped {
            self.open(now, settings);
        }
    }

    fn open(&mut self, now: Instant, settings: &Settings) {
        let open_for = settings.open_time(self.reopened);
        // An absurd open time stays open for decades rather than overflowing.
        let until = now
            .checked_add(open_for)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        self.transition(Phase::Open { until }, Some(open_for), settings);
    }

    fn transition(&mut self, to: Phase, open_for: Option<Duration>, settings: &Settings) {
        let from = self.phase.state();
        self.phase = to;
        self.generation = self.generation.wrapping_add(1);
        self.window.clear();
        self.consecutive = 0;
        if matches!(to, Phase::Closed) {
            self.reopened = 0;
        }
        if let Some(observer) = &settings.observer {
            observer(Transition {
                from,
                to: to.state(),
                open_for,
            });
        }
    }
}

/// Leave to make one call; record its outcome with [`success`](Self::success) or
/// [`failure`](Self::failure). Dropped without either, it counts as neither.
#[must_use = "a permit records the call's outcome; dropping it records nothing"]
pub struct BreakerPermit {
    shared: Arc<Shared>,
    generation: u64,
    probe: bool,
    outcome: Option<bool>,
}

impl BreakerPermit {
    pub fn success(self) {
        self.record(true);
    }

    pub fn failure(self) {
        self.record(false);
    }

    pub fn record(mut self, success: bool) {
        self.outcome = Some(success);
    }

    /// Whether this call is a half-open probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }

    #[cfg(test)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if self.outcome.is_none() && !self.probe {
            return;
        }
        let mut core = self.shared.core.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        core.record(
            self.generation,
            self.probe,
            self.outcome,
            now,
            &self.shared.settings,
        );
    }
}

impl fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerPermit")
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}
