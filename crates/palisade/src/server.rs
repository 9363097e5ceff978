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
async fn serve_http1<C>(conn: C, shutdown: &Shutdown, peer: std::net::SocketAddr)
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
pub async fn accept_loop(
    listener: TcpListener,
    builders: Arc<Builders>,
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
        let (proxy, builders, shutdown) = (proxy.clone(), builders.clone(), shutdown.clone());
        let watcher = graceful.watcher();
        let open = open.clone();
        open.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let ended = if direct_path {
                direct::serve(proxy.clone(), stream, peer, limits, shutdown.clone()).await
            } else {
                Ended::Handoff(direct::Rewind::new(stream, bytes::Bytes::new()))
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
