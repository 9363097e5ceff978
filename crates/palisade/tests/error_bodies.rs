//! Upstream 5xx bodies in production mode, on both codecs: a stack trace or an HTML error page
//! never reaches the client; it gets a problem body with the upstream's status (and its
//! `Retry-After`), the original is logged at debug level with the request id, the connection
//! stays usable. Plain error messages, 4xx bodies and development mode pass unchanged.

mod common;

use common::Codec;
use common::wire::{Reply, Wire};
use palisade_testkit::UpstreamServer;
use palisade_testkit::gateway::Gateway;

const TRACE: &str = "Traceback (most recent call last):\n  File \"app.py\", line 3, in handler\n    db.query(sql)\npsycopg2.OperationalError: password authentication failed for user \"orders\"";

fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn gateway(codec: Codec, config_extra: &str, route_extra: &str) -> (UpstreamServer, Gateway) {
    let up = UpstreamServer::start().await.unwrap();
    let config = format!(
        "{config_extra}\n[log]\nlevel = \"debug\"\n{}",
        common::config_for(up.addr(), route_extra)
    );
    let gw = common::spawn(codec, &config, true).await;
    (up, gw)
}

async fn get(wire: &mut Wire, query: &str, id: &str) -> Reply {
    let request = format!("GET /?{query} HTTP/1.1\r\nhost: app\r\nx-request-id: {id}\r\n\r\n");
    wire.send(request.as_bytes()).await;
    wire.response(false).await
}

fn assert_replaced(reply: &Reply, status: u16, id: &str) {
    assert_eq!(reply.status, status);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    let problem = reply.json();
    assert_eq!(
        problem["type"],
        "https://palisade.dev/problems/upstream-error"
    );
    assert_eq!(problem["status"], status);
    assert_eq!(problem["request_id"], id);
    let text = String::from_utf8_lossy(&reply.body);
    for leaked in ["Traceback", "psycopg2", "<html", "password"] {
        assert!(!text.contains(leaked), "{leaked} leaked: {text}");
    }
}

both_codecs! {
    async fn a_stack_trace_becomes_a_problem_and_is_logged_for_the_operator(codec: Codec) {
        let (_up, gw) = gateway(codec, "", "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        for chunked in ["0", "1"] {
            let id = format!("trace-{chunked}");
            let query = format!("status=500&chunked={chunked}&body={}", percent(TRACE));
            let reply = get(&mut wire, &query, &id).await;
            assert_replaced(&reply, 500, &id);
            // The upstream's own headers that describe the replaced body are gone.
            assert_eq!(reply.header("x-request-id"), Some(id.as_str()));
        }
        // The same connection goes on.
        let ok = get(&mut wire, "", "after").await;
        assert_eq!(ok.status, 200);
        let line = gw
            .wait_for_line(|l| l.contains("replaced the upstream's error body") && l.contains("trace-0"), std::time::Duration::from_secs(10))
            .await
            .expect("a debug line with the original body");
        assert!(line.contains("psycopg2.OperationalError") && line.contains("stack_trace"), "{line}");
        let metrics = common::metrics_text(&gw).await;
        assert!(metrics.contains(r#"palisade_http_rejections_total{route="api",reason="upstream-error"} 2"#), "{metrics}");
    }

    async fn an_html_error_page_is_replaced_keeping_status_and_retry_after(codec: Codec) {
        let (_up, gw) = gateway(codec, "", "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let page = percent("<html><body><h1>502 Bad Gateway</h1><hr>nginx/1.18.0 (Ubuntu)</body></html>");
        let query = format!("status=503&set_header=content-type:text/html&set_header=retry-after:120&body={page}");
        let reply = get(&mut wire, &query, "html-1").await;
        assert_replaced(&reply, 503, "html-1");
        assert_eq!(reply.header("retry-after"), Some("120"));
        // An HTML page labelled as text is caught by its look.
        let query = format!("status=502&body={}", percent("<!DOCTYPE html>\n<title>Error</title>"));
        assert_replaced(&get(&mut wire, &query, "html-2").await, 502, "html-2");
    }

    async fn bodies_that_cannot_be_checked_are_replaced(codec: Codec) {
        let (_up, gw) = gateway(codec, "", "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        // Longer than the 64 KiB hold, with a length and chunked.
        for (n, query) in ["status=500&size=70000", "status=500&size=70000&chunked=1"].iter().enumerate() {
            let id = format!("long-{n}");
            let reply = get(&mut wire, query, &id).await;
            assert_replaced(&reply, 500, &id);
            if reply.header("connection") == Some("close") {
                wire = Wire::connect(&gw.url("/")).await;
            }
        }
        // Compressed: its bytes say nothing.
        let query = format!("status=500&set_header=content-encoding:gzip&body={}", percent("\u{1f}binary"));
        assert_replaced(&get(&mut wire, &query, "gzip").await, 500, "gzip");
    }

    async fn plain_error_messages_and_client_errors_pass_unchanged(codec: Codec) {
        let (_up, gw) = gateway(codec, "", "").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        let json = r#"{"error":"down for maintenance","retry":true}"#;
        for chunked in ["0", "1"] {
            let query = format!(
                "status=503&chunked={chunked}&set_header=content-type:application/json&set_header=retry-after:30&body={}",
                percent(json)
            );
            let reply = get(&mut wire, &query, "plain").await;
            assert_eq!(reply.status, 503);
            assert_eq!(reply.body, json.as_bytes());
            assert_eq!(reply.header("content-type"), Some("application/json"));
            assert_eq!(reply.header("retry-after"), Some("30"));
        }
        // A 5xx without a body, and a 4xx with a trace (the check is for server errors).
        let empty = get(&mut wire, "status=500&size=0", "empty").await;
        assert_eq!((empty.status, empty.body.len()), (500, 0));
        let query = format!("status=400&body={}", percent(TRACE));
        let client_error = get(&mut wire, &query, "client").await;
        assert_eq!((client_error.status, client_error.body), (400, TRACE.as_bytes().to_vec()));
        let metrics = common::metrics_text(&gw).await;
        assert!(!metrics.contains("upstream-error"), "{metrics}");
    }

    async fn development_mode_and_a_route_that_opts_out_show_the_original(codec: Codec) {
        let query = format!("status=500&body={}", percent(TRACE));
        for (config, route) in [("mode = \"development\"", ""), ("", "sanitize_errors = false")] {
            let (_up, gw) = gateway(codec, config, route).await;
            let mut wire = Wire::connect(&gw.url("/")).await;
            let reply = get(&mut wire, &query, "dev").await;
            assert_eq!((reply.status, reply.body), (500, TRACE.as_bytes().to_vec()), "{config}{route}");
        }
        // And development mode still replaces on a route that asks for it.
        let (_up, gw) = gateway(codec, "mode = \"development\"", "sanitize_errors = true").await;
        let mut wire = Wire::connect(&gw.url("/")).await;
        assert_replaced(&get(&mut wire, &query, "dev-on").await, 500, "dev-on");
    }
}
