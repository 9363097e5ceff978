//! Every answer the proxy gives instead of the upstream, rendered in one place.
//!
//! A [`Rejection`] carries what its response needs; [`render`] turns it into status, headers
//! (`Date`, the request id, `traceresponse`, `Cache-Control: no-store`, the rate-limit fields
//! and `Retry-After` on a route with rate limits, `Connection: close` when the connection
//! cannot continue) and a small `application/problem+json` body, through a
//! [`ResponseSink`] each codec implements. The access log line and the request metric follow
//! from the request's record when the response is done.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::StatusCode;

use super::RequestCtx;
use crate::problem::{PROBLEM_JSON, ProxyError, problem_body};

/// Why the proxy answers, and what the answer must say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejection {
    pub error: ProxyError,
    /// The client connection closes after the answer (the framing of what follows is unknown,
    /// or the client asked).
    pub close: bool,
}

/// Where a codec receives a response the proxy writes itself.
pub trait ResponseSink {
    fn status(&mut self, status: StatusCode);
    fn header(&mut self, name: &'static [u8], value: &[u8]);
    fn body(&mut self, body: Bytes);
}

/// Renders `rejection` into `sink` and records its status on the request.
pub fn render(rejection: &Rejection, ctx: &mut RequestCtx, sink: &mut impl ResponseSink) {
    if let Some(fallback) = ctx.fallback.take() {
        return render_fallback(rejection, &fallback, ctx, sink);
    }
    let status = rejection.error.status();
    let record = &mut ctx.record;
    record.status = status.as_u16();
    record.metrics.rejected(rejection.error.type_slug());
    let limits = ctx.limits.as_deref();
    let refused = limits.and_then(|l| l.refused.as_ref());
    let body = problem_body(
        rejection.error,
        record.request_id.to_str().unwrap_or_default(),
        match (refused, &ctx.pointer, ctx.reason) {
            (Some((policy, _)), _, _) => Some(("policy", &**policy)),
            (None, Some(pointer), _) => Some(("pointer", pointer.as_str())),
            (None, None, Some(reason)) => Some(("reason", reason)),
            (None, None, None) => None,
        },
    );
    sink.status(status);
    sink.header(b"content-type", PROBLEM_JSON.as_bytes());
    sink.header(
        b"content-length",
        super::forward::decimal(body.len() as u64, &mut [0; 20]),
    );
    sink.header(b"x-request-id", record.request_id.as_bytes());
    sink.header(b"traceresponse", &ctx.traceparent);
    sink.header(b"cache-control", b"no-store");
    sink.header(b"x-content-type-options", b"nosniff");
    with_date(|date| sink.header(b"date", date));
    if let Some(challenge) = &ctx.challenge {
        sink.header(b"www-authenticate", challenge.as_bytes());
    }
    if let Some(allow) = &ctx.allow {
        sink.header(b"allow", allow.as_bytes());
    }
    if let Some(limits) = limits {
        sink.header(b"ratelimit-policy", limits.policy_field.as_bytes());
        sink.header(b"ratelimit", limits.limit_field.as_bytes());
    }
    if let Some((_, retry_after)) = refused {
        sink.header(
            b"retry-after",
            super::forward::decimal(*retry_after, &mut [0; 20]),
        );
    } else if let Some(retry_after) = &ctx.retry_after {
        sink.header(b"retry-after", retry_after.as_bytes());
    }
    if rejection.close {
        sink.header(b"connection", b"close");
    }
    sink.body(body);
}

/// The upstream's fallback while its breaker is open: the configured status, type and body,
/// with the request id and the time until the breaker lets calls through again.
fn render_fallback(
    rejection: &Rejection,
    fallback: &super::guard::Fallback,
    ctx: &mut RequestCtx,
    sink: &mut impl ResponseSink,
) {
    let record = &mut ctx.record;
    record.status = fallback.status.as_u16();
    record.metrics.rejected(rejection.error.type_slug());
    sink.status(fallback.status);
    sink.header(b"content-type", fallback.content_type.as_bytes());
    sink.header(
        b"content-length",
        super::forward::decimal(fallback.body.len() as u64, &mut [0; 20]),
    );
    sink.header(b"x-request-id", record.request_id.as_bytes());
    sink.header(b"traceresponse", &ctx.traceparent);
    sink.header(b"cache-control", b"no-store");
    with_date(|date| sink.header(b"date", date));
    if let Some(retry_after) = &ctx.retry_after {
        sink.header(b"retry-after", retry_after.as_bytes());
    }
    if rejection.close {
        sink.header(b"connection", b"close");
    }
    sink.body(fallback.body.clone());
}

/// The current time as an HTTP date (RFC 9110 §5.6.7), formatted once a second per thread.
pub fn with_date<R>(f: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static CACHE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.0 != secs {
            let text = httpdate::fmt_http_date(now);
            if text.len() == 29 {
                cache.1.copy_from_slice(text.as_bytes());
                cache.0 = secs;
            }
        }
        f(&cache.1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_date_is_an_imf_fixdate() {
        let date = with_date(|d| String::from_utf8(d.to_vec()).unwrap());
        assert!(httpdate::parse_http_date(&date).is_ok(), "{date}");
        assert!(date.ends_with(" GMT"));
    }
}
