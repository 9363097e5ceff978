//! Streaming bodies in both directions. Nothing here buffers: frames pass through as they come.
//!
//! [`RequestBody`] enforces a route's body-size limit while streaming. [`ResponseBody`] counts
//! the bytes sent and, when it is dropped (the response is finished or the client went away),
//! hands them to the request's [`AccessRecord`], which writes the access log and the metrics.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::access::AccessRecord;
use crate::codec::RouteDeadline;
use crate::pool::Checkout;
use palisade_telemetry::metrics::{UpstreamErrorKind, UpstreamMetrics};

/// Why a request body stopped.
#[derive(Debug, thiserror::Error)]
pub enum RequestBodyError {
    #[error("request body exceeds the route's limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("reading the request body failed")]
    Read(#[source] hyper::Error),
    #[error("the client sent no request body bytes for {0:?}")]
    Idle(Duration),
}

pin_project! {
    /// The client's request body on its way upstream: its size limit is enforced while it
    /// streams, a client that stops sending for `idle` is cut off (408), and `sent` turns true
    /// once the body went out whole, which the upstream connection's reuse waits for.
    pub struct RequestBody {
        // `None`: no body (a bodiless request built again for a second attempt).
        inner: Option<Incoming>,
        limit: Option<u64>,
        seen: u64,
        idle: Duration,
        // Made on the first wait for the client; boxed, as hyper's client wants an `Unpin`
        // body.
        stall: Option<Pin<Box<Sleep>>>,
        sent: Arc<AtomicBool>,
        // The route's timeout, moved on by every body frame.
        deadline: Option<Arc<RouteDeadline>>,
        // A body read whole before it goes upstream (a route with a JSON Schema), sent as one
        // frame when `inner` is `None`.
        buffered: Option<Bytes>,
    }
}

impl RequestBody {
    pub fn new(
        inner: Incoming,
        limit: Option<u64>,
        idle: Duration,
        deadline: Option<Arc<RouteDeadline>>,
    ) -> Self {
        let sent = Arc::new(AtomicBool::new(inner.is_end_stream()));
        Self {
            inner: Some(inner),
            limit,
            seen: 0,
            idle,
            stall: None,
            sent,
            deadline,
            buffered: None,
        }
    }

    /// No body at all.
    pub fn empty() -> Self {
        Self {
            inner: None,
            limit: None,
            seen: 0,
            idle: Duration::MAX,
            stall: None,
            sent: Arc::new(AtomicBool::new(true)),
            deadline: None,
            buffered: None,
        }
    }

    /// A body already read whole from the client.
    pub fn buffered(body: Bytes) -> Self {
        Self {
            buffered: Some(body),
            ..Self::empty()
        }
    }

    /// The body, when it was read whole before (and so can be sent again).
    pub fn buffered_bytes(&self) -> Option<Bytes> {
        self.buffered.clone()
    }

