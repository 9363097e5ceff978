//! Adversarial review of request bodies framed by `Content-Length`, on both codecs: where a
//! body ends whatever the split of the client's writes, what a rejected or early-answered body
//! does to the connection, how the exchange ends when the client or the upstream stops half
//! way, and the status each of those ends is logged with.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Codec;
use common::raw::Conn;
use palisade_testkit::upstream::fnv64_hex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A body of `len` bytes that is not all one byte, so a shifted or repeated piece changes its
/// hash.
fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A POST of `body` to `path`, with `x-request-id: id`.
fn post(path: &str, id: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "POST {path} HTTP/1.1\r\nhost: app\r\nx-request-id: {id}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn logged_status(line: &serde_json::Value) -> u64 {
    line.get("status")
        .unwrap_or(&line["fields"]["status"])
        .as_u64()
        .expect("a numeric status")
}

const ACCESS_LOG: &str = "[log]\naccess_log = true";

/// The gateway in front of `upstream` with the access log on and `server` settings.
async fn gateway(codec: Codec, upstream: SocketAddr, server: &str) -> palisade_testkit::Gateway {
    // Uploads here are larger than the default 10 MiB limit on purpose.
    let config = common::config_for(
        upstream,
        &format!("max_request_body = \"1GiB\"\n{ACCESS_LOG}"),
    )
    .replace("[lifecycle]", &format!("[server]\n{server}\n\n[lifecycle]"));
    common::spawn(codec, &config, true).await
}

/// What one connection of a raw upstream received, in order: each request head's first line
/// and the body bytes it read after it.
#[derive(Debug, Default, Clone)]
struct Received {
    lines: Vec<String>,
    body_bytes: u64,
}

/// A raw upstream's handling of one connection, done when the future ends.
type Handling = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// How a raw upstream treats the request head it read: the connection, the head, the body
/// bytes that came with it, and the connection's record.
type Behaviour = fn(TcpStream, String, Vec<u8>, Arc<Mutex<Received>>) -> Handling;

/// A raw upstream that reads each connection's first request head and hands the connection
/// to `behaviour`; what each connection received is listed (readiness probes only connect).
async fn raw_upstream(behaviour: Behaviour) -> (SocketAddr, Arc<Mutex<Vec<Arc<Mutex<Received>>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let all = Arc::new(Mutex::new(Vec::new()));
    let list = all.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let list = list.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let received = Arc::new(Mutex::new(Received::default()));
                received
                    .lock()
                    .unwrap()
                    .lines
                    .push(head.lines().next().unwrap_or_default().to_owned());
                list.lock().unwrap().push(received.clone());
                behaviour(conn, head, buf[end..].to_vec(), received).await;
            });
        }
    });
    (addr, all)
}

