//! Semantic checks on a deserialized config: references between sections, names, addresses,
//! headers and values that types alone cannot rule out. Every problem is collected.
//!
//! Checks run on a [`Draft`], in which a section or element that failed to deserialize is
//! `None`: it is skipped here (its error is already reported), and checks that need it are too.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};

use crate::error::{FieldPath, Issue};
use crate::headers::managed_reason;
use crate::model::{
    AuditConfig, AuditSinkKind, LifecycleConfig, LogConfig, OpsConfig, RateLimitBackend,
    RateLimitConfig, RouteConfig, ServerConfig, UpstreamConfig,
};

/// A config as far as it deserialized.
#[derive(Default)]
pub(crate) struct Draft {
    pub(crate) mode: Option<crate::model::Mode>,
    pub(crate) server: Option<ServerConfig>,
    pub(crate) ops: Option<OpsConfig>,
    pub(crate) log: Option<LogConfig>,
    pub(crate) audit: Option<AuditConfig>,
    pub(crate) lifecycle: Option<LifecycleConfig>,
    pub(crate) upstreams: BTreeMap<String, Option<UpstreamConfig>>,
    /// `Some(None)`: no `[redis]` section; `None`: one that failed to load.
    pub(crate) redis: Option<Option<crate::model::RedisConfig>>,
    pub(crate) rate_limits: BTreeMap<String, Option<RateLimitConfig>>,
    pub(crate) auth: Option<crate::model::AuthConfig>,
    pub(crate) routes: Vec<Option<RouteConfig>>,
    pub(crate) databases: BTreeMap<String, Option<crate::model::DatabaseConfig>>,
    pub(crate) jobs: BTreeMap<String, Option<crate::model::JobConfig>>,
}

pub(crate) const NAME_RULE: &str =
    "1 to 64 characters among lowercase letters, digits, \"_\" and \"-\"";

pub(crate) fn validate(draft: &Draft) -> Vec<Issue> {
    let mut issues = Vec::new();
    let root = FieldPath::root();
    if let (Some(server), Some(ops)) = (&draft.server, &draft.ops) {
        check_listeners(server, ops, &mut issues);
    }
    if let Some(server) = &draft.server {
        check_positive(
            server.header_read_timeout,
            root.key("server").key("header_read_timeout"),
            &mut issues,
        );
        check_positive(
            server.keepalive_timeout,
            root.key("server").key("keepalive_timeout"),
            &mut issues,
        );
        check_positive(
            server.request_body_timeout,
            root.key("server").key("request_body_timeout"),
            &mut issues,
        );
        check_positive(
            server.send_timeout,
            root.key("server").key("send_timeout"),
            &mut issues,
        );
        if server.max_connections == 0 {
            issues.push(Issue::new(
                root.key("server").key("max_connections"),
                "must be at least 1, e.g. 10000",
            ));
        }
    }
    if let Some(ops) = &draft.ops {
        check_positive(
            ops.ready_check_interval,
            root.key("ops").key("ready_check_interval"),
            &mut issues,
        );
    }
    if let Some(log) = &draft.log
        && log.level.trim().is_empty()
    {
        issues.push(Issue::new(
            root.key("log").key("level"),
            "log.level is empty; use a tracing filter such as \"info\" or \"info,palisade=debug\"",
        ));
    }
    if let Some(audit) = &draft.audit {
        check_audit(audit, &root.key("audit"), &mut issues);
    }
    if let Some(lifecycle) = &draft.lifecycle {
        check_positive(
            lifecycle.grace_period,
            root.key("lifecycle").key("grace_period"),
            &mut issues,
        );
    }
    for (name, upstream) in &draft.upstreams {
        let path = root.key("upstreams").key(name);
        if !valid_name(name) {
            issues.push(Issue::new(
                path.clone(),
                format!("invalid upstream name {name:?}; names are {NAME_RULE}"),
            ));
        }
        if let Some(upstream) = upstream {
            check_upstream(name, upstream, &draft.upstreams, &path, &mut issues);
        }
    }
    if let Some(Some(redis)) = &draft.redis {
        let url = redis.url.expose();
        if !url.starts_with("redis://") {
            issues.push(Issue::new(
                root.key("redis").key("url"),
                "expected a redis:// URL, e.g. \"redis://127.0.0.1:6379\" (TLS, rediss://, is not available yet)",
            ));
        }
        check_positive(redis.timeout, root.key("redis").key("timeout"), &mut issues);
        if redis.prefix.is_empty() || redis.prefix.contains([' ', '{', '}']) {
            issues.push(Issue::new(
                root.key("redis").key("prefix"),
                "must be non-empty, without spaces or braces, e.g. \"palisade\"",
            ));
        }
    }
    for (name, policy) in &draft.rate_limits {
        let path = root.key("rate_limits").key(name);
        if !valid_name(name) {
            issues.push(Issue::new(
                path.clone(),
                format!("invalid rate-limit policy name {name:?}; names are {NAME_RULE}"),
            ));
        }
        if let Some(policy) = policy {
            check_rate_limit(policy, &path, &mut issues);
            if policy.backend == RateLimitBackend::Redis && draft.redis == Some(None) {
                issues.push(Issue::new(
                    path.key("backend"),
                    "backend \"redis\" needs a [redis] section with the server's url, e.g. \
                     url = \"redis://127.0.0.1:6379\"",
                ));
            }
        }
    }
    if let Some(auth) = &draft.auth {
        crate::validate_auth::check_auth(auth, &mut issues);
    }
    check_routes(draft, &mut issues);
    crate::validate_jobs::check(draft, &mut issues);
    issues
}

