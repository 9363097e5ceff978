//! SIGHUP reload: a valid config is swapped in while the process keeps serving; an invalid one
//! is rejected, reported and audited, and the old config keeps serving.

mod common;

use std::time::{Duration, Instant};

use palisade_testkit::upstream::UpstreamServer;

async fn metric(gw: &palisade_testkit::gateway::Gateway, needle: &str) -> bool {
    let text = common::metrics_text(gw).await;
    text.lines().any(|l| l == needle)
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn sighup_applies_a_valid_config_and_keeps_the_old_one_when_invalid() {
    let upstream = UpstreamServer::start().await.unwrap();
    let original =
        common::config_for(upstream.addr(), "").replace("path = \"/\"", "path = \"/v1\"");
    let gw = common::spawn(common::Codec::Fast, &original, true).await;
    let client = common::client();
    assert_eq!(
        client.get(gw.url("/v2/x")).send().await.unwrap().status(),
        404
    );

    // A valid change: the route moves to /v2.
    std::fs::write(
        gw.config_path(),
        original.replace("path = \"/v1\"", "path = \"/v2\""),
    )
    .unwrap();
    gw.signal("HUP").unwrap();
    wait_until("the new route", || async {
        client.get(gw.url("/v2/x")).send().await.unwrap().status() == 200
    })
    .await;
    assert_eq!(
        client.get(gw.url("/v1/x")).send().await.unwrap().status(),
        404
    );
    assert!(metric(&gw, r#"palisade_config_reloads_total{result="success"} 1"#).await);
    gw.wait_for_line(
        |l| l.contains("\"action\":\"reload\"") && l.contains("\"outcome\":\"success\""),
        Duration::from_secs(5),
    )
    .await
    .unwrap();

    // An invalid change: rejected, and /v2 keeps serving.
    std::fs::write(
        gw.config_path(),
        original.replace("upstream = \"app\"", "upstream = \"missing\""),
    )
    .unwrap();
    gw.signal("HUP").unwrap();
    let line = gw
        .wait_for_line(
            |l| l.contains("\"action\":\"reload\"") && l.contains("\"outcome\":\"failure\""),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert!(
        line.contains("refers to upstream \\\"missing\\\""),
        "{line}"
    );
    assert!(metric(&gw, r#"palisade_config_reloads_total{result="failure"} 1"#).await);
    assert_eq!(
        client.get(gw.url("/v2/x")).send().await.unwrap().status(),
        200
    );
}

async fn health(gw: &palisade_testkit::gateway::Gateway) -> serde_json::Value {
    let resp = common::client()
        .get(gw.ops_url("/health"))
        .send()
        .await
        .unwrap();
    common::json(resp).await
}

fn parse(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[tokio::test]
async fn sighup_applies_routes_live_and_names_the_settings_that_need_a_restart() {
    let upstream = UpstreamServer::start().await.unwrap();
    let original =
        common::config_for(upstream.addr(), "").replace("path = \"/\"", "path = \"/v1\"");
    let gw = common::spawn(common::Codec::Fast, &original, true).await;
    let client = common::client();
    let before = health(&gw).await;
    let started_version = before["config_version"].as_str().unwrap().to_owned();
    assert!(before["pending_restart"].is_null(), "{before}");

    // A route change, applied at once, with settings only a restart applies. (The test kit
    // sets log.format from the environment, which wins over the file: log.level stands in.)
    let changed = original.replace("path = \"/v1\"", "path = \"/v2\"")
        + "\n[server]\nhttp2 = false\n\n[log]\nlevel = \"info,palisade=debug\"\n";
    std::fs::write(gw.config_path(), &changed).unwrap();
    gw.signal("HUP").unwrap();
    let client_ref = &client;
    wait_until("the new route", || async {
        client_ref
            .get(gw.url("/v2/x"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;

    let restart = serde_json::json!(["server.http2", "log.level"]);
    let line = gw
        .wait_for_line(|l| l.contains("config reloaded"), Duration::from_secs(5))
        .await
        .unwrap();
    let logged = parse(&line);
    assert_eq!(logged["level"], "WARN", "{line}");
    assert_eq!(
        logged["restart_required"], "[\"server.http2\", \"log.level\"]",
        "{line}"
    );
    let pending_version = logged["config_version"].as_str().unwrap().to_owned();
    assert_ne!(pending_version, started_version);

    let audit = gw
        .wait_for_line(
            |l| l.contains("\"action\":\"reload\"") && l.contains("\"outcome\":\"success\""),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let audit = parse(&audit);
    assert_eq!(audit["details"]["restart_required"], restart, "{audit}");
    assert_eq!(
        audit["details"]["config_version"], pending_version,
        "{audit}"
    );

    let after = health(&gw).await;
    assert_eq!(after["config_version"], started_version, "{after}");
    assert_eq!(
        after["pending_restart"],
        serde_json::json!({"config_version": pending_version, "fields": restart}),
        "{after}"
    );
    let metrics = common::metrics_text(&gw).await;
    for field in ["server.http2", "log.level"] {
        let series = format!("palisade_config_restart_required{{field=\"{field}\"}} 1");
        assert!(metrics.contains(&series), "{series} missing: {metrics}");
    }

    // Back to the settings the process started with: nothing waits for a restart any more,
    // and the reloaded config is in force in full.
    std::fs::write(
        gw.config_path(),
        original.replace("path = \"/v1\"", "path = \"/v3\""),
    )
    .unwrap();
    gw.signal("HUP").unwrap();
    let line = gw
        .wait_for_line(
            |l| l.contains("config reloaded") && !l.contains(&pending_version),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let logged = parse(&line);
    assert_eq!(logged["level"], "INFO", "{line}");
    let final_version = logged["config_version"].as_str().unwrap();
    let last = health(&gw).await;
    assert_eq!(last["config_version"], final_version, "{last}");
    assert!(last["pending_restart"].is_null(), "{last}");
    // Polled like /v2 above: on the direct path, the first request on a keep-alive connection
    // that sat idle across the reload is still routed by the previous config.
    wait_until("the route of the second reload", || async {
        client_ref
            .get(gw.url("/v3/x"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;
}

#[tokio::test]
async fn sighup_applies_the_drain_delay_and_the_ready_check_interval() {
    let upstream = UpstreamServer::start().await.unwrap();
    let original = common::config_for(upstream.addr(), "").replace("\"100ms\"", "\"1h\"");
    let mut gw = common::spawn(common::Codec::Fast, &original, true).await;
    let probes = upstream.connections_seen();

    std::fs::write(
        gw.config_path(),
        original
            .replace("\"1h\"", "\"100ms\"")
            .replace("drain_delay = \"0s\"", "drain_delay = \"2s\""),
    )
    .unwrap();
    gw.signal("HUP").unwrap();
    let line = gw
        .wait_for_line(|l| l.contains("config reloaded"), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(parse(&line)["restart_required"] == "[]", "{line}");
    // The readiness check now runs every 100ms instead of every hour.
    wait_until("readiness checks at the new interval", || async {
        upstream.connections_seen() >= probes + 3
    })
    .await;

    // Shutdown uses the reloaded drain delay: still draining well after the old 0s.
    gw.signal("TERM").unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resp = common::client()
        .get(gw.ops_url("/ready"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.text().await.unwrap().contains("draining"));
    let status = gw.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
}
