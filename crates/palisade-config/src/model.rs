//! The typed configuration tree.
//!
//! Every field carries a doc comment: it is the reference documentation and becomes the
//! description in the JSON Schema (`palisade config schema`). Defaults live in the `Default`
//! impls and `default_*` functions of this file and nowhere else. Unknown fields are refused.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::units::{ByteSize, Duration};

/// The whole Palisade configuration: one immutable snapshot, validated before use.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// "production" (the default) or "development". Production replaces upstream 5xx bodies
    /// that leak internals (routes' `sanitize_errors`) and refuses webhooks it cannot verify;
    /// development lets a developer see the app's own error pages. Set it per environment,
    /// e.g. `PALISADE_MODE=development` on a laptop.
    #[serde(default)]
    pub mode: Mode,
    /// The proxy listener: where the protected service's traffic arrives.
    #[serde(default)]
    pub server: ServerConfig,
    /// The ops listener: `/live`, `/ready`, `/health` and `/metrics`.
    #[serde(default)]
    pub ops: OpsConfig,
    /// Application logs and the per-request access log.
    #[serde(default)]
    pub log: LogConfig,
    /// The security audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Start-up and graceful shutdown.
    #[serde(default)]
    pub lifecycle: LifecycleConfig,
    /// Named upstream services that routes forward to.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// The Redis server shared by every Redis-backed feature (rate-limit policies with
    /// `backend = "redis"`). Absent: no Redis.
    #[serde(default)]
    pub redis: Option<RedisConfig>,
    /// Named rate-limit policies (`[rate_limits.NAME]`), applied by the routes that list them
    /// in their `rate_limits`.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, RateLimitConfig>,
    /// Who may call: the JWT verifier and the API keys that routes name in `auth`.
    #[serde(default)]
    pub auth: AuthConfig,
    /// Routes, tried in order; the first whose host, path and method match wins. At least one
    /// is required: without routes every request would get 404.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// Whether Palisade runs in front of real users or on a developer's machine.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Production,
    Development,
}

/// The proxy listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port the proxy listens on, e.g. "0.0.0.0:8080".
    #[serde(default = "default_proxy_listen")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// Tokio worker threads; 0 means one per CPU core.
    #[serde(default)]
    pub worker_threads: usize,
    /// Peers whose `X-Forwarded-*` headers are trusted and kept (extended); from any other
    /// peer they are replaced. CIDR notation, e.g. ["10.0.0.0/8", "127.0.0.1/32"].
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub trusted_proxies: Vec<IpNet>,
    /// Longest time a client may take to send the request headers (slow-client protection).
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout: Duration,
    /// Longest time an HTTP/1.1 keep-alive connection may wait for its next request before it
    /// is closed. Keep it longer than the idle timeout of the load balancer in front.
    #[serde(default = "default_keepalive_timeout")]
    pub keepalive_timeout: Duration,
    /// Accept HTTP/2 over cleartext with prior knowledge (h2c) besides HTTP/1.1.
    #[serde(default = "default_true")]
    pub http2: bool,
    /// Serve the common HTTP/1.1 request on the fast codec (the default). `false` sends every
    /// request through the general codec (hyper): a switch to rule the fast codec out while
    /// debugging. Both apply the same rules; only the cost per request differs.
    #[serde(default = "default_true")]
    pub direct_path: bool,
    /// Longest wait for the next bytes of a request body (NGINX's `client_body_timeout`); a
    /// client that stalls its upload longer gets 408 and the connection closes.
    #[serde(default = "default_body_timeout")]
    pub request_body_timeout: Duration,
    /// Longest wait for a client to take more response bytes (NGINX's `send_timeout`); a
    /// client that stops reading longer has its connection closed, freeing the upstream one.
    #[serde(default = "default_body_timeout")]
    pub send_timeout: Duration,
    /// Most client connections open at once; past it new connections wait in the listen
    /// backlog until one closes (NGINX's `worker_connections`).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections open at once from one client address (the socket's, not a forwarded
    /// one); past it a new connection is closed at once and counted. 0: no cap. Leave it at 0
    /// when a load balancer's address is the only one Palisade sees.
    #[serde(default)]
    pub max_connections_per_ip: usize,
}

