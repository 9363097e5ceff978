//! Request smuggling and header spoofing on the wire, on both codecs: every head the proxy
//! must refuse gets a 400 problem and a closed connection (as NGINX and hyper answer), and
//! every head it accepts reaches the upstream with exactly the host, path, headers and body
//! boundaries the proxy decided, which the test kit's echo shows.
//!
//! Each group collects every wrong answer before failing, so one run names them all.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::raw::{Answer, Conn, assert_all_right, request, shown};
use palisade_testkit::gateway::Gateway;
use palisade_testkit::upstream::UpstreamServer;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const PROBLEM_JSON: &str = "application/problem+json";
/// Longest wait for the close that must follow a refusal.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// What was wrong, if anything, with the answer to `request` on a new connection, when it
/// must be a 400 problem followed by the connection's close.
async fn refused(gw: &Gateway, request: &str) -> Option<String> {
    let mut conn = Conn::open(gw).await;
    conn.send(request.as_bytes()).await;
    let answer = conn.answer().await;
    let closed = conn.closes(CLOSE_WITHIN).await;
    let right = answer.reply().is_some_and(|reply| {
        reply.status == 400 && reply.header("content-type") == Some(PROBLEM_JSON)
    });
    let shut = if closed { "closed" } else { "left open" };
    (!right || !closed).then(|| {
        format!(
            "{} -> {}; {shut}",
            shown(request.as_bytes()),
            answer.describe()
        )
    })
}

/// [`refused`], but on the general codec a bare 400 from hyper's own parser is right too:
/// hyper refuses such heads before the pipeline sees them, and its answer is the reference.
async fn refused_on(codec: common::Codec, gw: &Gateway, request: &str) -> Option<String> {
    if codec == common::Codec::Fast {
        return refused(gw, request).await;
    }
    let mut conn = Conn::open(gw).await;
    conn.send(request.as_bytes()).await;
    let answer = conn.answer().await;
    let closed = conn.closes(CLOSE_WITHIN).await;
    let right = answer.reply().is_some_and(|reply| reply.status == 400);
    let shut = if closed { "closed" } else { "left open" };
    (!right || !closed).then(|| {
        format!(
            "{} -> {}; {shut}",
            shown(request.as_bytes()),
            answer.describe()
        )
    })
}

/// The upstream's echo of `request` sent on a new connection, or what came instead.
async fn forwarded(gw: &Gateway, request: &str) -> Result<Value, String> {
    let mut conn = Conn::open(gw).await;
    conn.send(request.as_bytes()).await;
    let answer = conn.final_answer().await;
    let wrong = || format!("{} -> {}", shown(request.as_bytes()), answer.describe());
    match answer.reply() {
        Some(reply) if reply.status == 200 => {
            serde_json::from_slice(&reply.body).map_err(|_| wrong())
        }
        _ => Err(wrong()),
    }
}