fn content_length(head: &str) -> u64 {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Writes `request` from one task while reading what comes back until the gateway closes the
/// connection or `within` passes: what came and whether it closed.
async fn send_while_reading(
    gw: &palisade_testkit::Gateway,
    request: Vec<u8>,
    within: Duration,
) -> (Vec<u8>, bool) {
    let conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
    let (mut rx, mut tx) = conn.into_split();
    let writer = tokio::spawn(async move {
        let _ = tx.write_all(&request).await;
        tx
    });
    let mut got = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match rx.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await
    .is_ok();
    writer.abort();
    (got, closed)
}

/// Reads `left` body bytes from `conn` (after `held` came with the head) and counts them.
async fn read_body(
    conn: &mut TcpStream,
    held: usize,
    left: u64,
    received: &Mutex<Received>,
) -> bool {
    received.lock().unwrap().body_bytes += held as u64;
    let mut left = left.saturating_sub(held as u64);
    let mut chunk = [0u8; 16 * 1024];
    while left > 0 {
        let want = left.min(chunk.len() as u64) as usize;
        match conn.read(&mut chunk[..want]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => {
                left -= n as u64;
                received.lock().unwrap().body_bytes += n as u64;
            }
        }
    }
    true
}

both_codecs! {
    async fn every_split_of_a_body_and_the_request_behind_it_keeps_both_boundaries(codec: Codec) {
        let (up, gw) = common::start(codec, "").await;
        let inner = b"GET /smuggled HTTP/1.1\r\nhost: app\r\n\r\n";
        let mut bytes = post("/first", "split", inner);
        bytes.extend_from_slice(b"GET /second HTTP/1.1\r\nhost: app\r\n\r\n");
        let mut conn = Conn::open(&gw).await;
        let before = up.requests_seen();
        for cut in 1..bytes.len() {
            conn.send(&bytes[..cut]).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
            conn.send(&bytes[cut..]).await;
            let first = conn.response(false).await.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            let echo = first.json();
            assert_eq!(echo["path"], "/first", "cut {cut}");
            assert_eq!(echo["body_bytes"], inner.len() as u64, "cut {cut}");
            assert_eq!(echo["body_fnv64"], fnv64_hex(inner), "cut {cut}");
            let second = conn.response(false).await.unwrap_or_else(|e| panic!("cut {cut}: {e}"));
            assert_eq!(second.json()["path"], "/second", "cut {cut}");
        }
        assert_eq!(up.requests_seen() - before, 2 * (bytes.len() as u64 - 1));
    }

    async fn bodies_on_get_head_and_a_zero_length_post_keep_the_requests_behind_them(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut conn = Conn::open(&gw).await;
        conn.send(
            b"POST /zero HTTP/1.1\r\nhost: app\r\ncontent-length: 0\r\n\r\n\
              GET /get HTTP/1.1\r\nhost: app\r\ncontent-length: 5\r\n\r\nhello\
              HEAD /head HTTP/1.1\r\nhost: app\r\ncontent-length: 7\r\n\r\nGET / H\
              GET /last HTTP/1.1\r\nhost: app\r\n\r\n",
        )
        .await;
        let zero = conn.response(false).await.unwrap().json();
        assert_eq!((zero["path"].as_str(), zero["body_bytes"].as_u64()), (Some("/zero"), Some(0)));
        assert_eq!(zero["headers"]["content-length"], "0");
        let get = conn.response(false).await.unwrap().json();
        assert_eq!((get["path"].as_str(), get["body_bytes"].as_u64()), (Some("/get"), Some(5)));
        let head = conn.response(true).await.unwrap();
        assert_eq!(head.status, 200);
        let last = conn.response(false).await.unwrap();
        assert_eq!(last.json()["path"], "/last", "{:?}", String::from_utf8_lossy(&last.body));
        assert!(conn.stray(Duration::from_millis(200)).await.is_empty());
    }

    async fn a_huge_length_with_a_short_body_then_close_is_499_and_the_upstream_connection_dies(codec: Codec) {
        fn hold(conn: TcpStream, head: String, held: Vec<u8>, received: Arc<Mutex<Received>>) -> Handling {
            Box::pin(async move {
                let mut conn = conn;
                let len = content_length(&head);
                if read_body(&mut conn, held.len(), len, &received).await {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                }
                // Anything after is recorded as another request line on this connection.
                let mut rest = Vec::new();
                let _ = conn.read_to_end(&mut rest).await;
                if !rest.is_empty() {
                    received.lock().unwrap().lines.push(String::from_utf8_lossy(&rest).into_owned());
                }
            })
        }
        let (addr, conns) = raw_upstream(hold).await;
        // A limit as large as the declared length: the request goes upstream.
        let config = common::config_for(addr, &format!("max_request_body = \"9223372036854775807\"\n{ACCESS_LOG}"));
        let gw = common::spawn(codec, &config, true).await;
        let mut conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        conn.write_all(b"POST /big HTTP/1.1\r\nhost: app\r\nx-request-id: huge-short-1\r\ncontent-length: 9223372036854775807\r\n\r\nten bytes.")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        drop(conn);
        let line = common::access_line(&gw, "huge-short-1").await;
        // The client left mid-body: 499 on both codecs (hyper reports the early end as an
        // incomplete message, which the general codec logs as the client's departure).
        assert_eq!(logged_status(&line), 499, "{line}");
        // The next request goes out on a connection of its own and is answered.
        let mut next = Conn::open(&gw).await;
        next.send(b"POST /next HTTP/1.1\r\nhost: app\r\ncontent-length: 3\r\n\r\nabc").await;
        assert_eq!(next.response(false).await.map(|r| r.status), Ok(200));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let conns = conns.lock().unwrap();
        for c in conns.iter() {
            let c = c.lock().unwrap();
            assert_eq!(c.lines.len(), 1, "one request per upstream connection: {c:?}");
        }
    }

    async fn a_client_that_half_closes_after_its_body_is_taken_as_gone_on_both_codecs(codec: Codec) {
        // As hyper (without `half_close`) and NGINX: a read of 0 while the upstream works is
        // a client that left, logged 499, however much of the request it sent.
        let (_up, gw) = common::start(codec, ACCESS_LOG).await;
        let mut conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        let data = body(30_000);
        conn.write_all(&post("/half?latency=200ms", "half-close-1", &data)).await.unwrap();
        conn.shutdown().await.unwrap();
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "no close within 5 s");
        assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
        assert_eq!(logged_status(&common::access_line(&gw, "half-close-1").await), 499);
    }

    async fn an_upstream_that_closes_mid_upload_gets_502_and_the_connection_closes(codec: Codec) {
        fn cut(conn: TcpStream, _head: String, _held: Vec<u8>, _r: Arc<Mutex<Received>>) -> Handling {
            Box::pin(async move {
                let mut conn = conn;
                let mut chunk = [0u8; 1000];
                let _ = conn.read(&mut chunk).await;
                // Closed with body bytes unread: a reset.
            })
        }
        let (addr, _) = raw_upstream(cut).await;
        let gw = gateway(codec, addr, "").await;
        // More than the sockets between proxy and upstream hold: the upload is cut short.
        let request = post("/cut", "up-cut-1", &body(32 << 20));
        let (got, closed) = send_while_reading(&gw, request, Duration::from_secs(8)).await;
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        assert!(text.starts_with("http/1.1 502 "), "{text}");
        assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        assert!(closed, "the connection stays open");
        assert_eq!(logged_status(&common::access_line(&gw, "up-cut-1").await), 502);
    }

    async fn an_interim_response_mid_upload_leaves_the_body_and_the_final_answer_whole(codec: Codec) {
        fn hints(conn: TcpStream, head: String, held: Vec<u8>, received: Arc<Mutex<Received>>) -> Handling {
            Box::pin(async move {
                let mut conn = conn;
                let _ = conn.write_all(b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\n").await;
                let len = content_length(&head);
                if !read_body(&mut conn, held.len(), len, &received).await {
                    return;
                }
                let n = received.lock().unwrap().body_bytes.to_string();
                let reply = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{n}", n.len());
                let _ = conn.write_all(reply.as_bytes()).await;
                // Bodiless requests after it, each answered with "0".
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = conn.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_owned();
                        received.lock().unwrap().lines.push(line);
                        let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n0").await;
                    }
                }
            })
        }
        let (addr, _) = raw_upstream(hints).await;
        let gw = gateway(codec, addr, "").await;
        let mut conn = Conn::open(&gw).await;
        let request = post("/hints", "hints-1", &body(100_000));
        conn.send(&request[..200]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.send(&request[200..]).await;
        let reply = conn.final_response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"100000"[..]));
        conn.send(b"GET /next HTTP/1.1\r\nhost: app\r\ncontent-length: 0\r\n\r\n").await;
        let next = conn.final_response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((next.status, next.body.as_slice()), (200, &b"0"[..]));
    }

    async fn a_stalled_upload_is_logged_as_408(codec: Codec) {
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let gw = gateway(codec, up.addr(), "request_body_timeout = \"300ms\"").await;
        let mut conn = Conn::open(&gw).await;
        let request = post("/stall", "stall-1", &body(50_000));
        conn.send(&request[..request.len() - 10]).await;
        let reply = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status, 408);
        assert!(conn.closes(Duration::from_secs(4)).await);
        assert_eq!(logged_status(&common::access_line(&gw, "stall-1").await), 408);
    }

    async fn an_upload_in_flight_at_shutdown_is_answered(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut conn = Conn::open(&gw).await;
        let data = body(200_000);
        let request = post("/up", "shutdown-1", &data);
        conn.send(&request[..100_000]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        gw.signal("TERM").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        conn.send(&request[100_000..]).await;
        let reply = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["body_fnv64"], fnv64_hex(&data));
        assert!(conn.closes(Duration::from_secs(4)).await);
    }

    async fn a_404_whose_short_body_comes_later_keeps_the_connection_in_step(codec: Codec) {
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), ACCESS_LOG).replace("path = \"/\"", "path = \"/api\"");
        let gw = common::spawn(codec, &config, true).await;
        let inner = b"GET /api/smuggled HTTP/1.1\r\nhost: app\r\n\r\n".repeat(200);
        let request = post("/nowhere", "late-404", &inner);
        let head_len = request.len() - inner.len();
        let mut conn = Conn::open(&gw).await;
        conn.send(&request[..head_len + 100]).await;
        let reply = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status, 404);
        conn.send(&request[head_len + 100..]).await;
        conn.send(b"GET /api/real HTTP/1.1\r\nhost: app\r\n\r\n").await;
        if reply.header("connection") == Some("close") {
            assert!(conn.closes(Duration::from_secs(4)).await);
        } else {
            let next = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(next.json()["path"], "/api/real");
            assert!(conn.stray(Duration::from_millis(200)).await.is_empty());
        }
        assert_eq!(up.requests_seen(), u64::from(reply.header("connection") != Some("close")));
        assert_eq!(logged_status(&common::access_line(&gw, "late-404").await), 404);
    }

    async fn a_404_whose_large_body_comes_later_closes_after_the_answer_is_read(codec: Codec) {
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "").replace("path = \"/\"", "path = \"/api\"");
        let gw = common::spawn(codec, &config, true).await;
        let inner = b"GET /api/smuggled HTTP/1.1\r\nhost: app\r\n\r\n".repeat(5000);
        let mut request = post("/nowhere", "late-404-big", &inner);
        request.extend_from_slice(b"GET /api/real HTTP/1.1\r\nhost: app\r\n\r\n");
        let head_len = request.len() - inner.len();
        let mut conn = Conn::open(&gw).await;
        conn.send(&request[..head_len]).await;
        let reply = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status, 404);
        assert_eq!(reply.header("connection"), Some("close"));
        conn.send(&request[head_len..]).await;
        let after = conn.stray(Duration::from_secs(4)).await;
        assert!(conn.is_closed(), "open 4 s after the answer");
        assert!(after.is_empty(), "{:?}", String::from_utf8_lossy(&after));
        assert_eq!(up.requests_seen(), 0);
    }

    async fn a_413_to_a_body_over_64_kib_sent_whole_reaches_the_client(codec: Codec) {
        let (up, gw) = common::start(codec, &format!("max_request_body = \"1KiB\"\n{ACCESS_LOG}")).await;
        let mut request = post("/big", "too-large-1", &body(1 << 20));
        request.extend_from_slice(b"GET /after HTTP/1.1\r\nhost: app\r\n\r\n");
        let (got, closed) = send_while_reading(&gw, request, Duration::from_secs(8)).await;
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 413 "), "{text}");
        assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
        assert!(closed, "the connection stays open");
        assert_eq!(up.requests_seen(), 0);
        assert_eq!(logged_status(&common::access_line(&gw, "too-large-1").await), 413);
    }

    async fn an_early_answer_never_hands_back_a_half_sent_upstream_connection(codec: Codec) {
        fn early(conn: TcpStream, _head: String, held: Vec<u8>, received: Arc<Mutex<Received>>) -> Handling {
            Box::pin(async move {
                let mut conn = conn;
                received.lock().unwrap().body_bytes += held.len() as u64;
                let _ = conn.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").await;
                // Keeps the connection and records whatever comes after as raw bytes.
                let mut rest = Vec::new();
                let _ = conn.read_to_end(&mut rest).await;
                let text = String::from_utf8_lossy(&rest).into_owned();
                let mut r = received.lock().unwrap();
                r.body_bytes += rest.len() as u64;
                if text.contains("HTTP/1.1\r\n") {
                    r.lines.push(text);
                }
            })
        }
        let (addr, conns) = raw_upstream(early).await;
        let gw = gateway(codec, addr, "").await;
        let mut conn = Conn::open(&gw).await;
        let request = post("/upload", "early-1", &body(40_000));
        conn.send(&request[..300]).await;
        let reply = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reply.status, 401);
        conn.send(&request[300..]).await;
        if reply.header("connection") != Some("close") {
            conn.send(b"GET /next HTTP/1.1\r\nhost: app\r\n\r\n").await;
            let next = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(next.status, 401);
        }
        drop(conn);
        tokio::time::sleep(Duration::from_millis(300)).await;
        for c in conns.lock().unwrap().iter() {
            let c = c.lock().unwrap();
            assert_eq!(c.lines.len(), 1, "a request went out on a half-sent connection: {c:?}");
        }
    }

    async fn an_upload_of_64_mib_streams_in_flat_memory(codec: Codec) {
        // The route timeout covers the upload too: long enough for 64 MiB on a busy machine.
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "max_request_body = \"1GiB\"")
            .replace("timeout = \"1s\"", "timeout = \"60s\"");
        let gw = common::spawn(codec, &config, true).await;
        let conn = TcpStream::connect(gw.proxy_addr).await.unwrap();
        let (mut rx, mut tx) = conn.into_split();
        let len: u64 = 64 << 20;
        let writer = tokio::spawn(async move {
            let head = format!("POST /big HTTP/1.1\r\nhost: app\r\ncontent-length: {len}\r\n\r\n");
            tx.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![7u8; 1 << 20];
            for _ in 0..64 {
                tx.write_all(&chunk).await.unwrap();
            }
            tx
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(60);
        while !got.windows(13).any(|w| w == b"\"body_bytes\":") || !got.ends_with(b"}") {
            let n = tokio::time::timeout_at(deadline.into(), rx.read(&mut buf)).await.expect("an answer").unwrap();
            assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
        let _tx = writer.await.unwrap();
        assert!(String::from_utf8_lossy(&got).contains(&format!("\"body_bytes\":{len}")));
        let peak = gw.peak_rss_kb().unwrap_or(0);
        assert!(peak < 48 * 1024, "peak RSS {peak} KiB");
    }

    async fn shutdown_does_not_wait_for_a_body_the_answer_already_skipped(codec: Codec) {
        // A 404 to a short declared body whose bytes never come: the answer is out, and the
        // connection only waits to skip the body. Shutdown need not wait for it.
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "").replace("path = \"/\"", "path = \"/api\"");
        let mut gw = common::spawn(codec, &config, true).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(b"POST /nowhere HTTP/1.1\r\nhost: app\r\ncontent-length: 1000\r\n\r\n").await;
        assert_eq!(conn.response(false).await.map(|r| r.status), Ok(404));
        let signalled = Instant::now();
        gw.signal("TERM").unwrap();
        let exit = gw.wait_exit(Duration::from_secs(10)).await.expect("the gateway exits");
        assert!(
            signalled.elapsed() < Duration::from_secs(3),
            "shutdown took {:?} ({exit:?})",
            signalled.elapsed()
        );
        let forced = gw.output_lines().iter().any(|l| l.contains("shutdown forced"));
        assert!(!forced, "the connection was cut at the end of the grace period");
    }

    async fn an_upstream_that_answers_then_resets_mid_upload_is_passed_on_with_close(codec: Codec) {
        fn refuse(conn: TcpStream, _head: String, _held: Vec<u8>, _r: Arc<Mutex<Received>>) -> Handling {
            Box::pin(async move {
                let mut conn = conn;
                let mut chunk = [0u8; 1000];
                let _ = conn.read(&mut chunk).await;
                let _ = conn.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nbig!").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Closed with body bytes unread: a reset.
            })
        }
        let (addr, _) = raw_upstream(refuse).await;
        let gw = gateway(codec, addr, "").await;
        let request = post("/cut", "answer-reset-1", &body(32 << 20));
        let (got, closed) = send_while_reading(&gw, request, Duration::from_secs(8)).await;
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        // The upstream's answer or a 502, and either way the connection closes; the fast
        // codec says so in the answer, hyper only closes.
        assert!(text.starts_with("http/1.1 413 ") || text.starts_with("http/1.1 502 "), "{text}");
        if codec == Codec::Fast {
            assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
        }
        assert!(closed, "the connection stays open");
    }

    async fn a_client_that_never_reads_the_proxys_own_answers_is_cut_after_send_timeout(codec: Codec) {
        // Pipelined requests the proxy answers itself (404) and a client that never reads: once
        // the socket buffers are full the proxy gives up after `send_timeout` rather than hold
        // the connection for ever. (Bodiless, so hyper keeps the connection too.)
        let up = palisade_testkit::UpstreamServer::start().await.unwrap();
        let config = common::config_for(up.addr(), "")
            .replace("path = \"/\"", "path = \"/api\"")
            .replace("[lifecycle]", "[server]\nsend_timeout = \"500ms\"\n\n[lifecycle]");
        let gw = common::spawn(codec, &config, true).await;
        // A small receive window, so the proxy's writes stall after a few answers.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let conn = socket.connect(gw.proxy_addr).await.unwrap();
        let (mut rx, mut tx) = conn.into_split();
        let one = b"GET /nowhere HTTP/1.1\r\nhost: app\r\n\r\n";
        let count = 50_000;
        let writer = tokio::spawn(async move {
            let all = one.repeat(count);
            let _ = tx.write_all(&all).await;
            tx
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Now read: a proxy that gave up sent a part and closed; one still waiting goes on.
        let mut got = 0usize;
        let mut chunk = vec![0u8; 64 * 1024];
        let drained = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                match rx.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got += chunk[..n].windows(12).filter(|w| w == b"HTTP/1.1 404").count(),
                }
            }
        })
        .await;
        writer.abort();
        assert!(drained.is_ok(), "still open after 18 s, {got} answers read");
        assert!(got < count, "every one of {count} answers came: the proxy waited for the reader");
    }
}