/// The ops listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OpsConfig {
    /// Address and port of the ops listener, e.g. "0.0.0.0:9090". Keep it off the public network.
    #[serde(default = "default_ops_listen")]
    #[schemars(with = "String")]
    pub listen: SocketAddr,
    /// How often the readiness of required upstreams is checked in the background.
    /// `/ready` answers from the cached result and never checks on the request path.
    #[serde(default = "default_ready_check_interval")]
    pub ready_check_interval: Duration,
}

/// Output format of logs.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (the default).
    Json,
    /// Human-readable, coloured lines for a terminal.
    Pretty,
}

/// Logs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// "json" (the default) or "pretty".
    #[serde(default = "default_log_format")]
    pub format: LogFormat,
    /// Filter in `tracing` env-filter syntax, e.g. "info" or "info,palisade=debug".
    /// The `RUST_LOG` environment variable, when set, takes precedence.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Emit one access-log event per proxied request.
    #[serde(default = "default_true")]
    pub access_log: bool,
}

/// Where audit events go.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditSinkKind {
    /// JSON lines on standard output.
    Stdout,
    /// JSON lines appended to `audit.path`.
    File,
    /// Audit events are discarded (counted as dropped is not done; nothing is written).
    Off,
}

/// The security audit log.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// "stdout" (the default), "file" or "off".
    #[serde(default = "default_audit_sink")]
    pub sink: AuditSinkKind,
    /// File the events are appended to when `sink = "file"`.
    #[serde(default)]
    pub path: Option<String>,
    /// Events buffered in memory before new ones are dropped (and counted in
    /// `palisade_audit_events_dropped_total`). Writing never blocks a request.
    #[serde(default = "default_audit_queue_capacity")]
    pub queue_capacity: usize,
}

/// Start-up and graceful shutdown.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// After SIGTERM/SIGINT, how long `/ready` reports 503 while the proxy still accepts new
    /// connections, so load balancers and Kubernetes endpoints stop sending traffic.
    #[serde(default = "default_drain_delay")]
    pub drain_delay: Duration,
    /// After the drain delay, how long in-flight requests may take to finish before the
    /// remaining connections are closed. Keep drain_delay + grace_period below the Pod's
    /// `terminationGracePeriodSeconds`.
    #[serde(default = "default_grace_period")]
    pub grace_period: Duration,
}

/// One upstream service: one or more endpoints, used round-robin, over a pooled keep-alive client.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Endpoints as "host:port" or "http://host:port", e.g. ["127.0.0.1:3000"].
    pub endpoints: Vec<String>,
    /// Longest time to open a TCP connection to an endpoint.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: Duration,
    /// A keep-alive connection idle longer than this is not reused and is closed.
    #[serde(default = "default_pool_idle_timeout")]
    pub pool_idle_timeout: Duration,
    /// Most idle keep-alive connections kept per endpoint.
    #[serde(default = "default_pool_max_idle")]
    pub pool_max_idle_per_endpoint: usize,
    /// Speak HTTP/2 with prior knowledge (h2c) to this upstream instead of HTTP/1.1.
    #[serde(default)]
    pub http2: bool,
    /// Whether `/ready` reports 503 while no endpoint of this upstream accepts connections.
    #[serde(default = "default_true")]
    pub required: bool,
    /// Headers added to every request sent to this upstream, e.g. a credential the service
    /// expects. Values may be secret references: "${env:NAME}" or "${file:/path}". Headers
    /// Palisade manages (Host, X-Forwarded-*, Forwarded, X-Real-IP, X-Request-Id, trace context,
    /// hop-by-hop headers, Content-Length) and names containing "_" are refused.
    #[serde(default)]
    pub request_headers: BTreeMap<String, Secret>,
    /// A request header that tells the upstream how long Palisade will wait for this attempt,
    /// in milliseconds (the retry's `try_timeout`, else the route's `timeout`), e.g.
    /// "x-request-timeout-ms", so the app can give up on work nobody will wait for. A client's
    /// copy is replaced. Absent: none.
    #[serde(default)]
    pub deadline_header: Option<String>,
    /// `[upstreams.NAME.retry]`: which failed requests are sent again, how soon, and how many
    /// retries the upstream may get. On by default: once more for idempotent requests without
    /// a body, on a refused connection, a reset, or 502/503/504.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[upstreams.NAME.breaker]`: stop calling this upstream while it fails, and answer with
    /// the fallback (or 503 with `Retry-After`) until it has had time to recover. Absent: no
    /// breaker.
    #[serde(default)]
    pub breaker: Option<BreakerSettings>,
    /// `[upstreams.NAME.fallback]`: the response while the breaker is open, instead of 503.
    #[serde(default)]
    pub fallback: Option<FallbackConfig>,
    /// `[upstreams.NAME.health_check]`: ask each endpoint `GET path` every `interval`; an
    /// endpoint failing `unhealthy_threshold` checks in a row gets no requests until it passes
    /// `healthy_threshold` in a row, and `/ready` counts only healthy endpoints. Absent: none
    /// (an endpoint is skipped only after refused connections or 5xx answers).
    #[serde(default)]
    pub health_check: Option<HealthCheckConfig>,
}

