//! The limiter's arithmetic on a clock set by hand: burst, spacing, remaining, reset and
//! Retry-After; tiers, keys, shadow mode, the key cap and the sweep.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use palisade_config::RateLimitConfig;
use palisade_telemetry::audit::AuditSink;
use palisade_telemetry::metrics::{Format, Metrics};

use super::*;

fn policy(toml: &str) -> RateLimitConfig {
    toml::from_str(toml).expect("valid policy")
}

struct Fixture {
    now: Arc<Mutex<Duration>>,
    registry: Registry,
    metrics: Arc<Metrics>,
}

impl Fixture {
    fn new() -> Self {
        let now = Arc::new(Mutex::new(Duration::from_secs(1000)));
        Self {
            registry: Registry::new(LimiterClock::Manual(now.clone())),
            now,
            metrics: Metrics::new("test"),
        }
    }

    fn build(&self, policies: &[(&str, &str)]) -> HashMap<String, Arc<Policy>> {
        let configs: BTreeMap<String, RateLimitConfig> = policies
            .iter()
            .map(|(name, toml)| (name.to_string(), policy(toml)))
            .collect();
        self.registry
            .build(&configs, &self.metrics, &AuditSink::off())
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }
}

fn no_headers(_: &str) -> Option<&'static [u8]> {
    None
}

/// A request from `ip` without headers, on route "api".
fn anonymous(ip: &str) -> KeyInput<'static> {
    KeyInput {
        client_ip: ip.parse().unwrap(),
        route: "api",
        header: &no_headers,
        identity: None,
    }
}

const WHO: Requester<'static> = Requester {
    request_id: "r1",
    trace_id: "t1",
    caller: None,
};

fn from(ip: &str) -> impl Fn(&Policy) -> Decision {
    let input = anonymous(ip);
    move |policy: &Policy| policy.check(&input)
}

#[test]
fn a_burst_is_admitted_back_to_back_then_one_request_per_emission_interval() {
    let f = Fixture::new();
    // 10 per second: one cell every 100 ms, 3 at once from idle.
    let p = &f.build(&[("p", "limit = 10\nper = \"1s\"\nburst = 3")])["p"];
    let check = from("192.0.2.1");
    let seen: Vec<(bool, u32)> = (0..4)
        .map(|_| check(p))
        .map(|d| (d.allowed, d.remaining))
        .collect();
    assert_eq!(seen, [(true, 2), (true, 1), (true, 0), (false, 0)]);
    let refused = check(p);
    assert_eq!(
        (refused.retry_after, refused.limit, refused.window),
        (1, 10, 1)
    );
    f.advance(Duration::from_millis(99));
    assert!(
        !check(p).allowed,
        "one cell comes back after 100 ms, not 99"
    );
    f.advance(Duration::from_millis(1));
    let back = check(p);
    assert_eq!((back.allowed, back.remaining), (true, 0));
    // Idle for a whole burst's worth of time: full again.
    f.advance(Duration::from_millis(300));
    assert_eq!(check(p).remaining, 2);
}

#[test]
fn retry_after_and_reset_are_whole_seconds_rounded_up() {
    let f = Fixture::new();
    // 2 per minute: one cell every 30 s.
    let p = &f.build(&[("p", "limit = 2\nper = \"1m\"")])["p"];
    let check = from("192.0.2.1");
    let first = check(p);
    assert_eq!((first.remaining, first.reset, first.window), (1, 30, 60));
    let second = check(p);
    assert_eq!((second.remaining, second.reset), (0, 60));
    let refused = check(p);
    assert_eq!((refused.allowed, refused.retry_after), (false, 30));
    f.advance(Duration::from_millis(29_500));
    assert_eq!(check(p).retry_after, 1, "0.5 s left is 1 s");
}

#[test]
fn each_key_has_its_own_bucket_and_header_keys_fall_back_to_the_address() {
    let f = Fixture::new();
    let p = &f.build(&[("p", "key = \"header:x-user\"\nlimit = 1\nper = \"1h\"")])["p"];
    let ask = |user: Option<&'static [u8]>, ip: &str| {
        let header = move |name: &str| if name == "x-user" { user } else { None };
        p.check(&KeyInput {
            client_ip: ip.parse().unwrap(),
            route: "api",
            header: &header,
            identity: None,
        })
        .allowed
    };
    assert!(ask(Some(b"alice"), "192.0.2.1"));
    assert!(
        !ask(Some(b"alice"), "192.0.2.2"),
        "alice's bucket, whatever her address"
    );
    assert!(ask(Some(b"bob"), "192.0.2.1"));
    assert!(ask(None, "192.0.2.1"), "no header: counted by address");
    assert!(!ask(None, "192.0.2.1"));
}

