//! The proxy listener: accepts connections and serves HTTP/1.1 and h2c on each, tracked for
//! graceful shutdown.
//!
//! Each connection starts on the direct HTTP/1.1 path ([`palisade_layers::direct`]); when a
//! request needs more (a body, an upgrade, h2c...), the connection continues on hyper with the
//! bytes already read put back.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use palisade_config::ServerConfig;
use palisade_layers::Proxy;
use palisade_layers::direct::{self, Ended, Limits, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub fn builder(cfg: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper's head timer also runs while a keep-alive connection waits for its next
        // request, so it serves as the idle bound too: the shorter of the two.
        .header_read_timeout(
            cfg.header_read_timeout
                .get()
                .min(cfg.keepalive_timeout.get()),
        );
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
    let open = Arc::new(AtomicUsize::new(0));
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
        let open = open.clone();
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
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
                // A connection that already carried HTTP/1.1 requests stays HTTP/1.
                let h1_only;
                let builder = if io.http1_only() {
                    h1_only = (*builder).clone().http1_only();
                    &h1_only
                } else {
                    &*builder
                };
                let conn = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service)
                    .into_owned();
                if let Err(error) = watcher.watch(conn).await {
                    tracing::debug!(%error, %peer, "connection ended with an error");
                }
            }
            open.fetch_sub(1, Ordering::SeqCst);
        });
    }
    drop(listener);
    tracing::info!(
        open_connections = open.load(Ordering::SeqCst),
        grace_ms = grace.as_millis() as u64,
        "stopped accepting; letting in-flight requests finish"
    );
    shutdown.begin();
    let all_closed = async {
        graceful.shutdown().await;
        while open.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    match tokio::time::timeout(grace, all_closed).await {
        Ok(()) => 0,
        Err(_) => open.load(Ordering::SeqCst).max(1),
    }
}