/// Active health checks of an upstream's endpoints.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckConfig {
    /// The path asked, e.g. "/healthz"; a status from 200 to 399 passes.
    pub path: String,
    /// How often each endpoint is asked.
    #[serde(default = "default_check_interval")]
    pub interval: Duration,
    /// Longest wait for the answer's status line; longer is a failed check.
    #[serde(default = "default_check_timeout")]
    pub timeout: Duration,
    /// Failed checks in a row that take an endpoint out.
    #[serde(default = "default_threshold")]
    pub unhealthy_threshold: u32,
    /// Passed checks in a row that bring it back.
    #[serde(default = "default_threshold")]
    pub healthy_threshold: u32,
}

fn default_check_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_check_timeout() -> Duration {
    Duration::from_secs(1)
}

fn default_threshold() -> u32 {
    2
}

/// Retries of failed upstream requests.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Tries in all, the first included; 1 turns retries off.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// What is retried: "connect" (no connection), "reset" (the connection broke before a
    /// response), "timeout" (no response head within the route's timeout; off by default),
    /// or a status from 400 to 599.
    #[serde(default = "default_retry_on")]
    pub on: Vec<String>,
    /// The base of exponential backoff with full jitter: retry n waits a random time up to
    /// `backoff` × 2^n, at most `max_backoff`. An upstream's `Retry-After` is honoured when it
    /// is within `max_backoff`; a longer one is not retried and its answer goes to the client.
    #[serde(default = "default_backoff")]
    pub backoff: Duration,
    /// The longest wait before a retry.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: Duration,
    /// Retries may add at most this share to the requests over `budget_window` (0.2: 20 %),
    /// plus one a second whatever the traffic: a failing upstream is not hit with a retry storm.
    #[serde(default = "default_budget")]
    pub budget: f64,
    /// The sliding window of the budget.
    #[serde(default = "default_budget_window")]
    pub budget_window: Duration,
    /// Also retry requests of other methods that carry `Idempotency-Key` (the sender promises
    /// a repeat is harmless).
    #[serde(default = "default_true")]
    pub idempotency_key: bool,
    /// Request bodies up to this size are read whole before they go upstream, so a retry can
    /// send them again (requests safe to repeat only: idempotent methods, or
    /// `Idempotency-Key`). Larger bodies, and chunked ones, are not retried (counted as
    /// `body_not_replayable`). 0 (the default): bodies are streamed and never sent twice.
    #[serde(default = "default_replay_body")]
    pub replay_body: ByteSize,
    /// Longest wait for one attempt's response head; past it the attempt is abandoned (and
    /// retried when `on` lists "timeout"). The route's `timeout` stays the total for all
    /// attempts. Absent: no per-try limit.
    #[serde(default)]
    pub try_timeout: Option<Duration>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            on: default_retry_on(),
            backoff: default_backoff(),
            max_backoff: default_max_backoff(),
            budget: default_budget(),
            budget_window: default_budget_window(),
            idempotency_key: true,
            replay_body: default_replay_body(),
            try_timeout: None,
        }
    }
}

fn default_replay_body() -> ByteSize {
    ByteSize::bytes(0)
}

fn default_attempts() -> u32 {
    2
}

