//! The keyed state of one quota: a GCRA state (governor's `InMemoryState`) per key hash, with a
//! cap on the number of keys. Past the cap, requests with keys not yet tracked share one
//! overflow state, so no sequence of keys a client chooses grows memory without bound; keys
//! back at a full burst are dropped by [`governor::RateLimiter::retain_recent`] (the sweep).

use std::hash::{BuildHasherDefault, Hasher};

use dashmap::DashMap;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};
use palisade_telemetry::metrics::RateLimitMetrics;

/// Keys arrive hashed already (with a per-process random key): the map uses them as they are.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; fold anything else in all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub struct CappedStore {
    states: DashMap<u64, InMemoryState, BuildHasherDefault<Prehashed>>,
    cap: usize,
    overflow: InMemoryState,
    metrics: RateLimitMetrics,
}

impl CappedStore {
    pub fn new(cap: usize, metrics: RateLimitMetrics) -> Self {
        Self {
            states: DashMap::default(),
            cap,
            overflow: InMemoryState::default(),
            metrics,
        }
    }
}

impl StateStore for CappedStore {
    type Key = u64;

    fn measure_and_replace<T, F, E>(&self, key: &u64, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if let Some(state) = self.states.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.states.len() >= self.cap {
            self.metrics.overflow();
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        let state = self.states.entry(*key).or_default();
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

/// The theoretical arrival time a state holds, read without changing it.
fn tat(state: &InMemoryState) -> Option<Nanos> {
    state
        .measure_and_replace(&NotKeyed::NonKey, Err::<((), Nanos), _>)
        .err()
        .flatten()
}

impl ShrinkableKeyedStateStore<u64> for CappedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        let before = self.states.len();
        // As governor's own stores: a key whose next allowed time is behind `drop_below` is
        // indistinguishable from a new one.
        self.states
            .retain(|_, state| tat(state).is_some_and(|tat| tat > drop_below));
        self.metrics.swept(before.saturating_sub(self.states.len()));
    }

    fn shrink_to_fit(&self) {
        self.states.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.states.len()
    }

    fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}
