//! Tests of the rendered `/metrics` page.

use std::time::Duration;

use http::Method;

use super::*;

/// The value of the sample whose name and labels are exactly `series`, parsed from the page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

#[test]
fn a_request_appears_as_counter_and_histogram() {
    let metrics = Metrics::new("1.2.3");
    let api = metrics.route("api");
    api.observe(&Method::GET, 200, Duration::from_millis(3));

    let page = metrics.encode(Format::OpenMetrics);
    let labels = r#"{route="api",method="GET",status_class="2xx"}"#;
    assert_eq!(
        sample(&page, &format!("palisade_http_requests_total{labels}")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &page,
            &format!("palisade_http_request_duration_seconds_count{labels}")
        ),
        Some(1.0)
    );
    let bucket = r#"palisade_http_request_duration_seconds_bucket{le="0.005",route="api",method="GET",status_class="2xx"}"#;
    assert_eq!(sample(&page, bucket), Some(1.0), "{page}");
    assert!(page.ends_with("# EOF\n"));
}

#[test]
fn series_appear_only_once_used_and_handles_share_them() {
    let metrics = Metrics::new("dev");
    let first = metrics.route("api");
    assert!(
        !metrics
            .encode(Format::OpenMetrics)
            .contains(r#"route="api""#)
    );

    first.observe(&Method::POST, 503, Duration::from_millis(1));
    // A handle built for the next config snapshot adds to the same series.
    metrics
        .route("api")
        .observe(&Method::POST, 502, Duration::from_millis(1));
    let custom = Method::from_bytes(b"PURGE").unwrap();
    metrics
        .route(NO_ROUTE)
        .observe(&custom, 404, Duration::ZERO);

    let page = metrics.encode(Format::OpenMetrics);
    let api = r#"palisade_http_requests_total{route="api",method="POST",status_class="5xx"}"#;
    assert_eq!(sample(&page, api), Some(2.0));
    let none = r#"palisade_http_requests_total{route="none",method="other",status_class="4xx"}"#;
    assert_eq!(sample(&page, none), Some(1.0));
}

#[test]
fn process_readiness_reload_and_build_info() {
    let metrics = Metrics::new("0.1.0");
    metrics.set_process_start_time(1_700_000_000.5);
    metrics.set_startup_duration(0.25);
    metrics.set_shutdown_duration(1.5);
    metrics.set_ready(true, 1_700_000_001.0);
    metrics.set_ready(false, 1_700_000_002.0);
    metrics.config_reload(true);
    metrics.config_reload(false);
    metrics.config_reload(false);

    let page = metrics.encode(Format::OpenMetrics);
    assert_eq!(
        sample(&page, r#"palisade_build_info{version="0.1.0"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, "palisade_process_start_time_seconds"),
        Some(1_700_000_000.5)
    );
    assert_eq!(
        sample(&page, "palisade_process_startup_duration_seconds"),
        Some(0.25)
    );
    assert_eq!(
        sample(&page, "palisade_process_shutdown_duration_seconds"),
        Some(1.5)
    );
    assert_eq!(sample(&page, "palisade_ready"), Some(0.0));
    assert_eq!(
        sample(&page, "palisade_ready_last_success_timestamp_seconds"),
        Some(1_700_000_001.0)
    );
    assert_eq!(
        sample(&page, r#"palisade_config_reloads_total{result="success"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(&page, r#"palisade_config_reloads_total{result="failure"}"#),
        Some(2.0)
    );
    let last = sample(
        &page,
        "palisade_config_last_reload_success_timestamp_seconds",
    )
    .unwrap();
    assert!(last > 1_700_000_000.0);
}

#[test]
fn last_reload_success_is_1_at_start_and_follows_each_reload() {
    let metrics = Metrics::new("dev");
    let last = |m: &Metrics| {
        sample(
            &m.encode(Format::OpenMetrics),
            names::CONFIG_LAST_RELOAD_SUCCESS,
        )
    };
    assert_eq!(last(&metrics), Some(1.0));
    metrics.config_reload(false);
    assert_eq!(last(&metrics), Some(0.0));
    metrics.config_reload(true);
    assert_eq!(last(&metrics), Some(1.0));
}

#[test]
fn connection_panics_are_counted() {
    let metrics = Metrics::new("dev");
    let count = |m: &Metrics| {
        sample(
            &m.encode(Format::OpenMetrics),
            "palisade_connection_panics_total",
        )
    };
    assert_eq!(count(&metrics), Some(0.0));
    metrics.connection_panic();
    assert_eq!(count(&metrics), Some(1.0));
}

/// The Prometheus 0.0.4 page: every sample belongs to a family announced by `# HELP` and
/// `# TYPE` lines under the sample's own name (or its histogram base), as promtool expects.
#[test]
fn the_prometheus_page_announces_every_sample_by_name() {
    let metrics = Metrics::new("dev");
    metrics
        .route("api")
        .observe(&Method::GET, 200, Duration::from_millis(2));
    metrics.upstream("users").error(UpstreamErrorKind::Timeout);
    let page = metrics.encode(Format::Prometheus);
    assert!(
        !page.contains("# EOF") && !page.contains("# UNIT"),
        "{page}"
    );
    assert!(
        page.contains("# TYPE palisade_http_requests_total counter\n"),
        "{page}"
    );
    let mut helped = std::collections::HashSet::new();
    let mut typed = std::collections::HashMap::new();
    for line in page.lines() {
        let mut words = line.splitn(4, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("#"), Some("HELP"), Some(name), Some(_)) => {
                helped.insert(name.to_owned());
            }
            (Some("#"), Some("TYPE"), Some(name), Some(kind)) => {
                typed.insert(name.to_owned(), kind.to_owned());
            }
            _ => {
                let name = line.split(['{', ' ']).next().unwrap();
                let family = match ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                {
                    Some(base) if typed.get(base).map(String::as_str) == Some("histogram") => base,
                    _ => name,
                };
                assert!(helped.contains(family), "{name} has no help:\n{page}");
                assert!(typed.contains_key(family), "{name} has no type:\n{page}");
            }
        }
    }
    for (name, kind) in &typed {
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} {kind}");
    }
}

#[cfg(target_os = "linux")]
#[test]
fn standard_process_metrics_are_read_at_scrape_time() {
    let metrics = Metrics::new("dev");
    for format in [Format::OpenMetrics, Format::Prometheus] {
        let page = metrics.encode(format);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_open_fds",
            "process_max_fds",
            "process_start_time_seconds",
        ] {
            let value = sample(&page, name).unwrap_or_else(|| panic!("{name} missing:\n{page}"));
            assert!(value >= 0.0, "{name} = {value}");
        }
        assert!(page.contains("# TYPE process_open_fds gauge\n"), "{page}");
    }
}

