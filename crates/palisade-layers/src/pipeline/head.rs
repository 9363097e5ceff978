//! The borrowed view of a request head that both codecs provide, and the facts read from it
//! once: the host by one rule, the `Connection` tokens of every `Connection` line, the declared
//! body, and every head the proxy refuses (RFC 9110, RFC 9112 §3.2 and §6, RFC 9113 §8.3.1).
//!
//! Nothing here knows httparse or `HeaderMap`: a codec lists the header lines it parsed as
//! [`Line`]s, each classified once by [`kind`], and every later rule reads those.

use http::{Method, Version};

use crate::headers::is_hop_by_hop;

/// What a header line is to the proxy: the headers it reads or manages have a kind of their
/// own; every other end-to-end header is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
    /// `Forwarded` (RFC 7239).
    Forwarded,
    RealIp,
    Date,
    /// `Keep-Alive`, `TE`, `Trailer`, `Proxy-*`: they describe one connection.
    HopByHop,
    /// A name with `_`: dropped, as NGINX does by default, since proxies and frameworks that
    /// fold `_` into `-` let a client smuggle a managed header past the proxy.
    Underscore,
    /// `Server`, `X-Powered-By`: what software an upstream runs; not passed to clients.
    Fingerprint,
    /// A response header Palisade adds when the upstream did not ([`SecurityHeader`]).
    Security(SecurityHeader),
    Other,
}

/// The security headers Palisade adds to responses that lack them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityHeader {
    ContentTypeOptions,
    ReferrerPolicy,
    StrictTransportSecurity,
    FrameOptions,
}

impl SecurityHeader {
    pub fn name(self) -> &'static str {
        match self {
            Self::ContentTypeOptions => "x-content-type-options",
            Self::ReferrerPolicy => "referrer-policy",
            Self::StrictTransportSecurity => "strict-transport-security",
            Self::FrameOptions => "x-frame-options",
        }
    }

    /// One bit per header, for a set of those a response has.
    pub fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// Classifies a header name, case-insensitively.
pub fn kind(name: &[u8]) -> Kind {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let k = match name.len() {
        4 if is("host") => Kind::Host,
        4 if is("date") => Kind::Date,
        6 if is("expect") => Kind::Expect,
        7 if is("upgrade") => Kind::Upgrade,
        9 if is("forwarded") => Kind::Forwarded,
        9 if is("x-real-ip") => Kind::RealIp,
        6 if is("server") => Kind::Fingerprint,
        12 if is("x-powered-by") => Kind::Fingerprint,
        22 if is("x-content-type-options") => Kind::Security(SecurityHeader::ContentTypeOptions),
        15 if is("referrer-policy") => Kind::Security(SecurityHeader::ReferrerPolicy),
        25 if is("strict-transport-security") => {
            Kind::Security(SecurityHeader::StrictTransportSecurity)
        }
        15 if is("x-frame-options") => Kind::Security(SecurityHeader::FrameOptions),
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
    if k != Kind::Other {
        k
    } else if is_hop_by_hop(name) {
        Kind::HopByHop
    } else if name.contains(&b'_') {
        Kind::Underscore
    } else {
        Kind::Other
    }
}

/// One header line as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub kind: Kind,
}

impl<'a> Line<'a> {
    pub fn new(name: &'a [u8], value: &'a [u8]) -> Self {
        Self {
            name,
            value,
            kind: kind(name),
        }
    }
}

/// A request head as a codec parsed it, borrowed from the codec's buffers.
pub struct RequestHead<'a> {
    pub method: &'a Method,
    /// The path and query as received, e.g. `/a/b?x=1` (origin form; for an absolute-form
    /// target or HTTP/2, the URI's path and query).
    pub target: &'a str,
    /// The authority of an absolute-form target (HTTP/1.1) or `:authority` (HTTP/2).
    pub authority: Option<&'a str>,
    pub version: Version,
    /// Every header line, repeated names included.
    pub lines: &'a [Line<'a>],
}

impl<'a> RequestHead<'a> {
    /// The first value of header `name`, in any case.
    pub fn value(&self, name: &str) -> Option<&'a [u8]> {
        self.lines
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|l| l.value)
    }
}

