//! The direct HTTP/1.1 path: the common request — HTTP/1.1, no request body, no upgrade, to an
//! HTTP/1.1 upstream — handled by the connection's own task from socket to socket.
//!
//! The connection task parses the request head ([`head::request`], the same rules as the hyper
//! path), writes the upstream head into a buffer, sends it on a pooled upstream connection it
//! drives itself, and passes the response back with its body framing unchanged. There is no
//! header map, no body channel and no second task per request; one timer per connection
//! serves every deadline ([`deadline::Deadlines`]). This is how Palisade gets near NGINX's CPU
//! cost per request: see docs/performance.md for the measurements that led here.
//!
//! Everything else — request bodies, WebSocket and other upgrades, HTTP/1.0, h2c, h2c
//! upstreams, heads the parser refuses — is handed to the hyper path before a byte is
//! forwarded: [`serve`] returns [`Ended::Handoff`] with the bytes already read put back.

mod chunked;
mod deadline;
mod head;
mod response;
mod rewind;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use palisade_telemetry::metrics::UpstreamErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::access::AccessRecord;
use crate::problem::{ProxyError, problem_parts};
use crate::proxy::Proxy;
use chunked::ChunkedScanner;
use deadline::Deadlines;
use head::{Forward, Peer, Respond, Step};
use response::{Framing, Reply};
pub use rewind::Rewind;

/// Size of each connection's read buffers; also the longest request head the direct path
/// takes (a longer one goes to the hyper path, which answers 431 past its own limit).
const BUF_SIZE: usize = 16 * 1024;
/// Longest upstream response head.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Tells open connections that the listener is shutting down: idle ones close at once, busy
/// ones after their current response (which says `Connection: close`).
#[derive(Default)]
pub struct Shutdown {
    started: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    pub fn begin(&self) {
        self.started.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }
}

/// Connection-level settings, fixed at start-up.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
}

/// How a connection left the direct path.
pub enum Ended {
    Closed,
    /// The rest of the connection is the hyper path's, starting with these bytes.
    Handoff(Rewind),
}

/// Serves one client connection until it closes or needs the hyper path.
pub async fn serve(
    proxy: Arc<Proxy>,
    mut client: TcpStream,
    peer: SocketAddr,
    limits: Limits,
    shutdown: Arc<Shutdown>,
) -> Ended {
    let ip = peer.ip().to_canonical();
    let ip_text = ip.to_string();
    let peer = Peer {
        ip,
        ip_text: &ip_text,
    };
    let period = proxy
        .snapshot()
        .shortest_route_timeout()
        .unwrap_or(limits.header_read_timeout)
        .min(limits.header_read_timeout)
        .min(limits.keepalive_timeout);
    let mut deadlines = Deadlines::new(period);
    let mut inbuf = vec![0u8; BUF_SIZE];
    let (mut start, mut end) = (0usize, 0usize);
    let mut io = Buffers {
        upstream_head: Vec::with_capacity(1024),
        client_out: Vec::with_capacity(4096),
        upstream_in: vec![0u8; BUF_SIZE],
    };
    let mut stopping = pin!(shutdown.notify.notified());

    loop {
        if start == end && shutdown.started() {
            return Ended::Closed;
        }
        let snap = proxy.snapshot();
        let mut head_deadline = None;
        let step = loop {
            if end > start {
                match head::request(
                    &inbuf[start..end],
                    &snap,
                    proxy.metrics(),
                    &peer,
                    &mut io.upstream_head,
                ) {
                    None => {}
                    Some(step) => break step,
                }
            }
            if start > 0 {
                inbuf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            }
            if end == inbuf.len() {
                break Step::Handoff;
            }
            let idle = start == end;
            let deadline = if idle {
                Instant::now() + limits.keepalive_timeout
            } else {
                *head_deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout)
            };
            let read = deadlines
                .run(deadline, async {
                    tokio::select! {
                        biased;
                        read = client.read(&mut inbuf[end..]) => Some(read),
                        () = &mut stopping, if idle => None,
                    }
                })
                .await;
            match read {
                Some(Some(Ok(n))) if n > 0 => end += n,
                // Closed, failed, timed out (idle or slow head), or shutting down while idle.
                _ => return Ended::Closed,
            }
        };

        let draining = proxy.is_draining() || shutdown.started();
        let keep_open = match step {
            Step::Handoff => {
                let rest = Bytes::copy_from_slice(&inbuf[start..end]);
                return Ended::Handoff(Rewind::new(client, rest));
            }
            Step::Respond(Respond {
                consumed,
                error,
                record,
                close,
            }) => {
                start += consumed;
                respond(
                    &mut client,
                    &mut io.client_out,
                    error,
                    record,
                    close || draining,
                )
                .await
            }
            Step::Forward(mut forward) => {
                start += forward.consumed;
                forward.close |= draining;
                exchange(forward, &mut client, &mut io, &mut deadlines).await
            }
        };
        if !keep_open {
            let _ = client.shutdown().await;
            return Ended::Closed;
        }
        if start == end {
            (start, end) = (0, 0);
        }
    }
}

