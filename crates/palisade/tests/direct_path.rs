//! The direct HTTP/1.1 path on the wire: keep-alive and pipelining across the hand-off to the
//! general path, response framings, interim responses, connection timeouts, and upstreams that
//! misbehave on purpose (a stale pooled connection, a malformed head).

mod common;

use common::Codec;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::wire::Wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// What the misbehaving upstream does with one request.
#[derive(Clone)]
enum Act {
    Reply(&'static [u8]),
    ReplyAndClose(&'static [u8]),
    Close,
}

/// A raw upstream that answers the n-th request (from 1) on each connection with `script(n)`.
/// Returns its address and how many connections carried at least one request.
async fn raw_upstream(script: fn(usize) -> Act) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let used = Arc::new(AtomicUsize::new(0));
    let counter = used.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut n = 0;
                loop {
                    let mut chunk = [0u8; 4096];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => buf.extend_from_slice(&chunk[..k]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        n += 1;
                        if n == 1 {
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                        match script(n) {
                            Act::Reply(bytes) => conn.write_all(bytes).await.unwrap(),
                            Act::ReplyAndClose(bytes) => {
                                conn.write_all(bytes).await.unwrap();
                                return;
                            }
                            Act::Close => return,
                        }
                    }
                }
            });
        }
    });
    (addr, used)
}

