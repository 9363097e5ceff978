//! A concurrency limit with a bounded FIFO queue: at most `limit` calls in flight, at most
//! `queue` more waiting, each for at most `queue_timeout`; the rest are shed at once.
//!
//! Built on tokio's fair [`Semaphore`], which hands a released permit to the longest waiter,
//! so the queue is served in arrival order and a newcomer never overtakes it. The queue bound
//! is exact: a place is reserved with an atomic counter before waiting, and given back however
//! the wait ends (admitted, timed out, or the caller went away). At the instant a permit is
//! handed to a waiter that has not yet woken, that waiter still holds its place, so a newcomer
//! may be shed a moment early; never late.
//!
//! The wait is reported for a histogram: [`ConcurrencyPermit::queued`] (zero when admitted at
//! once) and [`Shed::waited`]. The permit is the call's slot: hold it until the response is
//! done (its body streamed), not just its head.
//!
//! A reload builds a new limit; calls holding permits of the old one finish under it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::time::Instant;

/// The settings of a [`ConcurrencyLimit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    /// Calls in flight (`concurrency_limit`); 0 admits nothing.
    pub limit: usize,
    /// Calls waiting beyond them (`queue`); 0 sheds as soon as `limit` are in flight.
    pub queue: usize,
    /// The longest wait in the queue (`queue_timeout`).
    pub queue_timeout: Duration,
}

/// Why a call was shed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ShedReason {
    /// The queue was full: shed at once.
    QueueFull,
    /// It waited `queue_timeout` without a slot.
    QueueTimeout,
}

impl ShedReason {
    /// The metric label: `queue_full`, `queue_timeout`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::QueueTimeout => "queue_timeout",
        }
    }
}

/// A call the limit did not admit: a 503 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("concurrency limit reached ({}); retry after {retry_after}s", reason.as_str())]
pub struct Shed {
    pub reason: ShedReason,
    /// `queue_timeout` rounded up to whole seconds, at least 1: by then the queue has turned
    /// over.
    pub retry_after: u64,
    /// How long it waited in the queue (zero for `QueueFull`).
    pub waited: Duration,
}

/// A concurrency limit; clones share one. See the module documentation.
#[derive(Debug, Clone)]
pub struct ConcurrencyLimit {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    config: ConcurrencyConfig,
    semaphore: Arc<Semaphore>,
    waiting: AtomicUsize,
    retry_after: u64,
}

/// A slot: released when dropped.
#[derive(Debug)]
#[must_use = "the slot is released when the permit is dropped"]
pub struct ConcurrencyPermit {
    _permit: OwnedSemaphorePermit,
    queued: Duration,
}

impl ConcurrencyPermit {
    /// How long the call waited in the queue; zero when it was admitted at once.
    pub fn queued(&self) -> Duration {
        self.queued
    }
}

impl ConcurrencyLimit {
    pub fn new(config: ConcurrencyConfig) -> Self {
        let limit = config.limit.min(Semaphore::MAX_PERMITS);
        let timeout = config.queue_timeout;
        let whole = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        Self {
            shared: Arc::new(Shared {
                config,
                semaphore: Arc::new(Semaphore::new(limit)),
                waiting: AtomicUsize::new(0),
                retry_after: whole.max(1),
            }),
        }
    }

    pub fn config(&self) -> &ConcurrencyConfig {
        &self.shared.config
    }

    /// A slot: at once, after a wait in the queue, or [`Shed`].
    pub async fn acquire(&self) -> Result<ConcurrencyPermit, Shed> {
        let shared = &*self.shared;
        match shared.semaphore.clone().try_acquire_owned() {
            Ok(permit) => {
                return Ok(ConcurrencyPermit {
                    _permit: permit,
                    queued: Duration::ZERO,
                });
            }
            Err(TryAcquireError::NoPermits) => {}
            // Never closed; treated as full should that change.
            Err(TryAcquireError::Closed) => return Err(shared.shed(ShedReason::QueueFull, None)),
        }
        let reserved = shared
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < shared.config.queue).then_some(n + 1)
            });
        if reserved.is_err() {
            return Err(shared.shed(ShedReason::QueueFull, None));
        }
        let _place = Place(&shared.waiting);
        let started = Instant::now();
        let acquire = shared.semaphore.clone().acquire_owned();
        match tokio::time::timeout(shared.config.queue_timeout, acquire).await {
            Ok(Ok(permit)) => Ok(ConcurrencyPermit {
                _permit: permit,
                queued: started.elapsed(),
            }),
            Ok(Err(_closed)) => Err(shared.shed(ShedReason::QueueFull, Some(started))),
            Err(_elapsed) => Err(shared.shed(ShedReason::QueueTimeout, Some(started))),
        }
    }

    /// Calls holding a slot now, for a gauge.
    pub fn in_flight(&self) -> usize {
        let limit = self.shared.config.limit.min(Semaphore::MAX_PERMITS);
        limit.saturating_sub(self.shared.semaphore.available_permits())
    }

    /// Calls waiting in the queue now, for a gauge.
    pub fn queued(&self) -> usize {
        self.shared.waiting.load(Ordering::Acquire)
    }
}

impl Shared {
    fn shed(&self, reason: ShedReason, started: Option<Instant>) -> Shed {
        Shed {
            reason,
            retry_after: self.retry_after,
            waited: started.map_or(Duration::ZERO, |s| s.elapsed()),
        }
    }
}

/// A reserved place in the queue, given back when the wait ends however it ends.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
