//! The codecs: they parse bytes into the pipeline's request view and serialize what the
//! pipeline decided, and decide nothing else.
//!
//! - [`fast`]: a hand-written HTTP/1.1 codec for the common request (no request body or one
//!   framed by `Content-Length`, an HTTP/1.1 upstream), socket to socket in the connection's
//!   task.
//! - [`general`]: hyper, for everything else (HTTP/2, chunked bodies, upgrades, HTTP/1.0).

pub mod fast;
pub mod general;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// A route's timeout while its request body uploads: it stands still while the upload waits
/// for the client (a stalled client meets `server.request_body_timeout` instead, 408) and
/// runs from the last bytes that moved, so an upload that keeps moving is never cut by it;
/// after the upload it is the wait for the response head, as NGINX's `proxy_read_timeout`
/// starts once the request is sent.
pub struct RouteDeadline {
    origin: Instant,
    timeout: Duration,
    /// Nanoseconds after `origin`; [`PAUSED`] while the upload waits for the client.
    at: AtomicU64,
}

const PAUSED: u64 = u64::MAX;

impl RouteDeadline {
    pub fn new(timeout: Duration) -> Self {
        let origin = Instant::now();
        let deadline = Self {
            origin,
            timeout,
            at: AtomicU64::new(0),
        };
        deadline.moved();
        deadline
    }

    /// The body moved: the timeout runs again from now.
    pub fn moved(&self) {
        let at = self.origin.elapsed() + self.timeout;
        let nanos = u64::try_from(at.as_nanos()).unwrap_or(u64::MAX);
        self.at.store(nanos, Ordering::Relaxed);
    }

    /// The upload waits for the client: the timeout stands still until [`moved`](Self::moved).
    pub fn pause(&self) {
        self.at.store(PAUSED, Ordering::Relaxed);
    }

    /// When the timeout passes; while paused, one timeout from now (looked at again then).
    pub fn at(&self) -> Instant {
        match self.at.load(Ordering::Relaxed) {
            PAUSED => Instant::now() + self.timeout,
            nanos => self.origin + Duration::from_nanos(nanos),
        }
    }

    /// Waits until the deadline, following it as it moves.
    pub async fn passed(&self) {
        loop {
            let at = self.at();
            if Instant::now() >= at {
                return;
            }
            tokio::time::sleep_until(at).await;
        }
    }
}
