//! Full-jitter bounds over many seeds; `Retry-After` parsed, honoured and capped.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{ms, secs};
use crate::resilience::{Backoff, RetryAfterTooLong, parse_retry_after};

fn backoff() -> Backoff {
    Backoff::new(ms(25), secs(1))
}

#[test]
fn the_ceiling_doubles_from_the_base_up_to_the_cap() {
    let b = backoff();
    let ceilings: Vec<Duration> = (0..8).map(|n| b.ceiling(n)).collect();
    assert_eq!(
        ceilings,
        [25, 50, 100, 200, 400, 800, 1000, 1000].map(ms).to_vec()
    );
    // Far retries neither overflow nor exceed the cap.
    for n in [31, 32, 63, 64, u32::MAX] {
        assert_eq!(b.ceiling(n), secs(1), "retry {n}");
    }
    let huge = Backoff::new(Duration::MAX, Duration::MAX);
    assert_eq!(huge.ceiling(5), Duration::MAX);
    // Doubling past 2^32 is still exact below the cap.
    let tiny = Backoff::new(Duration::from_nanos(1), secs(3600));
    assert_eq!(tiny.ceiling(40), Duration::from_nanos(1 << 40));
    // A cap below the base caps the first retry too.
    assert_eq!(Backoff::new(secs(2), secs(1)).ceiling(0), secs(1));
}

#[test]
fn every_delay_is_within_zero_and_the_ceiling_over_many_seeds() {
    let b = backoff();
    for retry in 0..10 {
        let ceiling = b.ceiling(retry);
        let (mut lowest, mut highest) = (Duration::MAX, Duration::ZERO);
        for seed in 0..2000 {
            let delay = b.jittered(retry, &mut StdRng::seed_from_u64(seed));
            assert!(delay <= ceiling, "retry {retry} seed {seed}: {delay:?}");
            lowest = lowest.min(delay);
            highest = highest.max(delay);
        }
        // Full jitter: the whole range is used, not just its upper half.
        assert!(lowest < ceiling / 20, "retry {retry}: lowest {lowest:?}");
        assert!(
            highest > ceiling * 19 / 20,
            "retry {retry}: highest {highest:?}"
        );
    }
}

#[test]
fn a_seed_gives_the_same_delays() {
    let b = backoff();
    let draw = |seed| {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..5).map(|n| b.jittered(n, &mut rng)).collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn a_zero_base_never_waits() {
    let b = Backoff::new(Duration::ZERO, secs(1));
    let mut rng = StdRng::seed_from_u64(1);
    assert!((0..40).all(|n| b.jittered(n, &mut rng) == Duration::ZERO));
}

#[test]
fn retry_after_is_a_floor_up_to_the_cap() {
    let b = backoff();
    for seed in 0..500 {
        let mut rng = StdRng::seed_from_u64(seed);
        let delay = b.delay(0, Some(ms(300)), &mut rng).unwrap();
        assert!((ms(300)..=secs(1)).contains(&delay), "{delay:?}");
        // Shorter than the jitter: the jitter wins, still within its ceiling.
        let delay = b.delay(5, Some(ms(1)), &mut rng).unwrap();
        assert!((ms(1)..=ms(800)).contains(&delay), "{delay:?}");
    }
    let mut rng = StdRng::seed_from_u64(3);
    assert_eq!(b.delay(0, Some(secs(1)), &mut rng), Ok(secs(1)));
}

#[test]
fn retry_after_beyond_the_cap_says_do_not_retry() {
    let mut rng = StdRng::seed_from_u64(3);
    assert_eq!(
        backoff().delay(0, Some(ms(1001)), &mut rng),
        Err(RetryAfterTooLong {
            asked: ms(1001),
            cap: secs(1)
        })
    );
}

#[test]
fn retry_after_parses_delay_seconds() {
    let now = SystemTime::now();
    assert_eq!(parse_retry_after(b"120", now), Some(secs(120)));
    assert_eq!(parse_retry_after(b" 0 ", now), Some(Duration::ZERO));
    assert_eq!(
        parse_retry_after(b"99999999999999999999999", now),
        Some(Duration::from_secs(u64::MAX))
    );
    for bad in [
        &b""[..],
        b"  ",
        b"-1",
        b"1.5",
        b"+3",
        b"1 2",
        b"soon",
        b"\xff\xfe",
    ] {
        assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
    }
}

#[test]
fn retry_after_parses_http_dates_from_now() {
    let now = UNIX_EPOCH + secs(1_700_000_000);
    let later = httpdate::fmt_http_date(now + secs(30));
    assert_eq!(parse_retry_after(later.as_bytes(), now), Some(secs(30)));
    // A date in the past: retry now.
    let earlier = httpdate::fmt_http_date(now - secs(30));
    assert_eq!(
        parse_retry_after(earlier.as_bytes(), now),
        Some(Duration::ZERO)
    );
    // The obsolete forms RFC 9110 still asks recipients to accept.
    let epoch = UNIX_EPOCH + secs(784_111_777);
    for form in [
        "Sun, 06 Nov 1994 08:49:37 GMT",
        "Sunday, 06-Nov-94 08:49:37 GMT",
        "Sun Nov  6 08:49:37 1994",
    ] {
        assert_eq!(
            parse_retry_after(form.as_bytes(), epoch - secs(5)),
            Some(secs(5)),
            "{form}"
        );
    }
    assert_eq!(parse_retry_after(b"Sun, 06 Nov 1994", epoch), None);
}
