//! Response heads on the direct path: the upstream's response head becomes the client's,
//! written byte by byte into a buffer, and its framing tells where the body ends.

use http::HeaderValue;

use crate::pipeline::forward::{HeaderSink, decimal};
use crate::pipeline::head::{
    ConnectionValue, Kind, SecurityHeader, connection_names, kind, parse_length,
};
use crate::pipeline::reject::with_date;
use crate::pipeline::{respond, sanitize};

/// Most header lines an upstream response head may have (hyper's limit too); more is a 502.
const MAX_RESPONSE_HEADERS: usize = 100;

/// How the end of a response body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Until the upstream closes the connection.
    Close,
}

/// A response head read from the upstream.
pub enum Response {
    Partial,
    /// An interim (1xx) response, written to `out` for the client; the final one follows.
    Interim {
        consumed: usize,
    },
    Final(FinalHead),
}

pub struct FinalHead {
    pub consumed: usize,
    pub status: u16,
    pub framing: Framing,
    /// The upstream connection may serve another request once this body has been read.
    pub reusable: bool,
    /// The client connection must close after this response.
    pub close: bool,
    /// A 5xx whose body is held and judged before it goes on ([`sanitize`]).
    pub held: Option<Box<HeldHead>>,
    /// The wait an error response's `Retry-After` asks for, for the retry decision.
    pub retry_after: Option<std::time::Duration>,
}

/// What the judge of a held body needs from its head.
#[derive(Debug, Default)]
pub struct HeldHead {
    pub content_type: Option<Vec<u8>>,
    pub content_encoding: Option<Vec<u8>>,
    pub retry_after: Option<HeaderValue>,
}

