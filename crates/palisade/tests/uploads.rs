//! Request bodies framed by `Content-Length`, on both codecs: every size reaches the upstream
//! byte for byte however the client's writes split it, an upstream that answers before the
//! upload ends is passed to the client at once (the rest of the body is read and dropped, or
//! the connection closes), a client that leaves after its upload is seen while the upstream
//! works, and a body that may have reached the upstream is never sent twice.

mod common;

use std::time::Duration;

use common::Codec;
use common::wire::Wire;
use palisade_testkit::upstream::fnv64_hex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A body of `len` bytes that is not all one byte, so a shifted or repeated piece changes its
/// hash.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nhost: app\r\ncontent-type: application/octet-stream\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

both_codecs! {
    async fn bodies_of_every_size_reach_the_upstream_byte_for_byte(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        // Around the 4 KiB written with the head, the 16 KiB read buffer, and well past both;
        // sent whole, then cut inside the head, at its end, and inside the body.
        for len in [1, 1000, 4096, 4097, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 200_000] {
            let data = body(len);
            let request = post("/orders", &data);
            let head_len = request.len() - len;
            for cut in [request.len(), 10, head_len, head_len + len / 2] {
                wire.send(&request[..cut]).await;
                if cut < request.len() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    wire.send(&request[cut..]).await;
                }
                let reply = wire.response(false).await;
                assert_eq!(reply.status, 200, "{len} bytes cut at {cut}");
                let echo = reply.json();
                assert_eq!(echo["body_bytes"], len as u64, "{len} bytes cut at {cut}");
                assert_eq!(echo["body_fnv64"], fnv64_hex(&data), "{len} bytes cut at {cut}");
                assert_eq!(echo["headers"]["content-length"], len.to_string());
                assert_eq!(reply.header("connection"), None);
            }
        }
    }

    async fn a_body_and_the_request_pipelined_behind_it_keep_their_boundaries(codec: Codec) {
        let (up, gw) = common::start(codec, "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        // The body looks like a request: it must reach the upstream as body bytes, and the
        // real second request after it must be answered as one.
        let inner = b"GET /smuggled HTTP/1.1\r\nhost: app\r\n\r\n";
        let mut bytes = post("/first", inner);
        bytes.extend_from_slice(b"GET /second HTTP/1.1\r\nhost: app\r\n\r\n");
        let before = up.requests_seen();
        wire.send(&bytes).await;
        let first = wire.response(false).await.json();
        assert_eq!((first["path"].as_str(), first["body_bytes"].as_u64()), (Some("/first"), Some(inner.len() as u64)));
        assert_eq!(first["body_fnv64"], fnv64_hex(inner));
        let second = wire.response(false).await.json();
        assert_eq!(second["path"], "/second");
        assert_eq!(up.requests_seen() - before, 2);
    }

    async fn a_body_the_proxy_answers_without_reading_is_never_read_as_a_request(codec: Codec) {
        // No route for /nowhere: the proxy answers 404 itself. The body, which looks like a
        // request, is skipped, whether it came with the head or after the answer.
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "").replace("path = \"/\"", "path = \"/api\"");
        let gw = common::spawn(codec, &config, true).await;
        let inner = b"GET /api/smuggled HTTP/1.1\r\nhost: app\r\n\r\n";
        let request = post("/nowhere", inner);
        let head_len = request.len() - inner.len();
        let mut served = 0;
        for together in [true, false] {
            let mut wire = Wire::connect(&gw.url("/")).await;
            if together {
                wire.send(&request).await;
            } else {
                wire.send(&request[..head_len]).await;
            }
            let reply = wire.response(false).await;
            assert_eq!(reply.status, 404, "together: {together}");
            if reply.header("connection") == Some("close") {
                assert!(codec == Codec::General, "the fast codec keeps a short body's connection");
                assert!(wire.closed_within(Duration::from_secs(5)).await);
                continue;
            }
            if !together {
                wire.send(&request[head_len..]).await;
            }
            wire.send(b"GET /api/real HTTP/1.1\r\nhost: app\r\n\r\n").await;
            let next = wire.response(false).await;
            assert_eq!((next.status, next.json()["path"].as_str()), (200, Some("/api/real")), "together: {together}");
            served += 1;
        }
        assert_eq!(up.requests_seen(), served, "only the real requests reached the upstream");
    }

    async fn an_early_answer_to_a_short_upload_is_passed_on_at_once(codec: Codec) {
        // The app refuses before reading: the client, which has sent 10 of 1,000 bytes, gets
        // the answer without sending the rest first.
        let (_up, gw) = common::start(codec, "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let request = post("/orders?early=1&status=401", &body(1000));
        let head_len = request.len() - 1000;
        wire.send(&request[..head_len + 10]).await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 401);
        // The fast codec reads and drops the 990 bytes still to come and keeps the connection.
        if codec == Codec::Fast {
            assert_eq!(reply.header("connection"), None);
        }
        // The rest of the body arrives late; then the connection serves the next request, or
        // is closed cleanly, never answered out of step.
        wire.send(&request[head_len + 10..]).await;
        if reply.header("connection") != Some("close") {
            wire.send(b"GET /next HTTP/1.1\r\nhost: app\r\n\r\n").await;
            let next = wire.response(false).await;
            assert_eq!((next.status, next.json()["path"].as_str()), (200, Some("/next")));
        } else {
            assert!(wire.closed_within(Duration::from_secs(5)).await);
        }
    }

    async fn an_early_answer_reaches_a_client_still_sending_a_large_body(codec: Codec) {
        // Past the default 10 MiB limit on purpose: the upstream is the one that refuses.
        let (_up, gw) = common::start(codec, "max_request_body = \"1GiB\"").await;
        let conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        let (mut rx, mut tx) = conn.into_split();
        let request = post("/upload?early=1&status=413", &body(64 << 20));
        // The client writes its whole 64 MiB body without reading, as a simple client does.
        let writer = tokio::spawn(async move {
            let _ = tx.write_all(&request).await;
            tx
        });
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let n = tokio::time::timeout(Duration::from_secs(10), rx.read(&mut chunk))
                .await
                .expect("the answer comes while the client is still sending")
                .expect("the answer is not reset away");
            assert!(n > 0, "closed before an answer: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
        };
        let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 413 "), "{head}");
        // The proxy does not read 64 MiB it would drop on a connection that stays open.
        if codec == Codec::Fast {
            assert!(head.contains("\r\nconnection: close"), "{head}");
        }
        // The writer ends (the proxy read and dropped the body, or closed), and nothing hangs.
        tokio::time::timeout(Duration::from_secs(10), writer).await.expect("the upload ends").unwrap();
    }

    async fn a_client_that_leaves_after_its_upload_is_logged_as_499_at_once(codec: Codec) {
        let (_up, gw) = common::start(codec, "[log]\naccess_log = true").await;
        let mut conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        let request = post("/slow?latency=3s", &body(20_000));
        let mut request = String::from_utf8_lossy(&request[..request.len() - 20_000]).replace(
            "host: app\r\n",
            "host: app\r\nx-request-id: upload-gone-1\r\n",
        ).into_bytes();
        request.extend_from_slice(&body(20_000));
        // The body streams (it is longer than what comes with the head), then the client
        // waits and leaves while the upstream is still at work.
        conn.write_all(&request[..100]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        conn.write_all(&request[100..]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let left = std::time::Instant::now();
        drop(conn);
        let line = gw
            .wait_for_line(|l| l.contains("upload-gone-1") && l.contains("\"status\""), Duration::from_secs(5))
            .await
            .expect("an access line");
        assert!(line.contains("\"status\":499"), "{line}");
        assert!(left.elapsed() < Duration::from_secs(2), "seen after {:?}", left.elapsed());
    }

    async fn a_body_that_may_have_reached_the_upstream_is_not_sent_again(codec: Codec) {
        // A pooled connection the upstream drops unanswered: a bodiless PUT is sent again on a
        // new connection; a PUT with a body is not (the body is not kept), and gets a 502.
        let (addr, used) = drop_second_request().await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        wire.send(b"GET /a HTTP/1.1\r\nhost: app\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 200);
        wire.send(b"PUT /b HTTP/1.1\r\nhost: app\r\ncontent-length: 0\r\n\r\n").await;
        assert_eq!(wire.response(false).await.status, 200);
        assert_eq!(used.load(std::sync::atomic::Ordering::SeqCst), 2);
        wire.send(b"PUT /c HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\n\r\nhello").await;
        let reply = wire.response(false).await;
        assert_eq!(reply.status, 502);
        assert_eq!(used.load(std::sync::atomic::Ordering::SeqCst), 2, "the body was sent again");
    }
}

/// A raw upstream whose every connection answers its first request (head and declared body
/// read) and closes at the second without answering. Returns its address and how many
/// connections carried a request.
async fn drop_second_request() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let used = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = used.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let mut head = None;
                while head.is_none() {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    head = buf.windows(4).position(|w| w == b"\r\n\r\n");
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // The next bytes are a second request: close without answering it.
                let _ = conn.read(&mut chunk).await;
            });
        }
    });
    (addr, used)
}
