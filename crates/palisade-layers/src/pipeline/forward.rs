//! The one place that decides the upstream request's header lines: which of the client's are
//! kept, which are dropped, and which the proxy adds. Both codecs call [`write_headers`] with a
//! sink of their own (bytes for the fast codec, a `HeaderMap` for hyper).
//!
//! The client's lines are filtered first — hop-by-hop headers, the headers its `Connection`
//! lines name, names with `_`, and every header the proxy manages — and the managed headers are
//! written after, from the proxy's own decisions. So a client can neither remove a header the
//! proxy sets (`Connection: X-Forwarded-For`) nor smuggle one in.

use super::Admitted;
use super::head::{BodyKind, Kind, RequestHead};

/// Receives header lines in order.
pub trait HeaderSink {
    fn header(&mut self, name: &[u8], value: &[u8]);

    /// A header from the config, already a valid name and value.
    fn configured(&mut self, name: &http::HeaderName, value: &http::HeaderValue) {
        self.header(name.as_str().as_bytes(), value.as_bytes());
    }
}

/// Writes `name: value\r\n` lines into a buffer (the fast codec's upstream head).
impl HeaderSink for Vec<u8> {
    fn header(&mut self, name: &[u8], value: &[u8]) {
        self.extend_from_slice(name);
        self.extend_from_slice(b": ");
        self.extend_from_slice(value);
        self.extend_from_slice(b"\r\n");
    }
}

/// Collects typed headers (the general codec's upstream request). Lines that are not valid
/// header names or values cannot occur here: both come from a parsed head or the config.
impl HeaderSink for Vec<(http::HeaderName, http::HeaderValue)> {
    fn header(&mut self, name: &[u8], value: &[u8]) {
        if let (Some(name), Ok(value)) = (managed_name(name), http::HeaderValue::from_bytes(value))
        {
            self.push((name, value));
        }
    }

    fn configured(&mut self, name: &http::HeaderName, value: &http::HeaderValue) {
        self.push((name.clone(), value.clone()));
    }
}

/// The name of a header the proxy writes, without parsing it again for the common ones.
fn managed_name(name: &[u8]) -> Option<http::HeaderName> {
    use crate::forwarded::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO};
    use crate::request_id::X_REQUEST_ID;
    use crate::trace_context::TRACEPARENT;
    use http::HeaderName;
    use http::header;
    // Constants, so no name is validated again per request.
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    let known = match name {
        b"host" => header::HOST,
        b"content-length" => header::CONTENT_LENGTH,
        b"transfer-encoding" => header::TRANSFER_ENCODING,
        b"connection" => header::CONNECTION,
        b"x-request-id" => X_REQUEST_ID,
        b"traceparent" => TRACEPARENT,
        b"x-forwarded-for" => X_FORWARDED_FOR,
        b"x-forwarded-proto" => X_FORWARDED_PROTO,
        b"x-forwarded-host" => X_FORWARDED_HOST,
        b"x-real-ip" => X_REAL_IP,
        other => return HeaderName::from_bytes(other).ok(),
    };
    Some(known)
}

/// Writes the upstream request's header lines for an admitted request: the client's lines
/// that [`keeps`] says go on, then the managed ones ([`write_managed`]).
pub fn write_headers(head: &RequestHead<'_>, a: &Admitted<'_>, sink: &mut impl HeaderSink) {
    for line in head.lines {
        if keeps(head, a, line.kind, line.name) {
            sink.header(line.name, line.value);
        }
    }
    write_managed(a, sink);
}

/// Whether a client's header line named `name` (of kind `kind`) goes upstream. It depends on
/// the name only, never the value, so a codec may apply it to whole header entries.
pub fn keeps(head: &RequestHead<'_>, a: &Admitted<'_>, kind: Kind, name: &[u8]) -> bool {
    let facts = &a.facts;
    let fwd = &a.forwarding;
    match kind {
        // Names that matter only on responses go on like any other request header.
        Kind::Other | Kind::Date | Kind::Traceresponse | Kind::Fingerprint | Kind::Security(_) => {
            !facts.connection_names(head.lines, name)
                && !a.route.identity_headers.managed(name)
                && !a
                    .route
                    .upstream
                    .extra_headers()
                    .iter()
                    .any(|(n, _)| n.as_str().as_bytes().eq_ignore_ascii_case(name))
        }
        Kind::Tracestate => a.ctx.record.trace.parent_id.is_some(),
        Kind::ForwardedProto => fwd.keep_proto,
        Kind::ForwardedHost => fwd.keep_host,
        Kind::Forwarded => fwd.trusted,
        Kind::Upgrade => facts.body == BodyKind::Upgrade,
        // Written by write_managed from the proxy's decisions, or never forwarded.
        Kind::Host
        | Kind::Connection
        | Kind::ContentLength
        | Kind::TransferEncoding
        | Kind::Expect
        | Kind::RequestId
        | Kind::Traceparent
        | Kind::ForwardedFor
        | Kind::RealIp
        | Kind::HopByHop
        | Kind::Underscore => false,
    }
}

/// Writes the header lines the proxy manages: host, body framing, request id, trace context,
/// forwarding headers and the upstream's configured headers.
pub fn write_managed(a: &Admitted<'_>, sink: &mut impl HeaderSink) {
    let facts = &a.facts;
    let fwd = &a.forwarding;
    let extra = a.route.upstream.extra_headers();
    if let Some(host) = facts.host {
        sink.header(b"host", host.as_bytes());
    }
    match facts.body {
        BodyKind::Length(n) => {
            sink.header(b"content-length", decimal(n, &mut [0; 20]));
        }
        BodyKind::Chunked => sink.header(b"transfer-encoding", b"chunked"),
        BodyKind::Upgrade => sink.header(b"connection", b"upgrade"),
        BodyKind::None => {}
    }
    sink.header(b"x-request-id", a.ctx.record.request_id.as_bytes());
    sink.header(b"traceparent", &a.ctx.traceparent);
    let xff = fwd.extended_for.as_deref().unwrap_or(a.peer.ip_text);
    sink.header(b"x-forwarded-for", xff.as_bytes());
    if !fwd.keep_proto {
        sink.header(b"x-forwarded-proto", b"http");
    }
    if !fwd.keep_host
        && let Some(host) = facts.host
    {
        sink.header(b"x-forwarded-host", host.as_bytes());
    }
    if fwd.client == a.peer.ip {
        sink.header(b"x-real-ip", a.peer.ip_text.as_bytes());
    } else {
        sink.header(b"x-real-ip", fwd.client.to_string().as_bytes());
    }
    for (name, value) in extra {
        sink.configured(name, value);
    }
    if let Some(identity) = &a.ctx.identity {
        super::identify::write_identity(&a.route.identity_headers, identity, sink);
    }
    let upstream = &a.route.upstream;
    if let Some(header) = &upstream.deadline_header {
        let per_try = upstream.retry.as_ref().and_then(|r| r.try_timeout);
        let wait = per_try.unwrap_or(a.route.timeout).min(a.route.timeout);
        sink.header(
            header.as_str().as_bytes(),
            decimal(wait.as_millis() as u64, &mut [0; 20]),
        );
    }
}

/// `n` in decimal, written at the end of `buf`.
pub(crate) fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let (mut n, mut i) = (n, buf.len());
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}
