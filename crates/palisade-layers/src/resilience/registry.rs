//! Breakers by key (an upstream's name, an endpoint's address, a webhook endpoint's id), kept
//! beside the config snapshot so that a reload does not close an open breaker.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

use super::breaker::{Breaker, BreakerConfig, BreakerState, Observer};

/// Breakers by key; see the module documentation.
#[derive(Debug)]
pub struct Breakers<K> {
    map: Mutex<HashMap<K, Breaker>>,
}

impl<K> Default for Breakers<K> {
    fn default() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone> Breakers<K> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The breaker of `key`: the one kept if its settings are `config`, else a new one (with
    /// the observer `observer` makes for the key) that replaces it.
    pub fn get(
        &self,
        key: &K,
        config: &BreakerConfig,
        observer: impl FnOnce(&K) -> Option<Observer>,
    ) -> Breaker {
        let mut map = self.lock();
        match map.get(key) {
            Some(kept) if kept.config() == config => kept.clone(),
            _ => {
                let breaker = match observer(key) {
                    Some(observer) => Breaker::with_observer(*config, observer),
                    None => Breaker::new(*config),
                };
                map.insert(key.clone(), breaker.clone());
                breaker
            }
        }
    }

    /// Drops the breakers whose key `keep` refuses (an upstream or endpoint no longer
    /// configured). Clones held elsewhere live on, unshared.
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    /// Every breaker's state, for `/health` and the admin API.
    pub fn states(&self) -> Vec<(K, BreakerState)> {
        self.each(Breaker::state)
    }

    /// Every breaker's detail (state, the window's counts, the time left open), for the ops
    /// listener's `/breakers`.
    pub fn snapshots(&self) -> Vec<(K, super::breaker::BreakerSnapshot)> {
        self.each(Breaker::snapshot)
    }

    /// `read` of every breaker, read outside the map's lock: a read may run an observer.
    fn each<T>(&self, read: impl Fn(&Breaker) -> T) -> Vec<(K, T)> {
        let breakers: Vec<(K, Breaker)> = self
            .lock()
            .iter()
            .map(|(key, breaker)| (key.clone(), breaker.clone()))
            .collect();
        breakers
            .into_iter()
            .map(|(key, breaker)| (key, read(&breaker)))
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Breaker>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}
