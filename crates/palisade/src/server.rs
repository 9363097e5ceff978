//! The proxy listener: accepts connections and serves HTTP/1.1 and h2c on each, tracked for
//! graceful shutdown.
//!
//! Each connection starts on the direct HTTP/1.1 path ([`palisade_layers::direct`]); when a
//! request needs more (a body, an upgrade, h2c...), the connection continues on hyper with the
//! bytes already read put back. Every connection task runs in a [`TaskTracker`], so shutdown
//! waits for exactly the tasks still alive, and under [`guarded`], so a panic closes that one
//! connection, is logged and counted, and never holds shutdown up.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use palisade_config::ServerConfig;
use palisade_layers::Proxy;
use palisade_layers::direct::{self, Ended, Limits, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::caps::Caps;

/// The general codec's connection builders: `auto` picks HTTP/1.1 or h2c by a connection's
/// first bytes; `h1` serves connections that may only speak HTTP/1 (h2c is off, or the
/// connection already carried HTTP/1.1 requests on the fast codec).
pub struct Builders {
    auto: auto::Builder<TokioExecutor>,
    h1: http1::Builder,
    http2: bool,
}

pub fn builders(cfg: &ServerConfig) -> Builders {
    // hyper's head timer also runs while a keep-alive connection waits for its next request,
    // so it serves as the idle bound too: the shorter of the two.
    let head_timeout = cfg
        .header_read_timeout
        .get()
        .min(cfg.keepalive_timeout.get());
    let mut auto = auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        // The fast codec's longest head; a longer one gets 431 on both.
        .max_buf_size(direct::MAX_HEAD);
    auto.http2().timer(TokioTimer::new());
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(direct::MAX_HEAD);
    Builders {
        auto,
        h1,
        http2: cfg.http2,
    }
}

/// Serves an HTTP/1-only connection until it ends, closing it gracefully (after the request in
/// flight) once the listener shuts down.
async fn serve_http1<C>(conn: C, shutdown: &Shutdown, peer: SocketAddr)
where
    C: Future<Output = hyper::Result<()>> + GracefulHttp1,
{
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.wait() => {
            conn.as_mut().shutdown_gracefully();
            conn.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%error, %peer, "connection ended with an error");
    }
}

