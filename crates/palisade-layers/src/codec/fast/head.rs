//! Request heads on the fast codec: httparse reads the head into a fixed array, the lines
//! become the pipeline's [`RequestHead`] view, and the upstream head is written byte by byte
//! into a buffer from the pipeline's decisions ([`forward::write_headers`]).
//!
//! The codec decides only what it can serve: HTTP/1.1 in origin form whose head httparse
//! takes. Every other decision is [`pipeline::admit`]'s; when it answers
//! [`Admission::General`], or the head is not for this codec, the connection goes to the
//! general codec ([`Step::Handoff`]) before a byte of the request is forwarded.

use std::mem::MaybeUninit;
use std::sync::Arc;

use arrayvec::ArrayVec;
use http::{Method, Version};
use palisade_telemetry::metrics::Metrics;

use crate::pipeline::head::{BodyKind, Line, RequestHead};
use crate::pipeline::{self, Admission, Codec, Peer, Rejection, RequestCtx, forward};
use crate::proxy::Snapshot;
use crate::routing::Route;

/// Most header lines a request head may have on the fast codec; more go to the general codec.
pub const MAX_HEADERS: usize = 64;

/// What to do with a complete request head.
pub enum Step {
    /// Not a request for the fast codec (a chunked body, HTTP/1.0, the h2c preface, a parse
    /// error, an h2c upstream...): hand the connection, bytes included, to the general codec.
    Handoff,
    /// Answer without the upstream.
    Respond(Respond),
    /// The upstream request head is in the output buffer.
    Forward(Forward),
    /// Fetch the issuer's keys, then read the same head again; if they did not change, answer.
    Refresh(Respond, crate::identity::JwksCache),
}

pub struct Respond {
    /// Length of the request head in the buffer.
    pub consumed: usize,
    pub ctx: RequestCtx,
    pub rejection: Rejection,
}

pub struct Forward {
    pub consumed: usize,
    pub route: Arc<Route>,
    pub ctx: RequestCtx,
    /// HEAD: the response has no body whatever its headers say.
    pub head_request: bool,
    /// Safe to send again when a reused connection failed before answering.
    pub idempotent: bool,
    /// A request of another method that carries `Idempotency-Key`.
    pub idempotency_key: bool,
    /// The client asked to close the connection after this exchange.
    pub close: bool,
    /// Longest wait for the client to take more response bytes.
    pub send_timeout: std::time::Duration,
    /// The request body's length (`Content-Length`; 0 without one).
    pub body: u64,
    /// Longest wait for the client's next request body bytes.
    pub body_timeout: std::time::Duration,
    /// Rate limits in Redis, awaited before the exchange.
    pub pending_limits: Option<crate::ratelimit::Pending>,
}

