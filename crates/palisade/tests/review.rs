//! An adversarial review on the wire, on both codecs: answers Palisade writes itself to a
//! `HEAD`, targets with a fragment, hosts spelled with a trailing dot, upstream responses whose
//! framing headers disagree or must not be there, interim answers followed by a close, and the
//! path spellings and pipelining that earlier suites do not pin.
//!
//! The reference for each answer is NGINX's or hyper's: a clear 4xx and a close, or a
//! forwarded request with exactly the boundaries Palisade decided. Helpers never panic on what
//! the gateway does: they report it, so a failing assertion says what came back.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Codec;
use common::raw::{Conn, assert_all_right, request, shown};
use palisade_testkit::gateway::Gateway;
use palisade_testkit::upstream::UpstreamServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn get(method: &str, target: &str, lines: &[&str]) -> Vec<u8> {
    request(method, target, lines, "").into_bytes()
}

/// What a scripted upstream does with one request.
enum Act {
    Reply(&'static [u8]),
    ReplyAndClose(&'static [u8]),
}

/// A request a scripted upstream read: its connection (from 1), its number on that
/// connection (from 1) and its request line.
type Script = fn(conn: usize, nth: usize, line: &str) -> Act;

/// A raw upstream that answers each request head it reads as `script` says, and logs the
/// request lines it saw, in order.
async fn scripted_upstream(script: Script) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let conns = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (log, conns) = (log.clone(), conns.clone());
            tokio::spawn(async move {
                let (mut buf, mut nth) = (Vec::new(), 0);
                // Numbered by their first request: readiness probes only connect.
                let mut number = None;
                loop {
                    let mut chunk = [0u8; 4096];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        let line = String::from_utf8_lossy(&head)
                            .lines()
                            .next()
                            .unwrap_or_default()
                            .to_owned();
                        nth += 1;
                        let c =
                            *number.get_or_insert_with(|| conns.fetch_add(1, Ordering::SeqCst) + 1);
                        log.lock().unwrap().push(line.clone());
                        match script(c, nth, &line) {
                            Act::Reply(bytes) => {
                                if conn.write_all(bytes).await.is_err() {
                                    return;
                                }
                            }
                            Act::ReplyAndClose(bytes) => {
                                let _ = conn.write_all(bytes).await;
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// Routes `admin` (host admin.example, any path) and `internal` (/internal) to an upstream
/// that refuses connections, and `/` to the test kit's echo.
async fn start_routed(codec: Codec) -> (UpstreamServer, Gateway) {
    let upstream = UpstreamServer::start().await.expect("upstream starts");
    let app = upstream.addr();
    let config = format!(
        r#"
[lifecycle]
drain_delay = "0s"
grace_period = "5s"

[ops]
ready_check_interval = "100ms"

[upstreams.app]
endpoints = ["{app}"]

[upstreams.internal]
endpoints = ["127.0.0.1:1"]
required = false

[[routes]]
name = "admin"
host = "admin.example"
path = "/"
upstream = "internal"
timeout = "1s"

[[routes]]
name = "internal"
path = "/internal"
upstream = "internal"
timeout = "1s"

[[routes]]
name = "rest"
path = "/"
upstream = "app"
timeout = "1s"
"#
    );
    let gateway = common::spawn(codec, &config, true).await;
    (upstream, gateway)
}

/// What is wrong, if anything, with the answer to `req` when it must come from the route
/// whose upstream refuses connections (502), or be refused (400), and never reach the app.
async fn kept_from_the_app(gw: &Gateway, up: &UpstreamServer, req: &[u8]) -> Option<String> {
    let before = up.requests_seen();
    let mut conn = Conn::open(gw).await;
    conn.send(req).await;
    let answer = conn.final_response(false).await;
    let reached = up.requests_seen() - before;
    match answer {
        Ok(r) if [400, 502].contains(&r.status) && reached == 0 => None,
        Ok(r) => Some(format!(
            "{} -> {} {} (the app saw {reached} request(s))",
            shown(req),
            r.status,
            shown(&r.body)
        )),
        Err(e) => Some(format!("{} -> {e}", shown(req))),
    }
}

both_codecs! {
    // A HEAD is answered without a body, also when Palisade writes the answer itself
    // (RFC 9110 §9.3.2). A body there is read by the client as the start of the next
    // response on the connection: the connection desyncs.
    async fn a_head_palisade_answers_itself_has_no_body(codec: Codec) {
        let (_up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        for (what, host) in [("502 unreachable", "Host: app"), ("502 host route", "Host: admin.example")] {
            let mut conn = Conn::open(&gw).await;
            conn.send(&get("HEAD", "/internal/x", &[host])).await;
            match conn.response(true).await {
                Ok(r) => {
                    let stray = conn.stray(Duration::from_millis(300)).await;
                    if !stray.is_empty() {
                        wrong.push(format!("HEAD ({what}, {}) then {}", r.status, shown(&stray)));
                    }
                }
                Err(e) => wrong.push(format!("HEAD ({what}) -> {e}")),
            }
        }
        // A HEAD no route takes, on a connection that goes on.
        let upstream = UpstreamServer::start().await.unwrap();
        let config = common::config_for(upstream.addr(), "").replace("path = \"/\"", "path = \"/api\"");
        let gw = common::spawn(codec, &config, false).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(&get("HEAD", "/elsewhere", &["Host: app"])).await;
        match conn.response(true).await {
            Ok(r) => {
                conn.send(&get("GET", "/api/next", &["Host: app"])).await;
                match conn.response(false).await {
                    Ok(next) if next.status == 200 && r.status == 404 => {}
                    Ok(next) => wrong.push(format!(
                        "HEAD /elsewhere -> {}, then GET /api/next -> {} {}",
                        r.status,
                        next.status,
                        shown(&next.body)
                    )),
                    Err(e) => wrong.push(format!("HEAD /elsewhere -> {}, then GET -> {e}", r.status)),
                }
            }
            Err(e) => wrong.push(format!("HEAD /elsewhere -> {e}")),
        }
        assert_all_right(&wrong);
    }

    // The fast codec takes `#` as part of the path (httparse allows it) while the upstream's
    // parser drops the fragment: `/internal#x` is routed as `/internal#x` (not under
    // `/internal`) and served by the upstream as `/internal`. hyper drops the fragment before
    // routing, so the route is the one the upstream serves.
    async fn a_fragment_cannot_move_a_request_to_another_route(codec: Codec) {
        let (up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        for target in ["/internal#x", "/internal#/x", "/internal?#"] {
            let req = get("GET", target, &["Host: app"]);
            wrong.extend(kept_from_the_app(&gw, &up, &req).await);
        }
        assert_all_right(&wrong);
    }

    // `admin.example.` is the same name as `admin.example` (a fully qualified name); NGINX
    // strips the trailing dot before matching `server_name`. Matching it as another host
    // sends the request past its host's route to whatever route takes any host.
    async fn a_host_with_a_trailing_dot_reaches_its_hosts_route(codec: Codec) {
        let (up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        for host in ["admin.example.", "admin.example.:8080"] {
            let host_line = format!("Host: {host}");
            let req = get("GET", "/x", &[&host_line]);
            wrong.extend(kept_from_the_app(&gw, &up, &req).await);
        }
        assert_all_right(&wrong);
    }

    // Case and port do not move a request off its host's route (pinned).
    async fn a_hosts_case_and_port_do_not_matter(codec: Codec) {
        let (up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        for host in ["ADMIN.Example", "admin.example:8080", "Admin.Example:1"] {
            let host_line = format!("Host: {host}");
            let req = get("GET", "/x", &[&host_line]);
            wrong.extend(kept_from_the_app(&gw, &up, &req).await);
        }
        let abs = get("GET", "http://admin.example/x", &["Host: other"]);
        wrong.extend(kept_from_the_app(&gw, &up, &abs).await);
        assert_all_right(&wrong);
    }

    // Dot segments spelled with one encoded dot, single encoded dots, and deep or long paths
    // all reach the route of the path they normalize to (pinned; the smuggling suite covers
    // `%2e%2e`).
    async fn mixed_and_deep_dot_segments_reach_their_route(codec: Codec) {
        let (up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        let deep = format!("/{}internal/x", "./".repeat(2000));
        let climb = format!("{}{}/internal/x", "/a".repeat(1000), "/..".repeat(1000));
        let up_and_down = format!("/{}", "x/../".repeat(1500)) + "internal";
        for target in [
            "/x/.%2e/internal/secret",
            "/x/%2E./internal/secret",
            "/%2e/internal/secret",
            "/x/%2e%2E/%69nternal",
            "/x/..//internal",
            "/internal/.",
            "/x/..",
        ] {
            let req = get("GET", target, &["Host: app"]);
            // `/x/..` is `/`: the app's, answered 200.
            if target == "/x/.." {
                let mut conn = Conn::open(&gw).await;
                conn.send(&req).await;
                match conn.final_response(false).await {
                    Ok(r) if r.status == 200 => {}
                    other => wrong.push(format!("{target} -> {other:?}")),
                }
                continue;
            }
            wrong.extend(kept_from_the_app(&gw, &up, &req).await);
        }
        for target in [&deep, &climb, &up_and_down] {
            let req = get("GET", target, &["Host: app"]);
            wrong.extend(kept_from_the_app(&gw, &up, &req).await);
        }
        assert_all_right(&wrong);
    }

    // A target that is not UTF-8 is refused with 400 and a close on both codecs (hyper's
    // parser answers it; the fast codec hands it over). Pinned.
    async fn a_target_that_is_not_utf8_is_refused(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wrong = Vec::new();
        for target in [&b"/\xff"[..], b"/a\xc3", b"/\xc0\xaf"] {
            let mut req = b"GET ".to_vec();
            req.extend_from_slice(target);
            req.extend_from_slice(b" HTTP/1.1\r\nHost: app\r\n\r\n");
            let mut conn = Conn::open(&gw).await;
            conn.send(&req).await;
            let answer = conn.response(false).await;
            let closed = conn.closes(Duration::from_secs(2)).await;
            match answer {
                Ok(r) if r.status == 400 && closed => {}
                other => wrong.push(format!("{} -> {other:?}; closed {closed}", shown(&req))),
            }
        }
        assert_all_right(&wrong);
    }

    // `Connection: close` ends the connection after its response: a request pipelined behind
    // it is neither forwarded nor answered (as NGINX and hyper). Pinned.
    async fn a_request_pipelined_after_connection_close_is_not_served(codec: Codec) {
        let (up, gw) = common::start(codec, "").await;
        let mut conn = Conn::open(&gw).await;
        let before = up.requests_seen();
        let mut bytes = get("GET", "/first", &["Host: app", "Connection: close"]);
        bytes.extend(get("GET", "/second", &["Host: app"]));
        conn.send(&bytes).await;
        let first = conn.response(false).await.expect("the first response");
        assert_eq!(first.status, 200);
        assert_eq!(first.header("connection"), Some("close"));
        let stray = conn.stray(Duration::from_secs(2)).await;
        assert!(conn.is_closed(), "the connection stays open after Connection: close");
        assert!(stray.is_empty(), "the pipelined request was answered: {}", shown(&stray));
        assert_eq!(up.requests_seen() - before, 1, "the pipelined request was forwarded");
    }

    // An upstream response with both Content-Length and Transfer-Encoding is framed by the
    // chunked coding (RFC 9112 §6.3): the client gets the whole chunked body with one
    // framing that matches it, and the connection stays usable.
    async fn an_upstream_response_with_length_and_chunked_is_read_as_chunked(codec: Codec) {
        let (addr, _) = scripted_upstream(|_, _, line| {
            if line.contains("/short") {
                Act::Reply(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5\r\nhello\r\n0\r\n\r\n",
                )
            } else {
                Act::Reply(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5\r\nhello\r\n0\r\n\r\n",
                )
            }
        })
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut wrong = Vec::new();
        for target in ["/long", "/short"] {
            let mut conn = Conn::open(&gw).await;
            conn.send(&get("GET", target, &["Host: app"])).await;
            match conn.response(false).await {
                Ok(r) if r.body == b"hello" => {
                    let lengths = r.all("content-length");
                    let te = r.header("transfer-encoding");
                    if !(lengths.is_empty() && te == Some("chunked")
                        || lengths == ["5"] && te.is_none())
                    {
                        wrong.push(format!("{target}: framing {lengths:?} / {te:?}"));
                    }
                    conn.send(&get("GET", "/next", &["Host: app"])).await;
                    if let Err(e) = conn.response(false).await {
                        wrong.push(format!("{target}, then the next request: {e}"));
                    }
                }
                Ok(r) => wrong.push(format!(
                    "{target} -> {} body {} content-length {:?}",
                    r.status,
                    shown(&r.body),
                    r.all("content-length")
                )),
                Err(e) => wrong.push(format!("{target} -> {e}")),
            }
        }
        assert_all_right(&wrong);
    }

    // A HEAD response carries the length a GET would have (RFC 9110 §9.3.2, §8.6); NGINX
    // and the fast codec pass the upstream's on.
    async fn a_head_response_keeps_the_upstreams_content_length(codec: Codec) {
        let (addr, _) = scripted_upstream(|_, _, line| {
            if line.starts_with("HEAD") {
                Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"v1\"\r\n\r\n")
            } else {
                Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            }
        })
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(&get("HEAD", "/file", &["Host: app"])).await;
        let head = conn.response(true).await.unwrap();
        conn.send(&get("GET", "/next", &["Host: app"])).await;
        let next = conn.response(false).await;
        assert_eq!(
            (head.status, head.all("content-length")),
            (200, vec!["1234"]),
            "{head:?}"
        );
        assert_eq!(next.map(|r| r.body), Ok(b"ok".to_vec()));
    }

    // A 304's Content-Length describes the representation it validates, as a HEAD's does: if
    // it goes on, it is the upstream's value (hyper's server drops it, the fast codec keeps it),
    // never one that frames a body, and the connection goes on.
    async fn a_304_response_never_gets_a_wrong_content_length(codec: Codec) {
        let (addr, _) = scripted_upstream(|_, nth, _| {
            if nth == 1 {
                Act::Reply(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1234\r\nETag: \"v1\"\r\n\r\n")
            } else {
                Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            }
        })
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(&get("GET", "/file", &["Host: app", "If-None-Match: \"v1\""])).await;
        let first = conn.response(false).await.unwrap();
        conn.send(&get("GET", "/next", &["Host: app"])).await;
        let next = conn.response(false).await;
        assert_eq!(first.status, 304);
        let lengths = first.all("content-length");
        assert!(lengths.is_empty() || lengths == ["1234"], "{first:?}");
        assert_eq!(next.map(|r| r.body), Ok(b"ok".to_vec()));
    }

    // RFC 9110 §8.6: no Content-Length on a 204; hyper drops it. A client that frames by it
    // anyway would wait for body bytes that never come.
    async fn a_204_response_carries_no_content_length(codec: Codec) {
        let (addr, _) = scripted_upstream(|_, _, _| {
            Act::Reply(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
        })
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(&get("GET", "/empty", &["Host: app"])).await;
        let reply = conn.response(false).await.unwrap();
        assert_eq!(reply.status, 204);
        assert!(reply.all("content-length").is_empty(), "{reply:?}");
        let stray = conn.stray(Duration::from_millis(300)).await;
        assert!(stray.is_empty(), "{}", shown(&stray));
    }

    // An upstream that answered (here `103 Early Hints`) received the request: a close after
    // that is not "a reused connection that ends before any answer" (docs/proxy.md), so the
    // request is not sent again, and the client sees one exchange.
    // A reused connection that closes after a 103 but before the final head: like NGINX
    // (`proxy_next_upstream error`, "while reading the response header"), an idempotent
    // request is sent once more, and the client gets the final answer.
    async fn an_idempotent_request_cut_before_its_final_head_is_answered_once(codec: Codec) {
        let (addr, seen) = scripted_upstream(|conn, nth, _| match (conn, nth) {
            (1, 2) => Act::ReplyAndClose(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"),
            _ => Act::Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        })
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(&get("GET", "/first", &["Host: app"])).await;
        let first = conn.response(false).await.unwrap();
        assert_eq!(first.status, 200);
        conn.send(&get("GET", "/second", &["Host: app"])).await;
        let last = loop {
            match conn.response(false).await {
                Ok(r) if (100..200).contains(&r.status) => {}
                other => break other,
            }
        };
        let sent = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("/second"))
            .count();
        assert_eq!(last.map(|r| r.status).ok(), Some(200));
        assert!(sent <= 2, "the upstream saw /second {sent} times");
    }
}
