//! No request shape makes the gateway panic, hang or answer a 5xx of its own: random methods,
//! targets, header lines (framing ones included), bodies and lengths — well-formed or not —
//! go to both codecs, and each answer must be a response below 500 or a close, within bounds.

mod common;

use common::Codec;
use common::raw::{Answer, Conn};
use palisade_testkit::UpstreamServer;
use palisade_testkit::gateway::Gateway;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]).prop_map(str::to_owned),
        1 => "[A-Z]{1,10}",
        1 => "[ -~]{0,8}",
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "(/[a-z0-9._~%-]{0,8}){1,4}(\\?[a-z0-9=&%]{0,12})?",
        1 => "[ -~]{0,24}",
        1 => prop::sample::select(vec!["*", "http://app/x", "//x", "/%00", "/..", "/a/../../b", "/%2e%2e/x"]).prop_map(str::to_owned),
    ]
}

fn line() -> impl Strategy<Value = String> {
    let framing = prop::sample::select(vec![
        "content-length: 5",
        "content-length: 0",
        "content-length: -1",
        "content-length: 5, 5",
        "content-length: 99999999999999999999",
        "transfer-encoding: chunked",
        "transfer-encoding: gzip",
        "transfer-encoding: chunked, chunked",
        "expect: 100-continue",
        "connection: close",
        "connection: upgrade",
        "upgrade: websocket",
        "host: other.example",
        "host:",
        "x-forwarded-for: 203.0.113.9",
        "content-type: application/json",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        3 => framing,
        2 => "[a-z-]{1,12}: [ -~]{0,20}",
        1 => "[ -~]{0,30}",
    ]
}

fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        method(),
        target(),
        prop::option::weighted(0.9, Just("host: app".to_owned())),
        prop::collection::vec(line(), 0..6),
        prop::collection::vec(any::<u8>(), 0..64),
        prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1x", ""]),
    )
        .prop_map(|(method, target, host, lines, body, version)| {
            let mut text = format!("{method} {target} {version}\r\n");
            for l in host.iter().chain(&lines) {
                text.push_str(l);
                text.push_str("\r\n");
            }
            text.push_str("\r\n");
            let mut bytes = text.into_bytes();
            bytes.extend_from_slice(&body);
            bytes
        })
}

/// What was wrong with the answer to `bytes`, if anything.
async fn wrong(gw: &Gateway, bytes: &[u8]) -> Option<String> {
    let mut conn = Conn::open(gw).await;
    conn.send(bytes).await;
    // The answer to a HEAD has no body, whatever its Content-Length says.
    let answer = conn.answer_to(bytes.starts_with(b"HEAD ")).await;
    let shown = String::from_utf8_lossy(bytes);
    match &answer {
        Answer::Reply(reply, _) if reply.status < 500 => None,
        Answer::Closed(_) => None,
        _ => Some(format!("{shown:?} -> {}", answer.describe())),
    }
}

fn run(codec: Codec) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (_up, gw) = rt.block_on(async {
        let up = UpstreamServer::start().await.unwrap();
        // A body shorter than its Content-Length waits for the rest: within 1 s it is a 408,
        // not a hang the answer bound below would count.
        let config = format!(
            "[server]\nrequest_body_timeout = \"1s\"\n{}",
            common::config_for(up.addr(), "")
        );
        let gw = common::spawn(codec, &config, true).await;
        (up, gw)
    });
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&request(), |bytes| {
            let problem = rt.block_on(wrong(&gw, &bytes));
            prop_assert!(problem.is_none(), "{}", problem.unwrap_or_default());
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{codec:?}: {e}"));
    let panicked: Vec<String> = gw
        .output_lines()
        .into_iter()
        .filter(|l| l.contains("panicked") || l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(panicked.is_empty(), "{codec:?}: {panicked:#?}");
}

#[test]
fn no_request_shape_gets_a_5xx_of_the_gateways_own_on_the_fast_codec() {
    run(Codec::Fast);
}

#[test]
fn no_request_shape_gets_a_5xx_of_the_gateways_own_on_the_general_codec() {
    run(Codec::General);
}
