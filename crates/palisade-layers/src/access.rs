//! The record of one request: filled as the request goes through the gateway and written —
//! metrics and one access-log event — when the response body is done.

use std::net::IpAddr;
use std::time::Instant;

use http::{HeaderValue, Method};
use palisade_telemetry::access_log::{self, AccessEntry};
use palisade_telemetry::metrics::{InFlightGuard, RouteMetrics};

use crate::trace_context::TraceContext;

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
}

impl AccessRecord {
    /// Called once, when the response body is dropped.
    pub fn finish(self, bytes_out: u64, complete: bool) {
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
        drop(self.in_flight);
    }
}
