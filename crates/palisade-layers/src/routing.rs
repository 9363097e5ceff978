//! Route matching: host, path (exact or prefix at a segment boundary) and method, first match
//! wins, in the order the config lists the routes.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, Method};
use palisade_config::{PathMatch, RouteConfig};
use palisade_telemetry::metrics::RouteMetrics;

use crate::pipeline::head::SecurityHeader;
use crate::ratelimit::Policy;
use crate::upstream::Upstream;

/// A check a route runs on every request head it matches, compiled from its config. The
/// capabilities to come (per-IP limits, method and type checks, identity, tier limits) add
/// their checks here; [`crate::pipeline::checks`] runs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadCheck {
    /// `max_request_body`: a declared body longer than this is refused with 413 up front.
    BodyLimit(u64),
    /// `content_types`: a request with a body must say one of these media types (lowercase;
    /// `type/*` takes any subtype), else 415.
    ContentTypes(Vec<String>),
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    host: Option<HostMatch>,
    path: String,
    exact: bool,
    methods: Vec<Method>,
    pub upstream: Arc<Upstream>,
    pub timeout: Duration,
    pub max_request_body: Option<u64>,
    /// Run in order on each request head; the first refusal answers.
    pub checks: Vec<HeadCheck>,
    /// The rate-limit policies every request of the route is counted against, in order.
    pub limits: Vec<Arc<Policy>>,
    /// Some of `limits` are in Redis: the check is awaited.
    pub remote_limits: bool,
    /// The security headers added to responses that lack them.
    pub security: Vec<(SecurityHeader, HeaderValue)>,
    /// `json_schema`: request bodies are buffered and must satisfy it (422).
    pub schema: Option<Arc<jsonschema::Validator>>,
    /// Upstream 5xx bodies are held and replaced when they leak internals
    /// ([`crate::pipeline::sanitize`]).
    pub sanitize_errors: bool,
    /// `auth`: the credential check of every request ([`crate::pipeline::identify`]).
    pub auth: Option<crate::pipeline::identify::RouteAuth>,
    /// The headers the route writes itself (identity, webhook verdict, deadline); a client's
    /// copies are dropped.
    pub identity_headers: Arc<crate::pipeline::identify::IdentityHeaders>,
    /// `[routes.webhook]`: every request's signature is checked ([`crate::pipeline::webhook`]).
    pub webhook: Option<crate::pipeline::webhook::RouteWebhook>,
    /// `concurrency_limit`: requests in flight, with a bounded queue ([`crate::pipeline::guard`]).
    pub concurrency: Option<crate::pipeline::guard::RouteLimit>,
    pub metrics: RouteMetrics,
}

#[derive(Debug)]
enum HostMatch {
    Exact(String),
    /// "*.example.com" stored as ".example.com".
    Suffix(String),
}

impl Route {
    pub fn new(
        cfg: &RouteConfig,
        upstream: Arc<Upstream>,
        metrics: RouteMetrics,
        limits: Vec<Arc<Policy>>,
        schema: Option<Arc<jsonschema::Validator>>,
    ) -> Self {
        let host = cfg.host.as_deref().map(|h| match h.strip_prefix('*') {
            Some(suffix) => HostMatch::Suffix(suffix.to_ascii_lowercase()),
            None => HostMatch::Exact(h.to_ascii_lowercase()),
        });
        Self {
            name: Arc::from(cfg.name.as_str()),
            host,
            path: cfg.path.clone(),
            exact: cfg.path_match == PathMatch::Exact,
            methods: cfg
                .methods
                .iter()
                .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
                .collect(),
            upstream,
            timeout: cfg.timeout.get(),
            max_request_body: cfg.max_request_body.map(|b| b.as_u64()),
            checks: cfg
                .max_request_body
                .map(|b| HeadCheck::BodyLimit(b.as_u64()))
                .into_iter()
                .chain((!cfg.content_types.is_empty()).then(|| {
                    let types = cfg.content_types.iter().map(|t| t.to_ascii_lowercase());
                    HeadCheck::ContentTypes(types.collect())
                }))
                .collect(),
            remote_limits: limits.iter().any(|p| p.is_remote()),
            security: security_headers(cfg),
            schema,
            limits,
            sanitize_errors: false,
            auth: None,
            identity_headers: Arc::default(),
            webhook: None,
            concurrency: None,
            metrics,
        }
    }

    fn matches(&self, host: Option<&str>, path: &str, method: &Method) -> bool {
        self.host_matches(host)
            && self.path_matches(path)
            && (self.methods.is_empty() || self.methods.contains(method))
    }

    fn host_matches(&self, host: Option<&str>) -> bool {
        let Some(want) = &self.host else { return true };
        let Some(host) = host else { return false };
        match want {
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.is_char_boundary(host.len() - s.len())
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s)
            }
        }
    }

    fn path_matches(&self, path: &str) -> bool {
        if self.exact {
            return path == self.path;
        }
        match path.strip_prefix(self.path.as_str()) {
            None => false,
            Some(rest) => self.path.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
        }
    }
}

