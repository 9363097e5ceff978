//! A real HTTP server that serves one JSON document at every path, for peers Palisade fetches
//! from (an issuer's JWK Set): a test changes the document, counts the fetches, and stops the
//! server to see what Palisade does while its peer is down.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Response, header};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

struct Shared {
    document: Mutex<String>,
    requests: AtomicU64,
}

/// The running server; dropping it stops it.
pub struct DocumentServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl DocumentServer {
    /// Serves `document` as `application/json` on a free loopback port.
    pub async fn start(document: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            document: Mutex::new(document.to_owned()),
            requests: AtomicU64::new(0),
        });
        let serving = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req| {
                        shared.requests.fetch_add(1, Ordering::SeqCst);
                        let body = shared.document.lock().unwrap().clone();
                        let mut resp = Response::new(Full::new(Bytes::from(body)));
                        resp.headers_mut().insert(
                            header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        async move { Ok::<_, Infallible>(resp) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Ok(Self { addr, shared, task })
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `document` from now on.
    pub fn set(&self, document: &str) {
        *self.shared.document.lock().unwrap() = document.to_owned();
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Stops accepting connections: the peer is down.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for DocumentServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