impl RateLimitConfig {
    /// What loading would report about this policy alone, each problem as its field within the
    /// policy (`limit`, `tiers.pro.burst`) and the message: the same checks, for a policy that
    /// comes from elsewhere than a config file.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        check_rate_limit(self, &FieldPath::root(), &mut issues);
        issues
            .into_iter()
            .map(|issue| (issue.path.to_string(), issue.message))
            .collect()
    }
}

fn check_rate_limit(policy: &RateLimitConfig, path: &FieldPath, issues: &mut Vec<Issue>) {
    let key = policy.key.as_str();
    let key_problem = match key.split_once(':') {
        _ if ["client_ip", "route", "identity", "api_key"].contains(&key) => None,
        Some(("header", name)) if is_token(name) => None,
        Some(("header", _)) => Some("names no valid header; write e.g. \"header:x-api-user\""),
        _ => Some("is not a key"),
    };
    if let Some(problem) = key_problem {
        issues.push(Issue::new(
            path.key("key"),
            format!(
                "key {key:?} {problem}; valid keys: \"client_ip\", \"header:NAME\", \"route\", \
                 \"identity\", \"api_key\""
            ),
        ));
    }
    check_rate(policy.limit, policy.burst, path, issues);
    check_positive(policy.per, path.key("per"), issues);
    if policy.max_keys == 0 {
        issues.push(Issue::new(
            path.key("max_keys"),
            "must be at least 1, e.g. 100000",
        ));
    }
    match &policy.tier_header {
        Some(header) if !is_token(header) => issues.push(Issue::new(
            path.key("tier_header"),
            format!("invalid header name {header:?}; write e.g. \"x-plan\""),
        )),
        // A verified caller's tier (JWT tier_claim, API key tier) selects it on those keys.
        None if !policy.tiers.is_empty() && !["identity", "api_key"].contains(&key) => {
            issues.push(Issue::new(
                path.key("tiers"),
                "tiers need a tier_header naming the request header that selects the tier, e.g. \
                 \"x-plan\", or key = \"identity\" so the verified caller's tier selects it",
            ))
        }
        _ => {}
    }
    for (name, tier) in &policy.tiers {
        let path = path.key("tiers").key(name);
        check_rate(tier.limit, tier.burst, &path, issues);
        if let Some(per) = tier.per {
            check_positive(per, path.key("per"), issues);
        }
    }
}

/// A policy's or tier's `limit` and `burst`: at least one request each.
fn check_rate(limit: u32, burst: Option<u32>, path: &FieldPath, issues: &mut Vec<Issue>) {
    if limit == 0 {
        issues.push(Issue::new(
            path.key("limit"),
            "must be at least 1 request per `per`; to refuse every request, leave the route out",
        ));
    }
    if burst == Some(0) {
        issues.push(Issue::new(
            path.key("burst"),
            "must be at least 1 (1 spaces requests evenly); leave it out for `limit`",
        ));
    }
}

pub(crate) fn check_positive(value: crate::Duration, path: FieldPath, issues: &mut Vec<Issue>) {
    if value.get().is_zero() {
        issues.push(Issue::new(
            path,
            "must be longer than 0, e.g. \"500ms\" or \"30s\"",
        ));
    }
}

