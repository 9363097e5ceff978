//! The proxy listener: accepts connections and serves HTTP/1.1 and h2c on each, tracked for
//! graceful shutdown.

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
use tokio::net::TcpListener;
use tokio::sync::watch;

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
    proxy: Arc<Proxy>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) -> usize {
    let graceful = GracefulShutdown::new();
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
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.serve(req, peer).await) }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let open = open.clone();
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            if let Err(error) = conn.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
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
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => 0,
        Err(_) => open.load(Ordering::SeqCst).max(1),
    }
}
