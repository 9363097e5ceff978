//! The two codecs give the same answers: random valid requests go through a gateway on the
//! fast codec and one on the general codec (hyper), in front of the same upstream, and what
//! the upstream received and what the client got back must match — except the values each
//! request makes anew (request id, the gateway's span, the date).

mod common;

use std::time::Duration;

use common::Codec;
use common::wire::{Reply, Wire};
use palisade_testkit::{Gateway, UpstreamServer};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// One generated request, as bytes on the wire plus where to split its sending.
#[derive(Debug, Clone)]
struct Case {
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The request is written in two pieces, split here.
    split: usize,
}

impl Case {
    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nhost: app.example\r\n",
            self.method, self.target
        );
        for (n, v) in &self.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        if !self.body.is_empty() || matches!(self.method, "POST" | "PUT" | "PATCH") {
            out.push_str(&format!("content-length: {}\r\n", self.body.len()));
        }
        out.push_str("connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z0-9_~-][a-z0-9._~-]{0,7}",
        1 => Just(".".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just(String::new()),
        1 => Just("%61pi".to_owned()),
    ]
}

fn header() -> impl Strategy<Value = (String, String)> {
    let name = prop_oneof![
        6 => "x-[a-z][a-z0-9-]{0,10}",
        1 => Just("x-forwarded-for".to_owned()),
        1 => Just("x-forwarded-host".to_owned()),
        1 => Just("x-real-ip".to_owned()),
        1 => Just("forwarded".to_owned()),
        1 => Just("x-request-id".to_owned()),
        1 => Just("traceparent".to_owned()),
        1 => Just("connection".to_owned()),
        1 => Just("te".to_owned()),
        1 => Just("expect".to_owned()),
        1 => Just("x_under_score".to_owned()),
        1 => Just("accept".to_owned()),
    ];
    (name, "[!-~]([ -~]{0,24}[!-~])?")
}

fn case() -> impl Strategy<Value = Case> {
    let method = prop_oneof![
        Just("GET"),
        Just("HEAD"),
        Just("DELETE"),
        Just("OPTIONS"),
        Just("POST"),
        Just("PUT"),
        Just("PATCH"),
    ];
    (
        method,
        prop::collection::vec(segment(), 1..5),
        prop::option::of("[a-z0-9=&]{0,16}"),
        prop::collection::vec(header(), 0..6),
        // Most bodies fit in one read with the head; some cross the 4 KiB written with the
        // head and the fast codec's 16 KiB buffer.
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..3000),
            1 => prop::collection::vec(any::<u8>(), 3000..40_000),
        ],
        any::<prop::sample::Index>(),
    )
        .prop_map(|(method, segments, query, headers, body, split)| {
            let mut target = format!("/{}", segments.join("/"));
            if let Some(q) = query {
                target = format!("{target}?{q}");
            }
            // Bodies only where a client would send one; bodiless methods stay bodiless.
            let body = if matches!(method, "POST" | "PUT" | "PATCH") {
                body
            } else {
                Vec::new()
            };
            let mut case = Case {
                method,
                target,
                headers,
                body,
                split: 0,
            };
            case.split = split.index(case.bytes().len());
            case
        })
}

struct Pair {
    _upstream: UpstreamServer,
    fast: Gateway,
    general: Gateway,
}

async fn send(gw: &Gateway, case: &Case) -> Reply {
    let bytes = case.bytes();
    let mut wire = Wire::connect(&gw.url("/")).await;
    wire.send(&bytes[..case.split]).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    // The gateway may have answered (a refusal closes) before the rest arrives.
    wire.send_rest(&bytes[case.split..]).await;
    wire.response(case.method == "HEAD").await
}

/// The parts of a reply both codecs must agree on.
fn comparable(reply: &Reply, case: &Case) -> (u16, Vec<(String, String)>, serde_json::Value) {
    let head = case.method == "HEAD";
    const FRESH: [&str; 6] = [
        "date",
        "x-request-id",
        "traceresponse",
        "connection",
        "content-length",
        "transfer-encoding",
    ];
    let mut headers: Vec<(String, String)> = reply
        .headers
        .iter()
        .filter(|(n, _)| !FRESH.contains(&n.as_str()))
        .cloned()
        .collect();
    headers.sort();
    let mut body = if head || reply.body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&reply.body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&reply.body).into_owned())
        })
    };
    // What the upstream received: drop the values made anew per request.
    // The first `X-Request-Id` line decides: kept when valid, else a new id on each side.
    let kept_id = case
        .headers
        .iter()
        .find(|(n, _)| n == "x-request-id")
        .is_some_and(|(_, v)| {
            v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(&b))
        });
    if let Some(h) = body.get_mut("headers").and_then(|h| h.as_object_mut()) {
        h.remove("traceparent");
        if !kept_id {
            h.remove("x-request-id");
        }
    }
    if let Some(o) = body.as_object_mut() {
        // A problem body names the request id.
        o.remove("request_id");
    }
    (reply.status, headers, body)
}

#[test]
fn both_codecs_give_the_same_answers() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pair = rt.block_on(async {
        let upstream = UpstreamServer::start().await.unwrap();
        let config = common::config_for(upstream.addr(), "");
        Pair {
            fast: common::spawn(Codec::Fast, &config, true).await,
            general: common::spawn(Codec::General, &config, true).await,
            _upstream: upstream,
        }
    });
    let mut runner = TestRunner::new(Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |case| {
            let (fast, general) = rt.block_on(async {
                (
                    send(&pair.fast, &case).await,
                    send(&pair.general, &case).await,
                )
            });
            prop_assert_eq!(comparable(&fast, &case), comparable(&general, &case));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("the codecs disagree: {e}"));
}