fn check_listeners(server: &ServerConfig, ops: &OpsConfig, issues: &mut Vec<Issue>) {
    if conflicts(server.listen, ops.listen) {
        issues.push(Issue::new(
            FieldPath::root().key("ops").key("listen"),
            format!(
                "ops.listen ({}) conflicts with server.listen ({}); the proxy and ops listeners \
                 need different ports",
                ops.listen, server.listen
            ),
        ));
    }
}

/// Two listen addresses that cannot both be bound: same port (not 0, which picks a free one)
/// on the same address or where either is the wildcard address.
fn conflicts(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn check_audit(audit: &AuditConfig, path: &FieldPath, issues: &mut Vec<Issue>) {
    let has_path = audit.path.as_deref().is_some_and(|p| !p.trim().is_empty());
    if audit.sink == AuditSinkKind::File && !has_path {
        issues.push(Issue::new(
            path.key("path"),
            "audit.sink = \"file\" needs audit.path, the file events are appended to, e.g. \
             \"/var/log/palisade/audit.jsonl\"",
        ));
    }
    if audit.queue_capacity == 0 {
        issues.push(Issue::new(
            path.key("queue_capacity"),
            "must be at least 1, e.g. 4096",
        ));
    }
}

fn check_upstream(
    name: &str,
    upstream: &UpstreamConfig,
    upstreams: &BTreeMap<String, Option<UpstreamConfig>>,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) {
    if upstream.endpoints.is_empty() {
        issues.push(Issue::new(
            path.key("endpoints"),
            "an upstream needs at least one endpoint, e.g. [\"127.0.0.1:3000\"]",
        ));
    }
    for (i, endpoint) in upstream.endpoints.iter().enumerate() {
        if let Err(reason) = check_endpoint(endpoint) {
            issues.push(Issue::new(
                path.key("endpoints").index(i),
                format!(
                    "invalid endpoint {endpoint:?}: {reason}; expected \"host:port\" or \
                     \"http://host:port\", e.g. \"127.0.0.1:3000\""
                ),
            ));
        }
    }
    check_positive(
        upstream.connect_timeout,
        path.key("connect_timeout"),
        issues,
    );
    if let Some(header) = &upstream.deadline_header {
        check_header(header, path.key("deadline_header"), issues);
    }
    crate::validate_resilience::check(name, upstream, upstreams, path, issues);
    for (name, value) in &upstream.request_headers {
        let header_path = path.key("request_headers").key(name);
        if !is_token(name) {
            issues.push(Issue::new(
                header_path.clone(),
                format!(
                    "invalid header name {name:?}; header names are letters, digits and \
                     !#$%&'*+-.^_`|~, e.g. \"Authorization\" or \"X-Api-Key\""
                ),
            ));
        } else if let Some(reason) = managed_reason(name) {
            issues.push(Issue::new(
                header_path.clone(),
                format!(
                    "header {name:?} cannot be set here: {reason}; request_headers is for \
                     headers the upstream expects, such as \"Authorization\" or \"X-Api-Key\""
                ),
            ));
        }
        // The value may be a resolved secret: describe the problem, never the value.
        if !valid_header_value(value.expose()) {
            issues.push(Issue::new(
                header_path,
                "the header value contains a control character (such as a newline); header \
                 values may hold visible characters, spaces and tabs only",
            ));
        }
    }
}

/// Checks `host:port` or `http://host:port` (an optional trailing "/").
fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let lower = endpoint.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Err("https upstreams are not supported yet; use http".to_owned());
    }
    let rest = if lower.starts_with("http://") {
        &endpoint["http://".len()..]
    } else {
        endpoint
    };
    if rest.contains("://") {
        return Err("unsupported scheme; only http is supported".to_owned());
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('/') {
        return Err("an endpoint has no path".to_owned());
    }
    let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        let Some((ip, port)) = bracketed.split_once("]:") else {
            return Err("an IPv6 address needs a port, as in \"[::1]:3000\"".to_owned());
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("invalid IPv6 address".to_owned());
        }
        (None, port)
    } else {
        let Some((host, port)) = rest.rsplit_once(':') else {
            return Err("the port is missing".to_owned());
        };
        (Some(host), port)
    };
    if let Some(host) = host {
        let valid_host = !host.is_empty()
            && (host.parse::<IpAddr>().is_ok()
                || host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
        if !valid_host {
            return Err("invalid host".to_owned());
        }
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err("the port must be a number from 1 to 65535".to_owned()),
    }
}

