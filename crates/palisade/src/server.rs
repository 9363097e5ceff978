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

pub fn builder(cfg: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout.get());
    builder.http2().timer(TokioTimer::new());
    if cfg.http2 {
        builder
    } else {
        builder.http1_only()
    }
}

/// Accepts until `stop` turns true, then drops the listener (new connections are refused) and
/// lets the connections already accepted finish their requests within `grace`. Returns how
/// many connections were still open when the grace period ran out (0 for a clean stop).
pub async fn accept_loop(
    listener: TcpListener,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Limits,
    direct_path: bool,
    proxy: Arc<Proxy>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> usize {
    let graceful = GracefulShutdown::new();
    let shutdown = Arc::new(Shutdown::default());
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                // Out of file descriptors or similar: back off instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (proxy, builder, shutdown) = (proxy.clone(), builder.clone(), shutdown.clone());
        let watcher = graceful.watcher();
        let on_panic = proxy.clone();
        connections.spawn(guarded(on_panic, peer, async move {
            let ended = if direct_path {
                direct::serve(proxy.clone(), stream, peer, limits, shutdown).await
            } else {
                Ended::Handoff(direct::Rewind::new(stream, bytes::Bytes::new()))
            };
            if let Ended::Handoff(io) = ended {
                let service = service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, Infallible>(proxy.serve(req, peer).await) }
                });
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service)
                    .into_owned();
                if let Err(error) = watcher.watch(conn).await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
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
        let snapshot = Snapshot::build(&loaded, &metrics).expect("snapshot");
        Proxy::new(snapshot, metrics)
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
