//! Every metric name Palisade exports, in one place so they can be grepped.
//!
//! Palisade's own names follow `palisade_<area>_<name>_<unit>`; [`standard`] holds the few that
//! every Prometheus client library exports under the same name. The registry appends `_total`
//! to counters when it renders them, so a counter's constant holds the name *without* `_total`;
//! each constant's doc says the series name that appears on `/metrics`. `docs/metrics.md`
//! describes each metric and its labels.

/// Counter `palisade_http_requests_total{route,method,status_class}`: requests answered.
pub const HTTP_REQUESTS: &str = "palisade_http_requests";
/// Histogram `palisade_http_request_duration_seconds{route,method,status_class}` (with
/// `_bucket`, `_sum` and `_count` series): time from receiving a request to the end of its response body.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "palisade_http_request_duration_seconds";
/// Counter `palisade_http_rejections_total{route,reason}`: requests Palisade answered itself
/// instead of the upstream; `reason` is the problem type's slug (`bad-request`, `no-route`,
/// `method-not-allowed`, `request-timeout`, `payload-too-large`, `unsupported-media-type`,
/// `invalid-body`, `rate-limited`, `upstream-unavailable`, `upstream-timeout`).
pub const HTTP_REJECTIONS: &str = "palisade_http_rejections";
/// Gauge `palisade_http_requests_in_flight`: requests being handled right now.
pub const HTTP_REQUESTS_IN_FLIGHT: &str = "palisade_http_requests_in_flight";
/// Counter `palisade_upstream_request_errors_total{upstream,kind}`: failed upstream requests.
pub const UPSTREAM_REQUEST_ERRORS: &str = "palisade_upstream_request_errors";
/// Counter `palisade_upstream_failovers_total{upstream}`: requests sent to the next endpoint
/// because the first one chosen could not be connected to.
pub const UPSTREAM_FAILOVERS: &str = "palisade_upstream_failovers";
/// Gauge `palisade_build_info{version}`: always 1; the labels describe the build.
pub const BUILD_INFO: &str = "palisade_build_info";
/// Gauge `palisade_process_start_time_seconds`: Unix time the process started.
pub const PROCESS_START_TIME_SECONDS: &str = "palisade_process_start_time_seconds";
/// Gauge `palisade_process_startup_duration_seconds`: time from start to first readiness.
pub const PROCESS_STARTUP_DURATION_SECONDS: &str = "palisade_process_startup_duration_seconds";
/// Gauge `palisade_process_shutdown_duration_seconds`: time the graceful shutdown has taken
/// (set when it ends; visible only to a scrape that races it).
pub const PROCESS_SHUTDOWN_DURATION_SECONDS: &str = "palisade_process_shutdown_duration_seconds";
/// Gauge `palisade_ready`: 1 while the readiness check passes, else 0.
pub const READY: &str = "palisade_ready";
/// Gauge `palisade_ready_last_success_timestamp_seconds`: Unix time readiness last passed.
pub const READY_LAST_SUCCESS_TIMESTAMP_SECONDS: &str =
    "palisade_ready_last_success_timestamp_seconds";
/// Gauge `palisade_config_last_reload_success`: 1 if the last configuration load (at start or
/// on reload) succeeded, 0 if the last reload was rejected.
pub const CONFIG_LAST_RELOAD_SUCCESS: &str = "palisade_config_last_reload_success";
/// Counter `palisade_config_reloads_total{result}`: configuration reloads, `result` being
/// `success` or `failure`.
pub const CONFIG_RELOADS: &str = "palisade_config_reloads";
/// Gauge `palisade_config_restart_required{field}`: 1 for each setting (e.g. `server.listen`)
/// that the last successful reload changed and that keeps its running value until a restart.
pub const CONFIG_RESTART_REQUIRED: &str = "palisade_config_restart_required";
/// Gauge `palisade_config_last_reload_success_timestamp_seconds`: Unix time of the last
/// successful reload.
pub const CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS: &str =
    "palisade_config_last_reload_success_timestamp_seconds";