impl HeldHead {
    fn read(headers: &[httparse::Header<'_>]) -> Box<Self> {
        let mut held = Box::<Self>::default();
        for h in headers {
            let value = || Some(h.value.to_vec());
            if h.name.eq_ignore_ascii_case("content-type") {
                held.content_type = value();
            } else if h.name.eq_ignore_ascii_case("content-encoding") {
                held.content_encoding = value();
            } else if h.name.eq_ignore_ascii_case("retry-after") {
                held.retry_after = HeaderValue::from_bytes(h.value).ok();
            }
        }
        held
    }
}

/// Why an upstream response head cannot be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum BadResponse {
    #[error("the upstream response head is malformed: {0}")]
    Parse(#[from] httparse::Error),
    #[error("the upstream response head is malformed: {0}")]
    Invalid(&'static str),
}

/// The facts about the request that shape the client's response head.
pub struct Reply<'a> {
    pub request_id: &'a HeaderValue,
    pub traceparent: &'a [u8; 55],
    pub head_request: bool,
    /// The client asked to close, or the gateway is draining.
    pub close: bool,
    /// The route's rate-limit fields, added beside any the upstream sent.
    pub limits: Option<&'a crate::ratelimit::Verdict>,
    /// The route's security headers, added when the upstream sent none of the same name.
    pub security: &'a [(SecurityHeader, HeaderValue)],
    /// The route's `sanitize_errors`: a 5xx body is held for the check.
    pub sanitize: bool,
}

/// Reads the upstream's response head at the front of `buf` and writes the client's into
/// `out` (cleared first).
pub fn translate(
    buf: &[u8],
    reply: &Reply<'_>,
    out: &mut Vec<u8>,
) -> Result<Response, BadResponse> {
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let parsed = httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut resp, buf, &mut slots);
    let consumed = match parsed? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(Response::Partial),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Err(BadResponse::Invalid("no status line"));
    };
    if status == 101 {
        return Err(BadResponse::Invalid(
            "switching protocols without an upgrade request",
        ));
    }
    // As hyper's client: no status below 100.
    if status < 100 {
        return Err(BadResponse::Invalid("a status below 100"));
    }
    let headers = &*resp.headers;
    let (mut close_asked, mut names_other) = (false, false);
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let mut has_date = false;
    // The security headers the upstream sent (one bit each).
    let mut security = 0u8;
    let mut kinds = [Kind::Other; MAX_RESPONSE_HEADERS];
    for (h, k) in headers.iter().zip(kinds.iter_mut()) {
        *k = kind(h.name.as_bytes());
        match *k {
            Kind::Connection => {
                let said = ConnectionValue::read(h.value);
                close_asked |= said.close;
                names_other |= said.names_other;
            }
            Kind::Date => has_date = true,
            Kind::Security(which) => security |= which.bit(),
            Kind::TransferEncoding => {
                // Only the last coding decides whether the body is chunked.
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            }
            Kind::ContentLength => {
                for v in h.value.split(|b| *b == b',') {
                    let n = parse_length(v.trim_ascii())
                        .ok_or(BadResponse::Invalid("bad content-length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(BadResponse::Invalid("conflicting content-length"));
                    }
                    length = Some(n);
                }
            }
            _ => {}
        }
    }
    // An HTTP/1.0 message has no transfer codings (RFC 9112 §6.1); hyper refuses it too.
    if version == 0 && chunked.is_some() {
        return Err(BadResponse::Invalid(
            "transfer-encoding in an HTTP/1.0 response",
        ));
    }
    let interim = (100..200).contains(&status);
    let framing = if interim || reply.head_request || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::Close,
        }
    };
    let close = reply.close || framing == Framing::Close;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse reads exactly three digits.
    let digit = |n: u16| b'0' + (n % 10) as u8;
    out.extend_from_slice(&[digit(status / 100), digit(status / 10), digit(status)]);
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    for (h, k) in headers.iter().zip(kinds) {
        let named = || {
            let lines = headers
                .iter()
                .zip(kinds)
                .filter(|(_, k)| *k == Kind::Connection);
            names_other && connection_names(lines.map(|(h, _)| h.value), h.name.as_bytes())
        };
        let keep = respond::keeps(k, named, false);
        if keep {
            out.header(h.name.as_bytes(), h.value);
        }
    }
    if interim {
        out.extend_from_slice(b"\r\n");
        return Ok(Response::Interim { consumed });
    }
    // RFC 9110 §8.6: never on a 204; a HEAD's or 304's tells the length the body would have.
    if let (None, Some(n), false) = (chunked, length, status == 204) {
        out.header(b"content-length", decimal(n, &mut [0; 20]));
    }
    if !has_date {
        // RFC 9110 §6.6.1: a proxy adds the Date an origin left out.
        with_date(|date| out.header(b"date", date));
    }
    if framing == Framing::Chunked {
        out.header(b"transfer-encoding", b"chunked");
    }
    out.header(b"x-request-id", reply.request_id.as_bytes());
    out.header(b"traceresponse", reply.traceparent);
    if let Some(limits) = reply.limits {
        out.header(b"ratelimit-policy", limits.policy_field.as_bytes());
        out.header(b"ratelimit", limits.limit_field.as_bytes());
    }
    for (which, value) in reply.security {
        if security & which.bit() == 0 {
            out.header(which.name().as_bytes(), value.as_bytes());
        }
    }
    if close {
        out.header(b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Response::Final(FinalHead {
        consumed,
        status,
        framing,
        reusable: version == 1 && !close_asked && framing != Framing::Close,
        close,
        held: (reply.sanitize && sanitize::holds(status) && framing != Framing::Empty)
            .then(|| HeldHead::read(headers)),
        // Only error responses are retried; others never pay for the look.
        retry_after: (status >= 400)
            .then(|| {
                let value = headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("retry-after"))?;
                crate::resilience::parse_retry_after(value.value, std::time::SystemTime::now())
            })
            .flatten(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply_to(raw: &[u8], head_request: bool) -> (Result<Response, BadResponse>, String) {
        let id = HeaderValue::from_static("req-1");
        let tp = [b'0'; 55];
        let reply = Reply {
            request_id: &id,
            traceparent: &tp,
            head_request,
            close: false,
            limits: None,
            security: &[],
            sanitize: false,
        };
        let mut out = Vec::new();
        let r = translate(raw, &reply, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn the_client_head_drops_hop_by_hop_headers_and_keeps_the_framing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: x-secret\r\nX-Secret: 1\r\n\
            Keep-Alive: timeout=5\r\nX-Request-Id: upstream-id\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
        let (r, out) = reply_to(raw, false);
        let Ok(Response::Final(head)) = r else {
            panic!("a final head")
        };
        assert_eq!(
            (head.status, head.framing, head.consumed),
            (200, Framing::Chunked, raw.len())
        );
        assert!(head.reusable && !head.close);
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(out.contains("Content-Type: text/plain\r\n"));
        assert!(out.contains("transfer-encoding: chunked\r\nx-request-id: req-1\r\n"));
        for gone in [
            "X-Secret",
            "Keep-Alive",
            "upstream-id",
            "Content-Length",
            "Connection",
        ] {
            assert!(!out.contains(gone), "{gone} leaked into {out}");
        }
    }

    #[test]
    fn response_framing_follows_rfc_9112() {
        let framing = |raw: &[u8], head: bool| match reply_to(raw, head).0 {
            Ok(Response::Final(h)) => Ok((h.framing, h.reusable, h.close)),
            Ok(_) => panic!("not final"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false),
            Ok((Framing::Length(5), true, false))
        );
        assert_eq!(
            framing(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true),
            Ok((Framing::Empty, true, false))
        );
        assert_eq!(
            framing(b"HTTP/1.1 304 Not Modified\r\n\r\n", false),
            Ok((Framing::Empty, true, false))
        );
        assert_eq!(
            framing(b"HTTP/1.0 200 OK\r\n\r\n", false),
            Ok((Framing::Close, false, true))
        );
        assert_eq!(
            framing(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\n",
                false
            ),
            Ok((Framing::Length(5), false, false))
        );
        assert!(
            framing(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(framing(b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n", false).is_err());
        assert!(framing(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", false).is_err());
        assert!(framing(b"HTTP/1.1 099 Too Low\r\n\r\n", false).is_err());
        assert!(
            framing(
                b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                false
            )
            .is_err()
        );
        assert!(matches!(
            reply_to(
                b"HTTP/1.1 103 Early Hints\r\nlink: <a>\r\n\r\nHTTP/1.1 200",
                false
            )
            .0,
            Ok(Response::Interim { consumed: 39 })
        ));
        assert!(matches!(
            reply_to(b"HTTP/1.1 200 OK\r\n", false).0,
            Ok(Response::Partial)
        ));
    }
}
