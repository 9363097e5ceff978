//! One exchange on the fast codec: the pipeline's upstream call ([`call::call`]) driven over
//! plain TCP streams — the request head, its body ([`upload`](super::upload)) while the
//! response head is awaited — then the response passed to the client with its framing.
//!
//! While the upstream is thinking, the client connection is watched: a client that closes it
//! ends the request as 499 at once, and is not counted as an upstream failure. A client that
//! stops sending its body for `server.request_body_timeout` gets 408. Every wait for the
//! upstream's body bytes is bounded by the route's timeout, and every wait for a client that
//! stopped reading by `server.send_timeout`; past either the exchange is cut.

use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use palisade_telemetry::metrics::UpstreamErrorKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::WriteHalf;
use tokio::time::Instant;

use super::chunked::{ChunkedScanner, write_size_line};
use super::deadline::Deadlines;
use super::head::Forward;
use super::response::{self, BadResponse, FinalHead, Framing, Reply};
use super::upload::{ClientEnd, ClientGone, DRAIN_MAX, Stop, Upload};
use super::{MAX_RESPONSE_HEAD, Shutdown, respond};
use crate::codec::RouteDeadline;
use crate::pipeline::call::{self, AttemptError, Exchange, Failure};
use crate::pipeline::sanitize::{self, Leak};
use crate::pipeline::{Rejection, guard};
use crate::pool::Endpoint;
use crate::problem::ProxyError;

/// The per-connection buffers of an exchange.
pub struct Buffers {
    /// The head sent upstream.
    pub upstream_head: Vec<u8>,
    /// What goes to the client next: a response head, often with the whole body.
    pub client_out: Vec<u8>,
    /// Reads from the upstream.
    upstream_in: Vec<u8>,
}

impl Buffers {
    pub fn new(read_size: usize) -> Self {
        Self {
            upstream_head: Vec::with_capacity(1024),
            client_out: Vec::with_capacity(4096),
            upstream_in: vec![0u8; read_size],
        }
    }
}

/// One attempt on one endpoint, over a TCP stream the codec drives itself.
struct FastExchange<'a, 'b, 'c> {
    io: &'a mut Buffers,
    client: &'a mut WriteHalf<'c>,
    /// Read only for the request body; shared with the watch for a client that leaves.
    client_in: &'a TcpStream,
    /// True while the body is being read from the client.
    uploading: &'a AtomicBool,
    upload: &'a mut Upload<'b>,
    /// Moved on by every step of the upload.
    route_deadline: &'a RouteDeadline,
    reply: &'a Reply<'a>,
}

impl Exchange for FastExchange<'_, '_, '_> {
    type Output = (TcpStream, FinalHead, usize, Arc<Endpoint>);

    async fn attempt(
        &mut self,
        endpoint: &Arc<Endpoint>,
        fresh: bool,
    ) -> Result<Self::Output, AttemptError> {
        let pooled = if fresh { None } else { endpoint.take_stream() };
        let reused = pooled.is_some();
        let mut stream = match pooled {
            Some(stream) => stream,
            None => endpoint
                .connect_stream()
                .await
                .map_err(|e| AttemptError::new(Failure::Connect, e))?,
        };
        let (head, filled) = self.send_and_read_head(&mut stream, reused).await?;
        Ok((stream, head, filled, endpoint.clone()))
    }

    fn status(output: &Self::Output) -> (u16, Option<Duration>) {
        (output.1.status, output.1.retry_after)
    }
}