#[test]
fn a_tier_named_by_its_header_gets_its_own_quota() {
    let f = Fixture::new();
    let p = &f.build(&[(
        "p",
        "limit = 1\nper = \"1m\"\ntier_header = \"x-plan\"\n[tiers.pro]\nlimit = 3",
    )])["p"];
    let ask = |plan: &'static [u8]| {
        let header = move |name: &str| (name == "x-plan").then_some(plan);
        p.check(&KeyInput {
            client_ip: "192.0.2.1".parse().unwrap(),
            route: "api",
            header: &header,
            identity: None,
        })
    };
    let pro: Vec<bool> = (0..4).map(|_| ask(b"pro").allowed).collect();
    assert_eq!(pro, [true, true, true, false]);
    assert_eq!(ask(b"pro").limit, 3);
    let free = ask(b"free");
    assert_eq!(
        (free.allowed, free.limit),
        (true, 1),
        "an unknown tier gets the default"
    );
    assert!(!ask(b"free").allowed);
}

#[test]
fn the_strictest_policy_answers_and_both_fields_list_every_policy() {
    let f = Fixture::new();
    let built = f.build(&[
        ("per-ip", "limit = 100\nper = \"1m\""),
        ("read", "limit = 1\nper = \"1m\""),
    ]);
    let policies = [built["per-ip"].clone(), built["read"].clone()];
    let input = anonymous("192.0.2.1");
    let first = super::check(&policies, &input, &WHO);
    assert_eq!(
        first.policy_field,
        "\"per-ip\";q=100;w=60, \"read\";q=1;w=60"
    );
    assert_eq!(first.limit_field, "\"per-ip\";r=99;t=1, \"read\";r=0;t=60");
    assert_eq!(first.refused, None);
    let second = super::check(&policies, &input, &WHO);
    assert_eq!(second.refused, Some((Arc::from("read"), 60)));
    // A refused request takes no cell: the wait is what it was.
    assert_eq!(second.limit_field, "\"per-ip\";r=98;t=2, \"read\";r=0;t=60");
}

#[test]
fn shadow_mode_counts_but_refuses_nothing() {
    let f = Fixture::new();
    let built = f.build(&[("p", "limit = 1\nper = \"1m\"\nshadow = true")]);
    let policies = [built["p"].clone()];
    let input = anonymous("192.0.2.1");
    for _ in 0..3 {
        assert_eq!(super::check(&policies, &input, &WHO).refused, None);
    }
    let metrics = f.metrics.encode(Format::OpenMetrics);
    assert!(
        metrics.contains(
            "palisade_ratelimit_decisions_total{policy=\"p\",result=\"shadow_limited\"} 2"
        ),
        "{metrics}"
    );
}

#[test]
fn memory_stays_bounded_whatever_keys_clients_send() {
    let f = Fixture::new();
    let p = &f.build(&[("p", "limit = 5\nper = \"1s\"\nmax_keys = 1000")])["p"];
    // A million distinct addresses: the first 1,000 get buckets, the rest share one.
    for i in 0..1_000_000u32 {
        let ip = IpAddr::from(i.to_be_bytes());
        let no_headers = |_: &str| None;
        p.check(&KeyInput {
            client_ip: ip,
            route: "api",
            header: &no_headers,
            identity: None,
        });
    }
    assert_eq!(p.default.limiter.len(), 1000);
    let metrics = f.metrics.encode(Format::OpenMetrics);
    assert!(
        metrics.contains("palisade_ratelimit_overflow_total{policy=\"p\"} 999000"),
        "{metrics}"
    );
    // Once the keys are back at a full burst, the sweep drops them.
    f.advance(Duration::from_secs(2));
    f.registry.sweep();
    assert_eq!(p.default.limiter.len(), 0);
    let metrics = f.metrics.encode(Format::OpenMetrics);
    assert!(
        metrics.contains("palisade_ratelimit_swept_keys_total{policy=\"p\"} 1000"),
        "{metrics}"
    );
    assert!(
        metrics.contains("palisade_ratelimit_keys{policy=\"p\"} 0"),
        "{metrics}"
    );
}

#[test]
fn a_rebuild_keeps_the_counters_of_unchanged_policies_only() {
    let f = Fixture::new();
    let check = from("192.0.2.1");
    let p = f.build(&[
        ("a", "limit = 1\nper = \"1h\""),
        ("b", "limit = 1\nper = \"1h\""),
    ]);
    assert!(check(&p["a"]).allowed && check(&p["b"]).allowed);
    let p = f.build(&[
        ("a", "limit = 1\nper = \"1h\""),
        ("b", "limit = 2\nper = \"1h\""),
    ]);
    assert!(!check(&p["a"]).allowed, "unchanged: still exhausted");
    assert!(check(&p["b"]).allowed, "changed: a fresh bucket");
}

