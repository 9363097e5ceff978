//! The Prometheus/OpenMetrics registry behind `/metrics`.
//!
//! [`Metrics`] owns the registry and every metric family. It is built once at start-up and
//! shared as an `Arc`. The request path never looks a series up by name: when the binary builds
//! a config snapshot it asks for a [`RouteMetrics`] per route and an [`UpstreamMetrics`] per
//! upstream, and those handles cache their series on first use. Label values are bounded: the
//! route and upstream names come from the config, methods outside the standard nine collapse
//! into `other`, and statuses into five classes.
//!
//! [`Metrics::encode`] renders the page in the [`Format`] the scraper negotiated; see
//! [`exposition`]. On Linux the standard `process_*` metrics are read at scrape time.

pub mod exposition;
mod jobs;
pub mod names;
#[cfg(target_os = "linux")]
mod process;
mod ratelimit;
mod resilience;
mod route;
mod security;
mod upstream;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use exposition::Format;
pub use jobs::JobMetrics;
pub use ratelimit::RateLimitMetrics;
pub use resilience::{BreakerMetrics, RetryMetrics, ShedMetrics};
pub use route::{NO_ROUTE, RouteMetrics, method_label, status_class};
pub use security::SecurityMetrics;
pub use upstream::{UpstreamErrorKind, UpstreamMetrics};

use route::{RejectionLabels, RequestLabels, request_duration_histogram};
use upstream::{EjectionLabels, FailoverLabels, UpstreamLabels};

/// A gauge holding a float, for timestamps and durations in seconds.
type F64Gauge = Gauge<f64, AtomicU64>;

/// The labels of `palisade_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

/// The label of `palisade_config_reloads_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: &'static str,
}

/// The label of `palisade_config_restart_required`: a config field path such as
/// `server.listen` (bounded by the config's schema).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FieldLabels {
    field: String,
}

/// The registry and every metric family Palisade exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    in_flight: Gauge,
    upstream_errors: Family<UpstreamLabels, Counter>,
    upstream_failovers: Family<FailoverLabels, Counter>,
    upstream_ejections: Family<EjectionLabels, Counter>,
    process_start: F64Gauge,
    startup_duration: F64Gauge,
    shutdown_duration: F64Gauge,
    ready: Gauge,
    ready_last_success: F64Gauge,
    config_reloads: Family<ReloadLabels, Counter>,
    config_last_success: F64Gauge,
    config_last_ok: Gauge,
    config_restart_required: Family<FieldLabels, Gauge>,
    connection_panics: Counter,
    connections_refused: Family<ReasonLabels, Counter>,
    connections_open: Gauge,
    audit_events: Counter,
    audit_dropped: Counter,
    ratelimit: ratelimit::RateLimitFamilies,
    security: security::SecurityFamilies,
    resilience: resilience::ResilienceFamilies,
    jobs: jobs::JobFamilies,
}

impl Metrics {
    /// Builds the registry, registers every family and sets `palisade_build_info{version}` to 1.
    pub fn new(version: &str) -> Arc<Metrics> {
        Self::new_with(version, |_| {})
    }

    /// Like [`Metrics::new`], and lets the caller register further metrics (a limiter's or a
    /// delivery queue's) in the same registry before it is frozen. Their names belong in
    /// [`names`] too.
    pub fn new_with(version: &str, register: impl FnOnce(&mut Registry)) -> Arc<Metrics> {
        let mut metrics = Metrics {
            requests: Family::default(),
            rejections: Family::default(),
            durations: Family::new_with_constructor(request_duration_histogram),
            in_flight: Gauge::default(),
            upstream_errors: Family::default(),
            upstream_failovers: Family::default(),
            upstream_ejections: Family::default(),
            process_start: F64Gauge::default(),
            startup_duration: F64Gauge::default(),
            shutdown_duration: F64Gauge::default(),
            ready: Gauge::default(),
            ready_last_success: F64Gauge::default(),
            config_reloads: Family::default(),
            config_last_success: F64Gauge::default(),
            config_last_ok: Gauge::default(),
            config_restart_required: Family::default(),
            connection_panics: Counter::default(),
            connections_refused: Family::default(),
            connections_open: Gauge::default(),
            audit_events: Counter::default(),
            audit_dropped: Counter::default(),
            ratelimit: Default::default(),
            security: Default::default(),
            resilience: Default::default(),
            jobs: Default::default(),
            registry: Registry::default(),
        };
        let mut registry = std::mem::take(&mut metrics.registry);
        metrics.register_all(&mut registry, version);
        register(&mut registry);
        metrics.registry = registry;
        Arc::new(metrics)
    }

