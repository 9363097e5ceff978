//! Request bodies on the fast codec: a body framed by `Content-Length` streams from the client
//! to the upstream through the connection's read buffer, one buffer at a time, so memory stays
//! flat whatever the body's size; each direction waits only when the other side is slow
//! (back-pressure both ways).
//!
//! A body that arrived with its head and is at most [`INLINE_BODY`] long is copied behind the
//! upstream head and written with it in one call. Longer bodies, and the rest of a body that
//! did not arrive whole, stream after the head.
//!
//! The upstream may answer before the body ends (an app that refuses at once with 401 or 413).
//! Then the upload stops, the client gets that answer, and the body bytes the client has still
//! to send are read and dropped: up to [`DRAIN_MAX`] on a connection that stays open, or, past
//! that, for at most [`LINGER`] on one that closes (so the close does not reset the answer
//! away before the client read it). The upstream connection is reused only when the whole body
//! went out and the whole response came back.

use std::future::{Future, poll_fn};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::WriteHalf;
use tokio::time::Instant;

use super::Shutdown;
use super::deadline::Deadlines;
use crate::codec::RouteDeadline;

/// Longest body copied behind the upstream head and written with it in one call.
pub const INLINE_BODY: usize = 4 * 1024;
/// Most unsent body bytes read and dropped after an early answer on a connection that stays
/// open; with more left, the answer says `Connection: close`.
pub const DRAIN_MAX: u64 = 64 * 1024;
/// Longest time a closing connection keeps reading (and dropping) what the client still sends
/// after an early answer.
const LINGER: Duration = Duration::from_secs(2);

/// Why the client ended a request while its body was being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientEnd {
    #[error("the client closed its connection before the end of the request body")]
    Closed,
    #[error("the client sent no request body bytes for {0:?}")]
    Idle(Duration),
}

/// Why one step of the upload stopped it.
pub enum Stop {
    Client(ClientEnd),
    /// The upstream no longer takes the body (closed or reset); its answer may still come.
    Upstream,
}

/// The request body of one exchange: what is held in the connection's buffer and what the
/// client has still to send.
pub struct Upload<'b> {
    buf: &'b mut [u8],
    /// Body bytes in `buf` not yet written upstream: those that came with the head (unless
    /// they were copied behind it), then each read from the client.
    pending: Range<usize>,
    /// Body bytes the client has still to send.
    left: u64,
    /// Longest wait for the client's next body bytes.
    idle: Duration,
}

impl<'b> Upload<'b> {
    /// No body.
    pub fn none(buf: &'b mut [u8]) -> Self {
        Self::new(buf, 0..0, 0, Duration::MAX)
    }

    /// A body of which `buf[held]` is at hand (and not written with the head), with `left`
    /// bytes still to come from the client.
    pub fn new(buf: &'b mut [u8], held: Range<usize>, left: u64, idle: Duration) -> Self {
        Self {
            buf,
            pending: held,
            left,
            idle,
        }
    }

    /// The body bytes the client has still to send.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Every byte of the body went upstream.
    pub fn sent(&self) -> bool {
        self.left == 0 && self.pending.is_empty()
    }

    /// Moves the body one step: reads from the client when nothing is pending, else writes
    /// what is pending upstream. Cancel-safe: a step dropped before it ends loses no byte.
    pub async fn step(
        &mut self,
        client: &TcpStream,
        upstream: &mut WriteHalf<'_>,
        deadline: &RouteDeadline,
    ) -> Result<(), Stop> {
        if self.pending.is_empty() {
            let want = self.left.min(self.buf.len() as u64) as usize;
            let buf = &mut self.buf[..want];
            // Through a shared reference: the watch for a client that leaves ([`ClientGone`])
            // holds one too.
            let read = poll_fn(|cx| {
                loop {
                    ready!(client.poll_read_ready(cx))?;
                    match client.try_read(buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                        done => return Poll::Ready(done),
                    }
                }
            });
            // Waiting for the client is bounded by `idle`, not by the route's timeout.
            deadline.pause();
            let n = match tokio::time::timeout(self.idle, read).await {
                Ok(Ok(n)) if n > 0 => n,
                Ok(_) => return Err(Stop::Client(ClientEnd::Closed)),
                Err(_) => return Err(Stop::Client(ClientEnd::Idle(self.idle))),
            };
            deadline.moved();
            self.left -= n as u64;
            self.pending = 0..n;
        }
        match upstream.write(&self.buf[self.pending.clone()]).await {
            Ok(n) if n > 0 => {
                self.pending.start += n;
                Ok(())
            }
            _ => Err(Stop::Upstream),
        }
    }

    /// After the exchange: the client connection stays open (`keep_open`) only when the body
    /// the client has still to send was read and dropped within its bounds, before shutdown
    /// began. A connection that closes with body bytes still coming keeps reading them for a
    /// short while first, so the close does not reset the answer away before the client read
    /// it.
    pub async fn settle(
        &mut self,
        client: &mut TcpStream,
        deadlines: &mut Deadlines,
        keep_open: bool,
        shutdown: &Shutdown,
    ) -> bool {
        if self.left == 0 {
            return keep_open;
        }
        if keep_open && self.left <= DRAIN_MAX {
            // The body is skipped only to serve the next request; once shutdown begins there
            // is none, and the connection lingers closed instead of holding shutdown up.
            let drained = tokio::select! {
                biased;
                drained = self.drain(client, deadlines, self.idle) => Some(drained),
                () = shutdown.wait() => None,
            };
            if let Some(drained) = drained {
                return drained;
            }
        }
        let _ = client.shutdown().await;
        self.drain(client, deadlines, LINGER).await;
        false
    }

    /// Reads and drops the rest of the body; false when the client closed first or took
    /// longer than `within` for all of it (a bound on the whole, so a client dripping bytes
    /// cannot hold the connection). Cancel-safe: every byte read is counted before the next
    /// wait.
    async fn drain(
        &mut self,
        client: &mut TcpStream,
        deadlines: &mut Deadlines,
        within: Duration,
    ) -> bool {
        let deadline = Instant::now() + within;
        while self.left > 0 {
            let want = self.left.min(self.buf.len() as u64) as usize;
            match deadlines
                .run(deadline, client.read(&mut self.buf[..want]))
                .await
            {
                Some(Ok(n)) if n > 0 => self.left -= n as u64,
                _ => return false,
            }
        }
        true
    }
}

/// Resolves when the client closes its connection (a read of 0 or an error) while the
/// upstream is working; never when it sends more bytes (a pipelined request), which are left
/// for the next read, and never while the body is still being read (`uploading`): then a
/// client that leaves ends the upload itself.
pub struct ClientGone<'r> {
    client: &'r TcpStream,
    uploading: &'r AtomicBool,
    sent_more: bool,
}

impl<'r> ClientGone<'r> {
    pub fn new(client: &'r TcpStream, uploading: &'r AtomicBool) -> Self {
        Self {
            client,
            uploading,
            sent_more: false,
        }
    }
}

impl Future for ClientGone<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Polled again whenever the exchange beside it is: it starts watching once the
        // upload is done.
        if this.uploading.load(Ordering::Relaxed) || this.sent_more {
            return Poll::Pending;
        }
        let mut byte = [MaybeUninit::uninit(); 1];
        let mut buf = ReadBuf::uninit(&mut byte);
        match this.client.poll_peek(cx, &mut buf) {
            Poll::Ready(Ok(0) | Err(_)) => Poll::Ready(()),
            Poll::Ready(Ok(_)) => {
                this.sent_more = true;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