/// How the request declares its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    /// `Content-Length` (0 included: it is forwarded, as some apps require it on a POST).
    Length(u64),
    /// Ends with the last chunk (HTTP/1.1) or the end of the stream (HTTP/2, no length given).
    Chunked,
    /// `Connection: upgrade` with `Upgrade`: the connection becomes a tunnel after the head.
    Upgrade,
}

impl BodyKind {
    /// No body bytes follow the head.
    pub fn is_empty(self) -> bool {
        matches!(self, Self::None | Self::Length(0))
    }
}

/// Why a request head is refused with 400; logged, never shown to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadHead {
    #[error("no Host header")]
    MissingHost,
    #[error("more than one Host header")]
    DuplicateHost,
    #[error("the Host header is not a valid host[:port]")]
    InvalidHost,
    #[error("the Host header disagrees with the HTTP/2 :authority")]
    AuthorityMismatch,
    #[error("the Content-Length is not one line with one non-negative decimal number")]
    InvalidContentLength,
    #[error("both Content-Length and Transfer-Encoding")]
    LengthAndTransferEncoding,
    #[error("a Transfer-Encoding whose last coding is not chunked")]
    UnsupportedTransferEncoding,
    #[error("the path cannot be normalized: {0}")]
    Path(#[from] super::path::BadPath),
}

/// The facts of a head that the rules read, found in one pass over its lines.
pub struct Facts<'a> {
    /// The request's host[:port]: the absolute-form authority or `:authority` when there is
    /// one, else the one `Host` line. `None` only for HTTP/1.0 without `Host`.
    pub host: Option<&'a str>,
    pub body: BodyKind,
    /// Some `Connection` line says `close` (or the request is HTTP/1.0 without `keep-alive`).
    pub close: bool,
    /// Some `Connection` line names another header, which is then not forwarded.
    names_headers: bool,
    pub expect: bool,
    pub request_id: Option<&'a [u8]>,
    pub traceparent: Option<&'a [u8]>,
    pub has_forwarded_proto: bool,
    pub has_forwarded_host: bool,
}

impl<'a> Facts<'a> {
    /// Reads the facts of `head`, or why it is refused.
    pub fn read(head: &RequestHead<'a>) -> Result<Self, BadHead> {
        let mut host_line = None;
        let mut close = head.version == Version::HTTP_10;
        let (mut upgrade_token, mut names_headers) = (false, false);
        let (mut length, mut chunked, mut upgrade) = (None::<u64>, None::<bool>, false);
        let mut facts = Facts {
            host: None,
            body: BodyKind::None,
            close: false,
            names_headers: false,
            expect: false,
            request_id: None,
            traceparent: None,
            has_forwarded_proto: false,
            has_forwarded_host: false,
        };
        for line in head.lines {
            match line.kind {
                Kind::Host if host_line.is_some() => return Err(BadHead::DuplicateHost),
                Kind::Host => host_line = Some(line.value),
                Kind::Connection => {
                    let said = ConnectionValue::read(line.value);
                    if said.close {
                        close = true;
                    } else if said.keep_alive && head.version == Version::HTTP_10 {
                        close = false;
                    }
                    upgrade_token |= said.upgrade;
                    names_headers |= said.names_other;
                }
                // One line, one number: NGINX and hyper refuse lists and repeats, even of
                // equal values, so the fast codec does too (RFC 9110 §8.6 allows either).
                Kind::ContentLength if length.is_some() => {
                    return Err(BadHead::InvalidContentLength);
                }
                Kind::ContentLength => {
                    let n = parse_length(line.value.trim_ascii())
                        .ok_or(BadHead::InvalidContentLength)?;
                    length = Some(n);
                }
                Kind::TransferEncoding => {
                    let last = line.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                    chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                }
                // Only WebSocket is tunnelled; another protocol's Upgrade is dropped like any
                // hop-by-hop header and the request goes through as a plain one.
                Kind::Upgrade => {
                    upgrade |= line.value.trim_ascii().eq_ignore_ascii_case(b"websocket")
                }
                Kind::Expect => facts.expect = true,
                Kind::RequestId if facts.request_id.is_none() => {
                    facts.request_id = Some(line.value)
                }
                Kind::Traceparent if facts.traceparent.is_none() => {
                    facts.traceparent = Some(line.value)
                }
                Kind::ForwardedProto => facts.has_forwarded_proto = true,
                Kind::ForwardedHost => facts.has_forwarded_host = true,
                _ => {}
            }
        }
        facts.close = close;
        facts.names_headers = names_headers;
        facts.host = host(head, host_line)?;
        facts.body = match (chunked, length) {
            (Some(_), Some(_)) => return Err(BadHead::LengthAndTransferEncoding),
            (Some(false), None) => return Err(BadHead::UnsupportedTransferEncoding),
            _ if upgrade && upgrade_token && head.version == Version::HTTP_11 => BodyKind::Upgrade,
            (Some(true), None) => BodyKind::Chunked,
            (None, None) => BodyKind::None,
            (None, Some(n)) => BodyKind::Length(n),
        };
        Ok(facts)
    }