fn default_retry_on() -> Vec<String> {
    ["connect", "reset", "502", "503", "504"]
        .map(str::to_owned)
        .to_vec()
}

fn default_backoff() -> Duration {
    Duration::from_millis(25)
}

fn default_max_backoff() -> Duration {
    Duration::from_secs(1)
}

fn default_budget() -> f64 {
    0.2
}

fn default_budget_window() -> Duration {
    Duration::from_secs(10)
}

/// When an upstream's circuit breaker opens and how it recovers.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BreakerSettings {
    /// Open when at least this share of the calls in `window` failed ...
    #[serde(default = "default_failure_rate")]
    pub failure_rate: f64,
    /// ... and at least this many calls were made in it: a few failures of a quiet upstream do
    /// not open it.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
    /// The sliding window the failure rate is counted over.
    #[serde(default = "default_breaker_window")]
    pub window: Duration,
    /// How long the breaker stays open before it lets probes through.
    #[serde(default = "default_open_for")]
    pub open_for: Duration,
    /// Calls let through while half-open; if they all succeed the breaker closes, if one fails
    /// it opens again.
    #[serde(default = "default_half_open_probes")]
    pub half_open_probes: u32,
    /// Open after this many failures in a row instead, whatever the rate and volume (the
    /// consecutive-failure mode). Absent: the failure rate decides.
    #[serde(default)]
    pub consecutive_failures: Option<u32>,
    /// What counts as a failure: "5xx" (a response status of 500 or more), "timeout" (no
    /// response head within the route's timeout), "connect" (no connection, or a broken one).
    #[serde(default = "default_failure_on")]
    pub failure_on: Vec<String>,
}

/// What answers while an upstream's breaker is open: another upstream, or a static response.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FallbackConfig {
    /// The status, e.g. 503, or 200 for a degraded but useful answer.
    #[serde(default = "default_fallback_status")]
    pub status: u16,
    /// The body, e.g. '{"error":"temporarily unavailable"}'.
    #[serde(default)]
    pub body: String,
    /// The body's media type.
    #[serde(default = "default_fallback_content_type")]
    pub content_type: String,
    /// Another upstream (a key of `[upstreams]`, HTTP/1.1) that serves the requests instead,
    /// e.g. a cache or a read-only replica; `status`, `body` and `content_type` are then unused.
    #[serde(default)]
    pub upstream: Option<String>,
}

fn default_failure_rate() -> f64 {
    0.5
}

fn default_min_requests() -> u32 {
    20
}

fn default_breaker_window() -> Duration {
    Duration::from_secs(10)
}

fn default_open_for() -> Duration {
    Duration::from_secs(5)
}

fn default_half_open_probes() -> u32 {
    3
}

fn default_failure_on() -> Vec<String> {
    ["5xx", "timeout", "connect"].map(str::to_owned).to_vec()
}

fn default_fallback_status() -> u16 {
    503
}

fn default_fallback_content_type() -> String {
    "application/json".to_owned()
}

fn default_queue_timeout() -> Duration {
    Duration::from_secs(1)
}

/// How a route's `path` is compared with the request path.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum PathMatch {
    /// The request path starts with `path` at a segment boundary ("/api" matches "/api" and
    /// "/api/x", not "/apix").
    #[default]
    Prefix,
    /// The request path equals `path`.
    Exact,
}