fn check_routes(draft: &Draft, issues: &mut Vec<Issue>) {
    if draft.routes.is_empty() {
        // Without a route every request gets 404: almost certainly an empty or wrong file.
        let upstream = draft.upstreams.keys().next().map_or("app", String::as_str);
        issues.push(Issue::new(
            FieldPath::root().key("routes"),
            format!(
                "no routes are defined, so every request would get 404; add at least one, e.g. \
                 [[routes]] with name = \"default\", path = \"/\", upstream = \"{upstream}\" \
                 (an upstream defined under [upstreams.{upstream}])"
            ),
        ));
    }
    let mut first_by_name: HashMap<&str, usize> = HashMap::new();
    let defined = if draft.upstreams.is_empty() {
        "none".to_owned()
    } else {
        draft
            .upstreams
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (i, route) in draft.routes.iter().enumerate() {
        let Some(route) = route else { continue };
        let path = FieldPath::root().key("routes").index(i);
        if !valid_name(&route.name) {
            issues.push(Issue::new(
                path.key("name"),
                format!("invalid route name {:?}; names are {NAME_RULE}", route.name),
            ));
        }
        if let Some(first) = first_by_name.get(route.name.as_str()) {
            issues.push(Issue::new(
                path.key("name"),
                format!(
                    "route name {:?} is already used by routes[{first}]; route names must be unique",
                    route.name
                ),
            ));
        } else {
            first_by_name.insert(&route.name, i);
        }
        if !draft.upstreams.contains_key(&route.upstream) {
            issues.push(Issue::new(
                path.key("upstream"),
                format!(
                    "route {:?} refers to upstream {:?}, which is not defined; defined upstreams: {defined}",
                    route.name, route.upstream
                ),
            ));
        }
        check_route_match(route, &path, issues);
        check_positive(route.timeout, path.key("timeout"), issues);
        if let Some(schema) = &route.json_schema
            && let Err(problem) = load_schema(schema)
        {
            issues.push(Issue::new(path.key("json_schema"), problem));
        }
        if let Some(hsts) = &route.hsts {
            let max_age = hsts
                .split(';')
                .next()
                .and_then(|d| d.trim().strip_prefix("max-age="))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !max_age || hsts.bytes().any(|b| b.is_ascii_control()) {
                issues.push(Issue::new(
                    path.key("hsts"),
                    format!(
                        "invalid Strict-Transport-Security value {hsts:?}; it starts with \
                         max-age=SECONDS, e.g. \"max-age=31536000; includeSubDomains\""
                    ),
                ));
            }
        }
        if let Some(frame) = &route.frame_options
            && !frame.eq_ignore_ascii_case("DENY")
            && !frame.eq_ignore_ascii_case("SAMEORIGIN")
        {
            issues.push(Issue::new(
                path.key("frame_options"),
                format!(
                    "invalid X-Frame-Options value {frame:?}; expected \"DENY\" or \"SAMEORIGIN\""
                ),
            ));
        }
        for (j, media) in route.content_types.iter().enumerate() {
            let valid = media
                .split_once('/')
                .is_some_and(|(t, sub)| is_token(t) && t != "*" && (sub == "*" || is_token(sub)));
            if !valid {
                issues.push(Issue::new(
                    path.key("content_types").index(j),
                    format!(
                        "invalid media type {media:?}; write a type and subtype without \
                         parameters, e.g. \"application/json\", or \"text/*\" for any subtype"
                    ),
                ));
            }
        }
        crate::validate_auth::check_route_auth(draft, route, &path, issues);
        if route.concurrency_limit == Some(0) {
            issues.push(Issue::new(
                path.key("concurrency_limit"),
                "must be at least 1, e.g. 100; leave it out for no limit",
            ));
        }
        check_positive(route.queue_timeout, path.key("queue_timeout"), issues);
        for (j, policy) in route.rate_limits.iter().enumerate() {
            if !draft.rate_limits.contains_key(policy) {
                let defined = if draft.rate_limits.is_empty() {
                    "none".to_owned()
                } else {
                    let names: Vec<&str> = draft.rate_limits.keys().map(String::as_str).collect();
                    names.join(", ")
                };
                issues.push(Issue::new(
                    path.key("rate_limits").index(j),
                    format!(
                        "route {:?} refers to rate-limit policy {policy:?}, which is not defined; \
                         defined policies: {defined}",
                        route.name
                    ),
                ));
            }
        }
    }
}

fn check_route_match(route: &RouteConfig, path: &FieldPath, issues: &mut Vec<Issue>) {
    if !route.path.starts_with('/') {
        issues.push(Issue::new(
            path.key("path"),
            format!(
                "invalid path {:?}; a route path starts with \"/\", e.g. \"/api\"",
                route.path
            ),
        ));
    } else if route.path.contains(['?', '#']) {
        issues.push(Issue::new(
            path.key("path"),
            format!(
                "invalid path {:?}; a route path has no query (\"?\") or fragment (\"#\")",
                route.path
            ),
        ));
    }
    if let Some(host) = &route.host {
        let problem = if host.is_empty() {
            Some("is empty")
        } else if host.contains("://") {
            Some("has a scheme")
        } else if host.contains(':') {
            Some("has a port")
        } else if host.contains(['/', ' ', '\t']) {
            Some("has a path or spaces")
        } else {
            None
        };
        if let Some(problem) = problem {
            issues.push(Issue::new(
                path.key("host"),
                format!(
                    "invalid host {host:?}: it {problem}; write a bare host name such as \
                     \"api.example.com\" or \"*.example.com\", or leave host out to match any host"
                ),
            ));
        }
    }
    for (j, method) in route.methods.iter().enumerate() {
        if !is_token(method) {
            issues.push(Issue::new(
                path.key("methods").index(j),
                format!(
                    "invalid method {method:?}; expected an HTTP method such as \"GET\", \
                     \"POST\", \"PUT\", \"PATCH\", \"DELETE\", \"HEAD\" or \"OPTIONS\""
                ),
            ));
        } else if method.chars().any(|c| c.is_ascii_lowercase()) {
            issues.push(Issue::new(
                path.key("methods").index(j),
                format!(
                    "invalid method {method:?}; methods are case-sensitive and written in \
                     uppercase, e.g. {:?}",
                    method.to_ascii_uppercase()
                ),
            ));
        }
    }
}

pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// An HTTP token (RFC 9110 §5.6.2): header names and methods.
/// A header name Palisade writes itself (identity, deadline): a token, and not one it manages
/// already.
pub(crate) fn check_header(name: &str, path: FieldPath, issues: &mut Vec<Issue>) {
    if !is_token(name) {
        issues.push(Issue::new(
            path,
            format!("invalid header name {name:?}; e.g. \"x-user-id\""),
        ));
    } else if let Some(reason) = managed_reason(name) {
        issues.push(Issue::new(
            path,
            format!("header {name:?} cannot be used: {reason}"),
        ));
    }
}

pub(crate) fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What `http::HeaderValue` accepts: no control characters other than tab.
pub(crate) fn valid_header_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t')
}

