//! The fast HTTP/1.1 codec: the common request — HTTP/1.1, no request body or one framed by
//! `Content-Length`, to an HTTP/1.1 upstream — handled by the connection's own task from
//! socket to socket.
//!
//! The codec parses the request head into the pipeline's view ([`head::request`]); the
//! pipeline decides (route, checks, forwarding headers, rejections); the codec writes the
//! upstream head into a buffer, drives the upstream call on a pooled connection
//! ([`exchange`]), and passes the response back with its body framing. There is no header map,
//! no body channel and no second task per request; one timer per connection serves every
//! deadline ([`deadline::Deadlines`]). This is how Palisade gets below NGINX's CPU cost per
//! request: see docs/performance.md.
//!
//! Everything else — chunked request bodies, `Expect: 100-continue`, WebSocket upgrades,
//! HTTP/1.0, h2c, h2c upstreams, heads httparse refuses — goes to the general codec before a
//! byte is forwarded: [`serve`] returns [`Ended::Handoff`] with the bytes already read put back.

mod chunked;
mod deadline;
mod exchange;
mod head;
mod response;
mod rewind;
mod upload;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::pipeline::reject::{ResponseSink, render};
use crate::pipeline::{self, Peer, Rejection, RequestCtx};
use crate::proxy::Proxy;
use deadline::Deadlines;
use exchange::{Buffers, exchange};
use head::{Respond, Step};
pub use rewind::Rewind;
use upload::{DRAIN_MAX, INLINE_BODY, Upload};