/// One route: which requests go to which upstream, and with what limits.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Name used in metrics, logs and audit events; unique, [a-z0-9_-].
    pub name: String,
    /// Host to match (the Host header or HTTP/2 :authority, without port), e.g.
    /// "api.example.com"; a leading "*." matches any subdomain. Absent: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path to match, starting with "/".
    #[serde(default = "default_route_path")]
    pub path: String,
    /// "prefix" (the default) or "exact".
    #[serde(default, rename = "match")]
    pub path_match: PathMatch,
    /// Methods to match, e.g. ["GET", "POST"]. Absent or empty: any method. A request that
    /// routes match by host and path but none by method gets 405 with `Allow`.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Name of the upstream (a key of `[upstreams]`) requests are forwarded to.
    pub upstream: String,
    /// Longest wait for the upstream: for its response headers once the request is sent, and
    /// during an upload for the upstream to take more body bytes (a client that stalls its upload
    /// meets `server.request_body_timeout` instead, 408); past it the client gets 504.
    #[serde(default = "default_route_timeout")]
    pub timeout: Duration,
    /// Largest request body accepted; larger ones get 413: at once when `Content-Length` says
    /// so, or as soon as a chunked body passes it. Default 10 MiB; raise it for routes that
    /// take uploads.
    #[serde(default = "default_max_request_body")]
    pub max_request_body: Option<ByteSize>,
    /// Media types a request body may have, e.g. ["application/json"]; "type/*" takes any
    /// subtype. A request with a body of another type, or without a Content-Type, gets 415;
    /// requests without a body are not checked. Absent or empty: any type.
    #[serde(default)]
    pub content_types: Vec<String>,
    /// A JSON Schema file (draft 2020-12 unless the schema says otherwise; no references
    /// fetched from the network) that JSON request bodies must satisfy, e.g.
    /// "schemas/order.json", relative to the working directory. A body that fails it gets 422
    /// naming the JSON pointer of the failing value; one that is not JSON gets 400. Bodies are
    /// buffered on such routes only, up to `max_request_body`. Absent: no check.
    #[serde(default)]
    pub json_schema: Option<String>,
    /// Add `X-Content-Type-Options: nosniff` and `Referrer-Policy:
    /// strict-origin-when-cross-origin` to responses that lack them. The upstream's own values
    /// win. `Server` and `X-Powered-By` are removed from every response either way.
    #[serde(default = "default_true")]
    pub security_headers: bool,
    /// `Strict-Transport-Security` added to responses that lack one, e.g.
    /// "max-age=31536000; includeSubDomains". Set it only where clients reach the service over
    /// HTTPS. Absent: none.
    #[serde(default)]
    pub hsts: Option<String>,
    /// `X-Frame-Options` added to responses that lack one: "DENY" or "SAMEORIGIN". Absent: none.
    #[serde(default)]
    pub frame_options: Option<String>,
    /// Replace the body of an upstream 5xx response that looks like a stack trace or an HTML
    /// error page, or that cannot be checked (compressed, or over 64 KiB), with a short
    /// `application/problem+json` body; the status and `Retry-After` stay, the original is
    /// logged at debug level with the request id. Absent: on in production `mode`, off in
    /// development.
    #[serde(default)]
    pub sanitize_errors: Option<bool>,
    /// Names of the rate-limit policies (keys of `[rate_limits]`) every request of this route
    /// is counted against, e.g. ["per-ip", "read"]. Each counts the request; when some are
    /// exhausted, the one with the longest wait answers 429.
    #[serde(default)]
    pub rate_limits: Vec<String>,
    /// Most requests of this route in flight at once; more wait in a queue of `queue` for at
    /// most `queue_timeout`, and past either get 503 with `Retry-After` at once instead of
    /// piling up latency. Absent: no limit.
    #[serde(default)]
    pub concurrency_limit: Option<usize>,
    /// Requests that may wait for a slot under `concurrency_limit`; 0 (the default) sheds as
    /// soon as the limit is reached.
    #[serde(default)]
    pub queue: usize,
    /// The longest wait in that queue.
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Duration,
    /// Who may call this route: "none" (the default: anyone), "jwt" (a valid token from
    /// `[auth.jwt]` in `Authorization: Bearer`), "api_key" (a key of `[auth.api_keys]`) or
    /// "either". A request without valid credentials gets 401 with `WWW-Authenticate`.
    #[serde(default)]
    pub auth: RouteAuth,
    /// Scopes the caller must all have (a JWT's `scope`/`scp`, an API key's `scopes`), e.g.
    /// ["orders:write"]; a caller without them gets 403. Needs `auth`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Verify the signature of inbound webhooks before the app sees a byte (`[routes.webhook]`).
    #[serde(default)]
    pub webhook: Option<WebhookConfig>,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    #[default]
    None,
    Jwt,
    ApiKey,
    /// A JWT when the request carries `Authorization: Bearer` with a token, else an API key.
    Either,
}

/// `[auth]`: the verifiers routes name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT verification (`auth = "jwt"`).
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// API keys (`auth = "api_key"`).
    #[serde(default)]
    pub api_keys: Option<ApiKeysConfig>,
    /// The request headers that tell the upstream who called; copies a client sends are
    /// removed on every route.
    #[serde(default)]
    pub headers: IdentityHeaders,
}

