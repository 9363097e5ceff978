//! Palisade's telemetry: the metrics registry and its names, structured logging and the
//! security audit log.
//!
//! The binary builds one [`Metrics`] at start-up and hands per-route and per-upstream handles
//! ([`RouteMetrics`], [`UpstreamMetrics`]) to the request path when it builds a config snapshot,
//! so that recording a request touches no map and allocates nothing. [`logging::init`] installs
//! the global `tracing` subscriber, writing JSON (or human-readable) lines to stdout from a
//! background thread. [`AuditSink`] queues typed [`AuditEvent`]s without ever blocking a request
//! and a writer task appends them as JSON lines to stdout or a file.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod audit;
pub mod logging;
pub mod metrics;

pub use audit::{AuditCategory, AuditError, AuditEvent, AuditOutcome, AuditSink, AuditWriter};
pub use logging::{ACCESS_LOG_TARGET, LogGuard, LogInitError};
pub use metrics::{InFlightGuard, Metrics, RouteMetrics, UpstreamErrorKind, UpstreamMetrics};
