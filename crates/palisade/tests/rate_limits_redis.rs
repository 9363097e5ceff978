//! Redis-backed rate limits against the real Redis on 127.0.0.1:6379: replicas sharing one
//! Redis admit exactly what one process would, on both codecs; while Redis is down, refuses
//! connections or stalls, each policy's `on_backend_error` answers, no request gets a 5xx, and
//! the metric says why.

mod common;

use std::time::Duration;

use common::Codec;
use palisade_testkit::UpstreamServer;
use palisade_testkit::gateway::Gateway;

/// A key prefix no other test or run uses.
fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("palisade-test-{test}-{}-{nanos}", std::process::id())
}

fn config(up: &UpstreamServer, redis: &str, policy: &str) -> String {
    common::config_for(up.addr(), "rate_limits = [\"shared\"]").replace(
        "[lifecycle]",
        &format!(
            "[redis]\n{redis}\n\n[rate_limits.shared]\nbackend = \"redis\"\n{policy}\n\n[lifecycle]"
        ),
    )
}

async fn statuses(gw: &Gateway, n: usize) -> Vec<u16> {
    let client = common::client();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            client
                .get(gw.url("/x"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    out
}

both_codecs! {
    async fn two_gateways_sharing_redis_admit_what_one_would(codec: Codec) {
        let up = UpstreamServer::start().await.unwrap();
        let redis = format!("url = \"redis://127.0.0.1:6379\"\nprefix = \"{}\"", unique_prefix("shared"));
        let config = config(&up, &redis, "limit = 3\nper = \"1h\"");
        let a = common::spawn(codec, &config, true).await;
        let b = common::spawn(codec, &config, true).await;
        let client = common::client();
        let mut admitted = 0;
        for i in 0..8 {
            let gw = if i % 2 == 0 { &a } else { &b };
            let resp = client.get(gw.url("/x")).send().await.unwrap();
            match resp.status().as_u16() {
                200 => admitted += 1,
                429 => assert_eq!(resp.headers()["retry-after"], "1200"),
                other => panic!("status {other}"),
            }
        }
        assert_eq!(admitted, 3, "two replicas admitted what one would");
        let (_, health) = palisade_testkit::client::get(&a.ops_url("/health"))
            .await
            .map(|r| (r.status, r.json().unwrap()))
            .unwrap();
        assert_eq!(health["components"]["redis"], "up", "{health}");
        let metrics = common::metrics_text(&a).await;
        assert!(!metrics.contains("palisade_ratelimit_backend_fallbacks_total{"), "{metrics}");
        assert!(metrics.contains("palisade_ratelimit_redis_seconds_count{policy=\"shared\"}"), "{metrics}");
    }

    async fn while_redis_is_down_the_declared_policy_answers(codec: Codec) {
        let up = UpstreamServer::start().await.unwrap();
        // Nothing listens on port 1: every call fails at once.
        let redis = "url = \"redis://127.0.0.1:1\"\ntimeout = \"50ms\"";
        for (fallback, expected) in [
            ("local", [200, 200, 429, 429]),
            ("allow", [200, 200, 200, 200]),
            ("deny", [429, 429, 429, 429]),
        ] {
            let policy = format!("limit = 2\nper = \"1h\"\non_backend_error = \"{fallback}\"");
            let gw = common::spawn(codec, &config(&up, redis, &policy), true).await;
            assert_eq!(statuses(&gw, 4).await, expected, "on_backend_error = {fallback}");
            let metrics = common::metrics_text(&gw).await;
            let fallbacks: u64 = metrics
                .lines()
                .filter(|l| l.starts_with("palisade_ratelimit_backend_fallbacks_total{policy=\"shared\""))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            assert_eq!(fallbacks, 4, "every decision fell back: {metrics}");
            gw.wait_for_line(|l| l.contains("rate limit decided without redis"), Duration::from_secs(5))
                .await
                .unwrap();
            // /health says why, and the replica stays ready: the fallback answers.
            let health = palisade_testkit::client::get(&gw.ops_url("/health")).await.unwrap();
            assert_eq!(health.status, 200);
            assert_eq!(health.json().unwrap()["components"]["redis"], "breaker_open");
        }
    }
}

#[tokio::test]
async fn a_stalled_redis_is_cut_at_the_timeout_and_then_skipped_by_the_breaker() {
    // A "Redis" that accepts connections and never answers.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = stalled.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = stalled.accept().await {
            held.push(conn);
        }
    });
    let up = UpstreamServer::start().await.unwrap();
    let redis = format!("url = \"redis://{addr}\"\ntimeout = \"100ms\"");
    let gw = common::spawn(
        Codec::Fast,
        &config(&up, &redis, "limit = 2\nper = \"1h\""),
        true,
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(statuses(&gw, 5).await, [200, 200, 429, 429, 429]);
    // At most three waits of 100 ms before the breaker opens; then no wait at all.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let metrics = common::metrics_text(&gw).await;
    for reason in ["timeout", "breaker_open"] {
        let series = format!(
            "palisade_ratelimit_backend_fallbacks_total{{policy=\"shared\",reason=\"{reason}\"}}"
        );
        assert!(metrics.contains(&series), "{series} missing from {metrics}");
    }
}