/// The headers that carry a verified identity to the upstream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeaders {
    /// The caller's id: the JWT's `user_claim`, or the API key's `id`.
    #[serde(default = "default_user_header")]
    pub user: String,
    /// The caller's tier, when it has one.
    #[serde(default = "default_tier_header")]
    pub tier: String,
    /// How the caller proved it: "jwt" or "api_key".
    #[serde(default = "default_method_header")]
    pub method: String,
}

/// `[auth.jwt]`: which tokens are valid.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Where the signing keys are published, e.g.
    /// "https://issuer.example/.well-known/jwks.json". Fetched at start, cached, fetched again
    /// every `jwks_refresh` and when a token names an unknown `kid` (at most once per
    /// `jwks_min_refresh`); while the URL cannot be reached the cached keys stay in use.
    /// One of `jwks_url` and `keys_file`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A file holding the keys instead: a JWK, a JWK Set or a PEM public key.
    #[serde(default)]
    pub keys_file: Option<String>,
    /// The algorithms a token may use, e.g. ["RS256"]; "none" is never accepted, and a key
    /// only verifies the algorithms of its type.
    pub algorithms: Vec<JwtAlgorithm>,
    /// The required `iss`. Absent: not checked.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The required `aud` (the token's `aud` must contain it). Absent: not checked.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim that names the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim that names the user's tier (rate-limit tiers). Absent: no tier.
    #[serde(default)]
    pub tier_claim: Option<String>,
    /// Claims a token must carry besides `iss`/`aud` when those are configured.
    #[serde(default = "default_required_claims")]
    pub require: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_jwt_leeway")]
    pub leeway: Duration,
    /// How often the JWKS is fetched again.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: Duration,
    /// Shortest time between two fetches caused by unknown `kid`s.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh: Duration,
}

/// `[auth.api_keys]`: keys stored as their SHA-256, never in clear.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// A TOML file of `[[keys]]` entries (the fields of `keys` below), relative to the
    /// working directory; read at load and on reload.
    #[serde(default)]
    pub file: Option<String>,
    /// Keys written here instead of (or besides) the file.
    #[serde(default)]
    pub keys: Vec<ApiKeyEntry>,
    /// The request header that carries the key; `Authorization: Bearer KEY` works too.
    #[serde(default = "default_api_key_header")]
    pub header: String,
}

/// One API key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// Who the key belongs to: the identity's user id in logs, audit events and rate limits.
    pub id: String,
    /// The SHA-256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// The caller's tier (rate-limit tiers). Absent: none.
    #[serde(default)]
    pub tier: Option<String>,
    /// What the key may do; routes' `scopes` must all be here.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[routes.webhook]`: how a route's inbound webhooks are signed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// "standard-webhooks" (Svix, Clerk, ...), "stripe", "github", "slack", "shopify" or
    /// "hmac" (any other provider: see `header`, `algorithm`, `encoding`).
    pub scheme: WebhookScheme,
    /// The signing secrets, usually secret references ("${env:CLERK_WEBHOOK_SECRET}");
    /// several while rotating: a signature made with any of them is accepted. In development
    /// `mode` a route with no secret (none listed, or only references to unset variables)
    /// passes deliveries unverified with a warning; in production that is a config error.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// How far a delivery's timestamp may be from now, either way.
    #[serde(default = "default_webhook_tolerance")]
    pub tolerance: Duration,
    /// Where delivery ids are remembered for `tolerance`, to refuse a replayed delivery
    /// (409): "memory", "redis" (shared by every replica; needs `[redis]`) or "off".
    #[serde(default)]
    pub replay: ReplayStore,
    /// "hmac" only: the header that carries the signature.
    #[serde(default)]
    pub header: Option<String>,
    /// "hmac" only: "sha256" (the default) or "sha512".
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// "hmac" only: "hex" (the default) or "base64".
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// "hmac" only: text before the signature in the header, e.g. "sha256=".
    #[serde(default)]
    pub prefix: Option<String>,
    /// "hmac" only: the header with the delivery's Unix timestamp; absent: none checked.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// "hmac" only: the header with the delivery id (for replay protection).
    #[serde(default)]
    pub id_header: Option<String>,
    /// "hmac" only: what is signed, from `{id}`, `{timestamp}` and `{body}`; default "{body}".
    #[serde(default)]
    pub template: Option<String>,
}