    fn register_all(&self, r: &mut Registry, version: &str) {
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info
            .get_or_create(&BuildLabels {
                version: version.to_owned(),
            })
            .set(1);
        // Both results exist from the start so that `rate()` sees the first failure.
        for result in ["success", "failure"] {
            let _ = self.config_reloads.get_or_create(&ReloadLabels { result });
        }
        // The registry is built once the start-up config has loaded; a failed load exits.
        self.config_last_ok.set(1);

        use names::*;
        r.register(
            HTTP_REQUESTS,
            "HTTP requests answered, by route, method and status class",
            self.requests.clone(),
        );
        r.register(
            HTTP_REQUEST_DURATION_SECONDS,
            "Time from receiving an HTTP request to the end of its response body, in seconds",
            self.durations.clone(),
        );
        r.register(
            HTTP_REJECTIONS,
            "Requests Palisade answered itself, by route and problem type",
            self.rejections.clone(),
        );
        r.register(
            HTTP_REQUESTS_IN_FLIGHT,
            "HTTP requests being handled now",
            self.in_flight.clone(),
        );
        r.register(
            UPSTREAM_REQUEST_ERRORS,
            "Upstream requests that failed, by upstream and kind of failure",
            self.upstream_errors.clone(),
        );
        r.register(
            UPSTREAM_FAILOVERS,
            "Requests sent to the next endpoint because the chosen one could not be connected to",
            self.upstream_failovers.clone(),
        );
        r.register(
            BUILD_INFO,
            "Always 1; the labels describe the running build",
            build_info,
        );
        r.register(
            PROCESS_START_TIME_SECONDS,
            "Unix time the process started, in seconds",
            self.process_start.clone(),
        );
        r.register(
            PROCESS_STARTUP_DURATION_SECONDS,
            "Time from process start to first readiness, in seconds",
            self.startup_duration.clone(),
        );
        r.register(
            PROCESS_SHUTDOWN_DURATION_SECONDS,
            "Time the graceful shutdown took, in seconds",
            self.shutdown_duration.clone(),
        );
        r.register(
            READY,
            "1 while the readiness check passes, else 0",
            self.ready.clone(),
        );
        r.register(
            READY_LAST_SUCCESS_TIMESTAMP_SECONDS,
            "Unix time the readiness check last passed, in seconds",
            self.ready_last_success.clone(),
        );
        r.register(
            CONFIG_RELOADS,
            "Configuration reloads, by result",
            self.config_reloads.clone(),
        );
        r.register(
            CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS,
            "Unix time of the last successful configuration reload, in seconds",
            self.config_last_success.clone(),
        );
        r.register(
            CONFIG_LAST_RELOAD_SUCCESS,
            "1 if the last configuration load or reload succeeded, 0 if the last reload was rejected",
            self.config_last_ok.clone(),
        );
        r.register(
            CONFIG_RESTART_REQUIRED,
            "1 for each setting a reload changed that keeps its running value until a restart",
            self.config_restart_required.clone(),
        );
        r.register(
            CONNECTION_PANICS,
            "Connection tasks that panicked; each such connection was closed",
            self.connection_panics.clone(),
        );
        r.register(
            CONNECTIONS_REFUSED,
            "Client connections closed at once, by reason (per_ip: the address had max_connections_per_ip open)",
            self.connections_refused.clone(),
        );
        r.register(
            CONNECTIONS_OPEN,
            "Client connections open on the proxy listener",
            self.connections_open.clone(),
        );
        r.register(
            AUDIT_EVENTS,
            "Audit events accepted into the audit queue",
            self.audit_events.clone(),
        );
        r.register(
            AUDIT_EVENTS_DROPPED,
            "Audit events lost: queue full, writer stopped or write failed",
            self.audit_dropped.clone(),
        );
        r.register(
            RATELIMIT_DECISIONS,
            "Rate-limit decisions, by policy and result (allowed, limited, shadow_limited)",
            self.ratelimit.decisions.clone(),
        );
        r.register(
            RATELIMIT_KEYS,
            "Keys a rate-limit policy tracks now",
            self.ratelimit.keys.clone(),
        );
        r.register(
            RATELIMIT_SWEPT_KEYS,
            "Keys dropped from a rate-limit policy because they were idle (back at a full burst)",
            self.ratelimit.swept.clone(),
        );
        r.register(
            RATELIMIT_OVERFLOW,
            "Requests with a new key counted in a policy's shared overflow bucket because it tracked max_keys keys",
            self.ratelimit.overflow.clone(),
        );
        r.register(
            RATELIMIT_BACKEND_FALLBACKS,
            "Rate-limit decisions made by on_backend_error because Redis could not, by policy and reason",
            self.ratelimit.fallbacks.clone(),
        );
        r.register(
            RATELIMIT_REDIS_SECONDS,
            "Time one Redis rate-limit decision took, in seconds",
            self.ratelimit.redis_seconds.clone(),
        );
        r.register(
            AUTH_DECISIONS,
            "Credential checks on routes with auth, by route, method (jwt, api_key, none) and result (ok, forbidden, or why the credential was refused)",
            self.security.auth.clone(),
        );
        r.register(
            WEBHOOK_VERIFICATIONS,
            "Inbound webhook signature checks, by route, scheme and result (valid, skipped, replayed, or why the signature was refused)",
            self.security.webhooks.clone(),
        );
        r.register(
            UPSTREAM_EJECTIONS,
            "Endpoints taken out of the rotation, by upstream and reason (5xx: server errors in a row; health_check: failed active checks)",
            self.upstream_ejections.clone(),
        );
        r.register(
            UPSTREAM_BREAKER_STATE,
            "State of an upstream's circuit breaker: 0 closed, 1 open, 2 half-open",
            self.resilience.breaker_state.clone(),
        );
        r.register(
            UPSTREAM_BREAKER_TRANSITIONS,
            "Circuit breaker state changes, by upstream and the state entered",
            self.resilience.transitions.clone(),
        );
        r.register(
            UPSTREAM_RETRIES,
            "Upstream requests sent again, by upstream and what failed (connect, reset, timeout, status_4xx, status_5xx)",
            self.resilience.retries.clone(),
        );
        r.register(
            UPSTREAM_RETRIES_SKIPPED,
            "Retryable failures not retried, by upstream and why (budget_exhausted, attempts_exhausted, deadline, retry_after_too_long, body_not_replayable, not_idempotent)",
            self.resilience.retry_stops.clone(),
        );
        r.register(
            ROUTE_SHED,
            "Requests answered 503 at once by a route's concurrency limit, by reason (queue_full, queue_timeout)",
            self.resilience.shed.clone(),
        );
        r.register(
            ROUTE_QUEUE_WAIT_SECONDS,
            "Time admitted requests waited for a slot under a route's concurrency limit, in seconds",
            self.resilience.queue_wait.clone(),
        );
        r.register(
            JOB_RUNS,
            "Maintenance job runs recorded in the job's database since this process started, by job and outcome (success, failure), and runs skipped here because another replica held the job's lock (skipped)",
            self.jobs.runs.clone(),
        );
        r.register(
            JOB_ROWS_DELETED,
            "Rows deleted by retention runs, by job and table",
            self.jobs.deleted.clone(),
        );
        r.register(
            JOB_ROWS_RECOVERED,
            "Stuck rows recovered by stuck scans, by job",
            self.jobs.recovered.clone(),
        );
        r.register(
            JOB_STUCK_ROWS,
            "Stuck rows the job's last scan found and could not recover",
            self.jobs.stuck.clone(),
        );
        r.register(
            JOB_DURATION_SECONDS,
            "How long maintenance job runs took, in seconds",
            self.jobs.duration.clone(),
        );
        r.register(
            JOB_LAST_SUCCESS_TIMESTAMP_SECONDS,
            "Unix time the job's last successful run ended, 0 until one is known",
            self.jobs.last_success.clone(),
        );
        r.register(
            JOB_INTERVAL_SECONDS,
            "Seconds between two runs of the job's schedule",
            self.jobs.interval.clone(),
        );
        #[cfg(target_os = "linux")]
        r.register_collector(Box::new(process::ProcessCollector));
    }

