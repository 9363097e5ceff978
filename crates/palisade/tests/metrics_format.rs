//! `/metrics` in the format the scraper asks for: OpenMetrics for Prometheus, the Prometheus
//! text format 0.0.4 for everything else, and the 0.0.4 page passes `promtool check metrics`
//! without a single complaint.
//!
//! promtool comes from `scripts/services.sh`. Without it the promtool test prints a notice and
//! passes, except under CI (the `CI` variable set), where a missing promtool is a failure.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use palisade_testkit::gateway::Gateway;

/// What Prometheus 2.x sends when it scrapes.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,\
    application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A gateway that has proxied a few requests, so labelled counters and histograms exist.
async fn gateway_with_traffic() -> (palisade_testkit::upstream::UpstreamServer, Gateway) {
    let (upstream, gw) = common::start(common::Codec::Fast, "").await;
    let client = common::client();
    for path in ["/a", "/b?status=503", "/c?status=404", "/d"] {
        let resp = client.get(gw.url(path)).send().await.unwrap();
        resp.bytes().await.unwrap();
    }
    (upstream, gw)
}

/// The `/metrics` page and its `Content-Type`, asked for with `accept` (no header if `None`).
async fn scrape(gw: &Gateway, accept: Option<&str>) -> (String, String) {
    let mut req = common::client().get(gw.ops_url("/metrics"));
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (content_type, resp.text().await.unwrap())
}

/// promtool's path: `$PROMTOOL`, else `promtool` on the `PATH`. `None` when there is none and
/// the test may skip; a panic when CI runs without it.
fn promtool() -> Option<String> {
    let candidate = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".to_owned());
    let found = Command::new(&candidate)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    match (found, std::env::var_os("CI").is_some()) {
        (true, _) => Some(candidate),
        (false, true) => panic!("promtool not found and CI is set: run scripts/services.sh"),
        (false, false) => {
            eprintln!("notice: promtool not found; skipping (scripts/services.sh installs it)");
            None
        }
    }
}

/// Runs `promtool check metrics` on `page` and returns its exit success and everything it said.
fn promtool_check(promtool: &str, page: &str) -> (bool, String) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[tokio::test]
async fn promtool_finds_no_problem_in_the_metrics_page() {
    let Some(promtool) = promtool() else { return };
    let (_up, gw) = gateway_with_traffic().await;
    for accept in [None, Some("text/plain;version=0.0.4"), Some("*/*")] {
        let (content_type, page) = scrape(&gw, accept).await;
        assert_eq!(content_type, PROMETHEUS_TEXT, "Accept {accept:?}");
        assert!(
            page.contains(
                r#"palisade_http_requests_total{route="api",method="GET",status_class="5xx"} 1"#
            ),
            "{page}"
        );
        let (ok, said) = promtool_check(&promtool, &page);
        let problems: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(
            ok && problems.is_empty(),
            "promtool check metrics (Accept {accept:?}): {problems:#?}\n{page}"
        );
    }
}

#[tokio::test]
async fn prometheus_gets_openmetrics_and_everyone_else_the_text_format() {
    let (_up, gw) = gateway_with_traffic().await;

    for accept in [PROMETHEUS_ACCEPT, "application/openmetrics-text"] {
        let (content_type, page) = scrape(&gw, Some(accept)).await;
        assert_eq!(content_type, OPENMETRICS, "Accept {accept:?}");
        assert!(page.ends_with("# EOF\n"), "{page}");
        // OpenMetrics names the counter family without `_total`; its samples carry it.
        assert!(
            page.contains("# TYPE palisade_http_requests counter\n"),
            "{page}"
        );
        assert!(page.contains("palisade_http_requests_total{"), "{page}");
    }

    let (content_type, page) = scrape(&gw, None).await;
    assert_eq!(content_type, PROMETHEUS_TEXT);
    assert!(!page.contains("# EOF"), "{page}");
    assert!(
        page.contains("# HELP palisade_http_requests_total ")
            && page.contains("# TYPE palisade_http_requests_total counter\n"),
        "{page}"
    );
    let scrape = prometheus_parse::Scrape::parse(page.lines().map(|l| Ok(l.to_owned())))
        .expect("the text format parses");
    let requests = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "palisade_http_requests_total"
                && s.labels.get("status_class") == Some("2xx")
        })
        .expect("the 2xx series");
    assert!(
        matches!(requests.value, prometheus_parse::Value::Counter(v) if v == 2.0),
        "{:?}",
        requests.value
    );
}
