//! Request headers Palisade manages itself, which `upstreams.*.request_headers` may not set.
//!
//! The proxy sets, rewrites or strips these on every request: a configured value would either
//! be overwritten (and silently do nothing) or, worse, win over what Palisade derives from the
//! client connection and let the config forge forwarding, tracing or framing information.
//! The proxy uses the same list, so what the config refuses and what the proxy owns cannot
//! drift apart.

/// Request header names Palisade manages, lowercase (as `http::HeaderName::as_str` gives them);
/// compare case-insensitively. Besides these, validation refuses header names containing `_`.
pub const MANAGED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-real-ip",
    "x-request-id",
    "traceparent",
    "tracestate",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Why a configured request header `name` cannot be set, or `None` when it can. `name` may be
/// in any case.
pub(crate) fn managed_reason(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let reason = match lower.as_str() {
        "host" => "Palisade forwards the Host the client sent",
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "forwarded"
        | "x-real-ip" => {
            "Palisade sets the forwarding headers from the client connection (extending them only \
             from server.trusted_proxies)"
        }
        "x-request-id" => "Palisade sets the request id on every request",
        "traceparent" | "tracestate" => "Palisade propagates the trace context of every request",
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer"
        | "transfer-encoding" | "upgrade" => {
            "it is a hop-by-hop header: it describes one connection and Palisade sets it for the \
             connection to the upstream"
        }
        "content-length" => "Palisade frames the request body itself",
        _ if lower.contains('_') => {
            "header names with \"_\" are refused: many servers drop them or treat \"_\" and \"-\" \
             alike (CGI-style), so one could pass for another header; use \"-\""
        }
        _ => return None,
    };
    Some(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_managed_header_has_a_reason_in_any_case() {
        for name in MANAGED_REQUEST_HEADERS {
            assert_eq!(*name, name.to_ascii_lowercase());
            assert!(managed_reason(name).is_some(), "{name}");
            assert!(
                managed_reason(&name.to_ascii_uppercase()).is_some(),
                "{name}"
            );
        }
        assert!(managed_reason("X_Api_Key").is_some());
        for free in [
            "Authorization",
            "X-Api-Key",
            "Cookie",
            "X-Forwarded-Client-Cert",
        ] {
            assert_eq!(managed_reason(free), None, "{free}");
        }
    }
}