    /// A maintenance job's handle: `tables` are those it deletes from, `interval_secs` the
    /// time between two of its scheduled runs.
    pub fn job(&self, job: &str, tables: &[&str], interval_secs: f64) -> JobMetrics {
        JobMetrics::new(job, tables, interval_secs, &self.jobs)
    }

    /// Counts a client connection closed at once; `reason` says which cap it met.
    pub fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// Adds `delta` (1 or -1) to the open client connections.
    pub fn connections_open(&self, delta: i64) {
        self.connections_open.inc_by(delta);
    }

    /// The handle an upstream's circuit breaker reports with.
    pub fn breaker(&self, upstream: &str) -> BreakerMetrics {
        BreakerMetrics::new(upstream, &self.resilience)
    }

    /// The handle an upstream's retries report with.
    pub fn retries(&self, upstream: &str) -> RetryMetrics {
        RetryMetrics::new(upstream, &self.resilience)
    }

    /// The handle a route's concurrency limit reports with.
    pub fn shedding(&self, route: &str) -> ShedMetrics {
        ShedMetrics::new(route, &self.resilience)
    }

    /// The handle a route records its credential and signature checks with.
    pub fn security(&self, route: &str) -> SecurityMetrics {
        SecurityMetrics::new(route, &self.security)
    }