#[test]
fn in_flight_follows_guards() {
    let metrics = Metrics::new("dev");
    let a = metrics.in_flight();
    let b = metrics.in_flight();
    assert_eq!(
        sample(
            &metrics.encode(Format::OpenMetrics),
            "palisade_http_requests_in_flight"
        ),
        Some(2.0)
    );
    drop(a);
    drop(b);
    assert_eq!(
        sample(
            &metrics.encode(Format::OpenMetrics),
            "palisade_http_requests_in_flight"
        ),
        Some(0.0)
    );
}

#[test]
fn upstream_errors_by_kind() {
    let metrics = Metrics::new("dev");
    let users = metrics.upstream("users");
    users.error(UpstreamErrorKind::Timeout);
    users.error(UpstreamErrorKind::Timeout);
    users.error(UpstreamErrorKind::Connect);

    let page = metrics.encode(Format::OpenMetrics);
    let timeout = r#"palisade_upstream_request_errors_total{upstream="users",kind="timeout"}"#;
    assert_eq!(sample(&page, timeout), Some(2.0));
    let connect = r#"palisade_upstream_request_errors_total{upstream="users",kind="connect"}"#;
    assert_eq!(sample(&page, connect), Some(1.0));
    assert!(!page.contains(r#"kind="protocol""#));
}

#[test]
fn every_name_is_registered_with_its_type() {
    let metrics = Metrics::new("dev");
    // A labelled family is rendered once it has a series.
    metrics
        .route("api")
        .observe(&Method::GET, 200, Duration::ZERO);
    metrics.upstream("users").error(UpstreamErrorKind::Other);
    let page = metrics.encode(Format::OpenMetrics);
    let expected = [
        (names::HTTP_REQUESTS, "counter"),
        (names::HTTP_REQUEST_DURATION_SECONDS, "histogram"),
        (names::HTTP_REQUESTS_IN_FLIGHT, "gauge"),
        (names::UPSTREAM_REQUEST_ERRORS, "counter"),
        (names::BUILD_INFO, "gauge"),
        (names::PROCESS_START_TIME_SECONDS, "gauge"),
        (names::PROCESS_STARTUP_DURATION_SECONDS, "gauge"),
        (names::PROCESS_SHUTDOWN_DURATION_SECONDS, "gauge"),
        (names::READY, "gauge"),
        (names::READY_LAST_SUCCESS_TIMESTAMP_SECONDS, "gauge"),
        (names::CONFIG_RELOADS, "counter"),
        (names::CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS, "gauge"),
        (names::AUDIT_EVENTS, "counter"),
        (names::AUDIT_EVENTS_DROPPED, "counter"),
        (names::CONFIG_LAST_RELOAD_SUCCESS, "gauge"),
        (names::CONNECTION_PANICS, "counter"),
    ];
    for (name, kind) in expected {
        let line = format!("# TYPE {name} {kind}\n");
        assert!(page.contains(&line), "missing {line:?} in\n{page}");
    }
}

#[test]
fn extra_metrics_can_be_registered() {
    let extra = prometheus_client::metrics::counter::Counter::<u64>::default();
    let handle = extra.clone();
    let metrics = Metrics::new_with("dev", |r| {
        r.register("palisade_test_things", "Things", handle)
    });
    extra.inc();
    assert_eq!(
        sample(
            &metrics.encode(Format::OpenMetrics),
            "palisade_test_things_total"
        ),
        Some(1.0)
    );
}
