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

    /// Sets the forwarding headers for the upstream and returns the client address: the peer
    /// itself, or — behind trusted proxies — the right-most address in `X-Forwarded-For` that
    /// is not a trusted proxy.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        peer: IpAddr,
        host: Option<&HeaderValue>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        let trusted = self.contains(peer);
        let mut client = peer;
        if trusted {
            let chain: Vec<IpAddr> = headers
                .get_all(&X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .collect();
            if let Some(ip) = chain.iter().rev().find(|ip| !self.contains(**ip)) {
                client = *ip;
            } else if let Some(first) = chain.first() {
                client = *first;
            }
        }
        let appended = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            Some(prior) if trusted && !prior.trim().is_empty() => format!("{prior}, {peer}"),
            _ => peer.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&appended) {
            headers.insert(X_FORWARDED_FOR, v);
        }
        if !trusted || !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        }
        if !trusted || !headers.contains_key(&X_FORWARDED_HOST) {
            match host {
                Some(h) => {
                    headers.insert(X_FORWARDED_HOST, h.clone());
                }
                None => {
                    headers.remove(&X_FORWARDED_HOST);
                }
            }
        }
        client
    }
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
