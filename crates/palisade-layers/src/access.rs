//! The record of one request: filled as the request goes through the gateway and written —
//! metrics and one access-log event — exactly once, when the response is done or abandoned.
//!
//! A record dropped before [`AccessRecord::finish`] belongs to a request whose client went away
//! before the response was complete (or whose connection a forced shutdown cut): it is written
//! with status 499, NGINX's "client closed request", and counts as no upstream error.

use std::net::IpAddr;
use std::time::Instant;

use http::{HeaderValue, Method};
use palisade_telemetry::access_log::{self, AccessEntry};
use palisade_telemetry::metrics::{InFlightGuard, RouteMetrics};

use crate::trace_context::TraceContext;

/// The status recorded for a request whose client left before its response was complete.
pub const CLIENT_CLOSED: u16 = 499;

/// Everything the access log and the request metrics need about one request.
pub struct AccessRecord {
    pub start: Instant,
    /// The route's metrics; also names the route (`none` when no route matched).
    pub metrics: RouteMetrics,
    pub method: Method,
    pub path: String,
    pub status: u16,
    pub client_ip: IpAddr,
    pub request_id: HeaderValue,
    pub trace: TraceContext,
    pub bytes_in: Option<u64>,
    pub log: bool,
    pub in_flight: InFlightGuard,
    /// Set once the record is written; a record dropped unwritten is a 499.
    pub written: bool,
}

impl AccessRecord {
    /// Drops the record without writing it: the request is being decided again from its head
    /// (after fetching an issuer's new keys), and that decision writes its own.
    pub fn forget(mut self) {
        self.written = true;
    }

    /// Records the request as answered: `complete` when the whole response reached the client.
    pub fn finish(mut self, bytes_out: u64, complete: bool) {
        self.write(bytes_out, complete);
    }

    /// Records the request as abandoned by the client after `bytes_out` bytes of the body.
    pub fn client_closed(mut self, bytes_out: u64) {
        self.status = CLIENT_CLOSED;
        self.finish(bytes_out, false);
    }

    fn write(&mut self, bytes_out: u64, complete: bool) {
        if std::mem::replace(&mut self.written, true) {
            return;
        }
        let elapsed = self.start.elapsed();
        self.metrics.observe(&self.method, self.status, elapsed);
        if self.log {
            access_log::write(&AccessEntry {
                route: self.metrics.route(),
                method: self.method.as_str(),
                path: &self.path,
                status: self.status,
                duration: elapsed,
                bytes_in: self.bytes_in,
                bytes_out,
                complete,
                client_ip: self.client_ip,
                request_id: self.request_id.to_str().unwrap_or_default(),
                trace_id: self.trace.trace_id(),
                span_id: self.trace.span_id(),
            });
        }
    }
}

impl Drop for AccessRecord {
    fn drop(&mut self) {
        if !self.written {
            self.status = CLIENT_CLOSED;
            self.write(0, false);
        }
    }
}
