//! Request heads on the direct path: the client's request head becomes the upstream's, written
//! byte by byte into a buffer. The header classification here serves [`super::response`] too.
//!
//! The rules are the hyper path's (request id, trace context, forwarding headers, hop-by-hop
//! removal, route match), applied to the parsed header list; anything outside the common case
//! is left to the hyper path ([`Step::Handoff`]) before a byte is forwarded.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use http::Method;
use palisade_telemetry::metrics::Metrics;

use crate::access::AccessRecord;
use crate::forwarded::Forwarding;
use crate::headers::is_hop_by_hop;
use crate::pool::Endpoint;
use crate::problem::ProxyError;
use crate::proxy::Snapshot;
use crate::request_id;
use crate::routing::Route;
use crate::trace_context::TraceContext;

/// Most header lines a request head may have on the direct path; more go to the hyper path.
pub const MAX_HEADERS: usize = 64;
/// Most `Connection` tokens naming other headers; more go to the hyper path.
const MAX_NAMED: usize = 8;

/// What to do with a complete request head.
pub enum Step {
    /// Not a request for the direct path (body, upgrade, HTTP/1.0, h2c preface, parse error, an
    /// h2c upstream...): hand the connection, bytes included, to the hyper path.
    Handoff,
    /// Answer without the upstream.
    Respond(Respond),
    /// The upstream request head is in the output buffer.
    Forward(Forward),
}

pub struct Respond {
    /// Length of the request head in the buffer.
    pub consumed: usize,
    pub error: ProxyError,
    pub record: AccessRecord,
    pub close: bool,
}

pub struct Forward {
    pub consumed: usize,
    pub route: Arc<Route>,
    pub endpoint: Arc<Endpoint>,
    pub record: AccessRecord,
    pub traceparent: [u8; 55],
    /// HEAD: the response has no body whatever its headers say.
    pub head_request: bool,
    /// Safe to send again on a new connection when a reused one fails before answering.
    pub idempotent: bool,
    pub close: bool,
}

/// The connection-level facts a request head is read with.
pub struct Peer<'a> {
    pub ip: IpAddr,
    /// `ip` as text, formatted once per connection for `X-Forwarded-For`.
    pub ip_text: &'a str,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Host,
    Connection,
    ContentLength,
    TransferEncoding,
    Upgrade,
    Expect,
    RequestId,
    Traceparent,
    Tracestate,
    Traceresponse,
    ForwardedFor,
    ForwardedProto,
    ForwardedHost,
    HopByHop,
    Other,
}

pub(super) fn kind(name: &str) -> Kind {
    let n = name.as_bytes();
    let is = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
    let k = match n.len() {
        4 if is("host") => Kind::Host,
        6 if is("expect") => Kind::Expect,
        7 if is("upgrade") => Kind::Upgrade,
        10 if is("connection") => Kind::Connection,
        10 if is("tracestate") => Kind::Tracestate,
        11 if is("traceparent") => Kind::Traceparent,
        12 if is("x-request-id") => Kind::RequestId,
        13 if is("traceresponse") => Kind::Traceresponse,
        14 if is("content-length") => Kind::ContentLength,
        15 if is("x-forwarded-for") => Kind::ForwardedFor,
        16 if is("x-forwarded-host") => Kind::ForwardedHost,
        17 if is("transfer-encoding") => Kind::TransferEncoding,
        17 if is("x-forwarded-proto") => Kind::ForwardedProto,
        _ => Kind::Other,
    };
    if k == Kind::Other && is_hop_by_hop(n) {
        Kind::HopByHop
    } else {
        k
    }
}

/// The tokens of `Connection` values: whether one says `close`, whether one says `upgrade`,
/// and the header names the others stand for.
#[derive(Default)]
pub(super) struct ConnectionTokens<'a> {
    pub(super) close: bool,
    upgrade: bool,
    named: [&'a [u8]; MAX_NAMED],
    count: usize,
    overflow: bool,
}

impl<'a> ConnectionTokens<'a> {
    pub(super) fn add(&mut self, value: &'a [u8]) {
        for token in value.split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() || token.eq_ignore_ascii_case(b"keep-alive") {
                continue;
            }
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            } else if self.count < MAX_NAMED {
                self.named[self.count] = token;
                self.count += 1;
            } else {
                self.overflow = true;
            }
        }
    }

    pub(super) fn names(&self, name: &str) -> bool {
        self.named[..self.count]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name.as_bytes()))
    }
}

