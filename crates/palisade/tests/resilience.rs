//! Load shedding and circuit breakers on both codecs: a route's concurrency limit answers 503
//! with `Retry-After` at once when its queue is full or the wait too long; an upstream's breaker
//! opens only after its minimum volume, serves the fallback (or 503) without calling the
//! upstream, half-opens after `open_for` and closes on a successful probe; every step shows in
//! the metrics.

mod common;

use std::time::{Duration, Instant};

use common::wire::{Reply, Wire};
use palisade_testkit::UpstreamServer;
use palisade_testkit::gateway::Gateway;

async fn get(wire: &mut Wire, path: &str) -> Reply {
    let request = format!("GET {path} HTTP/1.1\r\nhost: app\r\n\r\n");
    wire.send(request.as_bytes()).await;
    wire.response(false).await
}

fn metric(metrics: &str, line: &str) -> bool {
    metrics.lines().any(|l| l == line)
}

/// Sends `path` on a new connection, in the background.
fn in_background(gw: &Gateway, path: &'static str) -> tokio::task::JoinHandle<Reply> {
    let url = gw.url("/");
    tokio::spawn(async move {
        let mut wire = Wire::connect(&url).await;
        get(&mut wire, path).await
    })
}

/// Waits until the upstream has seen `n` requests: the background ones are in flight.
async fn seen(up: &UpstreamServer, n: u64) {
    for _ in 0..200 {
        if up.requests_seen() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the upstream saw {} requests, not {n}", up.requests_seen());
}

both_codecs! {
    async fn a_full_route_sheds_at_once_and_a_queue_waits_its_turn(codec: Codec) {
        let (up, gw) = common::start(codec, "concurrency_limit = 1\nqueue = 1\nqueue_timeout = \"300ms\"").await;
        let before = up.requests_seen();
        // One request in flight (slow), one waiting in the queue: a third is shed at once.
        let slow = in_background(&gw, "/?latency=800ms");
        seen(&up, before + 1).await;
        let queued = in_background(&gw, "/?queued=1");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let shed = get(&mut wire, "/").await;
        assert_eq!(shed.status, 503);
        assert_eq!(shed.json()["type"], "https://palisade.dev/problems/overloaded");
        assert_eq!(shed.header("retry-after"), Some("1"));
        // The queued one gives up after queue_timeout, long before the slow one ends.
        let queued = queued.await.unwrap();
        assert_eq!((queued.status, queued.json()["type"].as_str()), (503, Some("https://palisade.dev/problems/overloaded")));
        assert_eq!(slow.await.unwrap().status, 200);
        // Free again: the next request goes through on the same connection.
        assert_eq!(get(&mut wire, "/").await.status, 200);
        assert_eq!(up.requests_seen(), before + 2, "shed requests never reached the upstream");
        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_route_shed_total{route="api",reason="queue_full"} 1"#,
            r#"palisade_route_shed_total{route="api",reason="queue_timeout"} 1"#,
            r#"palisade_http_rejections_total{route="api",reason="overloaded"} 2"#,
        ] {
            assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
        }
        assert!(metrics.contains("palisade_route_queue_wait_seconds_count{route=\"api\"} 2"), "{metrics}");
    }

    async fn a_breaker_opens_after_its_minimum_volume_serves_the_fallback_and_recovers(codec: Codec) {
        let extra = r#"
[upstreams.app.retry]
attempts = 1

[upstreams.app.breaker]
failure_rate = 0.5
min_requests = 4
window = "10s"
open_for = "400ms"
half_open_probes = 1

[upstreams.app.fallback]
status = 200
body = '{"degraded":true}'
content_type = "application/json"
"#;
        let up = UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "").replace("[[routes]]", &format!("{extra}\n[[routes]]"));
        let gw = common::spawn(codec, &config, true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let before = up.requests_seen();
        // Three failures are below the minimum volume: the upstream's 503s pass through.
        for _ in 0..3 {
            assert_eq!(get(&mut wire, "/?status=503").await.status, 503);
        }
        let metrics = common::metrics_text(&gw).await;
        assert!(metric(&metrics, r#"palisade_upstream_breaker_state{upstream="app"} 0"#), "{metrics}");
        // The fourth reaches the volume at 100 % failures: the breaker opens.
        assert_eq!(get(&mut wire, "/?status=503").await.status, 503);
        let fallback = get(&mut wire, "/").await;
        assert_eq!(fallback.status, 200);
        assert_eq!(fallback.body, br#"{"degraded":true}"#);
        assert_eq!(fallback.header("retry-after"), Some("1"));
        assert!(fallback.header("x-request-id").is_some());
        assert_eq!(up.requests_seen(), before + 4, "an open breaker does not call the upstream");
        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_upstream_breaker_state{upstream="app"} 1"#,
            r#"palisade_upstream_breaker_transitions_total{upstream="app",to="open"} 1"#,
            r#"palisade_http_rejections_total{route="api",reason="circuit-open"} 1"#,
        ] {
            assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
        }
        gw.wait_for_line(|l| l.contains("circuit breaker opened"), Duration::from_secs(5)).await.unwrap();
        let health = common::json(common::client().get(gw.ops_url("/health")).send().await.unwrap()).await;
        assert_eq!(health["components"]["breakers"]["app"], "open", "{health}");
        let detail = common::json(common::client().get(gw.ops_url("/breakers")).send().await.unwrap()).await;
        let app = &detail["breakers"]["app"];
        assert_eq!(app["state"], "open", "{detail}");
        let left = app["open_remaining_seconds"].as_f64().unwrap_or(0.0);
        assert!(left > 0.0 && left <= 0.4, "{detail}");
        // After open_for one probe goes through; it succeeds and the breaker closes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(get(&mut wire, "/").await.status, 200);
        assert_eq!(up.requests_seen(), before + 5);
        let reply = get(&mut wire, "/");
        assert_eq!(reply.await.json()["server"], "palisade-testkit");
        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_upstream_breaker_state{upstream="app"} 0"#,
            r#"palisade_upstream_breaker_transitions_total{upstream="app",to="half_open"} 1"#,
            r#"palisade_upstream_breaker_transitions_total{upstream="app",to="closed"} 1"#,
        ] {
            assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
        }
    }

    async fn without_a_fallback_an_open_breaker_is_503_and_a_failed_probe_reopens_it(codec: Codec) {
        // The consecutive-failure mode: two failures in a row.
        let extra = "[upstreams.app.retry]\nattempts = 1\n[upstreams.app.breaker]\nconsecutive_failures = 2\nopen_for = \"300ms\"\nhalf_open_probes = 1\n";
        let up = UpstreamServer::start().await.unwrap();
        // Timeouts count too: the route waits 1 s, the upstream takes 2.
        let config = common::config_for(up.addr(), "").replace("[[routes]]", &format!("{extra}\n[[routes]]"));
        let gw = common::spawn(codec, &config, true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        assert_eq!(get(&mut wire, "/?status=502").await.status, 502);
        let mut wire = Wire::connect(&gw.url("/")).await;
        assert_eq!(get(&mut wire, "/?latency=2s").await.status, 504);
        let mut wire = Wire::connect(&gw.url("/")).await;
        let open = get(&mut wire, "/").await;
        assert_eq!(open.status, 503);
        assert_eq!(open.json()["type"], "https://palisade.dev/problems/circuit-open");
        assert_eq!(open.header("retry-after"), Some("1"));
        // The probe fails: open again, and the next request is refused without a call.
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(get(&mut wire, "/?status=503").await.status, 503);
        let seen = up.requests_seen();
        assert_eq!(get(&mut wire, "/").await.json()["type"], "https://palisade.dev/problems/circuit-open");
        assert_eq!(up.requests_seen(), seen);
        let metrics = common::metrics_text(&gw).await;
        assert!(metric(&metrics, r#"palisade_upstream_breaker_transitions_total{upstream="app",to="open"} 2"#), "{metrics}");
    }
}

both_codecs! {
    async fn an_open_breaker_sends_requests_to_the_fallback_upstream(codec: Codec) {
        let (up, cache) = (UpstreamServer::start().await.unwrap(), UpstreamServer::start().await.unwrap());
        let extra = format!(
            "[upstreams.app.retry]\nattempts = 1\n[upstreams.app.breaker]\nmin_requests = 2\nopen_for = \"1h\"\n\
             [upstreams.app.fallback]\nupstream = \"cache\"\n\n[upstreams.cache]\nendpoints = [\"{}\"]\n",
            cache.addr()
        );
        let config = common::config_for(up.addr(), "").replace("[[routes]]", &format!("{extra}\n[[routes]]"));
        let gw = common::spawn(codec, &config, true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        for _ in 0..2 {
            assert_eq!(get(&mut wire, "/?status=503").await.status, 503);
        }
        let (app_seen, cache_seen) = (up.requests_seen(), cache.requests_seen());
        // Open: the cache answers, with the request as the client sent it.
        let served = get(&mut wire, "/orders?page=2").await;
        assert_eq!(served.status, 200);
        assert_eq!(served.json()["query"], "page=2");
        assert_eq!((up.requests_seen(), cache.requests_seen()), (app_seen, cache_seen + 1));
    }
}

/// The gateway with `retry` as `[upstreams.app.retry]` (and `endpoints` instead of the test kit
/// upstream's when given).
async fn retrying(codec: common::Codec, retry: &str) -> (UpstreamServer, Gateway) {
    let up = UpstreamServer::start().await.unwrap();
    let config = common::config_for(up.addr(), "").replace(
        "[[routes]]",
        &format!("[upstreams.app.retry]\n{retry}\n\n[[routes]]"),
    );
    let gw = common::spawn(codec, &config, true).await;
    (up, gw)
}

both_codecs! {
    async fn idempotent_requests_are_retried_within_the_policy(codec: Codec) {
        let (up, gw) = retrying(codec, "backoff = \"20ms\"\nmax_backoff = \"200ms\"").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        // A GET on 503: tried twice (the default attempts), the last answer goes to the client.
        let before = up.requests_seen();
        let started = Instant::now();
        assert_eq!(get(&mut wire, "/?status=503").await.status, 503);
        assert_eq!(up.requests_seen(), before + 2);
        assert!(started.elapsed() < Duration::from_millis(900), "the backoff is capped at 200 ms");
        // 500 is not in `on`: answered as it came.
        assert_eq!(get(&mut wire, "/?status=500&body=plain").await.status, 500);
        assert_eq!(up.requests_seen(), before + 3);
        // A POST with a body is not sent twice.
        let body = "{\"order\":1}";
        let post = format!("POST /?status=503 HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        wire.send(post.as_bytes()).await;
        assert_eq!(wire.response(false).await.status, 503);
        assert_eq!(up.requests_seen(), before + 4);
        // A Retry-After past max_backoff: the client gets the upstream's answer at once.
        let reply = get(&mut wire, "/?status=503&set_header=retry-after:30").await;
        assert_eq!((reply.status, reply.header("retry-after")), (503, Some("30")));
        assert_eq!(up.requests_seen(), before + 5);
        // A bodiless POST goes again only with Idempotency-Key.
        wire.send(b"POST /?status=503 HTTP/1.1\r\nhost: app\r\ncontent-length: 0\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 503);
        assert_eq!(up.requests_seen(), before + 6);
        wire.send(b"POST /?status=503 HTTP/1.1\r\nhost: app\r\nidempotency-key: order-7\r\ncontent-length: 0\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 503);
        assert_eq!(up.requests_seen(), before + 8);
        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_upstream_retries_total{upstream="app",reason="status_5xx"} 2"#,
            r#"palisade_upstream_retries_skipped_total{upstream="app",reason="retry_after_too_long"} 1"#,
        ] {
            assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
        }
        // The POST with a body and the POST without a key: neither sent twice, both counted.
        let skipped = |reason: &str| {
            metrics
                .lines()
                .find(|l| l.starts_with(&format!("palisade_upstream_retries_skipped_total{{upstream=\"app\",reason=\"{reason}\"}}")))
                .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .unwrap_or(0)
        };
        assert_eq!(skipped("not_idempotent") + skipped("body_not_replayable"), 2, "{metrics}");
    }

    async fn a_try_timeout_abandons_a_slow_attempt_within_the_route_timeout(codec: Codec) {
        let retry = "try_timeout = \"200ms\"\non = [\"timeout\", \"503\"]\nbackoff = \"1ms\"\nmax_backoff = \"2ms\"";
        let (up, gw) = retrying(codec, retry).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let before = up.requests_seen();
        let started = Instant::now();
        let slow = get(&mut wire, "/?latency=700ms").await;
        // Two attempts of 200 ms each, well inside the route's 1 s.
        assert_eq!(slow.status, 504);
        assert!(started.elapsed() < Duration::from_millis(700), "took {:?}", started.elapsed());
        assert_eq!(up.requests_seen(), before + 2);
        let metrics = common::metrics_text(&gw).await;
        let line = r#"palisade_upstream_retries_total{upstream="app",reason="timeout"} 1"#;
        assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
        // A fast answer is not affected.
        assert_eq!(get(&mut Wire::connect(&gw.url("/")).await, "/?latency=50ms").await.status, 200);
    }

    async fn small_bodies_of_safe_requests_are_replayed(codec: Codec) {
        let (up, gw) = retrying(codec, "replay_body = \"64B\"\nbackoff = \"1ms\"\nmax_backoff = \"2ms\"").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let send = |method: &str, extra: &str, body: &str| {
            format!(
                "{method} /?status=503 HTTP/1.1\r\nhost: app\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let body = r#"{"order":7,"qty":2}"#;
        let before = up.requests_seen();
        // A PUT (idempotent) and a POST with Idempotency-Key: sent twice, the same bytes both times.
        for request in [send("PUT", "", body), send("POST", "idempotency-key: k-1\r\n", body)] {
            wire.send(request.as_bytes()).await;
            let reply = wire.response(false).await;
            assert_eq!(reply.status, 503);
            assert_eq!(reply.json()["body_bytes"], body.len());
            assert_eq!(reply.json()["body_fnv64"], palisade_testkit::upstream::fnv64_hex(body.as_bytes()));
        }
        assert_eq!(up.requests_seen(), before + 4);
        // Over replay_body, or a POST without a key: sent once.
        let long = "x".repeat(100);
        wire.send(send("PUT", "", &long).as_bytes()).await;
        assert_eq!(wire.response(false).await.status, 503);
        wire.send(send("POST", "", body).as_bytes()).await;
        assert_eq!(wire.response(false).await.status, 503);
        assert_eq!(up.requests_seen(), before + 6);
    }

    async fn the_upstream_is_told_how_long_an_attempt_may_take(codec: Codec) {
        let up = UpstreamServer::start().await.unwrap();
        // The route's 1 s, then a try timeout of 250 ms.
        for (retry, want) in [("", "1000"), ("try_timeout = \"250ms\"", "250")] {
            let extra = format!("deadline_header = \"x-request-timeout-ms\"\n[upstreams.app.retry]\n{retry}\n");
            let config = common::config_for(up.addr(), "").replace(
                &format!("endpoints = [\"{}\"]\n", up.addr()),
                &format!("endpoints = [\"{}\"]\n{extra}", up.addr()),
            );
            let gw = common::spawn(codec, &config, true).await;
            let mut wire = Wire::connect(&gw.url("/")).await;
            let echo = get(&mut wire, "/").await.json();
            assert_eq!(echo["headers"]["x-request-timeout-ms"], want, "{echo}");
            // A client cannot set it.
            wire.send(b"GET / HTTP/1.1\r\nhost: app\r\nx-request-timeout-ms: 999999\r\n\r\n").await;
            assert_eq!(wire.response(false).await.json()["headers"]["x-request-timeout-ms"], want);
        }
    }

    async fn the_budget_stops_a_retry_storm(codec: Codec) {
        // No share of traffic, only the reserve of one retry a second: 10 in the 10 s window.
        let (up, gw) = retrying(codec, "budget = 0.0\nbackoff = \"1ms\"\nmax_backoff = \"2ms\"").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let before = up.requests_seen();
        for _ in 0..14 {
            assert_eq!(get(&mut wire, "/?status=502").await.status, 502);
        }
        assert_eq!(up.requests_seen(), before + 14 + 10);
        let metrics = common::metrics_text(&gw).await;
        for line in [
            r#"palisade_upstream_retries_total{upstream="app",reason="status_5xx"} 10"#,
            r#"palisade_upstream_retries_skipped_total{upstream="app",reason="budget_exhausted"} 4"#,
        ] {
            assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
        }
    }

    async fn a_refused_connection_is_retried_after_a_backoff(codec: Codec) {
        let (_up, gw) = retrying(codec, "backoff = \"10ms\"").await;
        // The only endpoint refuses connections: failover has nowhere to go, the policy retries.
        drop(_up);
        let mut wire = Wire::connect(&gw.url("/")).await;
        assert_eq!(get(&mut wire, "/").await.status, 502);
        let metrics = common::metrics_text(&gw).await;
        let line = r#"palisade_upstream_retries_total{upstream="app",reason="connect"} 1"#;
        assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
    }
}

/// Chaos: two endpoints, one of which fails (503) and recovers every 50 ms, under continuous
/// load from 8 clients for 2 s. Retries go to the other endpoint, so clients see at most 2 % of
/// errors (without retries they would see about a quarter); the retry metrics show the work.
#[tokio::test]
async fn clients_barely_notice_an_endpoint_that_fails_and_recovers() {
    let healthy = UpstreamServer::start().await.unwrap();
    let flaky = std::sync::Arc::new(UpstreamServer::start().await.unwrap());
    let config = common::config_for(healthy.addr(), "").replace(
        &format!("endpoints = [\"{}\"]", healthy.addr()),
        &format!(
            "endpoints = [\"{}\", \"{}\"]\n[upstreams.app.retry]\nbudget = 0.5\nbackoff = \"1ms\"\nmax_backoff = \"5ms\"",
            healthy.addr(),
            flaky.addr()
        ),
    );
    let gw = common::spawn(common::Codec::Fast, &config, true).await;
    let toggling = {
        let flaky = flaky.clone();
        tokio::spawn(async move {
            for n in 0.. {
                flaky.fail_with((n % 2 == 0).then_some(503));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let until = Instant::now() + Duration::from_secs(2);
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let url = gw.url("/");
        clients.spawn(async move {
            let mut wire = Wire::connect(&url).await;
            let (mut ok, mut failed) = (0u32, 0u32);
            while Instant::now() < until {
                match get(&mut wire, "/").await.status {
                    200 => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        });
    }
    let (mut ok, mut failed) = (0, 0);
    while let Some(result) = clients.join_next().await {
        let (o, f) = result.unwrap();
        (ok, failed) = (ok + o, failed + f);
    }
    toggling.abort();
    let total = ok + failed;
    assert!(total > 200, "only {total} requests in 2 s");
    assert!(
        f64::from(failed) / f64::from(total) <= 0.02,
        "{failed} of {total} requests failed"
    );
    assert!(flaky.requests_seen() > 0 && healthy.requests_seen() > 0);
    let metrics = common::metrics_text(&gw).await;
    let retried = metrics
        .lines()
        .find(|l| {
            l.starts_with(r#"palisade_upstream_retries_total{upstream="app",reason="status_5xx"}"#)
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(retried > 0, "no retries counted:\n{metrics}");
}

/// Passive outlier ejection: an endpoint that answers 5xx five times in a row is skipped for
/// a while; without retries clients see exactly those five errors, with the default retries
/// none.
#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_ejected() {
    for (retry, errors_seen) in [("attempts = 1", 5), ("", 0)] {
        let healthy = UpstreamServer::start().await.unwrap();
        let broken = UpstreamServer::start().await.unwrap();
        broken.fail_with(Some(503));
        let config = common::config_for(healthy.addr(), "").replace(
            &format!("endpoints = [\"{}\"]", healthy.addr()),
            &format!(
                "endpoints = [\"{}\", \"{}\"]\nrequired = false\n[upstreams.app.retry]\n{retry}\nbackoff = \"1ms\"\nmax_backoff = \"2ms\"",
                healthy.addr(),
                broken.addr()
            ),
        );
        let gw = common::spawn(common::Codec::Fast, &config, true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let mut errors = 0;
        for _ in 0..30 {
            if get(&mut wire, "/").await.status != 200 {
                errors += 1;
            }
        }
        assert_eq!(errors, errors_seen, "with retry settings {retry:?}");
        assert_eq!(
            broken.requests_seen(),
            5,
            "ejected after five server errors"
        );
        let health = common::json(
            common::client()
                .get(gw.ops_url("/health"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        let endpoints = health["components"]["endpoints"]["app"]
            .as_array()
            .unwrap()
            .clone();
        let ejected = endpoints
            .iter()
            .find(|e| e["address"] == broken.addr().to_string())
            .unwrap();
        assert_eq!(
            (ejected["state"].as_str(), ejected["ejections"].as_u64()),
            (Some("backoff"), Some(1)),
            "{health}"
        );
        let metrics = common::metrics_text(&gw).await;
        let line = r#"palisade_upstream_ejections_total{upstream="app",reason="5xx"} 1"#;
        assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
    }
}

/// Active health checks: an endpoint failing `GET /healthz` leaves the rotation after two
/// checks (no request reaches it, none fails), returns after two passes, and `/ready` turns 503
/// when no endpoint of a required upstream is healthy.
#[tokio::test]
async fn failed_health_checks_take_an_endpoint_out_and_passed_ones_bring_it_back() {
    let healthy = UpstreamServer::start().await.unwrap();
    let sick = UpstreamServer::start().await.unwrap();
    sick.fail_with(Some(503));
    let config = common::config_for(healthy.addr(), "").replace(
        &format!("endpoints = [\"{}\"]", healthy.addr()),
        &format!(
            "endpoints = [\"{}\", \"{}\"]\n[upstreams.app.retry]\nattempts = 1\n[upstreams.app.health_check]\npath = \"/healthz\"\ninterval = \"50ms\"\ntimeout = \"200ms\"",
            healthy.addr(),
            sick.addr()
        ),
    );
    let gw = common::spawn(common::Codec::Fast, &config, true).await;
    let state = |gw: &Gateway, address: String| {
        let url = gw.ops_url("/health");
        async move {
            let health = common::json(common::client().get(url).send().await.unwrap()).await;
            let endpoints = health["components"]["endpoints"]["app"]
                .as_array()
                .unwrap()
                .clone();
            let endpoint = endpoints
                .iter()
                .find(|e| e["address"] == address)
                .unwrap()
                .clone();
            endpoint["state"].as_str().unwrap().to_owned()
        }
    };
    let wait_for = |want: &'static str| {
        let address = sick.addr().to_string();
        let gw = &gw;
        async move {
            for _ in 0..100 {
                if state(gw, address.clone()).await == want {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the endpoint never became {want}");
        }
    };
    wait_for("unhealthy").await;
    gw.wait_for_line(|l| l.contains("out of rotation"), Duration::from_secs(5))
        .await
        .unwrap();
    let metrics = common::metrics_text(&gw).await;
    let line = r#"palisade_upstream_ejections_total{upstream="app",reason="health_check"} 1"#;
    assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
    let mut wire = Wire::connect(&gw.url("/")).await;
    for _ in 0..20 {
        assert_eq!(
            get(&mut wire, "/").await.status,
            200,
            "a request reached the sick endpoint"
        );
    }
    sick.fail_with(None);
    wait_for("up").await;
    let before = sick.requests_seen();
    for _ in 0..4 {
        assert_eq!(get(&mut wire, "/").await.status, 200);
    }
    assert!(sick.requests_seen() > before, "back in rotation");
    // Both sick: the required upstream has no healthy endpoint, and the replica is not ready.
    healthy.fail_with(Some(503));
    sick.fail_with(Some(503));
    let mut ready = 200;
    for _ in 0..100 {
        ready = common::client()
            .get(gw.ops_url("/ready"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, 503);
}

/// Budget state lives outside the config snapshot (as breakers do): a reload that leaves the
/// upstream as it was keeps a spent budget spent.
#[tokio::test]
async fn a_reload_keeps_the_retry_budget() {
    let up = UpstreamServer::start().await.unwrap();
    let extra = "[upstreams.app.retry]\nbudget = 0.0\nbackoff = \"1ms\"\nmax_backoff = \"2ms\"\n";
    let config =
        common::config_for(up.addr(), "").replace("[[routes]]", &format!("{extra}\n[[routes]]"));
    let gw = common::spawn(common::Codec::Fast, &config, true).await;
    let mut wire = Wire::connect(&gw.url("/")).await;
    // Spend the reserve of 10 retries.
    for _ in 0..10 {
        assert_eq!(get(&mut wire, "/?status=502").await.status, 502);
    }
    // Reload with another route timeout: the upstream's settings are unchanged.
    std::fs::write(
        gw.config_path(),
        config.replace("timeout = \"1s\"", "timeout = \"2s\""),
    )
    .unwrap();
    gw.signal("HUP").unwrap();
    gw.wait_for_line(
        |l| l.contains("\"action\":\"reload\"") && l.contains("\"outcome\":\"success\""),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let before = up.requests_seen();
    assert_eq!(
        get(&mut Wire::connect(&gw.url("/")).await, "/?status=502")
            .await
            .status,
        502
    );
    assert_eq!(
        up.requests_seen(),
        before + 1,
        "the spent budget allowed a retry after the reload"
    );
    let metrics = common::metrics_text(&gw).await;
    let line =
        r#"palisade_upstream_retries_skipped_total{upstream="app",reason="budget_exhausted"} 1"#;
    assert!(metric(&metrics, line), "{line} missing from\n{metrics}");
}