/// Size of each connection's read buffers; also the longest request head the direct path
/// takes (a longer one goes to the hyper path, which answers 431 past its own limit).
const BUF_SIZE: usize = MAX_HEAD;
/// Longest request head either codec takes (the general codec answers 431 past it); NGINX's
/// default allows 8 KiB per line and 32 KiB in all.
pub const MAX_HEAD: usize = 16 * 1024;
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

    /// Resolves once [`Shutdown::begin`] was called, before or after this call.
    pub async fn wait(&self) {
        let notified = self.notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        if self.started.load(Ordering::SeqCst) {
            return;
        }
        notified.await;
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

/// Serves one client connection until it closes or needs the general codec.
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
    let mut io = Buffers::new(BUF_SIZE);
    let mut stopping = pin!(shutdown.notify.notified());
    let mut served = false;

    loop {
        if start == end && shutdown.started() {
            return Ended::Closed;
        }
        let mut head_deadline = None;
        let step = loop {
            if end > start {
                // The config in force when the head is complete serves the request, so the
                // first request after a reload on an idle connection already sees the new one.
                let snap = proxy.snapshot();
                let parsed = head::request(
                    &inbuf[start..end],
                    &snap,
                    proxy.metrics(),
                    peer,
                    &mut io.upstream_head,
                );
                match parsed {
                    // Rare (a key rotated at the issuer): the head is read again after the
                    // fetch, with the keys it brought.
                    Some(Step::Refresh(respond, jwks)) => {
                        if jwks.refresh_for_unknown_key().await {
                            respond.ctx.record.forget();
                            continue;
                        }
                        break Step::Respond(respond);
                    }
                    Some(step) => break step,
                    None => {}
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

        // Rate limits in Redis are awaited here; a refusal is answered like any other.
        let step = match step {
            Step::Forward(mut forward) => match forward.pending_limits.take() {
                Some(pending) => {
                    let close = forward.close;
                    match pipeline::await_limits(pending, &mut forward.ctx, close).await {
                        Some(rejection) => Step::Respond(Respond {
                            consumed: forward.consumed,
                            ctx: forward.ctx,
                            rejection,
                        }),
                        None => Step::Forward(forward),
                    }
                }
                None => Step::Forward(forward),
            },
            other => other,
        };
        let draining = proxy.is_draining() || shutdown.started();
        let keep_open = match step {
            Step::Handoff => {
                let rest = Bytes::copy_from_slice(&inbuf[start..end]);
                let io = Rewind::new(client, rest).with_send_timeout(proxy.snapshot().send_timeout);
                return Ended::Handoff(if served { io.after_http1() } else { io });
            }
            // A refresh is decided in the loop above; its rejection is the answer here.
            Step::Respond(Respond {
                consumed,
                ctx,
                mut rejection,
            })
            | Step::Refresh(
                Respond {
                    consumed,
                    ctx,
                    mut rejection,
                },
                _,
            ) => {
                start += consumed;
                // A body the answer leaves unread is skipped, never read as the next request:
                // what came with the head at once, the rest after the answer (read and dropped
                // within bounds), or the connection closes.
                let body = ctx.declared_body();
                let held = ((end - start) as u64).min(body) as usize;
                start += held;
                let left = body - held as u64;
                rejection.close |= draining || left > DRAIN_MAX;
                let snap = proxy.snapshot();
                let out = &mut io.client_out;
                let keep_open = respond(
                    &mut client,
                    out,
                    ctx,
                    rejection,
                    &mut deadlines,
                    snap.send_timeout,
                )
                .await;
                let idle = snap.request_body_timeout;
                let mut rest = Upload::new(&mut inbuf, 0..0, left, idle);
                rest.settle(&mut client, &mut deadlines, keep_open, &shutdown)
                    .await
            }
            Step::Forward(mut forward) => {
                start += forward.consumed;
                forward.close |= draining;
                // The body bytes that came with the head: a short body goes out with the head
                // in one write; the rest streams, through this same buffer.
                let held = ((end - start) as u64).min(forward.body) as usize;
                let body = start..start + held;
                let left = forward.body - held as u64;
                start += held;
                let mut upload = if forward.body == 0 {
                    Upload::none(&mut inbuf)
                } else if held <= INLINE_BODY {
                    io.upstream_head.extend_from_slice(&inbuf[body]);
                    Upload::new(&mut inbuf, 0..0, left, forward.body_timeout)
                } else {
                    Upload::new(&mut inbuf, body, left, forward.body_timeout)
                };
                exchange(
                    forward,
                    &mut client,
                    &mut io,
                    &mut deadlines,
                    &mut upload,
                    &shutdown,
                )
                .await
            }
        };
        served = true;
        if !keep_open {
            let _ = client.shutdown().await;
            return Ended::Closed;
        }
        if start == end {
            (start, end) = (0, 0);
        }
    }
}

/// Writes a response the proxy renders itself into a buffer, body included unless it answers
/// a HEAD (whose `Content-Length` still says how long the body would be).
struct WireSink<'a> {
    out: &'a mut Vec<u8>,
    body_len: u64,
    head_request: bool,
}

impl ResponseSink for WireSink<'_> {
    fn status(&mut self, status: StatusCode) {
        self.out.extend_from_slice(b"HTTP/1.1 ");
        self.out.extend_from_slice(status.as_str().as_bytes());
        self.out.push(b' ');
        let reason = status.canonical_reason().unwrap_or("Client Closed Request");
        self.out.extend_from_slice(reason.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn header(&mut self, name: &'static [u8], value: &[u8]) {
        crate::pipeline::forward::HeaderSink::header(self.out, name, value);
    }

    fn body(&mut self, body: Bytes) {
        self.out.extend_from_slice(b"\r\n");
        if !self.head_request {
            self.out.extend_from_slice(&body);
            self.body_len = body.len() as u64;
        }
    }
}

/// Answers with a response the proxy renders itself, cutting a client that takes none of it
/// for `send_timeout`. Returns whether the client connection stays open.
async fn respond(
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    mut ctx: RequestCtx,
    rejection: Rejection,
    deadlines: &mut Deadlines,
    send_timeout: Duration,
) -> bool {
    out.clear();
    let head_request = ctx.record.method == http::Method::HEAD;
    let mut sink = WireSink {
        out,
        body_len: 0,
        head_request,
    };
    render(&rejection, &mut ctx, &mut sink);
    let body_len = sink.body_len;
    let deadline = Instant::now() + send_timeout;
    if let Some(Ok(())) = deadlines.run(deadline, client.write_all(out)).await {
        ctx.record.finish(body_len, true);
        !rejection.close
    } else {
        ctx.record.client_closed(0);
        false
    }
}
