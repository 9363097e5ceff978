//! Keep-alive connections to one upstream endpoint over HTTP/1.1, pooled by hand.
//!
//! A connection is checked out for one request and goes back to the pool when the response
//! body has been read to its end ([`Checkout::release`], called by the response body), so no
//! task is spawned per request and no shared map is consulted: checkout is a pop from a short
//! `Vec` under an uncontended lock. A connection the upstream closed while idle is noticed at
//! checkout; a request that could not be written on a pooled connection is retried once on a
//! new one, since it never reached the upstream.
//!
//! The direct HTTP/1.1 path ([`crate::direct`]) speaks to the upstream itself and keeps its idle
//! connections here too, as plain streams ([`Endpoint::take_stream`], [`Endpoint::put_stream`]).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::uri::Authority;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::codec::general::body::RequestBody;

/// Why an exchange with an endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("connecting to the upstream failed")]
    Connect(#[source] std::io::Error),
    #[error("connecting to the upstream timed out")]
    ConnectTimeout,
    #[error("the upstream exchange failed")]
    Http(#[source] hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::ConnectTimeout)
    }
}

struct Idle<T> {
    conn: T,
    since: Instant,
}

/// One endpoint of an upstream and its idle connections.
pub struct Endpoint {
    pub authority: Authority,
    /// Most recently released at the back; expired ones leave from the front.
    idle: Mutex<VecDeque<Idle<SendRequest<RequestBody>>>>,
    /// Idle connections of the direct path, most recently released at the back.
    streams: Mutex<VecDeque<Idle<TcpStream>>>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    /// Connection attempts refused in a row; 0 while the endpoint is up.
    refusals: AtomicU32,
    /// Until when the endpoint is skipped, in milliseconds since `created`; 0 when it is not.
    backoff_until_ms: AtomicU64,
    /// 5xx responses in a row (passive outlier detection).
    server_errors: AtomicU32,
    /// Times it was ejected for them; each ejection lasts twice the last.
    ejections: AtomicU32,
    /// Out of rotation after failed active health checks (`[upstreams.NAME.health_check]`).
    unhealthy: std::sync::atomic::AtomicBool,
    /// Active checks failed, or passed, in a row (the other count is 0).
    checks_failed: AtomicU32,
    checks_passed: AtomicU32,
    created: Instant,
}

/// 5xx responses in a row that eject an endpoint (Envoy's `consecutive_5xx` default).
const EJECT_AFTER: u32 = 5;
/// First ejection; it doubles with each ejection after it, up to [`EJECT_MAX`].
const EJECT_BASE: Duration = Duration::from_secs(10);
const EJECT_MAX: Duration = Duration::from_secs(300);

/// First backoff after a refused connection; it doubles with each refusal in a row.
const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest backoff.
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What `/health` shows of an endpoint.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EndpointHealth {
    pub address: String,
    /// "up"; "backoff" while it is skipped after refused connections or server errors;
    /// "unhealthy" after failed active health checks.
    pub state: &'static str,
    pub consecutive_refusals: u32,
    /// Times it was ejected after 5xx responses in a row.
    pub ejections: u32,
}

/// A connection lent to one request.
pub struct Checkout {
    endpoint: std::sync::Arc<Endpoint>,
    sender: SendRequest<RequestBody>,
}

impl Checkout {
    /// Gives the connection back for the next request. Call only once the response body has
    /// been read to its end and the request body was sent whole (an app may answer before it
    /// read the upload); otherwise drop the checkout, which closes the connection.
    pub fn release(self) {
        self.endpoint.put(self.sender);
    }
}