/// The security headers a route adds to responses that lack them (values validated at load).
fn security_headers(cfg: &RouteConfig) -> Vec<(SecurityHeader, HeaderValue)> {
    let mut headers = Vec::new();
    if cfg.security_headers {
        headers.push((
            SecurityHeader::ContentTypeOptions,
            HeaderValue::from_static("nosniff"),
        ));
        headers.push((
            SecurityHeader::ReferrerPolicy,
            HeaderValue::from_static("strict-origin-when-cross-origin"),
        ));
    }
    let configured = [
        (SecurityHeader::StrictTransportSecurity, cfg.hsts.as_deref()),
        (SecurityHeader::FrameOptions, cfg.frame_options.as_deref()),
    ];
    for (which, value) in configured {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.push((which, value));
        }
    }
    headers
}

/// The routes of one config snapshot.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Arc<Route>>,
}

impl Router {
    pub fn new(routes: Vec<Arc<Route>>) -> Self {
        Self { routes }
    }

    /// The first route matching the request. `host` may carry a port and a trailing dot; both
    /// are ignored.
    pub fn find(&self, host: Option<&str>, path: &str, method: &Method) -> Option<&Arc<Route>> {
        // `admin.example.` is `admin.example` (a fully qualified name), as NGINX matches it.
        let host = host.map(|h| {
            let h = strip_port(h);
            h.strip_suffix('.').unwrap_or(h)
        });
        self.routes.iter().find(|r| r.matches(host, path, method))
    }

    /// The methods of the routes that match `host` and `path`, in route order without
    /// repeats: the `Allow` of a 405 when none of them takes the request's method. Empty when
    /// no route matches the host and path (a 404), or one takes any method.
    pub fn allowed(&self, host: Option<&str>, path: &str) -> Vec<&Method> {
        let host = host.map(|h| {
            let h = strip_port(h);
            h.strip_suffix('.').unwrap_or(h)
        });
        let mut allowed: Vec<&Method> = Vec::new();
        for route in &self.routes {
            if !(route.host_matches(host) && route.path_matches(path)) {
                continue;
            }
            if route.methods.is_empty() {
                return Vec::new();
            }
            for method in &route.methods {
                if !allowed.contains(&method) {
                    allowed.push(method);
                }
            }
        }
        allowed
    }

    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':')
        .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_telemetry::metrics::Metrics;

    fn route(toml_route: &str) -> Arc<Route> {
        let cfg: RouteConfig = toml::from_str(toml_route).unwrap();
        let metrics = Metrics::new("test");
        let up = Arc::new(Upstream::for_tests("app"));
        Arc::new(Route::new(
            &cfg,
            up,
            metrics.route(&cfg.name),
            Vec::new(),
            None,
        ))
    }

    #[test]
    fn the_methods_of_every_route_on_a_path_are_allowed() {
        let r = Router::new(vec![
            route("name='read'\npath='/api'\nupstream='app'\nmethods=['GET', 'HEAD']"),
            route("name='write'\npath='/api/orders'\nupstream='app'\nmethods=['POST', 'GET']"),
            route("name='other'\npath='/other'\nupstream='app'"),
        ]);
        let allowed = |path| {
            r.allowed(None, path)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            allowed("/api/orders"),
            [Method::GET, Method::HEAD, Method::POST]
        );
        assert_eq!(allowed("/api/x"), [Method::GET, Method::HEAD]);
        assert!(allowed("/nowhere").is_empty(), "no route on the path: 404");
        assert!(allowed("/other").is_empty(), "a route takes any method");
    }

    #[test]
    fn prefix_matches_at_segment_boundary() {
        let r = Router::new(vec![route("name='api'\npath='/api'\nupstream='app'")]);
        assert!(r.find(None, "/api", &Method::GET).is_some());
        assert!(r.find(None, "/api/users", &Method::GET).is_some());
        assert!(r.find(None, "/apix", &Method::GET).is_none());
    }

    #[test]
    fn exact_host_and_method_rules() {
        let r = Router::new(vec![route(
            "name='h'\npath='/x'\nmatch='exact'\nhost='*.example.com'\nmethods=['POST']\nupstream='app'",
        )]);
        assert!(
            r.find(Some("a.example.com:8080"), "/x", &Method::POST)
                .is_some()
        );
        assert!(r.find(Some("example.com"), "/x", &Method::POST).is_none());
        assert!(
            r.find(Some("a.example.com"), "/x/y", &Method::POST)
                .is_none()
        );
        assert!(r.find(Some("a.example.com"), "/x", &Method::GET).is_none());
    }

    #[test]
    fn first_match_wins() {
        let r = Router::new(vec![
            route("name='api'\npath='/api'\nupstream='app'"),
            route("name='all'\npath='/'\nupstream='app'"),
        ]);
        assert_eq!(&*r.find(None, "/api/1", &Method::GET).unwrap().name, "api");
        assert_eq!(&*r.find(None, "/other", &Method::GET).unwrap().name, "all");
    }
}