/// A raw upstream that sends a `200` head with a chunked body at once, then reads the whole
/// request body and ends the response with one chunk giving the byte count: an app that
/// streams its answer while it reads (progress reports, a streaming transform).
fn answer_while_reading(
    conn: TcpStream,
    head: String,
    held: Vec<u8>,
    received: Arc<Mutex<Received>>,
) -> Handling {
    Box::pin(async move {
        let mut conn = conn;
        let _ = conn
            .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            .await;
        let len = content_length(&head);
        if read_body(&mut conn, held.len(), len, &received).await {
            let n = received.lock().unwrap().body_bytes.to_string();
            let end = format!("{:x}\r\n{n}\r\n0\r\n\r\n", n.len());
            let _ = conn.write_all(end.as_bytes()).await;
        }
        let mut rest = Vec::new();
        let _ = conn.read_to_end(&mut rest).await;
    })
}

async fn full_duplex(codec: Codec) {
    let (addr, _) = raw_upstream(answer_while_reading).await;
    let gw = gateway(codec, addr, "").await;
    let data = body(200_000);
    let request = post("/stream", "duplex-1", &data);
    let mut conn = Conn::open(&gw).await;
    // The head first: the app's answer starts before the body is on its way.
    conn.send(&request[..request.len() - data.len()]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.send(&data).await;
    let got = conn.stray(Duration::from_secs(3)).await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    assert!(text.ends_with("6\r\n200000\r\n0\r\n\r\n"), "{text}");
}

#[tokio::test]
async fn an_app_that_answers_while_it_reads_gets_the_whole_body_general() {
    full_duplex(Codec::General).await;
}

#[tokio::test]
#[ignore = "design: the fast codec stops the upload at the response head (as NGINX does for \
            HTTP/1.1 upstreams), so an app that streams its answer while reading the body never \
            gets the rest; hyper keeps both directions going. Plan: keep uploading after a 2xx \
            head, driving the upload beside the response body in Passage, and un-ignore"]
