//! The pipeline's decisions that span the exchange, on both codecs: failover past a dead
//! endpoint, requests the client abandons (499), a client that stops sending its body (408),
//! and the config a request runs on after a reload.

mod common;

use std::time::Duration;

use common::wire::Wire;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v.get(name).unwrap_or(&v["fields"][name])
}

/// A loopback address nothing listens on.
fn dead_endpoint() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], palisade_testkit::gateway::free_port()))
}

/// A raw upstream that answers each connection's first request head with `reply` at once,
/// without reading any body, then keeps the connection open (or closes it when `close`).
async fn answering_upstream(reply: &'static [u8], close: bool) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = conn.write_all(reply).await;
                if !close {
                    // Hold the connection, reading and discarding, as an app that answered
                    // early might.
                    while matches!(conn.read(&mut chunk).await, Ok(n) if n > 0) {}
                }
            });
        }
    });
    addr
}

both_codecs! {
    async fn a_dead_endpoint_takes_no_traffic(codec: Codec) {
        let live = palisade_testkit::UpstreamServer::start().await.unwrap();
        let dead = dead_endpoint();
        let config = common::config_for(live.addr(), "").replace(
            &format!("endpoints = [\"{}\"]", live.addr()),
            &format!("endpoints = [\"{dead}\", \"{}\"]\nrequired = false", live.addr()),
        );
        let gw = common::spawn(codec, &config, true).await;
        let client = common::client();
        for i in 0..10 {
            let resp = client.get(gw.url(&format!("/get/{i}"))).send().await.unwrap();
            assert_eq!(resp.status(), 200, "request {i}");
            resp.bytes().await.unwrap();
        }
        // A POST was never delivered either: it goes to the live endpoint, body intact.
        let resp = client.post(gw.url("/post")).body("abc").send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(common::json(resp).await["body_bytes"], 3);
        assert_eq!(live.requests_seen(), 11);

        let metrics = common::metrics_text(&gw).await;
        let failovers = metrics
            .lines()
            .find(|l| l.starts_with("palisade_upstream_failovers_total{upstream=\"app\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .expect("the failover counter");
        assert!(failovers >= 1, "{metrics}");
        assert!(
            !metrics.contains("palisade_upstream_request_errors_total{upstream=\"app\""),
            "a request that reached the live endpoint is no upstream error: {metrics}"
        );
        let health = common::json(
            common::client().get(gw.ops_url("/health")).send().await.unwrap(),
        )
        .await;
        let endpoints = &health["components"]["endpoints"]["app"];
        let state_of = |addr: String| {
            endpoints
                .as_array()
                .and_then(|a| a.iter().find(|e| e["address"] == addr.as_str()))
                .map(|e| e["state"].clone())
        };
        assert_eq!(state_of(dead.to_string()), Some("backoff".into()), "{health}");
        assert_eq!(state_of(live.addr().to_string()), Some("up".into()), "{health}");
    }

    async fn a_request_the_client_abandons_is_logged_once_as_499(codec: Codec) {
        // The route timeout (1s) passes after the client left: no 504, no upstream error.
        let (_up, gw) = common::start(codec, "").await;
        let mut conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        conn.write_all(
            b"GET /slow?latency=2s HTTP/1.1\r\nhost: app\r\nx-request-id: gone-early-1\r\n\r\n",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(conn);
        let line = common::access_line(&gw, "gone-early-1").await;
        assert_eq!(field(&line, "status"), 499, "{line}");
        assert_eq!(field(&line, "complete"), false, "{line}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let lines = gw.output_lines();
        let logged = lines.iter().filter(|l| l.contains("gone-early-1") && l.contains("\"status\"")).count();
        assert_eq!(logged, 1, "one access line: {lines:#?}");
        let metrics = common::metrics_text(&gw).await;
        assert!(!metrics.contains("kind=\"timeout\""), "{metrics}");
        assert!(
            metrics.contains("palisade_http_requests_total{route=\"api\",method=\"GET\",status_class=\"4xx\"} 1"),
            "{metrics}"
        );
    }

    async fn a_client_that_leaves_mid_body_is_logged_as_499(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        // 64 MiB the client never reads: the proxy's writes stall, then fail when it leaves.
        wire.send(b"GET /big?size=67108864 HTTP/1.1\r\nhost: app\r\nx-request-id: gone-mid-1\r\n\r\n")
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        drop(wire);
        let line = common::access_line(&gw, "gone-mid-1").await;
        assert_eq!(field(&line, "status"), 499, "{line}");
    }

    async fn a_client_that_stops_sending_its_body_gets_408(codec: Codec) {
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "").replace(
            "[lifecycle]",
            "[server]\nrequest_body_timeout = \"300ms\"\n\n[lifecycle]",
        );
        let gw = common::spawn(codec, &config, true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 100\r\n\r\nonly ten..")
            .await;
        let started = std::time::Instant::now();
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 408, "{:?}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.json()["type"], "https://palisade.dev/problems/request-timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(wire.closed_within(Duration::from_secs(3)).await);
        let metrics = common::metrics_text(&gw).await;
        assert!(!metrics.contains("palisade_upstream_request_errors_total{upstream=\"app\""), "{metrics}");
    }

    async fn the_first_request_after_a_reload_on_an_idle_connection_sees_the_new_config(codec: Codec) {
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "");
        let gw = common::spawn(codec, &config, true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET /a HTTP/1.1\r\nhost: app\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 200);
        // The only route now needs another host: the same idle connection gets 404.
        let reloaded = config.replace("path = \"/\"", "path = \"/\"\nhost = \"other.example\"");
        std::fs::write(gw.config_path(), reloaded).unwrap();
        gw.signal("HUP").unwrap();
        gw.wait_for_line(|l| l.contains("config reloaded"), Duration::from_secs(5))
            .await
            .unwrap();
        wire.send(b"GET /b HTTP/1.1\r\nhost: app\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 404);
    }

    async fn a_client_that_stops_reading_is_cut_after_send_timeout(codec: Codec) {
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "").replace(
            "[lifecycle]",
            "[server]\nsend_timeout = \"500ms\"\n\n[lifecycle]",
        )
        .replace("timeout = \"1s\"", "timeout = \"30s\"");
        let gw = common::spawn(codec, &config, true).await;
        let mut conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        conn.write_all(
            b"GET /big?size=268435456 HTTP/1.1\r\nhost: app\r\nx-request-id: never-reads-1\r\n\r\n",
        )
        .await
        .unwrap();
        // The client keeps its socket open and reads nothing.
        let line = common::access_line(&gw, "never-reads-1").await;
        assert_eq!(field(&line, "status"), 499, "{line}");
        assert_eq!(field(&line, "complete"), false, "{line}");
        drop(conn);
    }

    async fn an_upstream_body_that_breaks_off_is_an_upstream_error(codec: Codec) {
        let addr = answering_upstream(
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly ten..",
            true,
        )
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        conn.write_all(b"GET /cut HTTP/1.1\r\nhost: app\r\nx-request-id: broke-off-1\r\n\r\n")
            .await
            .unwrap();
        let line = common::access_line(&gw, "broke-off-1").await;
        assert_eq!(field(&line, "status"), 200, "{line}");
        assert_eq!(field(&line, "complete"), false, "{line}");
        let metrics = common::metrics_text(&gw).await;
        assert!(
            metrics.contains("palisade_upstream_request_errors_total{upstream=\"app\",kind=\"protocol\"} 1"),
            "{metrics}"
        );
    }

    async fn an_upload_the_upstream_answered_early_does_not_hold_its_connection(codec: Codec) {
        // The app answers 401 before reading the body: the first client's upload stalls, and
        // the upstream connection must not go back to the pool with it half-sent.
        let addr = answering_upstream(
            b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n",
            false,
        )
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut first = Wire::connect(&gw.url("/")).await;
        first
            .send(b"POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 100000\r\n\r\nstarted")
            .await;
        assert_eq!(first.response(false).await.status, 401);
        let started = std::time::Instant::now();
        let mut second = Wire::connect(&gw.url("/")).await;
        second
            .send(b"POST /upload HTTP/1.1\r\nhost: app\r\ncontent-length: 2\r\n\r\nok")
            .await;
        assert_eq!(second.response(false).await.status, 401);
        assert!(
            started.elapsed() < Duration::from_millis(800),
            "the second request waited {:?} behind the first one's stalled upload",
            started.elapsed()
        );
    }
}