    /// The handle a rate-limit policy records its decisions with.
    pub fn ratelimit(&self, policy: &str) -> RateLimitMetrics {
        RateLimitMetrics::new(policy, &self.ratelimit)
    }

    /// The handle a route's service records its requests with. Create it when the config
    /// snapshot is built, not per request. Use [`NO_ROUTE`] for requests that match no route.
    pub fn route(&self, route: &str) -> RouteMetrics {
        RouteMetrics::new(
            route,
            self.requests.clone(),
            self.durations.clone(),
            self.rejections.clone(),
        )
    }

    /// The handle an upstream's client records its failures with.
    pub fn upstream(&self, upstream: &str) -> UpstreamMetrics {
        UpstreamMetrics::new(
            upstream,
            self.upstream_errors.clone(),
            &self.upstream_failovers,
            self.upstream_ejections.clone(),
        )
    }

    /// Counts a request in `palisade_http_requests_in_flight` until the guard is dropped.
    pub fn in_flight(&self) -> InFlightGuard {
        self.in_flight.inc();
        InFlightGuard {
            gauge: self.in_flight.clone(),
        }
    }

    /// Sets `palisade_process_start_time_seconds`.
    pub fn set_process_start_time(&self, unix_secs: f64) {
        self.process_start.set(unix_secs);
    }

    /// Sets `palisade_process_startup_duration_seconds`.
    pub fn set_startup_duration(&self, secs: f64) {
        self.startup_duration.set(secs);
    }

    /// Sets `palisade_process_shutdown_duration_seconds`.
    pub fn set_shutdown_duration(&self, secs: f64) {
        self.shutdown_duration.set(secs);
    }

    /// Sets `palisade_ready` and, when `ready`, `palisade_ready_last_success_timestamp_seconds`.
    pub fn set_ready(&self, ready: bool, now_unix_secs: f64) {
        self.ready.set(i64::from(ready));
        if ready {
            self.ready_last_success.set(now_unix_secs);
        }
    }

    /// Counts a configuration reload, sets `palisade_config_last_reload_success` to 1 or 0
    /// and, on success, stamps `palisade_config_last_reload_success_timestamp_seconds` with the
    /// current time.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "success" } else { "failure" };
        self.config_reloads
            .get_or_create(&ReloadLabels { result })
            .inc();
        self.config_last_ok.set(i64::from(ok));
        if ok {
            self.config_last_success.set(unix_now());
        }
    }

    /// Sets `palisade_config_restart_required` to the settings (field paths) a reload changed
    /// that keep their running value until a restart; an empty list clears it.
    pub fn set_restart_required(&self, fields: &[impl AsRef<str>]) {
        self.config_restart_required.clear();
        for field in fields {
            self.config_restart_required
                .get_or_create(&FieldLabels {
                    field: field.as_ref().to_owned(),
                })
                .set(1);
        }
    }

    /// Counts a connection task that panicked (`palisade_connection_panics_total`).
    pub fn connection_panic(&self) {
        self.connection_panics.inc();
    }

    /// Counts an audit event accepted into the queue.
    pub(crate) fn audit_event(&self) {
        self.audit_events.inc();
    }

    /// Counts audit events that were lost.
    pub(crate) fn audit_dropped(&self, n: u64) {
        self.audit_dropped.inc_by(n);
    }

    /// Renders every metric in `format`; serve it with [`Format::content_type`].
    pub fn encode(&self, format: Format) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(error) = text::encode(&mut out, &self.registry) {
            // Only a label value's encoder can fail, and ours cannot; never serve half a page.
            tracing::error!(%error, "failed to encode metrics");
            out.clear();
            out.push_str("# EOF\n");
        }
        match format {
            Format::OpenMetrics => out,
            Format::Prometheus => exposition::to_prometheus_text(&out),
        }
    }
}

/// Keeps `palisade_http_requests_in_flight` raised while it lives; see [`Metrics::in_flight`].
#[derive(Debug)]
#[must_use = "the request stops counting as in flight when the guard is dropped"]
pub struct InFlightGuard {
    gauge: Gauge,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// The current Unix time in seconds (0 if the clock is before 1970).
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
