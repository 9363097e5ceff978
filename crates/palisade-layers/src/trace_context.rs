//! W3C Trace Context (`traceparent`, `tracestate`): keep a valid incoming context, else start
//! one; either way the gateway is a span of its own, and the upstream sees that span as parent.
//!
//! A malformed `traceparent` is replaced by a new trace and its `tracestate` dropped, as the
//! specification asks. The gateway's span is returned to the client in `traceresponse`
//! (Trace Context Level 2) so a caller can find the trace of a failed request.

use http::HeaderName;

use crate::hex;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const TRACERESPONSE: HeaderName = HeaderName::from_static("traceresponse");

/// The trace context of one request as the gateway sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: [u8; 32],
    /// The gateway's own span, sent upstream as the parent id.
    pub span_id: [u8; 16],
    /// The caller's span, when the request carried a valid context.
    pub parent_id: Option<[u8; 16]>,
    pub flags: [u8; 2],
}

impl TraceContext {
    /// Continues the incoming `traceparent` when valid; otherwise starts a new, sampled trace.
    pub fn from_traceparent(traceparent: Option<&[u8]>) -> Self {
        let span_id = new_span_id();
        match traceparent.and_then(parse) {
            Some((trace_id, parent, flags)) => Self {
                trace_id,
                span_id,
                parent_id: Some(parent),
                flags,
            },
            None => Self {
                trace_id: new_trace_id(),
                span_id,
                parent_id: None,
                flags: *b"01",
            },
        }
    }

    pub fn trace_id(&self) -> &str {
        std::str::from_utf8(&self.trace_id).unwrap_or_default()
    }

    pub fn span_id(&self) -> &str {
        std::str::from_utf8(&self.span_id).unwrap_or_default()
    }

    /// `00-<trace id>-<gateway span id>-<flags>`: the value for the upstream and `traceresponse`.
    pub fn header_bytes(&self) -> [u8; 55] {
        let mut out = [0u8; 55];
        out[..3].copy_from_slice(b"00-");
        out[3..35].copy_from_slice(&self.trace_id);
        out[35] = b'-';
        out[36..52].copy_from_slice(&self.span_id);
        out[52] = b'-';
        out[53..].copy_from_slice(&self.flags);
        out
    }
}

/// Parses a `traceparent` value: (trace id, parent id, flags) when valid.
fn parse(v: &[u8]) -> Option<([u8; 32], [u8; 16], [u8; 2])> {
    // version "00" is exactly 55 bytes; later versions may append "-..." fields.
    if v.len() < 55 || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let (version, trace, parent, flags) = (&v[0..2], &v[3..35], &v[36..52], &v[53..55]);
    let dashes = v[2] == b'-' && v[35] == b'-' && v[52] == b'-';
    let hexes = [version, trace, parent, flags]
        .iter()
        .all(|s| hex::is_lower_hex(s));
    if !dashes || !hexes || version == b"ff" || (version == b"00" && v.len() != 55) {
        return None;
    }
    if trace.iter().all(|&b| b == b'0') || parent.iter().all(|&b| b == b'0') {
        return None;
    }
    Some((
        trace.try_into().ok()?,
        parent.try_into().ok()?,
        flags.try_into().ok()?,
    ))
}

fn new_trace_id() -> [u8; 32] {
    hex::encode_u128(rand::random::<u128>() | 1)
}

fn new_span_id() -> [u8; 16] {
    hex::encode_u64(rand::random::<u64>() | 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn continues_a_valid_trace_with_a_child_span() {
        let ctx = TraceContext::from_traceparent(Some(VALID));
        assert_eq!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(ctx.span_id(), "00f067aa0ba902b7");
        assert!(ctx.parent_id.is_some());
        let sent = String::from_utf8(ctx.header_bytes().to_vec()).unwrap();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(sent.ends_with("-01"));
        assert!(
            !sent.contains("00f067aa0ba902b7"),
            "the gateway's span is the parent"
        );
    }

    #[test]
    fn replaces_a_malformed_context_with_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let ctx = TraceContext::from_traceparent(Some(bad.as_bytes()));
            // No parent: the request's `tracestate` is not forwarded (pipeline::forward).
            assert_eq!(ctx.parent_id, None, "{bad}");
            assert_ne!(ctx.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
    }

    #[test]
    fn accepts_future_versions_with_extra_fields() {
        let v = b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abc";
        assert!(TraceContext::from_traceparent(Some(v)).parent_id.is_some());
    }
}
