//! A connection handed from the fast codec to hyper, with the bytes already read put back in
//! front of the stream, and a bound on how long a write may wait for a client that stopped
//! reading (`server.send_timeout`), which hyper has no setting for.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// A client connection whose first bytes were read by the fast codec.
pub struct Rewind {
    prefix: Bytes,
    stream: TcpStream,
    http1_only: bool,
    send_timeout: Option<Duration>,
    /// Armed while a write waits for the client.
    stall: Option<Pin<Box<Sleep>>>,
}

impl Rewind {
    pub fn new(stream: TcpStream, prefix: Bytes) -> Self {
        Self {
            prefix,
            stream,
            http1_only: false,
            send_timeout: None,
            stall: None,
        }
    }

    /// Fails a write that waits longer than `timeout` for the client to take bytes, which
    /// closes the connection.
    pub fn with_send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = Some(timeout);
        self
    }

    /// Passes a write's outcome through, turning a wait past the send timeout into an error.
    fn bound<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        let Some(timeout) = self.send_timeout else {
            return polled;
        };
        if polled.is_ready() {
            self.stall = None;
            return polled;
        }
        let stall = self
            .stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no response bytes within server.send_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Marks a connection that already carried HTTP/1.1 requests: the protocol was decided
    /// by its first bytes, so the HTTP/2 preface may not switch it now.
    pub fn after_http1(mut self) -> Self {
        self.http1_only = true;
        self
    }

    /// The general codec must serve this connection as HTTP/1 only.
    pub fn http1_only(&self) -> bool {
        self.http1_only
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.bound(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.bound(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.bound(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
