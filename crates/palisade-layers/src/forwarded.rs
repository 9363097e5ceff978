//! `X-Forwarded-For`, `-Proto` and `-Host`, and the client address derived from them.
//!
//! Only a peer listed in `server.trusted_proxies` may vouch for the client: its incoming
//! `X-Forwarded-*` headers are kept (the peer is appended to `X-Forwarded-For`). From any other
//! peer the incoming values are discarded and replaced, so a client cannot forge its address.

use std::net::IpAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
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

    /// Sets the forwarding headers for the upstream and returns the client address: the peer
    /// itself, or — behind trusted proxies — the right-most address in `X-Forwarded-For` that
    /// is not a trusted proxy.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        peer: IpAddr,
        host: Option<&HeaderValue>,
    ) -> IpAddr {
        let decided = self.decide(
            peer,
            || {
                headers
                    .get_all(&X_FORWARDED_FOR)
                    .iter()
                    .map(HeaderValue::as_bytes)
            },
            headers.contains_key(&X_FORWARDED_PROTO),
            headers.contains_key(&X_FORWARDED_HOST),
        );
        let xff = match &decided.extended_for {
            Some(chain) => HeaderValue::from_str(chain),
            None => HeaderValue::from_str(&peer.to_canonical().to_string()),
        };
        if let Ok(v) = xff {
            headers.insert(X_FORWARDED_FOR, v);
        }
        if !decided.keep_proto {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if !decided.keep_host {
            match host {
                Some(h) => {
                    headers.insert(X_FORWARDED_HOST, h.clone());
                }
                None => {
                    headers.remove(&X_FORWARDED_HOST);
                }
            }
        }
        decided.client
    }
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

    fn hdrs(pairs: &[(&HeaderName, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append((*k).clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn untrusted_peer_cannot_forge_its_address() {
        let tp = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let mut h = hdrs(&[
            (&X_FORWARDED_FOR, "1.2.3.4"),
            (&X_FORWARDED_PROTO, "https"),
            (&X_FORWARDED_HOST, "evil.example"),
        ]);
        let host = HeaderValue::from_static("api.example.com");
        let client = tp.apply(&mut h, "192.0.2.7".parse().unwrap(), Some(&host));
        assert_eq!(client.to_string(), "192.0.2.7");
        assert_eq!(h.get(&X_FORWARDED_FOR).unwrap(), "192.0.2.7");
        assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "http");
        assert_eq!(h.get(&X_FORWARDED_HOST).unwrap(), "api.example.com");
    }

    #[test]
    fn trusted_peer_extends_the_chain() {
        let tp = TrustedProxies::new(vec!["10.0.0.0/8".parse().unwrap()]);
        let mut h = hdrs(&[
            (&X_FORWARDED_FOR, "203.0.113.9, 10.1.1.1"),
            (&X_FORWARDED_PROTO, "https"),
            (&X_FORWARDED_HOST, "shop.example"),
        ]);
        let client = tp.apply(&mut h, "10.0.0.2".parse().unwrap(), None);
        assert_eq!(client.to_string(), "203.0.113.9");
        assert_eq!(
            h.get(&X_FORWARDED_FOR).unwrap(),
            "203.0.113.9, 10.1.1.1, 10.0.0.2"
        );
        assert_eq!(h.get(&X_FORWARDED_PROTO).unwrap(), "https");
        assert_eq!(h.get(&X_FORWARDED_HOST).unwrap(), "shop.example");
    }
}
