//! The cost of one local rate-limit decision, the pipeline's own call included: a policy keyed
//! by client address, 10,000 addresses taking turns, one million decisions.
//!
//!     cargo run --release -p palisade-layers --example ratelimit_decision

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use palisade_config::RateLimitConfig;
use palisade_layers::ratelimit::{KeyInput, Registry, Requester, check};
use palisade_telemetry::audit::AuditSink;
use palisade_telemetry::metrics::Metrics;

fn main() {
    let metrics = Metrics::new("bench");
    let mut configs = BTreeMap::new();
    let policy: RateLimitConfig = toml::from_str(
        &std::env::var("POLICY").unwrap_or_else(|_| "limit = 100\nper = \"1m\"\nburst = 20".into()),
    )
    .expect("policy");
    configs.insert("per-ip".to_owned(), policy);
    let registry = Registry::default();
    let built = registry.build(&configs, &metrics, &AuditSink::off());
    let policies = [built["per-ip"].clone()];
    let no_headers = |_: &str| None;
    let who = Requester {
        request_id: "bench",
        trace_id: "0af7651916cd43dd8448eb211c80319c",
    };
    let runs: u32 = 1_000_000;
    let keys: u32 = 10_000;
    let started = Instant::now();
    let mut refused = 0u32;
    for i in 0..runs {
        let client_ip = IpAddr::from((0x0a00_0000 + i % keys).to_be_bytes());
        let input = KeyInput {
            client_ip,
            route: "api",
            header: &no_headers,
        };
        refused += u32::from(check(&policies, &input, &who).refused.is_some());
    }
    let elapsed = started.elapsed();
    println!(
        "{} decisions over {keys} keys: {:.0} ns each ({refused} refused), fields included",
        runs,
        elapsed.as_nanos() as f64 / f64::from(runs)
    );
}
