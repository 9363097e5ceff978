//! What one webhook verification costs, per scheme and body size: the number a route's
//! throughput budget needs. Run with
//! `cargo run --release --example webhook_verify -p palisade-layers`.
//!
//! Each figure is the best of five rounds (the least disturbed by other work on the machine)
//! of enough verifications to take a few tens of milliseconds, with a valid signature and one
//! secret: the full path, header parsing and timestamp check included.

use std::hint::black_box;
use std::time::{Duration, Instant};

use palisade_layers::webhook::{Spec, Verifier, sign};

const SIZES: [(&str, usize); 2] = [("1 KiB", 1024), ("1 MiB", 1024 * 1024)];
const NOW: i64 = 1_700_000_000;

fn main() {
    let schemes = [
        (
            Spec::StandardWebhooks,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        (Spec::Stripe, "whsec_bench"),
        (Spec::GitHub, "bench secret"),
    ];
    println!(
        "{:<18} {:>6} {:>14} {:>10}",
        "scheme", "body", "ns/verify", "MiB/s"
    );
    for (spec, secret) in schemes {
        let verifier = Verifier::new(&spec, &[secret]).expect("the bench's secrets are valid");
        for (label, size) in SIZES {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let headers = sign(&spec, secret, Some("msg_bench"), NOW, &body)
                .expect("the bench's message signs");
            let per = measure(|| {
                let verified = verifier.verify(&headers[..], black_box(&body), NOW);
                assert!(verified.is_ok());
            });
            let mib_per_s = size as f64 / per.as_secs_f64() / (1024.0 * 1024.0);
            println!(
                "{:<18} {label:>6} {:>14.0} {mib_per_s:>10.0}",
                spec.scheme().as_str(),
                per.as_secs_f64() * 1e9
            );
        }
    }
}

/// The best per-call time of five rounds.
fn measure(mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    let mut calls = 0u32;
    while started.elapsed() < Duration::from_millis(30) {
        f();
        calls += 1;
    }
    (0..5)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..calls {
                f();
            }
            started.elapsed() / calls
        })
        .min()
        .unwrap_or_default()
}
