//! The ops listener: probes answer from cached state; metrics parse, count requests, report
//! the process's vital signs and whether the last config reload took.

mod common;

use std::time::{Duration, Instant};

use palisade_testkit::gateway::free_port;
use palisade_testkit::upstream::UpstreamServer;

async fn get(url: &str) -> (u16, String) {
    let resp = common::client().get(url).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

#[tokio::test]
async fn ready_is_503_until_the_upstream_is_reachable_while_live_stays_200() {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let gw = common::spawn(common::Codec::Fast, &common::config_for(addr, ""), false).await;
    // Give the background check a few rounds (interval 100ms) to settle on "unreachable".
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, body) = get(&gw.ops_url("/ready")).await;
    assert_eq!(status, 503, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "not_ready");
    assert!(
        v["reasons"][0].as_str().unwrap().contains("\"app\""),
        "{body}"
    );
    assert_eq!(get(&gw.ops_url("/live")).await.0, 200);

    let _upstream = UpstreamServer::start_on(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(&gw.ops_url("/ready")).await;
        if status == 200 {
            assert!(body.contains("\"ready\""), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "/ready never turned 200: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(&gw.ops_url("/health")).await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["components"]["upstreams"][0]["name"], "app");
    assert_eq!(v["components"]["upstreams"][0]["reachable"], true);
    assert_eq!(v["config_version"].as_str().unwrap().len(), 12);
}

#[tokio::test]
async fn ready_is_503_while_draining_and_live_stays_200() {
    let upstream = UpstreamServer::start().await.unwrap();
    let config = common::config_for(upstream.addr(), "")
        .replace("drain_delay = \"0s\"", "drain_delay = \"2s\"");
    let mut gw = common::spawn(common::Codec::Fast, &config, true).await;
    gw.signal("TERM").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, body) = get(&gw.ops_url("/ready")).await;
    assert_eq!(status, 503);
    assert!(body.contains("draining"), "{body}");
    assert_eq!(get(&gw.ops_url("/live")).await.0, 200);
    // Still serving traffic during the drain delay, asking clients to reconnect elsewhere.
    let resp = common::client().get(gw.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["connection"], "close");
    let status = gw.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn metrics_parse_and_count_requests() {
    let (_up, gw) = common::start(common::Codec::Fast, "").await;
    let client = common::client();
    for path in ["/count", "/count", "/count", "/count?status=503"] {
        let resp = client.get(gw.url(path)).send().await.unwrap();
        resp.bytes().await.unwrap();
    }

    // No `Accept` header: the Prometheus text format (metrics_format.rs covers negotiation).
    let resp = client.get(gw.ops_url("/metrics")).send().await.unwrap();
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("metrics parse");
    let value = |name: &str, labels: &[(&str, &str)]| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    let ok = [("route", "api"), ("method", "GET"), ("status_class", "2xx")];
    let err = [("route", "api"), ("method", "GET"), ("status_class", "5xx")];
    assert_eq!(
        value("palisade_http_requests_total", &ok),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value("palisade_http_requests_total", &err),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("palisade_http_request_duration_seconds_bucket{"),
        "{text}"
    );
    assert!(text.contains("palisade_build_info{"), "{text}");
    for name in [
        "palisade_process_start_time_seconds",
        "palisade_process_startup_duration_seconds",
        "palisade_ready_last_success_timestamp_seconds",
        "palisade_http_requests_in_flight",
    ] {
        assert!(text.contains(name), "{name} missing:\n{text}");
    }
}

/// The value of the unlabelled sample `name` on the page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|line| {
        let (series, value) = line.split_once(' ')?;
        (series == name).then(|| value.parse().ok())?
    })
}

async fn wait_for_sample(gw: &palisade_testkit::gateway::Gateway, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let page = common::metrics_text(gw).await;
        if sample(&page, name) == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never became {want}:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn standard_process_metrics_describe_the_gateway_process() {
    let (_up, gw) = common::start(common::Codec::Fast, "").await;
    let page = common::metrics_text(&gw).await;
    let value =
        |name: &str| sample(&page, name).unwrap_or_else(|| panic!("{name} missing:\n{page}"));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started > now - 60.0 && started <= now + 1.0,
        "started {started}, now {now}"
    );
    // The kernel's start time and Palisade's own agree (boot time has whole seconds).
    assert!((started - value("palisade_process_start_time_seconds")).abs() < 2.0);
    assert!(value("process_cpu_seconds_total") >= 0.0);
    // The test kit reads the same /proc file for its own RSS figure.
    let rss = value("process_resident_memory_bytes");
    assert!(rss > 1e6, "rss {rss}");
    let kit_rss = gw.rss_kb().expect("test kit reads the RSS") as f64 * 1024.0;
    assert!(
        (rss - kit_rss).abs() < 64.0 * 1024.0 * 1024.0,
        "{rss} vs {kit_rss}"
    );
    assert!(value("process_virtual_memory_bytes") >= rss);
    let (open, max) = (value("process_open_fds"), value("process_max_fds"));
    // stdio, the two listeners, the runtime's epoll: well above 3, well below the limit.
    assert!(open >= 5.0 && open < max, "open {open}, max {max}");
}

#[tokio::test]
async fn last_reload_success_is_1_at_start_0_after_a_rejected_reload_and_1_again() {
    let (_up, gw) = common::start(common::Codec::Fast, "").await;
    let name = "palisade_config_last_reload_success";
    assert_eq!(sample(&common::metrics_text(&gw).await, name), Some(1.0));

    let good = std::fs::read_to_string(gw.config_path()).unwrap();
    std::fs::write(
        gw.config_path(),
        good.replace("upstream = \"app\"", "upstream = \"missing\""),
    )
    .unwrap();
    gw.signal("HUP").unwrap();
    wait_for_sample(&gw, name, 0.0).await;

    std::fs::write(gw.config_path(), good).unwrap();
    gw.signal("HUP").unwrap();
    wait_for_sample(&gw, name, 1.0).await;
}