impl Endpoint {
    pub fn new(
        authority: Authority,
        max_idle: usize,
        idle_timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            authority,
            idle: Mutex::new(VecDeque::new()),
            streams: Mutex::new(VecDeque::new()),
            max_idle,
            idle_timeout,
            connect_timeout,
            refusals: AtomicU32::new(0),
            backoff_until_ms: AtomicU64::new(0),
            server_errors: AtomicU32::new(0),
            ejections: AtomicU32::new(0),
            unhealthy: std::sync::atomic::AtomicBool::new(false),
            checks_failed: AtomicU32::new(0),
            checks_passed: AtomicU32::new(0),
            created: Instant::now(),
        }
    }

    /// A connection was made (or reused): the endpoint is up.
    pub fn connected(&self) {
        if self.refusals.load(Ordering::Relaxed) != 0 {
            self.refusals.store(0, Ordering::Relaxed);
            self.backoff_until_ms.store(0, Ordering::Relaxed);
        }
    }

    /// The endpoint answered with `status`: after [`EJECT_AFTER`] 5xx in a row it is skipped
    /// for a while (passive outlier ejection), the while doubling with each ejection. While
    /// every endpoint is skipped, requests still go to one ([`crate::upstream::Upstream::pick`]).
    /// Returns true when this answer ejected it.
    pub fn answered(&self, status: u16) -> bool {
        if status < 500 {
            if self.server_errors.load(Ordering::Relaxed) != 0 {
                self.server_errors.store(0, Ordering::Relaxed);
            }
            return false;
        }
        if self.server_errors.fetch_add(1, Ordering::Relaxed) + 1 < EJECT_AFTER {
            return false;
        }
        self.server_errors.store(0, Ordering::Relaxed);
        let eject = self.skip(&self.ejections, EJECT_BASE, EJECT_MAX);
        tracing::warn!(
            endpoint = %self.authority,
            eject_ms = eject.as_millis() as u64,
            "endpoint ejected after {EJECT_AFTER} server errors in a row"
        );
        true
    }

    /// An active health check passed (`ok`) or failed: after `unhealthy_after` failures in a
    /// row the endpoint leaves the rotation, after `healthy_after` passes in a row it returns.
    /// Returns whether its health changed.
    pub fn checked(&self, ok: bool, unhealthy_after: u32, healthy_after: u32) -> bool {
        let (this, other) = if ok {
            (&self.checks_passed, &self.checks_failed)
        } else {
            (&self.checks_failed, &self.checks_passed)
        };
        other.store(0, Ordering::Relaxed);
        let run = this.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let unhealthy = self.unhealthy.load(Ordering::Relaxed);
        let flip = if ok {
            unhealthy && run >= healthy_after
        } else {
            !unhealthy && run >= unhealthy_after
        };
        if flip {
            self.unhealthy.store(!ok, Ordering::Relaxed);
        }
        flip
    }

    /// Out of rotation after failed active health checks.
    pub fn is_unhealthy(&self) -> bool {
        self.unhealthy.load(Ordering::Relaxed)
    }

    /// Skipped by round-robin: in backoff, ejected, or unhealthy.
    pub fn skipped(&self) -> bool {
        self.is_unhealthy() || self.in_backoff()
    }

    /// A connection was refused or timed out: skip the endpoint for a backoff that doubles
    /// with each refusal in a row.
    pub fn refused(&self) {
        self.skip(&self.refusals, BACKOFF_BASE, BACKOFF_MAX);
    }

    /// Skips the endpoint for `base` doubled by the times `count` says it happened before (at
    /// most `max`), and counts this time; returns how long.
    fn skip(&self, count: &AtomicU32, base: Duration, max: Duration) -> Duration {
        let n = count.fetch_add(1, Ordering::Relaxed).min(16);
        let skip = base.saturating_mul(1 << n).min(max);
        let until = self.created.elapsed() + skip;
        self.backoff_until_ms
            .store(until.as_millis() as u64, Ordering::Relaxed);
        skip
    }

    /// True while the endpoint is skipped after refused connections.
    pub fn in_backoff(&self) -> bool {
        let until = self.backoff_until_ms.load(Ordering::Relaxed);
        until != 0 && (self.created.elapsed().as_millis() as u64) < until
    }

    pub fn health(&self) -> EndpointHealth {
        EndpointHealth {
            address: self.authority.to_string(),
            state: if self.is_unhealthy() {
                "unhealthy"
            } else if self.in_backoff() {
                "backoff"
            } else {
                "up"
            },
            consecutive_refusals: self.refusals.load(Ordering::Relaxed),
            ejections: self.ejections.load(Ordering::Relaxed),
        }
    }

    /// The settings this endpoint was built with; an endpoint is reused across reloads only
    /// when they are unchanged.
    pub fn same_settings(&self, max_idle: usize, idle: Duration, connect: Duration) -> bool {
        (self.max_idle, self.idle_timeout, self.connect_timeout) == (max_idle, idle, connect)
    }

    pub(crate) fn lend(self: &std::sync::Arc<Self>, sender: SendRequest<RequestBody>) -> Checkout {
        Checkout {
            endpoint: self.clone(),
            sender,
        }
    }

    /// The most recently used idle connection that is still open and ready.
    pub(crate) fn checkout(&self) -> Option<SendRequest<RequestBody>> {
        loop {
            let idle = self.idle.lock().ok()?.pop_back()?;
            if idle.conn.is_closed() || idle.since.elapsed() > self.idle_timeout {
                continue;
            }
            // Released only once both directions ended, so it is ready unless it broke since.
            if idle.conn.is_ready() {
                return Some(idle.conn);
            }
        }
    }

    fn put(&self, sender: SendRequest<RequestBody>) {
        if sender.is_closed() {
            return;
        }
        self.park(&self.idle, sender);
    }

    /// Queues an idle connection, most recent at the back. Connections idle past the timeout
    /// leave from the front (and close) as others come back; past `max_idle` the newcomer does.
    fn park<T>(&self, queue: &Mutex<VecDeque<Idle<T>>>, conn: T) {
        if let Ok(mut idle) = queue.lock() {
            let now = Instant::now();
            while idle
                .front()
                .is_some_and(|i| now.duration_since(i.since) > self.idle_timeout)
            {
                idle.pop_front();
            }
            if idle.len() < self.max_idle {
                idle.push_back(Idle { conn, since: now });
            }
        }
    }

    /// An idle connection of the direct path that is still open, most recently used first.
    /// Costs no system call: a close or stray bytes from the upstream show as readiness.
    pub fn take_stream(&self) -> Option<TcpStream> {
        let mut idle = self.streams.lock().ok()?;
        while let Some(candidate) = idle.pop_back() {
            if candidate.since.elapsed() > self.idle_timeout {
                continue;
            }
            let mut probe = [0u8; 1];
            match candidate.conn.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Some(candidate.conn);
                }
                // Closed (0), unexpected bytes or an error: not reusable.
                _ => continue,
            }
        }
        None
    }

    /// Gives a direct-path connection back after a complete exchange.
    pub fn put_stream(&self, stream: TcpStream) {
        self.park(&self.streams, stream);
    }

    /// A new connection to the endpoint, within the connect timeout.
    pub async fn connect_stream(&self) -> Result<TcpStream, SendError> {
        let stream = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect(self.authority.as_str()),
        )
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    pub(crate) async fn connect(&self) -> Result<SendRequest<RequestBody>, SendError> {
        let stream = self.connect_stream().await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Http)?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "upstream connection closed with an error");
            }
        });
        Ok(sender)
    }
}