/// Counter `palisade_audit_events_total`: audit events accepted into the audit queue.
pub const AUDIT_EVENTS: &str = "palisade_audit_events";
/// Counter `palisade_audit_events_dropped_total`: audit events lost, because the queue was full,
/// the writer had stopped, or writing them failed.
pub const AUDIT_EVENTS_DROPPED: &str = "palisade_audit_events_dropped";
/// Counter `palisade_connection_panics_total`: connection tasks that panicked; each such
/// connection was closed and the process kept serving.
pub const CONNECTION_PANICS: &str = "palisade_connection_panics";

/// The standard process metrics, named as every Prometheus client library names them (no
/// `palisade_` prefix) so stock dashboards find them. Read from `/proc/self` at scrape time,
/// on Linux only.
pub mod standard {
    /// Counter `process_cpu_seconds_total`: user and system CPU time spent.
    pub const PROCESS_CPU_SECONDS: &str = "process_cpu_seconds";
    /// Gauge `process_resident_memory_bytes`: resident memory size.
    pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
    /// Gauge `process_virtual_memory_bytes`: virtual memory size.
    pub const PROCESS_VIRTUAL_MEMORY_BYTES: &str = "process_virtual_memory_bytes";
    /// Gauge `process_open_fds`: open file descriptors.
    pub const PROCESS_OPEN_FDS: &str = "process_open_fds";
    /// Gauge `process_max_fds`: the soft limit on open file descriptors.
    pub const PROCESS_MAX_FDS: &str = "process_max_fds";
    /// Gauge `process_start_time_seconds`: Unix time the process started, as the kernel has it.
    pub const PROCESS_START_TIME_SECONDS: &str = "process_start_time_seconds";
}
/// Counter `palisade_ratelimit_decisions_total{policy,result}`: rate-limit decisions; `result`
/// is `allowed`, `limited` (answered 429) or `shadow_limited` (would have been, in shadow mode).
pub const RATELIMIT_DECISIONS: &str = "palisade_ratelimit_decisions";
/// Gauge `palisade_ratelimit_keys{policy}`: keys a policy tracks now (updated by each sweep).
pub const RATELIMIT_KEYS: &str = "palisade_ratelimit_keys";
/// Counter `palisade_ratelimit_swept_keys_total{policy}`: keys dropped because they were idle.
pub const RATELIMIT_SWEPT_KEYS: &str = "palisade_ratelimit_swept_keys";
/// Counter `palisade_ratelimit_overflow_total{policy}`: requests with a new key counted in the
/// policy's shared overflow bucket, because it already tracked `max_keys` keys.
pub const RATELIMIT_OVERFLOW: &str = "palisade_ratelimit_overflow";
/// Counter `palisade_ratelimit_backend_fallbacks_total{policy,reason}`: decisions a Redis-backed
/// policy's `on_backend_error` made because Redis could not (`reason`: `timeout`, `error`,
/// `breaker_open`).
pub const RATELIMIT_BACKEND_FALLBACKS: &str = "palisade_ratelimit_backend_fallbacks";
/// Histogram `palisade_ratelimit_redis_seconds{policy}`: time one Redis decision took.
pub const RATELIMIT_REDIS_SECONDS: &str = "palisade_ratelimit_redis_seconds";
/// Counter `palisade_upstream_ejections_total{upstream,reason}`: endpoints taken out of the
/// rotation (`5xx`: five server errors in a row; `health_check`: failed active checks).
pub const UPSTREAM_EJECTIONS: &str = "palisade_upstream_ejections";
/// Gauge `palisade_upstream_breaker_state{upstream}`: 0 closed, 1 open, 2 half-open.
pub const UPSTREAM_BREAKER_STATE: &str = "palisade_upstream_breaker_state";
/// Counter `palisade_upstream_breaker_transitions_total{upstream,to}`: state changes, by the
/// state entered (`closed`, `open`, `half_open`).
pub const UPSTREAM_BREAKER_TRANSITIONS: &str = "palisade_upstream_breaker_transitions";
/// Counter `palisade_upstream_retries_total{upstream,reason}`: requests sent again, by what
/// failed (`connect`, `reset`, `timeout`, `status_4xx`, `status_5xx`).
pub const UPSTREAM_RETRIES: &str = "palisade_upstream_retries";
/// Counter `palisade_upstream_retries_skipped_total{upstream,reason}`: retryable failures not
/// retried, by why (`budget_exhausted`, `attempts_exhausted`, `deadline`, ...).
pub const UPSTREAM_RETRIES_SKIPPED: &str = "palisade_upstream_retries_skipped";
/// Counter `palisade_route_shed_total{route,reason}`: requests a route's concurrency limit
/// answered 503 (`queue_full`, `queue_timeout`).
pub const ROUTE_SHED: &str = "palisade_route_shed";
/// Histogram `palisade_route_queue_wait_seconds{route}`: how long admitted requests waited.
pub const ROUTE_QUEUE_WAIT_SECONDS: &str = "palisade_route_queue_wait_seconds";
/// Counter `palisade_auth_decisions_total{route,method,result}`: credential checks on routes
/// with `auth`; `method` is `jwt`, `api_key` or `none`, `result` is `ok`, `forbidden` (scopes
/// missing) or the reason the credential was refused (`expired`, `bad_signature`, `missing`, ...).
pub const AUTH_DECISIONS: &str = "palisade_auth_decisions";
/// Counter `palisade_webhook_verifications_total{route,scheme,result}`: inbound webhook
/// signature checks; `result` is `valid`, `skipped` (development mode without a secret),
/// `replayed` or the reason the signature was refused.
pub const WEBHOOK_VERIFICATIONS: &str = "palisade_webhook_verifications";
/// Counter `palisade_connections_refused_total{reason}`: client connections closed at once
/// (`per_ip`: the address already had `server.max_connections_per_ip` open).
pub const CONNECTIONS_REFUSED: &str = "palisade_connections_refused";
/// Gauge `palisade_connections_open`: client connections open on the proxy listener.
pub const CONNECTIONS_OPEN: &str = "palisade_connections_open";
/// Counter `palisade_job_runs_total{job_name,outcome}`: maintenance job runs recorded in the job's
/// database (by any replica or a CronJob) since this process started, `outcome` being
/// `success` or `failure`, plus `skipped`: runs this process did not start because another
/// held the job's lock.
pub const JOB_RUNS: &str = "palisade_job_runs";
/// Counter `palisade_job_rows_deleted_total{job_name,table}`: rows retention runs deleted.
pub const JOB_ROWS_DELETED: &str = "palisade_job_rows_deleted";
/// Counter `palisade_job_rows_recovered_total{job_name}`: stuck rows a stuck scan recovered.
pub const JOB_ROWS_RECOVERED: &str = "palisade_job_rows_recovered";
/// Gauge `palisade_job_stuck_rows{job_name}`: stuck rows the job's last scan found and could not
/// recover.
pub const JOB_STUCK_ROWS: &str = "palisade_job_stuck_rows";
/// Histogram `palisade_job_duration_seconds{job_name}`: how long runs took.
pub const JOB_DURATION_SECONDS: &str = "palisade_job_duration_seconds";
/// Gauge `palisade_job_last_success_timestamp_seconds{job_name}`: Unix time the job's last
/// successful run ended, read from its database; 0 until one is known.
pub const JOB_LAST_SUCCESS_TIMESTAMP_SECONDS: &str = "palisade_job_last_success_timestamp_seconds";
/// Gauge `palisade_job_interval_seconds{job_name}`: seconds between two runs of the job's schedule,
/// for alerts on a job that has not run for two of them.
pub const JOB_INTERVAL_SECONDS: &str = "palisade_job_interval_seconds";
