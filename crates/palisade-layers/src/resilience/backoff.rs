//! How long to wait before a retry: exponential backoff with full jitter, and the upstream's
//! `Retry-After`.
//!
//! Retry `n` (0 for the first retry, the second attempt) waits a uniformly random time in
//! `[0, min(max, base × 2^n)]`: AWS's "full jitter", which spreads out the retries of many
//! callers that failed together instead of bunching them at the same instants. The random
//! source is a parameter: `rand::rng()` in production, a seeded `StdRng` in tests.
//!
//! An upstream's `Retry-After` ([`parse_retry_after`]: delay-seconds or an HTTP-date) is a
//! floor: the delay is the larger of it and the jittered backoff, so the upstream is not asked
//! again sooner than it said, and callers told the same small value still spread out. It never
//! makes a caller wait longer than `max`: when it asks for more, [`Backoff::delay`] answers
//! [`RetryAfterTooLong`] and the caller should not retry at all, but pass the upstream's answer
//! (and its `Retry-After`) on. Holding a client for longer than the cap is worse than failing
//! it now; the client can read the header itself.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// Exponential backoff with full jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

/// An upstream asked, with `Retry-After`, for a longer wait than the cap: do not retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the upstream asked to retry after {asked:?}, longer than the longest backoff ({cap:?})")]
pub struct RetryAfterTooLong {
    pub asked: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Backoff from `base`, doubling with each retry up to `max` (`backoff` and `max_backoff`).
    pub const fn new(base: Duration, max: Duration) -> Self {
        Self { base, max }
    }

    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The longest wait, and the cap on `Retry-After`.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The upper bound of retry `retry`'s wait: `min(max, base × 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        if self.base.is_zero() {
            return Duration::ZERO;
        }
        let scaled = 1u128
            .checked_shl(retry)
            .and_then(|factor| self.base.as_nanos().checked_mul(factor))
            .and_then(|nanos| u64::try_from(nanos).ok());
        scaled.map_or(self.max, |nanos| Duration::from_nanos(nanos).min(self.max))
    }

    /// Retry `retry`'s wait: uniform in `[0, ceiling(retry)]`.
    pub fn jittered<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Duration {
        let ceiling = u64::try_from(self.ceiling(retry).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=ceiling))
    }

    /// Retry `retry`'s wait when the upstream may have said `Retry-After`: the larger of the
    /// two, or [`RetryAfterTooLong`] when `Retry-After` is longer than [`max`](Self::max).
    pub fn delay<R: Rng + ?Sized>(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut R,
    ) -> Result<Duration, RetryAfterTooLong> {
        let jittered = self.jittered(retry, rng);
        match retry_after {
            Some(asked) if asked > self.max => Err(RetryAfterTooLong {
                asked,
                cap: self.max,
            }),
            Some(asked) => Ok(jittered.max(asked)),
            None => Ok(jittered),
        }
    }
}

/// The wait a `Retry-After` value asks for (RFC 9110 §10.2.3): delay-seconds, or an HTTP-date
/// counted from `now` (zero when it is past). `None` for anything else. Huge delay-seconds
/// saturate rather than fail: they are still "too long".
pub fn parse_retry_after(value: &[u8], now: SystemTime) -> Option<Duration> {
    let value = value.trim_ascii();
    if value.is_empty() {
        return None;
    }
    if value.iter().all(u8::is_ascii_digit) {
        let seconds = value
            .iter()
            .try_fold(0u64, |n, digit| {
                n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
            })
            .unwrap_or(u64::MAX);
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(std::str::from_utf8(value).ok()?).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}