/// The per-connection buffers of an exchange.
struct Buffers {
    /// The head sent upstream.
    upstream_head: Vec<u8>,
    /// What goes to the client next: a response head, often with the whole body.
    client_out: Vec<u8>,
    /// Reads from the upstream.
    upstream_in: Vec<u8>,
}

/// Why an exchange with the upstream failed before the response head was complete.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    /// A reused connection was found closed before anything came back.
    #[error("the pooled connection was closed by the upstream")]
    Stale,
    #[error("connecting to the upstream failed")]
    Connect(#[source] crate::pool::SendError),
    #[error("the upstream exchange failed")]
    Io(#[source] std::io::Error),
    #[error("the upstream closed the connection before a complete response head")]
    Truncated,
    #[error(transparent)]
    Bad(#[from] response::BadResponse),
}

impl ExchangeError {
    fn kind(&self) -> UpstreamErrorKind {
        match self {
            Self::Connect(_) => UpstreamErrorKind::Connect,
            Self::Stale | Self::Truncated | Self::Bad(_) => UpstreamErrorKind::Protocol,
            Self::Io(_) => UpstreamErrorKind::Other,
        }
    }
}

/// Sends the prepared head upstream and passes the response to the client. Returns whether
/// the client connection stays open.
async fn exchange(
    forward: Forward,
    client: &mut TcpStream,
    io: &mut Buffers,
    deadlines: &mut Deadlines,
) -> bool {
    let Forward {
        route,
        endpoint,
        mut record,
        traceparent,
        head_request,
        idempotent,
        close,
        ..
    } = forward;
    let upstream_metrics = &route.upstream.metrics;
    let deadline = Instant::now() + route.timeout;
    let reply = Reply {
        request_id: &record.request_id,
        traceparent: &traceparent,
        head_request,
        close,
    };

    // Send the head and read the response head; a pooled connection the upstream closed
    // meanwhile is replaced once, for requests that are safe to repeat.
    let mut fresh_only = false;
    let attempt = loop {
        let pooled = if fresh_only {
            None
        } else {
            endpoint.take_stream()
        };
        let reused = pooled.is_some();
        let outcome = deadlines
            .run(deadline, async {
                let mut stream = match pooled {
                    Some(stream) => stream,
                    None => endpoint
                        .connect_stream()
                        .await
                        .map_err(ExchangeError::Connect)?,
                };
                let head = send_and_read_head(&mut stream, io, &reply, client).await;
                head.map(|(head, filled)| (stream, head, filled))
            })
            .await;
        match outcome {
            Some(Err(ExchangeError::Stale)) if reused && idempotent => fresh_only = true,
            other => break other,
        }
    };
    let (mut upstream, head, filled) = match attempt {
        Some(Ok(ok)) => ok,
        Some(Err(error)) => {
            upstream_metrics.error(error.kind());
            tracing::warn!(
                request_id = record.request_id.to_str().unwrap_or_default(),
                route = &*route.name,
                upstream = %route.upstream.name,
                error = %crate::proxy::ErrorChain(&error),
                "upstream request failed"
            );
            return respond(
                client,
                &mut io.client_out,
                ProxyError::UpstreamUnavailable,
                record,
                close,
            )
            .await;
        }
        None => {
            upstream_metrics.error(UpstreamErrorKind::Timeout);
            tracing::warn!(
                request_id = record.request_id.to_str().unwrap_or_default(),
                route = &*route.name,
                upstream = %route.upstream.name,
                timeout_ms = route.timeout.as_millis() as u64,
                "upstream did not answer within the route timeout"
            );
            return respond(
                client,
                &mut io.client_out,
                ProxyError::UpstreamTimeout,
                record,
                close,
            )
            .await;
        }
    };

    record.status = head.status;
    let streamed = stream_body(
        &mut upstream,
        client,
        io,
        head.framing,
        head.consumed..filled,
    )
    .await;
    let (bytes, complete, clean) = match streamed {
        Ok(Body { bytes, clean }) => (bytes, true, clean),
        Err(bytes) => (bytes, false, false),
    };
    if complete && clean && head.reusable {
        endpoint.put_stream(upstream);
    }
    record.finish(bytes, complete);
    complete && !head.close
}

/// Writes the upstream head and reads until a final response head is in `io.upstream_in`;
/// interim (1xx) responses go straight to the client. On success the client's head is in
/// `io.client_out` and the returned count says how many bytes of `io.upstream_in` are filled.
async fn send_and_read_head(
    upstream: &mut TcpStream,
    io: &mut Buffers,
    reply: &Reply<'_>,
    client: &mut TcpStream,
) -> Result<(response::FinalHead, usize), ExchangeError> {
    if let Err(error) = upstream.write_all(&io.upstream_head).await {
        return Err(stale_or(error));
    }
    let mut filled = 0;
    let mut received_any = false;
    loop {
        if filled == io.upstream_in.len() {
            if io.upstream_in.len() >= MAX_RESPONSE_HEAD {
                return Err(response::BadResponse::Invalid("response head too large").into());
            }
            io.upstream_in.resize(io.upstream_in.len() * 2, 0);
        }
        let n = match upstream.read(&mut io.upstream_in[filled..]).await {
            Ok(0) if !received_any => return Err(ExchangeError::Stale),
            Ok(0) => return Err(ExchangeError::Truncated),
            Ok(n) => n,
            Err(error) if !received_any => return Err(stale_or(error)),
            Err(error) => return Err(ExchangeError::Io(error)),
        };
        received_any = true;
        filled += n;
        loop {
            match response::translate(&io.upstream_in[..filled], reply, &mut io.client_out)? {
                response::Response::Partial => break,
                response::Response::Final(head) => return Ok((head, filled)),
                response::Response::Interim { consumed } => {
                    // Best effort: a client gone now fails on the final response.
                    let _ = client.write_all(&io.client_out).await;
                    io.upstream_in.copy_within(consumed..filled, 0);
                    filled -= consumed;
                }
            }
        }
    }
}

/// A write or reset on a reused connection before any answer: the upstream had closed it.
fn stale_or(error: std::io::Error) -> ExchangeError {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    if matches!(
        error.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted
    ) {
        ExchangeError::Stale
    } else {
        ExchangeError::Io(error)
    }
}

/// A body passed through completely.
struct Body {
    /// Body bytes without framing, for the access log.
    bytes: u64,
    /// Nothing followed the body, so the upstream connection can be reused.
    clean: bool,
}

/// Sends the client's head (in `io.client_out`) and the body after it. `first` is the part of
/// `io.upstream_in` already read past the head. On failure returns the bytes sent so far.
async fn stream_body(
    upstream: &mut TcpStream,
    client: &mut TcpStream,
    io: &mut Buffers,
    framing: Framing,
    first: std::ops::Range<usize>,
) -> Result<Body, u64> {
    let buf = &mut io.upstream_in;
    let out = &mut io.client_out;
    let first_len = first.len();
    match framing {
        Framing::Empty => {
            client.write_all(out).await.map_err(|_| 0u64)?;
            Ok(Body {
                bytes: 0,
                clean: first_len == 0,
            })
        }
        Framing::Length(total) => {
            let take = (first_len as u64).min(total) as usize;
            out.extend_from_slice(&buf[first.start..first.start + take]);
            client.write_all(out).await.map_err(|_| 0u64)?;
            let mut sent = take as u64;
            while sent < total {
                let n = match upstream.read(buf).await {
                    Ok(0) | Err(_) => return Err(sent),
                    Ok(n) => n,
                };
                let take = (n as u64).min(total - sent) as usize;
                client.write_all(&buf[..take]).await.map_err(|_| sent)?;
                sent += take as u64;
                if take < n {
                    return Ok(Body {
                        bytes: sent,
                        clean: false,
                    });
                }
            }
            Ok(Body {
                bytes: total,
                clean: first_len as u64 <= total,
            })
        }
        Framing::Chunked => {
            let mut scanner = ChunkedScanner::default();
            let mut chunk = first;
            let mut head_pending = true;
            loop {
                let end = scanner
                    .feed(&buf[chunk.clone()])
                    .map_err(|_| scanner.data_bytes());
                let (upto, done) = match end {
                    Ok(Some(n)) => (chunk.start + n, true),
                    Ok(None) => (chunk.end, false),
                    Err(bytes) => return Err(bytes),
                };
                let written = if head_pending {
                    head_pending = false;
                    out.extend_from_slice(&buf[chunk.start..upto]);
                    client.write_all(out).await
                } else {
                    client.write_all(&buf[chunk.start..upto]).await
                };
                written.map_err(|_| scanner.data_bytes())?;
                if done {
                    return Ok(Body {
                        bytes: scanner.data_bytes(),
                        clean: upto == chunk.end,
                    });
                }
                let n = match upstream.read(buf).await {
                    Ok(0) | Err(_) => return Err(scanner.data_bytes()),
                    Ok(n) => n,
                };
                chunk = 0..n;
            }
        }
        Framing::Close => {
            out.extend_from_slice(&buf[first]);
            client.write_all(out).await.map_err(|_| 0u64)?;
            let mut sent = first_len as u64;
            loop {
                match upstream.read(buf).await {
                    Ok(0) => {
                        return Ok(Body {
                            bytes: sent,
                            clean: false,
                        });
                    }
                    Ok(n) => {
                        client.write_all(&buf[..n]).await.map_err(|_| sent)?;
                        sent += n as u64;
                    }
                    Err(_) => return Err(sent),
                }
            }
        }
    }
}

/// Answers with a problem response. Returns whether the client connection stays open.
async fn respond(
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    error: ProxyError,
    mut record: AccessRecord,
    close: bool,
) -> bool {
    let (status, content_type, body) =
        problem_parts(error, record.request_id.to_str().unwrap_or_default());
    record.status = status.as_u16();
    write_problem(out, status, content_type.as_bytes(), &body, &record, close);
    let sent = client.write_all(out).await.is_ok();
    record.finish(if sent { body.len() as u64 } else { 0 }, sent);
    sent && !close
}

fn write_problem(
    out: &mut Vec<u8>,
    status: http::StatusCode,
    content_type: &[u8],
    body: &Bytes,
    record: &AccessRecord,
    close: bool,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type);
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\nx-request-id: ");
    out.extend_from_slice(record.request_id.as_bytes());
    out.extend_from_slice(b"\r\ntraceresponse: ");
    out.extend_from_slice(&record.trace.header_bytes());
    out.extend_from_slice(b"\r\ncache-control: no-store\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}
