//! The cost of one rate-limit decision, the pipeline's own call included: a policy keyed by
//! client address, 10,000 addresses taking turns.
//!
//!     cargo run --release -p palisade-layers --example ratelimit_decision
//!         one million local decisions: nanoseconds each
//!     REDIS=redis://127.0.0.1:6379 cargo run --release -p palisade-layers --example ratelimit_decision
//!         20,000 decisions on Redis, one after the other: latency p50 / p99 / max
//!
//! `POLICY` replaces the policy's TOML (default: 100 a minute, burst 20).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palisade_config::{RateLimitConfig, RedisConfig};
use palisade_layers::ratelimit::redis::RedisBackend;
use palisade_layers::ratelimit::{KeyInput, Pending, Registry, Requester, check};
use palisade_telemetry::audit::AuditSink;
use palisade_telemetry::metrics::Metrics;

const KEYS: u32 = 10_000;

fn main() {
    let policy =
        std::env::var("POLICY").unwrap_or_else(|_| "limit = 100\nper = \"1m\"\nburst = 20".into());
    match std::env::var("REDIS") {
        Ok(url) => on_redis(&policy, &url),
        Err(_) => local(&policy),
    }
}

fn client(i: u32) -> IpAddr {
    IpAddr::from((0x0a00_0000 + i % KEYS).to_be_bytes())
}

const WHO: Requester<'static> = Requester {
    request_id: "bench",
    trace_id: "0af7651916cd43dd8448eb211c80319c",
    caller: None,
};

fn local(policy: &str) {
    let metrics = Metrics::new("bench");
    let cfg: RateLimitConfig = toml::from_str(policy).expect("policy");
    let configs = BTreeMap::from([("per-ip".to_owned(), cfg)]);
    let built = Registry::default().build(&configs, &metrics, &AuditSink::off());
    let policies = [built["per-ip"].clone()];
    let no_headers = |_: &str| None;
    let runs: u32 = 1_000_000;
    let started = Instant::now();
    let mut refused = 0u32;
    for i in 0..runs {
        let input = KeyInput {
            client_ip: client(i),
            route: "api",
            header: &no_headers,
            identity: None,
        };
        refused += u32::from(check(&policies, &input, &WHO).refused.is_some());
    }
    let each = started.elapsed().as_nanos() as f64 / f64::from(runs);
    println!(
        "local: {runs} decisions over {KEYS} keys: {each:.0} ns each ({refused} refused), fields included"
    );
}

fn on_redis(policy: &str, url: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let metrics = Metrics::new("bench");
        let redis: RedisConfig = toml::from_str(&format!(
            "url = \"{url}\"\ntimeout = \"1s\"\nprefix = \"palisade-bench-{}\"",
            std::process::id()
        ))
        .expect("redis config");
        let backend = Arc::new(RedisBackend::new(&redis).expect("a redis URL"));
        let cfg: RateLimitConfig =
            toml::from_str(&format!("{policy}\nbackend = \"redis\"")).expect("policy");
        let configs = BTreeMap::from([("per-ip".to_owned(), cfg)]);
        let registry = Registry::default().with_redis(Some(backend));
        let built = registry.build(&configs, &metrics, &AuditSink::off());
        let policies = [built["per-ip"].clone()];
        let route: Arc<str> = Arc::from("api");
        let no_headers = |_: &str| None;
        let runs: u32 = 20_000;
        let mut took: Vec<Duration> = Vec::with_capacity(runs as usize);
        for i in 0..runs {
            let input = KeyInput {
                client_ip: client(i),
                route: "api",
                header: &no_headers,
                identity: None,
            };
            let started = Instant::now();
            let _ = Pending::new(&policies, &input, &route).run(&WHO).await;
            took.push(started.elapsed());
        }
        took.sort();
        let at = |q: f64| took[((took.len() - 1) as f64 * q) as usize].as_micros();
        println!(
            "redis: {runs} decisions one after the other: p50 {} µs, p99 {} µs, max {} µs",
            at(0.5),
            at(0.99),
            took.last().map_or(0, |d| d.as_micros())
        );
        let text = metrics.encode(palisade_telemetry::metrics::Format::OpenMetrics);
        assert!(
            !text.contains("palisade_ratelimit_backend_fallbacks_total{"),
            "some decisions fell back: {text}"
        );
    });
}