/// hyper's HTTP/1 connection with upgrades has a graceful shutdown but no trait for it.
trait GracefulHttp1 {
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S, B> GracefulHttp1 for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn shutdown_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Accepts until `stop` turns true, then drops the listener (new connections are refused) and
/// lets the connections already accepted finish their requests within `grace`. Returns how
/// many connections were still open when the grace period ran out (0 for a clean stop).
#[allow(clippy::too_many_arguments)]
pub async fn accept_loop(
    listener: TcpListener,
    builders: Arc<Builders>,
    limits: Limits,
    direct_path: bool,
    proxy: Arc<Proxy>,
    caps: Arc<Caps>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> usize {
    let graceful = GracefulShutdown::new();
    let shutdown = Arc::new(Shutdown::default());
    let connections = TaskTracker::new();
    loop {
        // At the listener's cap, new connections wait in the backlog until one closes.
        let accepted = tokio::select! {
            accepted = async {
                let room = caps.room().await;
                (listener.accept().await, room)
            } => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer, room) = match accepted {
            (Ok((stream, peer)), room) => (stream, peer, room),
            (Err(error), _) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(place) = caps.admit(peer.ip(), room) else {
            tracing::debug!(%peer, "connection refused: too many open from this address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (proxy, builders, shutdown) = (proxy.clone(), builders.clone(), shutdown.clone());
        let watcher = graceful.watcher();
        let on_panic = proxy.clone();
        connections.spawn(guarded(on_panic, peer, async move {
            // Held for as long as the connection: its place under the caps.
            let _place = place;
            let ended = if direct_path {
                direct::serve(proxy.clone(), stream, peer, limits, shutdown.clone()).await
            } else {
                let send_timeout = proxy.snapshot().send_timeout;
                Ended::Handoff(
                    direct::Rewind::new(stream, bytes::Bytes::new())
                        .with_send_timeout(send_timeout),
                )
            };
            if let Ended::Handoff(io) = ended {
                let service = service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.serve(req, peer).await) }
                });
                // A connection that already carried HTTP/1.1 requests stays HTTP/1: its
                // protocol was decided by its first bytes.
                if !builders.http2 || io.http1_only() {
                    let conn = builders
                        .h1
                        .serve_connection(TokioIo::new(io), service)
                        .with_upgrades();
                    serve_http1(conn, &shutdown, peer).await;
                } else {
                    let conn = builders
                        .auto
                        .serve_connection_with_upgrades(TokioIo::new(io), service)
                        .into_owned();
                    if let Err(error) = watcher.watch(conn).await {
                        tracing::debug!(%error, %peer, "connection ended with an error");
                    }
                }
            }
        }));
    }
    drop(listener);
    connections.close();
    tracing::info!(
        open_connections = connections.len(),
        grace_ms = grace.as_millis() as u64,
        "stopped accepting; letting in-flight requests finish"
    );
    shutdown.begin();
    let all_closed = async {
        graceful.shutdown().await;
        connections.wait().await;
    };
    match tokio::time::timeout(grace, all_closed).await {
        Ok(()) => 0,
        Err(_) => connections.len().max(1),
    }
}

/// `connection` with its panics caught: a panic ends only this connection (its socket is
/// dropped), is logged with the peer and counted in `palisade_connection_panics_total`. The
/// task then ends normally, so the tracker does not wait for it and the runtime does not print
/// the panic a second time as an aborted task.
fn guarded(
    proxy: Arc<Proxy>,
    peer: SocketAddr,
    connection: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    // Unwind safety: a panicking connection's own state is dropped with it. What it shares
    // with other connections is atomics, `ArcSwap`, and two kinds of std `Mutex` (a pool's idle
    // queues, the access-log batch) held only for a push or a pop, whose users take a poisoned
    // lock as "nothing there" rather than panicking in turn.
    AssertUnwindSafe(connection)
        .catch_unwind()
        .map(move |result| {
            if let Err(payload) = result {
                proxy.metrics().connection_panic();
                tracing::error!(
                    %peer,
                    panic = panic_message(payload.as_ref()),
                    "a connection task panicked; its connection was closed"
                );
            }
        })
}

/// The message of a panic payload, as `panic!` formats it.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(a panic payload that is not a string)")
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use palisade_layers::Snapshot;
    use palisade_telemetry::metrics::{Format, Metrics};

    use super::*;

    const CONFIG: &str = r#"
[upstreams.app]
endpoints = ["127.0.0.1:9"]
[[routes]]
name = "api"
path = "/"
upstream = "app"
"#;

    fn proxy() -> Arc<Proxy> {
        let loaded = palisade_config::load_str("t.toml", CONFIG, &[]).expect("valid config");
        let metrics = Metrics::new("test");
        let retained = Arc::new(palisade_layers::Retained::default());
        let snapshot = Snapshot::build(&loaded, &metrics, &retained).expect("snapshot");
        Proxy::new(snapshot, metrics, retained)
    }

    fn panics_counted(proxy: &Proxy) -> bool {
        proxy
            .metrics()
            .encode(Format::Prometheus)
            .lines()
            .any(|l| l == "palisade_connection_panics_total 1")
    }

    #[tokio::test]
    async fn a_panicking_connection_is_counted_and_does_not_hold_up_shutdown() {
        let proxy = proxy();
        let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
        let tracker = TaskTracker::new();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        tracker.spawn(guarded(proxy.clone(), peer, async move {
            let _ = released.await;
            panic!("bug in a connection");
        }));
        tracker.spawn(guarded(proxy.clone(), peer, async {}));
        tracker.close();
        assert!(!panics_counted(&proxy));

        release.send(()).unwrap();
        let started = Instant::now();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait())
            .await
            .expect("the tracker finishes although a task panicked");
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(tracker.is_empty());
        assert!(panics_counted(&proxy));
    }

    #[test]
    fn panic_messages_of_both_payload_kinds() {
        let text = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(text.as_ref()), "plain");
        let formatted = std::panic::catch_unwind(|| panic!("{}", 42)).unwrap_err();
        assert_eq!(panic_message(formatted.as_ref()), "42");
    }
}