/// How a provider signs its webhooks.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookScheme {
    /// Standard Webhooks (`webhook-*` or `svix-*` headers): Svix, Clerk, Resend, ...
    StandardWebhooks,
    Stripe,
    #[serde(rename = "github")]
    GitHub,
    Slack,
    Shopify,
    /// A configurable HMAC: `header`, `algorithm`, `encoding`, `prefix`, `timestamp_header`,
    /// `id_header`, `template`.
    Hmac,
}

/// The hash of a generic HMAC signature.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    #[default]
    Sha256,
    Sha512,
}

/// How a generic HMAC signature is written in its header.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// A JWS algorithm a token may be signed with (RFC 7518, RFC 8037).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// Where webhook delivery ids are remembered.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStore {
    #[default]
    Memory,
    Redis,
    Off,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user: default_user_header(),
            tier: default_tier_header(),
            method: default_method_header(),
        }
    }
}

fn default_user_header() -> String {
    "x-user-id".to_owned()
}

fn default_tier_header() -> String {
    "x-user-tier".to_owned()
}

fn default_method_header() -> String {
    "x-auth-method".to_owned()
}

fn default_user_claim() -> String {
    "sub".to_owned()
}

fn default_required_claims() -> Vec<String> {
    vec!["exp".to_owned()]
}

fn default_jwt_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(30)
}

fn default_api_key_header() -> String {
    "x-api-key".to_owned()
}

fn default_webhook_tolerance() -> Duration {
    Duration::from_secs(300)
}

/// A named rate-limit policy: GCRA (the generic cell rate algorithm) over one bucket per key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// What requests are counted by: "client_ip" (the client address decided with
    /// `server.trusted_proxies`), "header:NAME" (the first value of request header NAME;
    /// requests without it are counted by client address) or "route" (every request of the
    /// route in one bucket).
    #[serde(default = "default_rate_limit_key")]
    pub key: String,
    /// Requests admitted per `per`, on average, for each key.
    pub limit: u32,
    /// The period `limit` is counted over, e.g. "1m" or "1s".
    pub per: Duration,
    /// Requests admitted back to back from idle (governor's meaning: 1 spaces every request
    /// evenly). Absent: `limit`. NGINX's `burst` and redis-cell count extra requests instead:
    /// their `burst = 5` is `burst = 6` here.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Where the counters live: "local" (this process; each replica counts on its own) or
    /// "redis" (the `[redis]` server, shared by every replica that uses it).
    #[serde(default)]
    pub backend: RateLimitBackend,
    /// With `backend = "redis"`, what a request gets while Redis is slow, down or skipped by
    /// its circuit breaker: "local" (this process decides, with the same policy), "allow"
    /// (admitted) or "deny" (429). Each fallback is counted and logged.
    #[serde(default)]
    pub on_backend_error: OnBackendError,
    /// Count and log the requests the policy would refuse, but refuse none: for trying a
    /// policy on live traffic before enforcing it.
    #[serde(default)]
    pub shadow: bool,
    /// Most keys tracked at once. Keys idle long enough to be back at a full burst are swept
    /// every 10 s; past the cap, requests with new keys share one overflow bucket (counted in
    /// `palisade_ratelimit_overflow_total`), so memory stays bounded whatever keys clients send.
    #[serde(default = "default_rate_limit_max_keys")]
    pub max_keys: usize,
    /// Request header naming the client's tier, e.g. "x-plan", whose value selects one of
    /// `tiers`. Set it only where a trusted component in front of Palisade writes the header:
    /// a client could name any tier. Absent: no tiers.
    #[serde(default)]
    pub tier_header: Option<String>,
    /// Limits per tier (`[rate_limits.NAME.tiers.pro]`); a request whose tier is not listed
    /// gets the policy's own `limit`, `per` and `burst`.
    #[serde(default)]
    pub tiers: BTreeMap<String, RateLimitTier>,
}