    /// True when `name` is named by a `Connection` line of `lines` (the head these facts came
    /// from), so it describes the client's connection and is not forwarded.
    pub fn connection_names(&self, lines: &[Line<'_>], name: &[u8]) -> bool {
        self.names_headers
            && connection_names(
                lines
                    .iter()
                    .filter(|l| l.kind == Kind::Connection)
                    .map(|l| l.value),
                name,
            )
    }
}

/// What one `Connection` value says, in requests and responses alike.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionValue {
    pub close: bool,
    pub keep_alive: bool,
    pub upgrade: bool,
    /// It names another header, which then describes this connection only.
    pub names_other: bool,
}

impl ConnectionValue {
    pub fn read(value: &[u8]) -> Self {
        let mut said = Self::default();
        for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            if token.eq_ignore_ascii_case(b"close") {
                said.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                said.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                said.upgrade = true;
            } else if !token.is_empty() {
                said.names_other = true;
            }
        }
        said
    }
}

/// True when one of `connection_values` (the values of every `Connection` line) names `name`.
pub fn connection_names<'a>(
    mut connection_values: impl Iterator<Item = &'a [u8]>,
    name: &[u8],
) -> bool {
    connection_values.any(|v| {
        v.split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(name))
    })
}

/// A `Content-Length` value: ASCII digits only (no sign, no spaces inside), at most 19 of them.
pub fn parse_length(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The one rule for the request's host (RFC 9112 §3.2, RFC 9113 §8.3.1).
fn host<'a>(head: &RequestHead<'a>, line: Option<&'a [u8]>) -> Result<Option<&'a str>, BadHead> {
    let line = match line {
        Some(v) => Some(
            std::str::from_utf8(v)
                .ok()
                .filter(|h| valid_host(h))
                .ok_or(BadHead::InvalidHost)?,
        ),
        None => None,
    };
    if let Some(authority) = head.authority {
        if !valid_host(authority) {
            return Err(BadHead::InvalidHost);
        }
        // An absolute-form target's authority wins over Host; on HTTP/2 they must agree.
        if head.version == Version::HTTP_2
            && line.is_some_and(|h| !h.eq_ignore_ascii_case(authority))
        {
            return Err(BadHead::AuthorityMismatch);
        }
        return Ok(Some(authority));
    }
    match line {
        None if head.version != Version::HTTP_10 => Err(BadHead::MissingHost),
        other => Ok(other),
    }
}

/// `host[:port]` where host is a reg-name (RFC 3986 letters, digits, `-._~%!$&'()*+;=`, no
/// comma), an IPv4 address or a bracketed IPv6 address, and port is 1 to 5 digits.
pub fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b":.".contains(&b))
        {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("v6", Some(port)),
                None => return false,
            },
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (h, None),
        }
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+;=".contains(&b));
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts_of(
        version: Version,
        authority: Option<&str>,
        raw: &[(&str, &str)],
    ) -> Result<BodyKind, BadHead> {
        let lines: Vec<Line<'_>> = raw
            .iter()
            .map(|(n, v)| Line::new(n.as_bytes(), v.as_bytes()))
            .collect();
        let head = RequestHead {
            method: &Method::POST,
            target: "/",
            authority,
            version,
            lines: &lines,
        };
        Facts::read(&head).map(|f| f.body)
    }

    #[test]
    fn host_rules_follow_rfc_9112() {
        let v11 = Version::HTTP_11;
        assert_eq!(facts_of(v11, None, &[]), Err(BadHead::MissingHost));
        assert_eq!(facts_of(Version::HTTP_10, None, &[]), Ok(BodyKind::None));
        for bad in [
            "", "a b", "a/b", "a,b", "a:x", "a:123456", "[::1", "[zz]", "a\\b", ":80",
        ] {
            assert_eq!(
                facts_of(v11, None, &[("host", bad)]),
                Err(BadHead::InvalidHost),
                "{bad:?}"
            );
        }
        for good in [
            "a",
            "a.example:8080",
            "127.0.0.1",
            "[::1]",
            "[::1]:80",
            "xn--bcher-kva.example",
        ] {
            assert_eq!(
                facts_of(v11, None, &[("Host", good)]),
                Ok(BodyKind::None),
                "{good:?}"
            );
        }
        assert_eq!(
            facts_of(v11, None, &[("host", "a"), ("HOST", "a")]),
            Err(BadHead::DuplicateHost)
        );
        // Absolute form: the authority wins; HTTP/2: they must agree.
        assert_eq!(
            facts_of(v11, Some("b"), &[("host", "a")]),
            Ok(BodyKind::None)
        );
        assert_eq!(
            facts_of(Version::HTTP_2, Some("b"), &[("host", "a")]),
            Err(BadHead::AuthorityMismatch)
        );
        assert_eq!(
            facts_of(Version::HTTP_2, Some("b"), &[("host", "B")]),
            Ok(BodyKind::None)
        );
    }

    #[test]
    fn body_framing_follows_rfc_9112() {
        let v11 = Version::HTTP_11;
        let h = ("host", "a");
        let body = |extra: &[(&'static str, &'static str)]| {
            let mut all = vec![h];
            all.extend_from_slice(extra);
            facts_of(v11, None, &all)
        };
        assert_eq!(body(&[("content-length", "5")]), Ok(BodyKind::Length(5)));
        assert_eq!(
            body(&[("content-length", "5, 5")]),
            Err(BadHead::InvalidContentLength)
        );
        assert_eq!(
            body(&[("content-length", "5"), ("content-length", "5")]),
            Err(BadHead::InvalidContentLength)
        );
        assert_eq!(body(&[("content-length", "0")]), Ok(BodyKind::Length(0)));
        for bad in [
            "+5",
            "-1",
            "5, 6",
            "0x5",
            "",
            " ",
            "5 5",
            "99999999999999999999",
        ] {
            assert_eq!(
                body(&[("content-length", bad)]),
                Err(BadHead::InvalidContentLength),
                "{bad:?}"
            );
        }
        assert_eq!(
            body(&[("content-length", "5"), ("content-length", "6")]),
            Err(BadHead::InvalidContentLength)
        );
        assert_eq!(
            body(&[("transfer-encoding", "chunked")]),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            body(&[("transfer-encoding", "gzip, chunked")]),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            body(&[("transfer-encoding", "chunked, gzip")]),
            Err(BadHead::UnsupportedTransferEncoding)
        );
        assert_eq!(
            body(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
            Err(BadHead::LengthAndTransferEncoding)
        );
        assert_eq!(
            body(&[("connection", "Upgrade"), ("upgrade", "websocket")]),
            Ok(BodyKind::Upgrade)
        );
        assert_eq!(body(&[("upgrade", "websocket")]), Ok(BodyKind::None));
    }

    #[test]
    fn every_connection_line_counts() {
        let raw = [
            ("host", "a"),
            ("connection", "keep-alive"),
            ("connection", "x-secret, close"),
            ("x-secret", "1"),
        ];
        let lines: Vec<Line<'_>> = raw
            .iter()
            .map(|(n, v)| Line::new(n.as_bytes(), v.as_bytes()))
            .collect();
        let head = RequestHead {
            method: &Method::GET,
            target: "/",
            authority: None,
            version: Version::HTTP_11,
            lines: &lines,
        };
        let f = Facts::read(&head).unwrap();
        assert!(f.close);
        assert!(f.connection_names(&lines, b"X-Secret"));
        assert!(!f.connection_names(&lines, b"host-x"));
    }

    #[test]
    fn names_are_classified_once_whatever_their_case() {
        assert_eq!(kind(b"X-Forwarded-For"), Kind::ForwardedFor);
        assert_eq!(kind(b"x_forwarded_for"), Kind::Underscore);
        assert_eq!(kind(b"Proxy-Authorization"), Kind::HopByHop);
        assert_eq!(kind(b"FORWARDED"), Kind::Forwarded);
        assert_eq!(kind(b"accept"), Kind::Other);
    }
}
