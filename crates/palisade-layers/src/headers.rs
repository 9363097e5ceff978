//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so a proxy does not
//! forward them, nor the headers a `Connection` line names. The pipeline's header rules
//! ([`crate::pipeline::head::kind`]) classify names with [`is_hop_by_hop`].

/// Header names that describe one connection (besides those a `Connection` line names).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// True when `name` is a hop-by-hop header (`Upgrade` included), compared without regard to
/// case.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    HOP_BY_HOP
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_hop_by_hop_headers_in_any_case() {
        for name in [
            "Connection",
            "KEEP-ALIVE",
            "te",
            "Upgrade",
            "Proxy-Authorization",
        ] {
            assert!(is_hop_by_hop(name.as_bytes()), "{name}");
        }
        assert!(!is_hop_by_hop(b"x-kept"));
        assert!(!is_hop_by_hop(b"authorization"));
    }
}