/// Reads and compiles a route's JSON Schema file, as the proxy will when it builds the route.
pub fn load_schema(path: &str) -> Result<jsonschema::Validator, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the JSON Schema file {path:?}: {e}"))?;
    let schema: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("the JSON Schema file {path:?} is not JSON: {e}"))?;
    compile_schema(&schema)
        .map_err(|e| format!("the JSON Schema file {path:?} is not a valid schema: {e}"))
}

/// Compiles a JSON Schema as routes use it: draft 2020-12 unless `$schema` names another,
/// `format` as an annotation (the specification's default), no reference fetched from the
/// network.
pub fn compile_schema(
    schema: &serde_json::Value,
) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    jsonschema::validator_for(schema)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        for ok in [
            "127.0.0.1:3000",
            "http://app:80",
            "http://app.internal:8080/",
            "[::1]:3000",
            "HTTP://x:1",
        ] {
            assert_eq!(check_endpoint(ok), Ok(()), "{ok}");
        }
        for bad in [
            "127.0.0.1",
            "https://x:443",
            "x:0",
            "x:99999",
            ":80",
            "http://x:1/api",
            "ftp://x:1",
            "[::1]",
            "a b:1",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        assert!(
            check_endpoint("https://x:443")
                .unwrap_err()
                .contains("not supported yet")
        );
    }

    #[test]
    fn names_tokens_and_values() {
        assert!(valid_name("api_v2-x"));
        assert!(!valid_name("Api"));
        assert!(!valid_name(""));
        assert!(!valid_name(&"a".repeat(65)));
        assert!(is_token("X-Api-Key"));
        assert!(!is_token("X Api"));
        assert!(valid_header_value("Bearer abc\tdef"));
        assert!(!valid_header_value("abc\r\nX-Evil: 1"));
    }

    #[test]
    fn listener_conflicts() {
        let a: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(conflicts(a, "127.0.0.1:8080".parse().unwrap()));
        assert!(!conflicts(a, "0.0.0.0:9090".parse().unwrap()));
        assert!(!conflicts(
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap()
        ));
    }
}