both_codecs! {
    async fn a_pooled_connection_the_upstream_drops_is_replaced_once_for_safe_methods(codec: Codec) {
        // Every upstream connection answers one request and drops the second unanswered, as an
        // upstream closing an idle keep-alive connection just as it is reused would.
        let (addr, used) = raw_upstream(|n| if n == 1 { Act::Reply(OK) } else { Act::Close }).await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;

        for path in ["/a", "/b"] {
            wire.send(format!("GET {path} HTTP/1.1\r\nhost: app\r\n\r\n").as_bytes())
                .await;
            let reply = wire.response(false).await;
            assert_eq!((reply.status, &reply.body[..]), (200, &b"ok"[..]), "{path}");
        }
        assert_eq!(
            used.load(Ordering::SeqCst),
            2,
            "/b was retried on a new connection"
        );

        // A POST may have had effects: it is not repeated, the client gets a 502.
        wire.send(b"POST /c HTTP/1.1\r\nhost: app\r\ncontent-length: 0\r\n\r\n")
            .await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 502);
        assert_eq!(
            reply.json()["type"],
            "https://palisade.dev/problems/upstream-unavailable"
        );
        assert_eq!(used.load(Ordering::SeqCst), 2);
        assert!(
            common::metrics_text(&gw).await.contains(
                r#"palisade_upstream_request_errors_total{upstream="app",kind="protocol"} 1"#
            )
        );
    }

    async fn a_malformed_upstream_response_becomes_a_502_without_detail(codec: Codec) {
        let (addr, _) = raw_upstream(|_| Act::ReplyAndClose(b"HELLO THERE\r\n\r\n")).await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let resp = common::client().get(gw.url("/x")).send().await.unwrap();
        assert_eq!(resp.status(), 502);
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("HELLO") && !body.contains("malformed"),
            "{body}"
        );
        assert!(
            common::metrics_text(&gw).await.contains(
                r#"palisade_upstream_request_errors_total{upstream="app",kind="protocol"} 1"#
            )
        );
    }

    async fn a_response_delimited_by_close_reaches_the_client_whole(codec: Codec) {
        let (addr, _) = raw_upstream(|_| {
            Act::ReplyAndClose(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end")
        })
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 200);
        // The fast codec passes the bytes through and closes; hyper re-frames them as chunked.
        match codec {
            Codec::Fast => assert_eq!(reply.header("connection"), Some("close")),
            Codec::General => assert_eq!(reply.header("transfer-encoding"), Some("chunked")),
        }
        assert_eq!(reply.body, b"until the end");
    }

    async fn interim_responses_are_forwarded_before_the_final_one(codec: Codec) {
        let (addr, _) = raw_upstream(|_| {
            Act::Reply(
                b"HTTP/1.1 103 Early Hints\r\nlink: </app.css>; rel=preload\r\n\r\n\
                  HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            )
        })
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
        // hyper can neither pass on nor send a 103: only the fast codec forwards it.
        if codec == Codec::Fast {
            let early = wire.response(false).await;
            assert_eq!(early.status, 103);
            assert_eq!(early.header("link"), Some("</app.css>; rel=preload"));
        }
        let last = wire.response(false).await;
        assert_eq!((last.status, &last.body[..]), (200, &b"ok"[..]));
        assert!(last.header("x-request-id").is_some());
    }

    async fn one_connection_carries_bodiless_and_body_requests_pipelined(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        // The POST moves the connection to the general path, with the bytes already read.
        wire.send(
            b"GET /1 HTTP/1.1\r\nhost: app\r\n\r\n\
              GET /2?q=x HTTP/1.1\r\nhost: app\r\n\r\n\
              POST /3 HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\n\r\nhello\
              GET /4 HTTP/1.1\r\nhost: app\r\n\r\n",
        )
        .await;
        for (path, body_bytes) in [("/1", 0), ("/2", 0), ("/3", 5), ("/4", 0)] {
            let reply = wire.response(false).await;
            assert_eq!(reply.status, 200, "{path}");
            let echo = reply.json();
            assert_eq!(echo["path"], path);
            assert_eq!(echo["body_bytes"], body_bytes, "{path}");
        }
        // And it stays usable.
        wire.send(b"GET /5 HTTP/1.1\r\nhost: app\r\n\r\n").await;
        assert_eq!(wire.response(false).await.json()["path"], "/5");
    }

    async fn chunked_responses_pass_through_and_keep_the_upstream_connection(codec: Codec) {
        let (up, gw, probes) = common::start_without_probes(codec).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        for _ in 0..5 {
            wire.send(b"GET /c?size=100000&chunked=1 HTTP/1.1\r\nhost: app\r\n\r\n")
                .await;
            let reply = wire.response(false).await;
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
            assert_eq!(reply.body.len(), 100_000);
        }
        wire.send(b"GET /len?size=70000 HTTP/1.1\r\nhost: app\r\n\r\n")
            .await;
        let reply = wire.response(false).await;
        assert_eq!(reply.header("content-length"), Some("70000"));
        assert_eq!(reply.body.len(), 70_000);
        assert_eq!(up.connections_seen() - probes, 1);
    }

    async fn http_1_0_clients_are_answered_and_closed(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET /old HTTP/1.0\r\n\r\n").await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["path"], "/old");
        assert!(wire.closed_within(Duration::from_secs(2)).await);
    }

    async fn an_idle_keep_alive_connection_is_closed_after_keepalive_timeout(codec: Codec) {
        let (_up, gw) = common::start(codec, "[server]\nkeepalive_timeout = \"400ms\"\n").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 200);
        let idle_since = Instant::now();
        assert!(wire.closed_within(Duration::from_secs(3)).await);
        let idle = idle_since.elapsed();
        assert!(idle >= Duration::from_millis(350), "closed after {idle:?}");
    }

    async fn a_request_head_sent_too_slowly_is_cut_at_header_read_timeout(codec: Codec) {
        let (up, gw) = common::start(codec, "[server]\nheader_read_timeout = \"300ms\"\n").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET /slow HTTP/1.1\r\nhost: app\r\n").await;
        assert!(wire.closed_within(Duration::from_secs(3)).await);
        assert_eq!(up.requests_seen(), 0);
    }

    async fn shutdown_closes_idle_keep_alive_connections_at_once(codec: Codec) {
        let (_up, mut gw) = common::start(codec, "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET / HTTP/1.1\r\nhost: app\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 200);
        let signalled = Instant::now();
        gw.signal("TERM").unwrap();
        let status = gw.wait_exit(Duration::from_secs(10)).await.unwrap();
        assert!(status.success(), "{status:?}");
        // The grace period is 5 s; an idle connection must not hold the exit back.
        assert!(
            signalled.elapsed() < Duration::from_secs(2),
            "{:?}",
            signalled.elapsed()
        );
        assert!(wire.closed_within(Duration::from_secs(1)).await);
    }

    async fn a_response_with_many_headers_is_passed_whole(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let query: Vec<String> = (0..80).map(|i| format!("set_header=x-h{i}:{i}")).collect();
        let resp = common::client()
            .get(gw.url(&format!("/many?{}", query.join("&"))))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["x-h0"], "0");
        assert_eq!(resp.headers()["x-h79"], "79");
    }
}
