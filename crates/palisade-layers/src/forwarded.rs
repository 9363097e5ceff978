//! `X-Forwarded-For`, `-Proto` and `-Host`, `Forwarded` (RFC 7239), and the client address
//! derived from them.
//!
//! Only a peer listed in `server.trusted_proxies` may vouch for the client: its incoming
//! `X-Forwarded-*` headers are kept (the peer is appended to `X-Forwarded-For`). From any other
//! peer the incoming values are discarded and replaced, so a client cannot forge its address.

use std::net::IpAddr;

use http::HeaderName;
use ipnet::IpNet;

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Peers trusted to set `X-Forwarded-*`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Decides the forwarding headers from the incoming ones, given as bytes: `xff` lists the
    /// incoming `X-Forwarded-For` values (called only for a trusted peer), `has_proto` and `has_host` tell whether
    /// `X-Forwarded-Proto` and `-Host` came in. Shared by both request paths.
    pub fn decide<'a, I: Iterator<Item = &'a [u8]>>(
        &self,
        peer: IpAddr,
        xff: impl Fn() -> I,
        has_proto: bool,
        has_host: bool,
    ) -> Forwarding {
        let peer = peer.to_canonical();
        let trusted = self.contains(peer);
        let mut client = peer;
        let mut prior = None;
        if trusted {
            let chain: Vec<IpAddr> = xff()
                .filter_map(|v| std::str::from_utf8(v).ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .collect();
            if let Some(ip) = chain.iter().rev().find(|ip| !self.contains(**ip)) {
                client = *ip;
            } else if let Some(first) = chain.first() {
                client = *first;
            }
            // Several X-Forwarded-For lines are one list, in order.
            let mut chain = String::new();
            for v in xff()
                .filter_map(|v| std::str::from_utf8(v).ok())
                .map(str::trim)
            {
                if !v.is_empty() {
                    chain.push_str(v);
                    chain.push_str(", ");
                }
            }
            if !chain.is_empty() {
                chain.push_str(&peer.to_string());
                prior = Some(chain);
            }
        }
        Forwarding {
            trusted,
            client,
            extended_for: prior,
            keep_proto: trusted && has_proto,
            keep_host: trusted && has_host,
        }
    }
}

impl TrustedProxies {
    /// The client address a trusted peer's `Forwarded` lines (RFC 7239) give, read when it
    /// sent no `X-Forwarded-For`: the right-most `for=` address that is not a trusted proxy,
    /// else the first one. Obfuscated identifiers and `unknown` are skipped; `None` when no
    /// element names an address.
    pub fn client_from_forwarded<'a>(
        &self,
        lines: impl Iterator<Item = &'a [u8]>,
    ) -> Option<IpAddr> {
        let chain: Vec<IpAddr> = lines
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(','))
            .filter_map(forwarded_for)
            .collect();
        chain
            .iter()
            .rev()
            .find(|ip| !self.contains(**ip))
            .or(chain.first())
            .copied()
    }
}

/// The address of one `Forwarded` element's `for=` parameter: `for=192.0.2.60`,
/// `for="192.0.2.60:8080"`, `for="[2001:db8::1]:4711"`.
fn forwarded_for(element: &str) -> Option<IpAddr> {
    let value = element.split(';').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("for")
            .then_some(value.trim())
    })?;
    let value = value.trim_matches('"');
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    // An IPv4 address may carry a port; a bare IPv6 address is not valid here (RFC 7239 §6).
    value.split(':').next()?.parse().ok()
}

/// What the gateway sends upstream about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forwarding {
    /// The peer is a trusted proxy: its forwarding headers (`Forwarded` too) are kept.
    pub trusted: bool,
    /// The client address for logs and limits.
    pub client: IpAddr,
    /// `X-Forwarded-For` when a trusted peer sent one: its value with the peer appended.
    /// `None` means the value is the peer's address alone.
    pub extended_for: Option<String>,
    /// Keep the incoming `X-Forwarded-Proto` (a trusted peer sent it); else send "http".
    pub keep_proto: bool,
    /// Keep the incoming `X-Forwarded-Host` (a trusted peer sent it); else send the `Host`.
    pub keep_host: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(tp: &TrustedProxies, peer: &str, xff: &[&str]) -> Forwarding {
        let lines: Vec<&[u8]> = xff.iter().map(|v| v.as_bytes()).collect();
        tp.decide(peer.parse().unwrap(), || lines.iter().copied(), true, true)
    }

    #[test]
    fn an_untrusted_peer_cannot_forge_its_address() {
        let tp = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let f = decide(&tp, "192.0.2.7", &["1.2.3.4"]);
        assert_eq!(f.client.to_string(), "192.0.2.7");
        assert_eq!(f.extended_for, None, "the peer's address alone");
        assert!(!f.trusted && !f.keep_proto && !f.keep_host);
    }

    #[test]
    fn a_trusted_peers_forwarded_header_names_the_client() {
        let tp = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let client = |lines: &[&str]| {
            tp.client_from_forwarded(lines.iter().map(|l| l.as_bytes()))
                .map(|ip| ip.to_string())
        };
        assert_eq!(
            client(&["for=192.0.2.60;proto=https, for=10.1.1.1"]).as_deref(),
            Some("192.0.2.60")
        );
        assert_eq!(
            client(&["for=\"[2001:db8::1]:4711\""]).as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(
            client(&["For=\"198.51.100.7:8080\";by=10.0.0.1"]).as_deref(),
            Some("198.51.100.7")
        );
        // Two lines are one list; the right-most untrusted hop wins.
        assert_eq!(
            client(&["for=203.0.113.1", "for=203.0.113.2, for=10.0.0.9"]).as_deref(),
            Some("203.0.113.2")
        );
        assert_eq!(client(&["for=unknown", "for=_hidden"]), None);
        assert_eq!(
            client(&["for=10.0.0.3"]).as_deref(),
            Some("10.0.0.3"),
            "only trusted hops: the first"
        );
    }

    #[test]
    fn a_trusted_peer_extends_the_chain() {
        let tp = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        // Several lines are one list, in order; the client is the right-most untrusted hop.
        let f = decide(&tp, "10.0.0.2", &["203.0.113.9", "10.1.1.1"]);
        assert_eq!(f.client.to_string(), "203.0.113.9");
        assert_eq!(
            f.extended_for.as_deref(),
            Some("203.0.113.9, 10.1.1.1, 10.0.0.2")
        );
        assert!(f.trusted && f.keep_proto && f.keep_host);
    }
}
