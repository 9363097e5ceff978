//! State that outlives a config reload while the settings it was made from stay the same: a
//! retry budget with its recent traffic, a JWT verifier with its cached JWK Set. (Breakers keep
//! theirs in [`crate::resilience::Breakers`], which also reads their states.)

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// Values by key, each with the settings it was made from.
#[derive(Debug)]
pub struct Kept<K, C, V>(Mutex<HashMap<K, (C, V)>>);

impl<K, C, V> Default for Kept<K, C, V> {
    fn default() -> Self {
        Self(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash, C: PartialEq + Clone, V: Clone> Kept<K, C, V> {
    /// The value kept for `key` when it was made from `settings`, else a new one from `make`,
    /// kept in its place.
    pub fn get_or_try<E>(
        &self,
        key: K,
        settings: &C,
        make: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        let mut kept = self.lock();
        if let Some((made_from, value)) = kept.get(&key)
            && made_from == settings
        {
            return Ok(value.clone());
        }
        let value = make()?;
        kept.insert(key, (settings.clone(), value.clone()));
        Ok(value)
    }

    /// As [`Kept::get_or_try`], for a value that is always made.
    pub fn get_or(&self, key: K, settings: &C, make: impl FnOnce() -> V) -> V {
        match self.get_or_try(key, settings, || Ok::<_, std::convert::Infallible>(make())) {
            Ok(value) => value,
            Err(never) => match never {},
        }
    }

    /// Forgets the values whose key `keep` refuses (no longer configured).
    pub fn retain(&self, mut keep: impl FnMut(&K) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, (C, V)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_kept_while_its_settings_are_the_same() {
        let kept: Kept<&str, u32, u64> = Kept::default();
        let made = |v| move || Ok::<_, ()>(v);
        assert_eq!(kept.get_or_try("a", &1, made(10)), Ok(10));
        assert_eq!(kept.get_or_try("a", &1, made(11)), Ok(10));
        assert_eq!(kept.get_or_try("a", &2, made(12)), Ok(12));
        assert_eq!(kept.get_or_try("a", &2, || Err(())), Ok(12));
        kept.retain(|k| *k != "a");
        assert_eq!(kept.get_or_try("a", &2, made(13)), Ok(13));
    }
}
