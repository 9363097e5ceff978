//! The client's response headers: which of the upstream's go on. Both codecs ask [`keeps`];
//! the headers Palisade sets on every response (`X-Request-Id`, `traceresponse`, `Date` when
//! missing, one `Content-Length`, the route's security headers the upstream left out) are
//! written by each codec after them.

use super::head::Kind;

/// Whether an upstream response header of `kind` goes on to the client. `connection_named`
/// tells whether a `Connection` line of the response names it (asked only when it matters).
/// `switching`: a `101` to a WebSocket handshake, whose `Upgrade` goes on.
pub fn keeps(kind: Kind, connection_named: impl FnOnce() -> bool, switching: bool) -> bool {
    match kind {
        // Hop-by-hop, or set by Palisade itself. `Content-Length` is written again by the
        // codec as one value (`5, 5` goes out as 5, RFC 9110 §8.6).
        Kind::Connection
        | Kind::TransferEncoding
        | Kind::HopByHop
        | Kind::RequestId
        | Kind::Traceresponse
        | Kind::ContentLength => false,
        // What software the upstream runs is nobody's business.
        Kind::Fingerprint => false,
        Kind::Upgrade => switching,
        _ => !connection_named(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::head::kind;

    #[test]
    fn hop_by_hop_and_managed_headers_stop_here() {
        for name in [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "x-request-id",
            "traceresponse",
            "proxy-authenticate",
            "server",
            "X-Powered-By",
        ] {
            assert!(!keeps(kind(name.as_bytes()), || false, false), "{name}");
        }
        assert!(keeps(kind(b"content-type"), || false, false));
        assert!(!keeps(kind(b"x-secret"), || true, false));
        assert!(!keeps(kind(b"upgrade"), || false, false));
        assert!(keeps(kind(b"upgrade"), || false, true));
        let lines: [&[u8]; 2] = [b"keep-alive", b"X-Secret , close"];
        let names = |name| crate::pipeline::head::connection_names(lines.iter().copied(), name);
        assert!(names(b"x-secret"));
        assert!(!names(b"x-other"));
    }
}