    /// Turns true once the whole body was read from the client.
    pub fn sent_flag(&self) -> Arc<AtomicBool> {
        self.sent.clone()
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
        let polled = match this.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => return Poll::Ready(this.buffered.take().map(|b| Ok(Frame::data(b)))),
        };
        // While hyper's client waits for the client's bytes (not for the upstream, which stops
        // the polling while it takes none), the route's timeout stands still.
        if let Some(deadline) = this.deadline.as_deref() {
            if polled.is_pending() {
                deadline.pause();
            } else {
                deadline.moved();
            }
        }
        if polled.is_ready()
            && let Some(stall) = this.stall.as_mut()
        {
            stall.as_mut().reset(Instant::now() + *this.idle);
        }
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if let Some(limit) = *this.limit
                        && *this.seen > limit
                    {
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge { limit })));
                    }
                }
                // hyper stops polling once the body says it has ended: no `None` follows.
                if this.inner.as_ref().is_none_or(Incoming::is_end_stream) {
                    this.sent.store(true, Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Read(e)))),
            Poll::Ready(None) => {
                this.sent.store(true, Ordering::Relaxed);
                Poll::Ready(None)
            }
            Poll::Pending => match this
                .stall
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(*this.idle)))
                .as_mut()
                .poll(cx)
            {
                Poll::Ready(()) => Poll::Ready(Some(Err(RequestBodyError::Idle(*this.idle)))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Some(inner) => inner.is_end_stream(),
            None => self.buffered.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(inner) => inner.size_hint(),
            None => SizeHint::with_exact(self.buffered.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }
}

pin_project! {
    #[project = InnerProj]
    enum Inner {
        Upstream { #[pin] body: Incoming, idle: Duration, stall: Option<Pin<Box<Sleep>>> },
        Full { data: Option<Bytes> },
    }
}

impl Inner {
    fn is_end_stream(&self) -> bool {
        match self {
            Inner::Upstream { body, .. } => body.is_end_stream(),
            Inner::Full { data } => data.is_none(),
        }
    }
}

/// Where an upstream's response body comes from, for [`ResponseBody::upstream`].
pub struct FromUpstream {
    pub idle: Duration,
    pub checkout: Option<Checkout>,
    pub request_sent: Arc<AtomicBool>,
    /// Counts a body the upstream broke off.
    pub metrics: UpstreamMetrics,
    /// The request's place under its route's concurrency limit, given back when the body ends.
    pub place: Option<crate::resilience::ConcurrencyPermit>,
}

/// Records the request when the response body is dropped, whatever the reason, and gives the
/// upstream connection back to its pool when the body was read to its end.
struct Finisher {
    record: Option<AccessRecord>,
    checkout: Option<Checkout>,
    /// Whether the request body went out whole; the connection is reusable only then.
    request_sent: Option<Arc<AtomicBool>>,
    bytes: u64,
    complete: bool,
    /// The upstream broke the body; otherwise an incomplete body means the client left.
    upstream_failed: bool,
    metrics: Option<UpstreamMetrics>,
    place: Option<crate::resilience::ConcurrencyPermit>,
}

impl Drop for Finisher {
    fn drop(&mut self) {
        let sent = self
            .request_sent
            .as_ref()
            .is_none_or(|s| s.load(Ordering::Relaxed));
        if let Some(checkout) = self.checkout.take()
            && self.complete
            && sent
        {
            checkout.release();
        }
        if let Some(record) = self.record.take() {
            if self.complete || self.upstream_failed {
                record.finish(self.bytes, self.complete);
            } else {
                record.client_closed(self.bytes);
            }
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
    /// The upstream's body. A wait of more than `from.idle` for its next bytes ends it; the
    /// connection (`from.checkout`, HTTP/1.1) goes back to its pool once both this body and
    /// the request body went through whole.
    pub fn upstream(body: Incoming, record: AccessRecord, from: FromUpstream) -> Self {
        let inner = Inner::Upstream {
            body,
            idle: from.idle,
            stall: None,
        };
        let mut this = Self::with(inner, Some(record), from.checkout);
        this.finisher.request_sent = Some(from.request_sent);
        this.finisher.metrics = Some(from.metrics);
        this.finisher.place = from.place;
        this
    }

    /// The same body, recording `record` when it is done.
    pub fn with_record(mut self, record: AccessRecord) -> Self {
        self.finisher.record = Some(record);
        self
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
                request_sent: None,
                bytes: 0,
                complete,
                upstream_failed: false,
                metrics: None,
                place: None,
            },
        }
    }
}

/// The upstream sent no body bytes within the idle bound.
#[derive(Debug, thiserror::Error)]
#[error("the upstream sent no response body bytes for {0:?}")]
pub struct ResponseStalled(Duration);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        let mut inner = this.inner;
        let polled = match inner.as_mut().project() {
            InnerProj::Upstream {
                mut body,
                idle,
                stall,
            } => loop {
                match body.as_mut().poll_frame(cx) {
                    // Trailer fields are not passed on, as NGINX does not.
                    Poll::Ready(Some(Ok(frame))) if frame.is_trailers() => continue,
                    Poll::Pending => {
                        let sleep =
                            stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(*idle)));
                        if sleep.as_mut().poll(cx).is_ready() {
                            break Poll::Ready(Some(Err(ResponseStalled(*idle).into())));
                        }
                        break Poll::Pending;
                    }
                    other => {
                        if let Some(sleep) = stall.as_mut() {
                            sleep.as_mut().reset(Instant::now() + *idle);
                        }
                        break other.map(|f| f.map(|r| r.map_err(|e| -> BoxError { e.into() })));
                    }
                }
            },
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
            Poll::Ready(Some(Err(error))) => {
                this.finisher.upstream_failed = true;
                let kind = if error.is::<ResponseStalled>() {
                    UpstreamErrorKind::Timeout
                } else {
                    UpstreamErrorKind::Protocol
                };
                if let Some(metrics) = &this.finisher.metrics {
                    metrics.error(kind);
                }
                tracing::warn!(%error, kind = kind.as_str(), "the upstream's response body broke off");
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Upstream { body, .. } => body.size_hint(),
            Inner::Full { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