pub(super) fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Reads the request head at the front of `buf` (`None` while it is incomplete) and, when it
/// goes upstream, writes the upstream's head into `out`.
pub fn request(
    buf: &[u8],
    snap: &Snapshot,
    metrics: &Metrics,
    peer: &Peer<'_>,
    out: &mut Vec<u8>,
) -> Option<Step> {
    let start = Instant::now();
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let consumed = match req.parse(buf) {
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
    let headers = &*req.headers;

    let mut host: Option<&[u8]> = None;
    let mut conn = ConnectionTokens::default();
    let mut incoming_id = None;
    let mut traceparent_in = None;
    let (mut has_proto, mut has_fwd_host, mut has_length) = (false, false, false);
    // Each name is classified once; the later passes read `kinds`.
    let mut kinds = [Kind::Other; MAX_HEADERS];
    for (h, k) in headers.iter().zip(kinds.iter_mut()) {
        *k = kind(h.name);
        match *k {
            Kind::Host if host.is_some() => return Some(Step::Handoff),
            Kind::Host => host = Some(h.value),
            Kind::Connection => conn.add(h.value),
            // A body, a protocol switch or an interim response: the hyper path's business.
            Kind::TransferEncoding | Kind::Upgrade | Kind::Expect => return Some(Step::Handoff),
            Kind::ContentLength if h.value != b"0" => return Some(Step::Handoff),
            Kind::ContentLength => has_length = true,
            Kind::RequestId if incoming_id.is_none() => incoming_id = Some(h.value),
            Kind::Traceparent if traceparent_in.is_none() => traceparent_in = Some(h.value),
            Kind::ForwardedProto => has_proto = true,
            Kind::ForwardedHost => has_fwd_host = true,
            _ => {}
        }
    }
    if conn.upgrade || conn.overflow {
        return Some(Step::Handoff);
    }
    let host_text = host.and_then(|h| std::str::from_utf8(h).ok());
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let route = snap.router.find(host_text, path, &method).cloned();
    if route.as_ref().is_some_and(|r| r.upstream.is_http2()) {
        return Some(Step::Handoff);
    }

    let request_id = request_id::resolve_bytes(incoming_id);
    let trace = TraceContext::from_traceparent(traceparent_in);
    let forwarding = snap.trusted.decide(
        peer.ip,
        || {
            headers
                .iter()
                .zip(kinds)
                .filter(|(_, k)| *k == Kind::ForwardedFor)
                .map(|(h, _)| h.value)
        },
        has_proto,
        has_fwd_host,
    );
    let record = AccessRecord {
        start,
        metrics: route
            .as_ref()
            .map_or_else(|| snap.no_route().clone(), |r| r.metrics.clone()),
        method: method.clone(),
        path: if snap.access_log {
            path.to_owned()
        } else {
            String::new()
        },
        status: 0,
        client_ip: forwarding.client,
        request_id,
        trace,
        bytes_in: has_length.then_some(0),
        log: snap.access_log,
        in_flight: metrics.in_flight(),
    };
    let Some(route) = route else {
        return Some(Step::Respond(Respond {
            consumed,
            error: ProxyError::NoRoute,
            record,
            close: conn.close,
        }));
    };
    let Some(endpoint) = route.upstream.next_endpoint().cloned() else {
        return Some(Step::Respond(Respond {
            consumed,
            error: ProxyError::UpstreamUnavailable,
            record,
            close: conn.close,
        }));
    };

    let traceparent = trace.header_bytes();
    let extra = route.upstream.extra_headers();
    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (h, k) in headers.iter().zip(kinds) {
        let keep = match k {
            Kind::Host | Kind::ContentLength => true,
            Kind::Tracestate => trace.parent_id.is_some(),
            Kind::ForwardedProto => forwarding.keep_proto,
            Kind::ForwardedHost => forwarding.keep_host,
            Kind::Other | Kind::Traceresponse => {
                !conn.names(h.name)
                    && !extra
                        .iter()
                        .any(|(n, _)| n.as_str().eq_ignore_ascii_case(h.name))
            }
            _ => false,
        };
        if keep {
            put_header(out, h.name.as_bytes(), h.value);
        }
    }
    if host.is_none() {
        put_header(out, b"host", endpoint.authority.as_str().as_bytes());
    }
    put_header(out, b"x-request-id", record.request_id.as_bytes());
    put_header(out, b"traceparent", &traceparent);
    put_forwarding(out, &forwarding, peer, host);
    for (name, value) in extra {
        put_header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");

    Some(Step::Forward(Forward {
        consumed,
        idempotent: matches!(
            method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        ),
        head_request: method == Method::HEAD,
        route,
        endpoint,
        record,
        traceparent,
        close: conn.close,
    }))
}

fn put_forwarding(out: &mut Vec<u8>, f: &Forwarding, peer: &Peer<'_>, host: Option<&[u8]>) {
    let xff = f.extended_for.as_deref().unwrap_or(peer.ip_text);
    put_header(out, b"x-forwarded-for", xff.as_bytes());
    if !f.keep_proto {
        put_header(out, b"x-forwarded-proto", b"http");
    }
    if !f.keep_host
        && let Some(host) = host
    {
        put_header(out, b"x-forwarded-host", host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let snap = Snapshot::build(&loaded, &metrics).expect("snapshot");
        (snap, metrics)
    }

    fn run(raw: &[u8], ip: &str) -> (Option<Step>, String) {
        let (snap, metrics) = snapshot();
        let ip: IpAddr = ip.parse().unwrap();
        let text = ip.to_string();
        let peer = Peer { ip, ip_text: &text };
        let mut out = Vec::new();
        let step = request(raw, &snap, &metrics, &peer, &mut out);
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
            "Host: shop.example",
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
        assert_eq!(f.record.client_ip.to_string(), "203.0.113.9");
        assert!(out.contains("x-forwarded-for: 203.0.113.9, 10.0.0.2\r\n"));
        assert!(out.contains("x-forwarded-proto: https\r\n"));
        assert!(!out.contains("x-forwarded-proto: http\r\n"));
    }

    #[test]
    fn anything_but_the_common_case_goes_to_the_general_path() {
        for raw in [
            &b"POST /api HTTP/1.1\r\nhost: a\r\ncontent-length: 3\r\n\r\nabc"[..],
            b"POST /api HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\n\r\n",
            b"GET /api HTTP/1.1\r\nhost: a\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n",
            b"GET /api HTTP/1.0\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"GET http://a/api HTTP/1.1\r\nhost: a\r\n\r\n",
            b"GET /api HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
            b"GET /api HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\n\r\n",
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
        assert_eq!((r.error, r.close), (ProxyError::NoRoute, true));
    }
}