async fn an_app_that_answers_while_it_reads_gets_the_whole_body_fast() {
    full_duplex(Codec::Fast).await;
}

/// A client that pauses its upload for less than `request_body_timeout` but past the route
/// timeout: the route timeout stands still while the upload waits for the client (as NGINX
/// starts `proxy_read_timeout` only once the request is sent), so the upload completes and is
/// answered; a longer pause would meet `request_body_timeout` (408), never a 504.
async fn pause_past_the_route_timeout(codec: Codec) {
    let up = palisade_testkit::UpstreamServer::start().await.unwrap();
    let gw = gateway(codec, up.addr(), "request_body_timeout = \"2s\"").await;
    let mut conn = Conn::open(&gw).await;
    let data = body(50_000);
    let request = post("/paused", "paused-1", &data);
    conn.send(&request[..request.len() - 10]).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    conn.send(&request[request.len() - 10..]).await;
    let reply = conn.response(false).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["body_fnv64"], fnv64_hex(&data));
}

#[tokio::test]
async fn a_pause_within_request_body_timeout_is_not_a_504_fast() {
    pause_past_the_route_timeout(Codec::Fast).await;
}

#[tokio::test]
async fn a_pause_within_request_body_timeout_is_not_a_504_general() {
    pause_past_the_route_timeout(Codec::General).await;
}