#[test]
fn check_key_counts_by_the_bytes_given_on_the_policy_s_own_quota() {
    let f = Fixture::new();
    let p = &f.build(&[(
        "p",
        "key = \"header:x-user\"\nlimit = 2\nper = \"1m\"\ntier_header = \"x-plan\"\n[tiers.pro]\nlimit = 100",
    )])["p"];
    let seen: Vec<(bool, u32, u64)> = (0..3)
        .map(|_| p.check_key(b"alice"))
        .map(|d| (d.allowed, d.remaining, d.retry_after))
        .collect();
    assert_eq!(seen, [(true, 1, 0), (true, 0, 0), (false, 0, 30)]);
    assert_eq!(p.check_key(b"alice").limit, 2, "tiers aside");
    assert!(p.check_key(b"bob").allowed, "bob has his own bucket");
    f.advance(Duration::from_secs(30));
    assert!(p.check_key(b"alice").allowed);
}

/// A prefix no other test run uses, so tests sharing the Redis never share a key.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade-test-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn redis_and_local_give_the_same_answers_for_the_same_sequence() {
    let redis_cfg: palisade_config::RedisConfig = toml::from_str(&format!(
        "url = \"redis://127.0.0.1:6379\"\ntimeout = \"2s\"\nprefix = \"{}\"",
        unique_prefix()
    ))
    .unwrap();
    let backend = Arc::new(redis::RedisBackend::new(&redis_cfg).expect("a redis URL"));
    let metrics = Metrics::new("test");
    let local_registry = Registry::default();
    let redis_registry = Registry::default().with_redis(Some(backend));
    // One cell an hour, three at once: every answer depends on the arithmetic, not on timing.
    let policy =
        "limit = 1\nper = \"1h\"\nburst = 3\ntier_header = \"x-plan\"\n[tiers.pro]\nlimit = 2";
    let build = |registry: &Registry, backend: &str| {
        let cfg = policy.replace(
            "limit = 1\n",
            &format!("limit = 1\nbackend = \"{backend}\"\n"),
        );
        let configs = BTreeMap::from([("p".to_owned(), toml::from_str(&cfg).unwrap())]);
        registry.build(&configs, &metrics, &AuditSink::off())["p"].clone()
    };
    let local = build(&local_registry, "local");
    let remote = build(&redis_registry, "redis");
    assert!(remote.is_remote() && !local.is_remote());
    let route: Arc<str> = Arc::from("api");
    let who = Requester {
        request_id: "r",
        trace_id: "t",
        caller: None,
    };
    let mut seen = Vec::new();
    for (ip, plan) in [
        ("192.0.2.1", "free"),
        ("192.0.2.1", "free"),
        ("192.0.2.2", "pro"),
        ("192.0.2.1", "free"),
        ("192.0.2.1", "free"),
        ("192.0.2.2", "pro"),
        ("192.0.2.2", "pro"),
        ("192.0.2.2", "pro"),
        ("192.0.2.2", "pro"),
    ] {
        let header = move |name: &str| (name == "x-plan").then_some(plan.as_bytes());
        let input = KeyInput {
            client_ip: ip.parse().unwrap(),
            route: "api",
            header: &header,
            identity: None,
        };
        let on_local = Pending::new(std::slice::from_ref(&local), &input, &route)
            .run(&who)
            .await;
        let on_redis = Pending::new(std::slice::from_ref(&remote), &input, &route)
            .run(&who)
            .await;
        // The same fields and the same refusal, to the second.
        assert_eq!(on_local, on_redis, "{ip} {plan}");
        seen.push(on_local.refused.map(|(_, wait)| wait));
    }
    // The default tier: three at once, then one an hour; `pro`: two an hour, two at once.
    let h = 3600;
    assert_eq!(
        seen,
        [
            None,
            None,
            None,
            None,
            Some(h),
            None,
            Some(h / 2),
            Some(h / 2),
            Some(h / 2)
        ]
    );
    let text = metrics.encode(Format::OpenMetrics);
    assert!(
        !text.contains("palisade_ratelimit_backend_fallbacks_total{"),
        "{text}"
    );
}

#[tokio::test]
async fn a_redis_key_holds_no_client_text() {
    let cfg: palisade_config::RedisConfig =
        toml::from_str("url = \"redis://127.0.0.1:6379\"\nprefix = \"shop\"").unwrap();
    let backend = redis::RedisBackend::new(&cfg).expect("a redis URL");
    let key = backend.key("per-user", "pro", b"header:alice}{*\r\nDEL x");
    let (head, hash) = key.rsplit_once(':').unwrap();
    assert_eq!(head, "shop:rl:per-user:pro");
    assert_eq!(hash.len(), 32);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(key, backend.key("per-user", "pro", b"header:bob"));
}