/// Reads the request head at the front of `buf` (`None` while it is incomplete) and, when it
/// goes upstream, writes the upstream's head into `out`.
pub fn request(
    buf: &[u8],
    snap: &Snapshot,
    metrics: &Metrics,
    peer: Peer<'_>,
    out: &mut Vec<u8>,
) -> Option<Step> {
    // Neither array is initialized up front: that would cost more than parsing a short head.
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let consumed = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return None,
        Err(_) => return Some(Step::Handoff),
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Some(Step::Handoff);
    };
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Some(Step::Handoff);
    };
    if !target.starts_with('/') || method == Method::CONNECT {
        return Some(Step::Handoff);
    }
    // Filled in place: collecting would return (and copy) the whole 2.5 KiB array.
    let mut lines: ArrayVec<Line<'_>, MAX_HEADERS> = ArrayVec::new();
    for h in req.headers.iter() {
        lines.push(Line::new(h.name.as_bytes(), h.value));
    }
    let head = RequestHead {
        method: &method,
        target,
        authority: None,
        version: Version::HTTP_11,
        lines: &lines,
    };
    let admitted = match pipeline::admit(&head, peer, snap, metrics, Codec::Fast) {
        Admission::General => return Some(Step::Handoff),
        Admission::Reject(ctx, rejection) => {
            return Some(Step::Respond(Respond {
                consumed,
                ctx,
                rejection,
            }));
        }
        Admission::Refresh(ctx, rejection, jwks) => {
            let respond = Respond {
                consumed,
                ctx,
                rejection,
            };
            return Some(Step::Refresh(respond, jwks));
        }
        Admission::Forward(admitted) => admitted,
    };
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(admitted.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    forward::write_headers(&head, &admitted, out);
    out.extend_from_slice(b"\r\n");
    let mut admitted = admitted;
    let pending_limits = admitted.pending_limits.take();
    let idempotent = admitted.idempotent();
    let idempotency_key = admitted.idempotency_key(&head);
    let close = admitted.facts.close;
    let body = match admitted.facts.body {
        BodyKind::Length(n) => n,
        _ => 0,
    };
    Some(Step::Forward(Forward {
        consumed,
        route: admitted.route,
        ctx: admitted.ctx,
        head_request: method == Method::HEAD,
        idempotent,
        idempotency_key,
        close,
        send_timeout: snap.send_timeout,
        body,
        body_timeout: snap.request_body_timeout,
        pending_limits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    use crate::problem::ProxyError;
    use crate::proxy::Retained;

    const CONFIG: &str = r#"
[server]
trusted_proxies = ["10.0.0.0/8"]
[upstreams.app]
endpoints = ["127.0.0.1:9"]
[upstreams.app.request_headers]
authorization = "Bearer upstream"
[[routes]]
name = "api"
path = "/api"
upstream = "app"
"#;

    fn snapshot() -> (Snapshot, Arc<Metrics>) {
        let loaded = palisade_config::load_str("t.toml", CONFIG, &[]).expect("valid config");
        let metrics = Metrics::new("test");
        let snap = Snapshot::build(&loaded, &metrics, &Retained::default()).expect("snapshot");
        (snap, metrics)
    }

    fn run(raw: &[u8], ip: &str) -> (Option<Step>, String) {
        let (snap, metrics) = snapshot();
        let ip: IpAddr = ip.parse().unwrap();
        let text = ip.to_string();
        let peer = Peer { ip, ip_text: &text };
        let mut out = Vec::new();
        let step = request(raw, &snap, &metrics, peer, &mut out);
        (step, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_upstream_head_follows_the_forwarding_rules() {
        let raw = b"GET /api/x?y=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: keep-alive, X-Private\r\n\
            X-Private: secret\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nAuthorization: Bearer client\r\n\
            X-Request-Id: req-1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
            tracestate: k=v\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: evil\r\nAccept: */*\r\n\r\n";
        let (step, out) = run(raw, "192.0.2.7");
        let Some(Step::Forward(f)) = step else {
            panic!("expected the direct path")
        };
        assert_eq!(f.consumed, raw.len());
        assert!(f.idempotent && !f.head_request && !f.close);
        let lines: Vec<&str> = out.split("\r\n").collect();
        assert_eq!(lines[0], "GET /api/x?y=1 HTTP/1.1");
        for gone in [
            "Connection",
            "X-Private",
            "Keep-Alive",
            "TE",
            "Bearer client",
            "1.2.3.4",
            "evil",
        ] {
            assert!(!out.contains(gone), "{gone} leaked into {out}");
        }
        for kept in [
            "host: shop.example",
            "Accept: */*",
            "tracestate: k=v",
            "x-request-id: req-1",
            "authorization: Bearer upstream",
            "x-forwarded-for: 192.0.2.7",
            "x-forwarded-proto: http",
            "x-forwarded-host: shop.example",
        ] {
            assert!(lines.contains(&kept), "{kept} missing from {out}");
        }
        let tp = lines
            .iter()
            .find(|l| l.starts_with("traceparent: "))
            .unwrap();
        assert!(tp.starts_with("traceparent: 00-0af7651916cd43dd8448eb211c80319c-"));
        assert!(
            !tp.contains("b7ad6b7169203331"),
            "the gateway's span is the parent"
        );
        assert!(out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn a_trusted_peer_extends_the_chain() {
        let raw = b"GET /api HTTP/1.1\r\nhost: a\r\nx-forwarded-for: 203.0.113.9\r\nx-forwarded-proto: https\r\n\r\n";
        let (step, out) = run(raw, "10.0.0.2");
        let Some(Step::Forward(f)) = step else {
            panic!("expected the direct path")
        };
        assert_eq!(f.ctx.record.client_ip.to_string(), "203.0.113.9");
        assert!(out.contains("x-forwarded-for: 203.0.113.9, 10.0.0.2\r\n"));
        assert!(out.contains("x-forwarded-proto: https\r\n"));
        assert!(!out.contains("x-forwarded-proto: http\r\n"));
    }

    #[test]
    fn a_body_framed_by_content_length_stays_on_the_fast_codec() {
        let raw = b"POST /api HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc";
        let (step, out) = run(raw, "192.0.2.7");
        let Some(Step::Forward(f)) = step else {
            panic!("expected the fast codec")
        };
        // The head only: the body is the codec's to send after it.
        assert_eq!((f.consumed, f.body), (raw.len() - 3, 3));
        assert!(!f.idempotent);
        assert!(out.contains("\r\ncontent-length: 3\r\n") && out.ends_with("\r\n\r\n"));
    }

    #[test]
    fn anything_but_the_common_case_goes_to_the_general_path() {
        for raw in [
            &b"POST /api HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n"[..],
            b"POST /api HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n",
            b"GET /api HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            b"GET /api HTTP/1.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET http://a/api HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET /a\x01pi HTTP/1.1\r\n\r\n",
        ] {
            let (step, _) = run(raw, "192.0.2.7");
            assert!(
                matches!(step, Some(Step::Handoff)),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert!(
            run(b"GET /api HTTP/1.1\r\nhost: a\r\n", "192.0.2.7")
                .0
                .is_none()
        );
        let (step, _) = run(
            b"GET /other HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n",
            "192.0.2.7",
        );
        let Some(Step::Respond(r)) = step else {
            panic!("expected a 404")
        };
        assert_eq!(
            (r.rejection.error, r.rejection.close),
            (ProxyError::NoRoute, true)
        );
    }
}