impl FastExchange<'_, '_, '_> {
    /// Writes the upstream head, then the request body while reading until a final response
    /// head is in `io.upstream_in`; interim (1xx) responses go straight to the client. On
    /// success the client's head is in `io.client_out` and the returned count says how many
    /// bytes of `io.upstream_in` are filled. An answer that comes before the body ended stops
    /// the upload ([`Upload::sent`] stays false) and is never reusable.
    async fn send_and_read_head(
        &mut self,
        upstream: &mut TcpStream,
        reused: bool,
    ) -> Result<(FinalHead, usize), AttemptError> {
        let Self {
            io,
            client,
            client_in,
            uploading,
            upload,
            route_deadline,
            reply,
        } = self;
        if let Err(error) = upstream.write_all(&io.upstream_head).await {
            let failure = if reused && is_reset(&error) {
                Failure::StaleBeforeSend
            } else {
                Failure::Exchange(UpstreamErrorKind::Other)
            };
            return Err(AttemptError::new(failure, error));
        }
        let (mut from_upstream, mut to_upstream) = upstream.split();
        let mut sending = !upload.sent();
        uploading.store(upload.left() > 0, Ordering::Relaxed);
        let mut filled = 0;
        loop {
            if filled == io.upstream_in.len() {
                if io.upstream_in.len() >= MAX_RESPONSE_HEAD {
                    return Err(bad(BadResponse::Invalid("response head too large")));
                }
                io.upstream_in.resize(io.upstream_in.len() * 2, 0);
            }
            let read = if sending {
                tokio::select! {
                    biased;
                    read = from_upstream.read(&mut io.upstream_in[filled..]) => read,
                    step = upload.step(client_in, &mut to_upstream, route_deadline) => {
                        match step {
                            Ok(()) => {
                                route_deadline.moved();
                                sending = !upload.sent();
                            }
                            // The upstream stopped taking the body: its answer may follow.
                            Err(Stop::Upstream) => sending = false,
                            Err(Stop::Client(end)) => {
                                uploading.store(false, Ordering::Relaxed);
                                return Err(AttemptError::new(Failure::Client, end));
                            }
                        }
                        uploading.store(sending && upload.left() > 0, Ordering::Relaxed);
                        continue;
                    }
                }
            } else {
                from_upstream.read(&mut io.upstream_in[filled..]).await
            };
            let n = match read {
                // Before a complete final head (1xx aside), as NGINX's `proxy_next_upstream
                // error`: the call may send an idempotent bodiless request once more.
                Ok(0) if reused => {
                    return Err(AttemptError::new(
                        Failure::StaleAfterSend,
                        "the reused connection was closed before a complete response head",
                    ));
                }
                Ok(0) => {
                    return Err(AttemptError::new(
                        Failure::Exchange(UpstreamErrorKind::Protocol),
                        "the upstream closed the connection before a complete response head",
                    ));
                }
                Ok(n) => n,
                Err(error) if reused && is_reset(&error) => {
                    return Err(AttemptError::new(Failure::StaleAfterSend, error));
                }
                Err(error) => {
                    return Err(AttemptError::new(
                        Failure::Exchange(UpstreamErrorKind::Other),
                        error,
                    ));
                }
            };
            filled += n;
            // An answer before the body ended (the upload still going, or stopped because the
            // upstream no longer takes it): the connection stays open only when what the
            // client has still to send is short enough to read and drop.
            let closing;
            let reply = if upload.left() > DRAIN_MAX {
                closing = Reply {
                    close: true,
                    ..**reply
                };
                &closing
            } else {
                *reply
            };
            loop {
                match response::translate(&io.upstream_in[..filled], reply, &mut io.client_out)
                    .map_err(bad)?
                {
                    response::Response::Partial => break,
                    response::Response::Final(mut head) => {
                        head.reusable &= upload.sent();
                        uploading.store(false, Ordering::Relaxed);
                        return Ok((head, filled));
                    }
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
}

fn bad(error: BadResponse) -> AttemptError {
    AttemptError::new(Failure::Exchange(UpstreamErrorKind::Protocol), error)
}

/// A reset or broken pipe: on a reused connection, the upstream had closed it.
fn is_reset(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(
        error.kind(),
        BrokenPipe | ConnectionReset | ConnectionAborted
    )
}

/// Sends the prepared head and the request body upstream through the pipeline's upstream
/// call and passes the response to the client. Returns whether the client connection stays
/// open.
pub async fn exchange(
    forward: Forward,
    client: &mut TcpStream,
    io: &mut Buffers,
    deadlines: &mut Deadlines,
    upload: &mut Upload<'_>,
    shutdown: &Shutdown,
) -> bool {
    let Forward {
        route,
        mut ctx,
        head_request,
        idempotent,
        idempotency_key,
        close,
        send_timeout,
        body,
        ..
    } = forward;
    let deadline = RouteDeadline::new(route.timeout);
    // A body that may have reached the upstream is not sent again: it is not kept (as on the
    // general codec). One never written is, on the next connection ([`call::call`]).
    // A body is never sent twice (as on the general codec, which streams it).
    let repeat = call::Repeat {
        idempotent,
        idempotency_key,
        body: body == 0,
    };
    // The route's concurrency limit and the upstream's breaker: refused, the body the client
    // still sends is skipped (or the connection closes), as for any answer without the upstream.
    let mut slot = match guard::enter(&route, &mut ctx, close || upload.left() > DRAIN_MAX).await {
        Ok(slot) => slot,
        Err(rejection) => {
            let out = &mut io.client_out;
            let keep_open = respond(client, out, ctx, rejection, deadlines, send_timeout).await;
            return upload.settle(client, deadlines, keep_open, shutdown).await;
        }
    };
    // While the upstream's breaker is open, its fallback upstream may serve instead.
    let instead = slot.instead.take();
    let upstream = instead.as_ref().unwrap_or(&route.upstream);
    let reply = Reply {
        request_id: &ctx.record.request_id,
        traceparent: &ctx.traceparent,
        head_request,
        close,
        limits: ctx.limits.as_deref(),
        security: &route.security,
        sanitize: route.sanitize_errors,
    };
    let outcome = {
        let (reader, mut writer) = client.split();
        let client_in: &TcpStream = reader.as_ref();
        // Set before the first attempt: the body's bytes waiting in the socket are not a
        // pipelined request.
        let uploading = AtomicBool::new(upload.left() > 0);
        let mut exchange = FastExchange {
            io,
            client: &mut writer,
            client_in,
            uploading: &uploading,
            upload: &mut *upload,
            route_deadline: &deadline,
            reply: &reply,
        };
        let until = Instant::now() + route.timeout;
        let attempt = call::call(upstream, repeat, &mut exchange, until);
        // Pinned here, so `run` moves a pointer rather than the whole exchange's state.
        let watched = pin!(async {
            tokio::select! {
                biased;
                done = attempt => Some(done),
                () = ClientGone::new(client_in, &uploading) => None,
            }
        });
        deadlines.run_moving(&deadline, watched).await
    };
    // A failure before the body ended leaves the client's connection mid-request: it closes.
    let close_on_failure = close || upload.left() > 0;
    let (mut stream, head, filled, endpoint) = match outcome {
        Some(Some(Ok(ok))) => {
            slot.answered(ok.1.status);
            ok
        }
        Some(None) => {
            ctx.record.client_closed(0);
            return false;
        }
        Some(Some(Err(error))) if error.failure == Failure::Client => {
            return match error.source.downcast_ref::<ClientEnd>() {
                Some(ClientEnd::Idle(_)) => {
                    let error = ProxyError::RequestTimeout;
                    let rejection = Rejection { error, close: true };
                    let out = &mut io.client_out;
                    respond(client, out, ctx, rejection, deadlines, send_timeout).await;
                    false
                }
                _ => {
                    ctx.record.client_closed(0);
                    false
                }
            };
        }
        // The call failed, or found no response head within the route's timeout; the client
        // may still be sending its body.
        failed => {
            let error = match &failed {
                Some(Some(Err(error))) => Some(error),
                _ => None,
            };
            slot.failed(error.is_none_or(|e| e.timed_out()));
            let rejection = call::failed(&route, &ctx, error, close_on_failure);
            let out = &mut io.client_out;
            let keep_open = respond(client, out, ctx, rejection, deadlines, send_timeout).await;
            return upload.settle(client, deadlines, keep_open, shutdown).await;
        }
    };

    let mut head = head;
    ctx.record.status = head.status;
    let mut pass = Passage {
        upstream: &mut stream,
        client,
        deadlines,
        read_idle: route.timeout,
        send_idle: send_timeout,
    };
    if let Some(held) = head.held.take() {
        // A 5xx on a route that sanitizes: read whole and judged before anything is sent.
        let read = pass.hold(io, head.framing, head.consumed..filled).await;
        let (data, clean) = read.map_or((None, false), |h| (h.data, h.clean));
        let leak = match &data {
            Some(data) => sanitize::judge(
                held.content_type.as_deref(),
                held.content_encoding.as_deref(),
                data,
            ),
            None => Some(Leak::Unchecked),
        };
        if clean && head.reusable {
            endpoint.put_stream(stream);
        }
        let out = &mut io.client_out;
        let keep_open = match (leak, data) {
            (None, Some(data)) => {
                match head.framing {
                    Framing::Chunked => {
                        if !data.is_empty() {
                            write_size_line(data.len() as u64, out);
                            out.extend_from_slice(&data);
                            out.extend_from_slice(b"\r\n");
                        }
                        out.extend_from_slice(b"0\r\n\r\n");
                    }
                    _ => out.extend_from_slice(&data),
                }
                let deadline = Instant::now() + send_timeout;
                if let Some(Ok(())) = deadlines.run(deadline, client.write_all(out)).await {
                    ctx.record.finish(data.len() as u64, true);
                    !head.close
                } else {
                    ctx.record.client_closed(0);
                    false
                }
            }
            (leak, data) => {
                let leak = leak.unwrap_or(Leak::Unchecked);
                let data = data.unwrap_or_default();
                sanitize::log_replaced(&ctx, &route.name, head.status, leak, &data);
                ctx.retry_after = held.retry_after;
                let error = ProxyError::UpstreamFailed(head.status);
                let rejection = Rejection {
                    error,
                    close: head.close,
                };
                respond(client, out, ctx, rejection, deadlines, send_timeout).await
            }
        };
        return upload.settle(client, deadlines, keep_open, shutdown).await;
    }
    let keep_open = match pass.body(io, head.framing, head.consumed..filled).await {
        Ok(Body { bytes, clean }) => {
            if clean && head.reusable {
                endpoint.put_stream(stream);
            }
            ctx.record.finish(bytes, true);
            !head.close
        }
        Err(Cut::Client(bytes)) => {
            ctx.record.client_closed(bytes);
            return false;
        }
        Err(Cut::Upstream(bytes, kind)) => {
            // The client got the status already; the log and the metric tell the rest.
            upstream.metrics.error(kind);
            tracing::warn!(
                request_id = ctx.record.request_id.to_str().unwrap_or_default(),
                route = &*route.name,
                upstream = %upstream.name,
                kind = kind.as_str(),
                bytes,
                "the upstream's response body broke off"
            );
            ctx.record.finish(bytes, false);
            false
        }
    };
    upload.settle(client, deadlines, keep_open, shutdown).await
}

/// A held body as read.
struct HeldBody {
    data: Option<Vec<u8>>,
    /// Nothing followed the body, so the upstream connection can be reused.
    clean: bool,
}

/// A body passed through completely.
struct Body {
    /// Body bytes without framing, for the access log.
    bytes: u64,
    /// Nothing followed the body, so the upstream connection can be reused.
    clean: bool,
}

/// Why a body stopped before its end, with the bytes sent until then.
enum Cut {
    /// The client went away or stopped reading for longer than the idle bound.
    Client(u64),
    /// The upstream broke the body, closed early or stalled past the idle bound.
    Upstream(u64, UpstreamErrorKind),
}

/// The two streams of one response body and the bound on each wait.
struct Passage<'a> {
    upstream: &'a mut TcpStream,
    client: &'a mut TcpStream,
    deadlines: &'a mut Deadlines,
    /// Longest wait for the upstream's next body bytes (the route timeout).
    read_idle: Duration,
    /// Longest wait for the client to take more bytes (`server.send_timeout`).
    send_idle: Duration,
}

impl Passage<'_> {
    async fn read(&mut self, buf: &mut [u8], sent: u64) -> Result<usize, Cut> {
        let deadline = Instant::now() + self.read_idle;
        match self.deadlines.run(deadline, self.upstream.read(buf)).await {
            Some(Ok(n)) => Ok(n),
            Some(Err(_)) => Err(Cut::Upstream(sent, UpstreamErrorKind::Other)),
            None => Err(Cut::Upstream(sent, UpstreamErrorKind::Timeout)),
        }
    }

    async fn write(&mut self, bytes: &[u8], sent: u64) -> Result<(), Cut> {
        let deadline = Instant::now() + self.send_idle;
        match self
            .deadlines
            .run(deadline, self.client.write_all(bytes))
            .await
        {
            Some(Ok(())) => Ok(()),
            _ => Err(Cut::Client(sent)),
        }
    }

    /// Reads a held body whole: its bytes without framing, or `None` when it is longer than
    /// [`sanitize::HOLD_MAX`] (then not read at all when its length says so up front).
    async fn hold(
        &mut self,
        io: &mut Buffers,
        framing: Framing,
        first: std::ops::Range<usize>,
    ) -> Result<HeldBody, Cut> {
        let buf = &mut io.upstream_in;
        let mut data = Vec::new();
        let too_long = HeldBody {
            data: None,
            clean: false,
        };
        match framing {
            Framing::Empty => Ok(HeldBody {
                data: Some(data),
                clean: first.is_empty(),
            }),
            Framing::Length(total) if total > sanitize::HOLD_MAX as u64 => Ok(too_long),
            Framing::Length(total) => {
                let total = total as usize;
                let take = first.len().min(total);
                data.extend_from_slice(&buf[first.start..first.start + take]);
                let mut clean = first.len() <= total;
                while data.len() < total {
                    let n = match self.read(buf, 0).await? {
                        0 => return Err(Cut::Upstream(0, UpstreamErrorKind::Protocol)),
                        n => n,
                    };
                    let take = n.min(total - data.len());
                    data.extend_from_slice(&buf[..take]);
                    clean = take == n;
                }
                Ok(HeldBody {
                    data: Some(data),
                    clean,
                })
            }
            Framing::Chunked => {
                let mut scanner = ChunkedScanner::data_only();
                let mut chunk = first;
                loop {
                    let end = scanner
                        .feed(&buf[chunk.clone()], &mut data)
                        .map_err(|_| Cut::Upstream(0, UpstreamErrorKind::Protocol))?;
                    if data.len() > sanitize::HOLD_MAX {
                        return Ok(too_long);
                    }
                    if let Some(n) = end {
                        return Ok(HeldBody {
                            data: Some(data),
                            clean: chunk.start + n == chunk.end,
                        });
                    }
                    let n = match self.read(buf, 0).await? {
                        0 => return Err(Cut::Upstream(0, UpstreamErrorKind::Protocol)),
                        n => n,
                    };
                    chunk = 0..n;
                }
            }
            Framing::Close => {
                data.extend_from_slice(&buf[first]);
                loop {
                    if data.len() > sanitize::HOLD_MAX {
                        return Ok(too_long);
                    }
                    match self.read(buf, 0).await? {
                        0 => {
                            return Ok(HeldBody {
                                data: Some(data),
                                clean: false,
                            });
                        }
                        n => data.extend_from_slice(&buf[..n]),
                    }
                }
            }
        }
    }

    /// Sends the client's head (in `io.client_out`) and the body after it. `first` is the
    /// part of `io.upstream_in` already read past the head.
    async fn body(
        &mut self,
        io: &mut Buffers,
        framing: Framing,
        first: std::ops::Range<usize>,
    ) -> Result<Body, Cut> {
        let buf = &mut io.upstream_in;
        let out = &mut io.client_out;
        let first_len = first.len();
        match framing {
            Framing::Empty => {
                self.write(out, 0).await?;
                Ok(Body {
                    bytes: 0,
                    clean: first_len == 0,
                })
            }
            Framing::Length(total) => {
                let take = (first_len as u64).min(total) as usize;
                out.extend_from_slice(&buf[first.start..first.start + take]);
                self.write(out, 0).await?;
                let mut sent = take as u64;
                while sent < total {
                    let n = match self.read(buf, sent).await? {
                        0 => return Err(Cut::Upstream(sent, UpstreamErrorKind::Protocol)),
                        n => n,
                    };
                    let take = (n as u64).min(total - sent) as usize;
                    self.write(&buf[..take], sent).await?;
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
                // The chunks are written again, without extensions and trailer fields.
                let mut scanner = ChunkedScanner::default();
                let mut chunk = first;
                let mut sent = 0;
                loop {
                    // The first piece goes out with the head, which `out` holds.
                    let end = scanner.feed(&buf[chunk.clone()], out);
                    let (upto, done) = match end {
                        Ok(Some(n)) => (chunk.start + n, true),
                        Ok(None) => (chunk.end, false),
                        Err(_) => {
                            let bytes = scanner.data_bytes();
                            return Err(Cut::Upstream(bytes, UpstreamErrorKind::Protocol));
                        }
                    };
                    self.write(out, sent).await?;
                    out.clear();
                    sent = scanner.data_bytes();
                    if done {
                        return Ok(Body {
                            bytes: scanner.data_bytes(),
                            clean: upto == chunk.end,
                        });
                    }
                    let n = match self.read(buf, scanner.data_bytes()).await? {
                        0 => {
                            let bytes = scanner.data_bytes();
                            return Err(Cut::Upstream(bytes, UpstreamErrorKind::Protocol));
                        }
                        n => n,
                    };
                    chunk = 0..n;
                }
            }
            Framing::Close => {
                out.extend_from_slice(&buf[first]);
                self.write(out, 0).await?;
                let mut sent = first_len as u64;
                loop {
                    match self.read(buf, sent).await? {
                        0 => {
                            return Ok(Body {
                                bytes: sent,
                                clean: false,
                            });
                        }
                        n => {
                            self.write(&buf[..n], sent).await?;
                            sent += n as u64;
                        }
                    }
                }
            }
        }
    }
}