/// An upstream `app` (the echo), a route `internal` on "/internal" whose upstream refuses
/// connections, a route `upload` on "/api" that takes bodies up to 1 KiB, and "/" for the rest.
async fn start_routed(codec: common::Codec) -> (UpstreamServer, Gateway) {
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
name = "internal"
path = "/internal"
upstream = "internal"
timeout = "1s"

[[routes]]
name = "upload"
path = "/api"
upstream = "app"
timeout = "1s"
max_request_body = "1KiB"

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

/// An upstream that answers every request head it reads with `response`.
async fn raw_upstream(response: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        if conn.write_all(response).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

/// Seconds since the epoch of an IMF-fixdate (RFC 9110 §5.6.7), e.g.
/// "Sun, 06 Nov 1994 08:49:37 GMT", with its weekday checked.
fn imf_fixdate(text: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = text.as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || !text.ends_with(" GMT") {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(r)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let weekday = DAYS.iter().position(|d| *d == &text[..3])? as i64;
    let (day, year) = (num(5..7)?, num(12..16)?);
    let month = MONTHS.iter().position(|m| *m == &text[8..11])? as i64 + 1;
    let (h, m, s) = (num(17..19)?, num(20..22)?, num(23..25)?);
    if [b[7], b[11], b[16], b[25]] != [b' '; 4] || b[19] != b':' || b[22] != b':' {
        return None;
    }
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    // 1970-01-01 was a Thursday.
    ((days + 4).rem_euclid(7) == weekday).then_some(days * 86_400 + h * 3600 + m * 60 + s)
}

/// What is wrong with a response the proxy wrote itself: `Date` and the problem type.
fn proxy_made(what: &str, answer: &Answer, status: u16) -> Option<String> {
    let Some(reply) = answer.reply() else {
        return Some(format!("{what}: {}", answer.describe()));
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = reply.header("date");
    let date_ok = date
        .and_then(imf_fixdate)
        .is_some_and(|secs| (secs - now).abs() < 300);
    let right =
        reply.status == status && reply.header("content-type") == Some(PROBLEM_JSON) && date_ok;
    (!right).then(|| {
        format!(
            "{what}: {} date {date:?}, content-type {:?}",
            reply.status,
            reply.header("content-type")
        )
    })
}

/// The sum of every `palisade_upstream_request_errors_total` series.
fn upstream_errors(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("palisade_upstream_request_errors_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

both_codecs! {
    // a. RFC 9112 §3.2: one valid Host on HTTP/1.1, or 400.
    async fn a_missing_empty_repeated_or_malformed_host_is_refused(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wrong = Vec::new();
        for lines in [
            &[][..],
            &["Host: "],
            &["Host: a", "Host: a"],
            &["Host: a, b"],
            &["Host: a b"],
            &["Host: a/b"],
            &["Host: a:xx"],
        ] {
            wrong.extend(refused(&gw, &request("GET", "/a", lines, "")).await);
        }
        assert_all_right(&wrong);
    }

    async fn a_absolute_form_authority_wins_over_host(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let echo = forwarded(&gw, &request("GET", "http://a.example/x", &["Host: b.example"], ""))
            .await
            .unwrap();
        assert_eq!(echo["path"], "/x", "{echo}");
        assert_eq!(echo["headers"]["host"], "a.example", "{echo}");
        assert_eq!(echo["headers"]["x-forwarded-host"], "a.example", "{echo}");
    }

    // b. Routes match the normalized path, which is also what the upstream receives.
    async fn b_every_spelling_of_a_path_reaches_its_route(codec: Codec) {
        let (_up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        for target in [
            "/x/../internal/secret",
            "/x/%2e%2e/internal/secret",
            "//internal/secret",
            "/%69nternal/secret",
        ] {
            let mut conn = Conn::open(&gw).await;
            conn.send(request("GET", target, &["Host: app"], "").as_bytes()).await;
            let answer = conn.answer().await;
            let internal = answer.reply().is_some_and(|r| {
                r.status == 502
                    && r.body.windows(20).any(|w| w == b"upstream-unavailable")
            });
            if !internal {
                wrong.push(format!("{target} -> {}", answer.describe()));
            }
        }
        for target in ["/x/../api/upload", "/%61pi/upload", "//api/upload"] {
            let body = "b".repeat(2048);
            let req = request("POST", target, &["Host: app", "Content-Length: 2048"], &body);
            let mut conn = Conn::open(&gw).await;
            conn.send(req.as_bytes()).await;
            let answer = conn.answer().await;
            if answer.reply().map(|r| r.status) != Some(413) {
                wrong.push(format!("POST {target} (2 KiB) -> {}", answer.describe()));
            }
        }
        assert_all_right(&wrong);
    }

    async fn b_the_upstream_receives_the_normalized_path(codec: Codec) {
        let (_up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        for target in [
            "/x/../echo/a?q=1",
            "/x/%2e%2e/echo/a?q=1",
            "//echo/a?q=1",
            "/%65cho/a?q=1",
            "/echo/./a?q=1",
        ] {
            match forwarded(&gw, &request("GET", target, &["Host: app"], "")).await {
                Ok(echo) if echo["path"] == "/echo/a" && echo["query"] == "q=1" => {}
                Ok(echo) => wrong.push(format!("{target} -> path {} query {}", echo["path"], echo["query"])),
                Err(e) => wrong.push(e),
            }
        }
        assert_all_right(&wrong);
    }

    async fn b_a_path_that_cannot_be_normalized_is_refused(codec: Codec) {
        let (_up, gw) = start_routed(codec).await;
        let mut wrong = Vec::new();
        for target in ["/a%2Fb", "/a%00b", "/..", "/a%zz"] {
            wrong.extend(refused(&gw, &request("GET", target, &["Host: app"], "")).await);
        }
        assert_all_right(&wrong);
    }

    // c. A client's Connection header cannot remove what the proxy manages, and every
    // Connection line counts.
    async fn c_connection_cannot_strip_managed_headers(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let lines = ["Host: app", "Connection: X-Forwarded-For, X-Request-Id"];
        let echo = forwarded(&gw, &request("GET", "/c", &lines, "")).await.unwrap();
        let sent = &echo["headers"];
        assert_eq!(sent["x-forwarded-for"], "127.0.0.1", "{sent}");
        assert!(sent["x-request-id"].as_str().is_some_and(|id| !id.is_empty()), "{sent}");
    }

    async fn c_every_connection_line_is_honoured(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let lines = [
            "Host: app",
            "Connection: keep-alive",
            "Connection: x-secret",
            "X-Secret: 1",
            "X-Kept: 1",
        ];
        let echo = forwarded(&gw, &request("GET", "/c", &lines, "")).await.unwrap();
        let sent = &echo["headers"];
        assert!(sent.get("x-secret").is_none(), "x-secret forwarded: {sent}");
        assert_eq!(sent["x-kept"], "1", "{sent}");
    }

    // d. Forwarding headers from an untrusted peer are replaced, never passed on.
    async fn d_managed_headers_cannot_be_smuggled_in(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let lines = [
            "Host: app",
            "X-Real-IP: 10.6.6.6",
            "Forwarded: for=10.6.6.6",
            "X_Forwarded_For: 10.6.6.6",
            "x-forwarded-for: 10.6.6.6",
        ];
        let echo = forwarded(&gw, &request("GET", "/d", &lines, "")).await.unwrap();
        let sent = echo["headers"].as_object().unwrap();
        assert_eq!(sent["x-real-ip"], "127.0.0.1", "{sent:?}");
        assert_eq!(sent["x-forwarded-for"], "127.0.0.1", "{sent:?}");
        assert!(!sent.contains_key("forwarded"), "{sent:?}");
        assert!(!sent.keys().any(|name| name.contains('_')), "{sent:?}");
    }

    // e. One unambiguous Content-Length, or 400 and close. NGINX and hyper refuse a list or a
    // repeat even of equal values, and so does the pipeline.
    async fn e_an_ambiguous_content_length_is_refused(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wrong = Vec::new();
        for lines in [
            &["Content-Length: +5"][..],
            &["Content-Length: -1"],
            &["Content-Length: 5, 6"],
            &["Content-Length: 5, 5"],
            &["Content-Length: 5", "Content-Length: 6"],
        ] {
            let mut all = vec!["Host: app"];
            all.extend_from_slice(lines);
            wrong.extend(refused_on(codec, &gw, &request("POST", "/e", &all, "hello")).await);
        }
        assert_all_right(&wrong);
        // Two equal lines: hyper's parser takes them as one length (RFC 9110 §8.6 allows it);
        // the fast codec refuses them as NGINX does.
        let req = request(
            "POST",
            "/e",
            &["Host: app", "Content-Length: 5", "Content-Length: 5"],
            "hello",
        );
        match codec {
            common::Codec::Fast => assert_all_right(&Vec::from_iter(refused(&gw, &req).await)),
            common::Codec::General => {
                let echo = forwarded(&gw, &req).await.unwrap();
                assert_eq!(echo["body_bytes"], 5, "{echo}");
                assert_eq!(echo["headers"]["content-length"], "5", "{echo}");
            }
        }
    }

    // With Transfer-Encoding too, the fast codec refuses as NGINX does; hyper may instead
    // frame by the chunked coding alone (RFC 9112 §6.3), which reaches the upstream as 5 bytes.
    async fn e_content_length_with_transfer_encoding_is_never_read_by_length(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let chunked = "5\r\nhello\r\n0\r\n\r\n";
        for lines in [
            &["Host: app", "Content-Length: 5", "Transfer-Encoding: chunked"],
            &["Host: app", "Transfer-Encoding: chunked", "Content-Length: 5"],
        ] {
            let req = request("POST", "/e", lines, chunked);
            match codec {
                common::Codec::Fast => assert_all_right(&Vec::from_iter(refused(&gw, &req).await)),
                common::Codec::General => {
                    let echo = forwarded(&gw, &req).await.unwrap();
                    assert_eq!(echo["body_bytes"], 5, "{echo}");
                }
            }
        }
    }

    // f. A chunked request body is forwarded whatever the method; a broken one is the
    // client's fault.
    async fn f_a_chunked_body_on_get_is_forwarded(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let lines = ["Host: app", "Transfer-Encoding: chunked"];
        let body = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let echo = forwarded(&gw, &request("GET", "/f", &lines, body)).await.unwrap();
        assert_eq!(echo["body_bytes"], 11, "{echo}");
    }

    async fn f_a_malformed_chunked_body_is_a_400_not_an_upstream_error(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let lines = ["Host: app", "Transfer-Encoding: chunked"];
        let wrong = refused(&gw, &request("POST", "/f", &lines, "zz\r\nhello\r\n0\r\n\r\n")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let metrics = common::metrics_text(&gw).await;
        let errors = upstream_errors(&metrics);
        assert!(
            wrong.is_none() && errors == 0.0,
            "{wrong:?}; palisade_upstream_request_errors_total = {errors}"
        );
    }

    // g. Upstream framing the client must not see.
    async fn g_a_repeated_upstream_content_length_reaches_the_client_once(codec: Codec) {
        let addr = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello").await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(request("GET", "/g", &["Host: app"], "").as_bytes()).await;
        let answer = conn.answer().await;
        let raw = String::from_utf8_lossy(answer.raw()).to_ascii_lowercase();
        let head = raw.split("\r\n\r\n").next().unwrap_or_default();
        let lengths: Vec<&str> = head
            .lines()
            .filter_map(|l| l.strip_prefix("content-length:"))
            .map(str::trim)
            .collect();
        assert_eq!(lengths, ["5"], "{raw:?}");
        assert_eq!(answer.reply().map(|r| &r.body[..]), Some(&b"hello"[..]), "{raw:?}");
    }

    async fn g_chunk_extensions_and_trailers_are_not_passed_on(codec: Codec) {
        let addr = raw_upstream(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              5;ext=x\r\nhello\r\n0\r\nX-Trailer: 1\r\nContent-Length: 9\r\n\r\n",
        )
        .await;
        let gw = common::spawn(codec, &common::config_for(addr, ""), true).await;
        let mut conn = Conn::open(&gw).await;
        conn.send(request("GET", "/g", &["Host: app"], "").as_bytes()).await;
        let answer = conn.answer().await;
        let raw = String::from_utf8_lossy(answer.raw()).to_ascii_lowercase();
        assert_eq!(answer.reply().map(|r| &r.body[..]), Some(&b"hello"[..]), "{raw:?}");
        for leak in ["ext=x", "x-trailer", "content-length: 9"] {
            assert!(!raw.contains(leak), "{leak} reached the client: {raw:?}");
        }
    }

    // h. The proxy's own answers are dated problems.
    async fn h_responses_the_proxy_makes_carry_a_date(codec: Codec) {
        let upstream = UpstreamServer::start().await.unwrap();
        let config = common::config_for(upstream.addr(), "").replace("path = \"/\"", "path = \"/api\"");
        let gw = common::spawn(codec, &config, false).await;
        let mut wrong = Vec::new();
        for (what, req, status) in [
            ("404 no route", request("GET", "/elsewhere", &["Host: app"], ""), 404),
            ("400 no host", request("GET", "/api", &[], ""), 400),
        ] {
            let mut conn = Conn::open(&gw).await;
            conn.send(req.as_bytes()).await;
            wrong.extend(proxy_made(what, &conn.answer().await, status));
        }
        assert_all_right(&wrong);
    }

    // i. HTTP/2 is chosen by the connection's first bytes, never mid-connection.
    async fn i_an_h2_preface_after_an_http1_request_does_not_switch_to_h2(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut conn = Conn::open(&gw).await;
        conn.send(request("GET", "/i", &["Host: app"], "").as_bytes()).await;
        let first = conn.answer().await;
        assert_eq!(first.reply().map(|r| r.status), Some(200), "{}", first.describe());
        conn.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let answer = conn.answer().await;
        let raw = answer.raw();
        // A SETTINGS frame: 3 bytes of length, then type 0x04.
        let h2 = raw.len() >= 4 && raw[0] == 0 && raw[3] == 0x04;
        let refused = match &answer {
            // 505 (HTTP Version Not Supported) refuses the preface as well as a 4xx does.
            Answer::Reply(reply, _) => (400..500).contains(&reply.status) || reply.status == 505,
            Answer::Closed(_) => true,
            _ => false,
        };
        assert!(!h2 && refused, "{}", answer.describe());
    }

    // j. Expect is hop-by-hop in effect: the proxy answers it, the upstream never sees it.
    async fn j_expect_on_a_bodiless_get_is_not_forwarded(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let lines = ["Host: app", "Expect: 100-continue"];
        let echo = forwarded(&gw, &request("GET", "/j", &lines, "")).await.unwrap();
        assert!(echo["headers"].get("expect").is_none(), "{echo}");
    }

    // k. Oversized heads are refused or cut, quickly, and the gateway goes on serving.
    async fn k_oversized_heads_are_refused_without_a_hang(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let many: Vec<String> = (0..200).map(|i| format!("X-Filler-{i}: {i}")).collect();
        let mut many_lines: Vec<&str> = vec!["Host: app"];
        many_lines.extend(many.iter().map(String::as_str));
        let big_value = format!("X-Big: {}", "a".repeat(70 * 1024));
        let long_target = format!("/{}", "a".repeat(20 * 1024));
        let mut wrong = Vec::new();
        for (what, req) in [
            ("200 header lines", request("GET", "/k", &many_lines, "")),
            ("a 70 KiB header value", request("GET", "/k", &["Host: app", &big_value], "")),
            ("a 20 KiB request line", request("GET", &long_target, &["Host: app"], "")),
        ] {
            let mut conn = Conn::open(&gw).await;
            conn.send(req.as_bytes()).await;
            let answer = conn.answer().await;
            let ok = match &answer {
                Answer::Reply(reply, _) => [400, 414, 431].contains(&reply.status),
                Answer::Closed(_) => true,
                _ => false,
            };
            if !ok {
                wrong.push(format!("{what} -> {}", answer.describe()));
            }
            if let Err(e) = forwarded(&gw, &request("GET", "/next", &["Host: app"], "")).await {
                wrong.push(format!("after {what}, a new connection: {e}"));
            }
        }
        assert_all_right(&wrong);
    }

    // Characters hyper's URI parser refuses are refused by the pipeline too, so both codecs
    // answer the same bytes the same way.
    async fn characters_that_must_be_encoded_are_refused(codec: Codec) {
        let (_up, gw) = common::start(codec, "").await;
        let mut wrong = Vec::new();
        for target in ["/a<b", "/a>b", "/a`b", "/s?q=\"x\"", "/s?q=<x>"] {
            let req = format!("GET {target} HTTP/1.1\r\nHost: app\r\n\r\n");
            wrong.extend(refused_on(codec, &gw, &req).await);
        }
        assert_all_right(&wrong);
    }
}

#[test]
fn imf_fixdate_reads_the_rfc_example() {
    assert_eq!(
        imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(784_111_777)
    );
    assert_eq!(imf_fixdate("Mon, 06 Nov 1994 08:49:37 GMT"), None);
    assert_eq!(imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
}
