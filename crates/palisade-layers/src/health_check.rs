//! Active health checks (`[upstreams.NAME.health_check]`): every `interval`, each endpoint is
//! asked `GET path` on a connection of its own; a status from 200 to 399 within `timeout`
//! passes. Failed or passed checks in a row move the endpoint out of the rotation and back in
//! ([`Endpoint::checked`]); `/ready` counts only healthy endpoints. The checks never run on a
//! request's path, and stop when the snapshot that started them is replaced.

use std::sync::{Arc, Weak};
use std::time::Duration;

use palisade_config::HealthCheckConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::pool::Endpoint;
use crate::upstream::Upstream;

/// Most bytes read looking for the status line.
const STATUS_LINE_MAX: usize = 1024;

/// Checks `upstream`'s endpoints as `cfg` says until the upstream is dropped (a reload built
/// a new one, which has its own checks). Does nothing outside a tokio runtime.
pub fn spawn(upstream: &Arc<Upstream>, cfg: &HealthCheckConfig) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let weak: Weak<Upstream> = Arc::downgrade(upstream);
    let cfg = cfg.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(cfg.interval.get());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(upstream) = weak.upgrade() else {
                return;
            };
            // The endpoints of one round are asked side by side.
            let mut round = tokio::task::JoinSet::new();
            for endpoint in upstream.endpoints() {
                let (endpoint, cfg, name) = (endpoint.clone(), cfg.clone(), upstream.name.clone());
                let metrics = upstream.metrics.clone();
                round.spawn(async move {
                    let ok = passes(&endpoint, &cfg.path, cfg.timeout.get()).await;
                    let changed =
                        endpoint.checked(ok, cfg.unhealthy_threshold, cfg.healthy_threshold);
                    if changed && ok {
                        tracing::info!(upstream = %name, endpoint = %endpoint.authority, "endpoint healthy again: back in rotation");
                    } else if changed {
                        metrics.ejected("health_check");
                        tracing::warn!(upstream = %name, endpoint = %endpoint.authority, path = %cfg.path, "endpoint failed its health checks: out of rotation");
                    }
                });
            }
            drop(upstream);
            while round.join_next().await.is_some() {}
        }
    });
}

/// Whether `endpoint` answers `GET path` with a status from 200 to 399 within `timeout`.
pub async fn passes(endpoint: &Endpoint, path: &str, timeout: Duration) -> bool {
    let authority = endpoint.authority.as_str();
    let ask = async {
        let mut stream = TcpStream::connect(authority).await.ok()?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nhost: {authority}\r\nuser-agent: palisade-health-check\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut buf = [0u8; STATUS_LINE_MAX];
        let mut filled = 0;
        loop {
            let n = stream.read(&mut buf[filled..]).await.ok()?;
            if n == 0 {
                return None;
            }
            filled += n;
            if let Some(end) = buf[..filled].windows(2).position(|w| w == b"\r\n") {
                return status(&buf[..end]);
            }
            if filled == buf.len() {
                return None;
            }
        }
    };
    matches!(
        tokio::time::timeout(timeout, ask).await,
        Ok(Some(200..=399))
    )
}

/// The status of a status line `HTTP/1.x NNN reason`.
fn status(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(status(b"HTTP/1.1 200 OK"), Some(200));
        assert_eq!(status(b"HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(status(b"HTTP/1.1 204"), Some(204));
        for bad in [
            &b"HTTP/2 200"[..],
            b"HTTP/1.1 20",
            b"HTTP/1.1 2x0 OK",
            b"SSH-2.0-OpenSSH",
            b"",
        ] {
            assert_eq!(status(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn thresholds_move_an_endpoint_out_and_back() {
        let endpoint = Endpoint::new(
            http::uri::Authority::from_static("127.0.0.1:9"),
            1,
            Duration::from_secs(1),
            Duration::from_secs(1),
        );
        assert!(!endpoint.checked(false, 2, 3));
        assert!(!endpoint.is_unhealthy());
        assert!(endpoint.checked(false, 2, 3));
        assert!(endpoint.is_unhealthy() && endpoint.skipped());
        // A pass resets the failures; three in a row bring it back.
        assert!(!endpoint.checked(true, 2, 3));
        assert!(!endpoint.checked(false, 2, 3));
        assert!(!endpoint.checked(true, 2, 3));
        assert!(!endpoint.checked(true, 2, 3));
        assert!(endpoint.checked(true, 2, 3));
        assert!(!endpoint.is_unhealthy());
    }
}
