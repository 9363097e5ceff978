//! The gateway's own answers: 404 without a route, 502 when the upstream is unreachable,
//! 504 when it is too slow, 413 over the body limit — small problem+json bodies that carry the
//! request id and no internal detail.

mod common;

use palisade_testkit::upstream::UpstreamServer;

async fn assert_problem(resp: reqwest::Response, status: u16, slug: &str) -> serde_json::Value {
    assert_eq!(resp.status(), status);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let text = resp.text().await.unwrap();
    assert!(text.len() < 300, "problem body is small: {text}");
    for leak in [
        "127.0.0.1",
        "connect",
        "refused",
        "error trying",
        "hyper",
        "os error",
        "tcp",
    ] {
        assert!(
            !text.to_lowercase().contains(leak),
            "body leaks {leak:?}: {text}"
        );
    }
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["status"], status);
    assert_eq!(
        body["type"],
        format!("https://palisade.dev/problems/{slug}")
    );
    assert_eq!(body["request_id"], request_id);
    body
}

both_codecs! {
    async fn no_matching_route_is_404(codec: Codec) {
        let upstream = UpstreamServer::start().await.unwrap();
        let config = common::config_for(upstream.addr(), "").replace("path = \"/\"", "path = \"/api\"");
        let gw = common::spawn(codec, &config, false).await;
        let resp = common::client()
            .get(gw.url("/elsewhere"))
            .send()
            .await
            .unwrap();
        let body = assert_problem(resp, 404, "no-route").await;
        assert_eq!(body["title"], "Not Found");
        assert_eq!(upstream.requests_seen(), 0);
        // A malformed head is refused too, and each answer is counted by its reason.
        let resp = common::client()
            .get(gw.url("/api/a%2Fb"))
            .send()
            .await
            .unwrap();
        assert_problem(resp, 400, "bad-request").await;
        let metrics = common::metrics_text(&gw).await;
        for series in [
            r#"palisade_http_rejections_total{route="none",reason="no-route"} 1"#,
            r#"palisade_http_rejections_total{route="none",reason="bad-request"} 1"#,
        ] {
            assert!(metrics.contains(series), "{series} missing: {metrics}");
        }
    }

    async fn unreachable_upstream_is_502(codec: Codec) {
        // A port that was free a moment ago: nothing listens there.
        let dead = std::net::SocketAddr::from(([127, 0, 0, 1], palisade_testkit::gateway::free_port()));
        let gw = common::spawn(codec, &common::config_for(dead, ""), false).await;
        let resp = common::client()
            .post(gw.url("/orders"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_problem(resp, 502, "upstream-unavailable").await;
        let metrics = common::metrics_text(&gw).await;
        assert!(
            metrics
                .contains(r#"palisade_upstream_request_errors_total{upstream="app",kind="connect"} 1"#),
            "{metrics}"
        );
    }

    async fn slow_upstream_is_504_after_the_route_timeout(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let started = std::time::Instant::now();
        let resp = common::client()
            .get(gw.url("/slow?latency=3s"))
            .send()
            .await
            .unwrap();
        assert_problem(resp, 504, "upstream-timeout").await;
        // The route timeout is 1s; the upstream would have answered after 3s.
        assert!(started.elapsed() < std::time::Duration::from_millis(2900));
    }

    async fn body_over_the_route_limit_is_413(codec: Codec) {
        let (up, gw) = common::start(codec, "max_request_body = \"1KiB\"").await;
        let resp = common::client()
            .post(gw.url("/upload"))
            .body(vec![b'x'; 4096])
            .send()
            .await
            .unwrap();
        assert_problem(resp, 413, "payload-too-large").await;
        assert_eq!(
            up.requests_seen(),
            0,
            "the upstream never saw the oversized request"
        );
    }
}
