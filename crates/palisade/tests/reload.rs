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
    let gw = common::spawn(&original, true).await;
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