/// The limit of one tier of a rate-limit policy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitTier {
    /// Requests admitted per `per`, on average.
    pub limit: u32,
    /// The period; absent: the policy's `per`.
    #[serde(default)]
    pub per: Option<Duration>,
    /// Requests admitted back to back from idle; absent: this tier's `limit`.
    #[serde(default)]
    pub burst: Option<u32>,
}

/// What a Redis-backed policy answers while Redis cannot.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnBackendError {
    /// This process decides with the same policy, as the local backend would.
    #[default]
    Local,
    /// The request is admitted.
    Allow,
    /// The request is refused with 429.
    Deny,
}

/// The Redis server (`[redis]`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// "redis://host:port[/db]", with a password as "redis://:PASSWORD@host:port"; may be a
    /// secret reference ("${env:REDIS_URL}"), resolved at load and never logged.
    pub url: Secret,
    /// Longest wait for one Redis answer; past it the policy's `on_backend_error` answers.
    #[serde(default = "default_redis_timeout")]
    pub timeout: Duration,
    /// Prefix of every key Palisade writes, so several deployments can share one Redis.
    #[serde(default = "default_redis_prefix")]
    pub prefix: String,
}

/// Where a rate-limit policy keeps its counters.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RateLimitBackend {
    /// In this process.
    #[default]
    Local,
    /// In Redis (`[redis]`), shared by every replica.
    Redis,
}

impl RateLimitConfig {
    /// A policy of `limit` requests per `per` with this `burst` and every other field at the
    /// default a config file leaving it out gets (e.g. for `palisade ratelimit simulate`).
    /// Not validated: see [`RateLimitConfig::problems`].
    pub fn new(limit: u32, per: Duration, burst: Option<u32>) -> Self {
        Self {
            key: default_rate_limit_key(),
            limit,
            per,
            burst,
            backend: RateLimitBackend::default(),
            on_backend_error: OnBackendError::default(),
            shadow: false,
            max_keys: default_rate_limit_max_keys(),
            tier_header: None,
            tiers: BTreeMap::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_proxy_listen(),
            worker_threads: 0,
            trusted_proxies: Vec::new(),
            header_read_timeout: default_header_read_timeout(),
            keepalive_timeout: default_keepalive_timeout(),
            http2: true,
            direct_path: true,
            request_body_timeout: default_body_timeout(),
            send_timeout: default_body_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_ip: 0,
        }
    }
}

impl Default for OpsConfig {
    fn default() -> Self {
        Self {
            listen: default_ops_listen(),
            ready_check_interval: default_ready_check_interval(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: default_log_format(),
            level: default_log_level(),
            access_log: true,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            sink: default_audit_sink(),
            path: None,
            queue_capacity: default_audit_queue_capacity(),
        }
    }
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            drain_delay: default_drain_delay(),
            grace_period: default_grace_period(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_proxy_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}
fn default_ops_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9090))
}
fn default_header_read_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_keepalive_timeout() -> Duration {
    Duration::from_secs(75)
}
fn default_ready_check_interval() -> Duration {
    Duration::from_secs(2)
}
fn default_log_format() -> LogFormat {
    LogFormat::Json
}
fn default_log_level() -> String {
    "info".to_owned()
}
fn default_audit_sink() -> AuditSinkKind {
    AuditSinkKind::Stdout
}
fn default_audit_queue_capacity() -> usize {
    4096
}
fn default_drain_delay() -> Duration {
    Duration::from_secs(5)
}
fn default_grace_period() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_pool_idle_timeout() -> Duration {
    Duration::from_secs(90)
}
fn default_pool_max_idle() -> usize {
    128
}
fn default_route_path() -> String {
    "/".to_owned()
}
fn default_max_connections() -> usize {
    10_000
}

fn default_max_request_body() -> Option<ByteSize> {
    Some(ByteSize::bytes(10 * 1024 * 1024))
}

fn default_redis_timeout() -> Duration {
    Duration::from_millis(50)
}

fn default_redis_prefix() -> String {
    "palisade".to_owned()
}

fn default_rate_limit_key() -> String {
    "client_ip".to_owned()
}

fn default_rate_limit_max_keys() -> usize {
    100_000
}

fn default_route_timeout() -> Duration {
    Duration::from_secs(30)
}
