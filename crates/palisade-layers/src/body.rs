//! Streaming bodies in both directions. Nothing here buffers: frames pass through as they come.
//!
//! [`RequestBody`] enforces a route's body-size limit while streaming. [`ResponseBody`] counts
//! the bytes sent and, when it is dropped (the response is finished or the client went away),
//! hands them to the request's [`AccessRecord`], which writes the access log and the metrics.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use crate::access::AccessRecord;
use crate::pool::Checkout;

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("request body exceeds the route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the request body failed")]
    Read(#[source] hyper::Error),
}

pin_project! {
    /// The client's request body on its way upstream.
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        limit: Option<u64>,
        seen: u64,
    }
}

impl RequestBody {
    pub fn new(inner: Incoming, limit: Option<u64>) -> Self {
        Self {
            inner,
            limit,
            seen: 0,
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if let Some(limit) = *this.limit
                        && *this.seen > limit
                    {
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge { limit })));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Read(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner {
        Upstream { #[pin] body: Incoming },
        Full { data: Option<Bytes> },
    }
}

impl Inner {
    fn is_end_stream(&self) -> bool {
        match self {
            Inner::Upstream { body } => body.is_end_stream(),
            Inner::Full { data } => data.is_none(),
        }
    }
}

/// Records the request when the response body is dropped, whatever the reason, and gives the
/// upstream connection back to its pool when the body was read to its end.
struct Finisher {
    record: Option<AccessRecord>,
    checkout: Option<Checkout>,
    bytes: u64,
    complete: bool,
}

impl Drop for Finisher {
    fn drop(&mut self) {
        if let Some(checkout) = self.checkout.take()
            && self.complete
        {
            checkout.release();
        }
        if let Some(record) = self.record.take() {
            record.finish(self.bytes, self.complete);
        }
    }
}

pin_project! {
    /// The body sent to the client: the upstream's, streamed, or one the gateway wrote.
    pub struct ResponseBody {
        #[pin]
        inner: Inner,
        finisher: Finisher,
    }
}

impl ResponseBody {
    /// The upstream's body; `checkout` (HTTP/1.1) is released when it has been read to its end.
    pub fn upstream(
        body: Incoming,
        record: Option<AccessRecord>,
        checkout: Option<Checkout>,
    ) -> Self {
        Self::with(Inner::Upstream { body }, record, checkout)
    }

    pub fn full(data: Bytes, record: Option<AccessRecord>) -> Self {
        Self::with(Inner::Full { data: Some(data) }, record, None)
    }

    fn with(inner: Inner, record: Option<AccessRecord>, checkout: Option<Checkout>) -> Self {
        // An empty body (HEAD, 204, 304) is never polled: it is complete from the start.
        let complete = inner.is_end_stream();
        Self {
            inner,
            finisher: Finisher {
                record,
                checkout,
                bytes: 0,
                complete,
            },
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = match inner.as_mut().project() {
            InnerProj::Upstream { body } => body.poll_frame(cx),
            InnerProj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
        };
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.finisher.bytes += d.len() as u64;
                }
                // hyper stops polling once the body says it has ended.
                this.finisher.complete = inner.is_end_stream();
            }
            Poll::Ready(None) => this.finisher.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream { body } => body.size_hint(),
            Inner::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
