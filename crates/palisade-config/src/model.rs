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

pub use crate::model_auth::*;
pub use crate::model_jobs::*;
pub use crate::model_resilience::*;
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
    /// The protected app's databases (`[databases.NAME]`) that maintenance jobs work on.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// Maintenance jobs (`[jobs.NAME]`): retention clean-ups and stuck-work scans on a
    /// database, run on a schedule by the gateway or by `palisade jobs run NAME`.
    #[serde(default)]
    pub jobs: BTreeMap<String, JobConfig>,
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

pub(crate) fn default_true() -> bool {
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
