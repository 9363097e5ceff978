//! The request pipeline: every decision about a request, made once, on a borrowed view of its
//! head that both codecs provide ([`head::RequestHead`]). Nothing here imports httparse or
//! `HeaderMap`-based parsing; the codecs in [`crate::codec`] only parse and serialize.
//!
//! A request goes through [`admit`] (head facts and the 400s, the normalized path, route
//! match, the route's head checks, forwarding decisions), then either [`reject::render`] or
//! [`forward::write_headers`] and the upstream call ([`call::call`]). Checks that need the body
//! (later: webhook signatures, JSON Schema) will read it from whichever codec holds it,
//! buffered up to the route's limit.

pub mod call;
pub mod checks;
pub mod forward;
pub mod guard;
pub mod head;
pub mod identify;
pub mod path;
pub mod reject;
pub mod respond;
pub mod sanitize;
pub mod webhook;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use palisade_telemetry::metrics::{Metrics, RouteMetrics};

use crate::access::AccessRecord;
use crate::forwarded::Forwarding;
use crate::problem::ProxyError;
use crate::proxy::Snapshot;
use crate::ratelimit;
use crate::request_id;
use crate::routing::Route;
use crate::trace_context::TraceContext;
use head::{BadHead, BodyKind, Facts, Kind, RequestHead};
pub use reject::Rejection;

/// The connection-level facts a request is read with.
#[derive(Debug, Clone, Copy)]
pub struct Peer<'a> {
    pub ip: IpAddr,
    /// `ip` as text, formatted once per connection for `X-Forwarded-For`.
    pub ip_text: &'a str,
}

/// Which codec is asking: the fast one serves only what it can (no body or one framed by
/// `Content-Length`, an HTTP/1.1 upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Fast,
    General,
}

/// What every request carries from admission to its access-log line.
pub struct RequestCtx {
    /// Written (log line, metrics) when the response is done or abandoned.
    pub record: AccessRecord,
    /// `traceparent` for the upstream and `traceresponse` for the client.
    pub traceparent: [u8; 55],
    /// What the route's rate limits decided: the fields every response carries, and the
    /// policy that refused the request. `None` on routes without rate limits.
    pub limits: Option<Box<ratelimit::Verdict>>,
    /// The `Allow` of a 405: the methods the routes on the request's path take.
    pub allow: Option<String>,
    /// The JSON pointer of the value a body failed its schema at, for a 422.
    pub pointer: Option<String>,
    /// The upstream's `Retry-After` on a 5xx whose body was replaced ([`sanitize`]).
    pub retry_after: Option<http::HeaderValue>,
    /// The verified caller on a route with `auth` ([`identify`]).
    pub identity: Option<Box<crate::identity::Identity>>,
    /// The `WWW-Authenticate` of a 401 or 403.
    pub challenge: Option<String>,
    /// Why a credential or a signature was refused: the problem's `reason` member.
    pub reason: Option<&'static str>,
    /// The upstream's fallback, served instead of a problem while its breaker is open.
    pub fallback: Option<std::sync::Arc<guard::Fallback>>,
}

impl RequestCtx {
    /// The context of a request: its method and path as received (for the log), the ids it
    /// brought (kept when valid, else new), its route's metrics (`None`: no route), and the
    /// client address decided for it.
    #[allow(clippy::too_many_arguments)]
    fn new(
        method: &http::Method,
        path: &str,
        snap: &Snapshot,
        metrics: &Metrics,
        route: Option<&RouteMetrics>,
        client_ip: IpAddr,
        request_id: Option<&[u8]>,
        traceparent: Option<&[u8]>,
        bytes_in: Option<u64>,
    ) -> Self {
        let trace = TraceContext::from_traceparent(traceparent);
        Self {
            record: AccessRecord {
                start: Instant::now(),
                metrics: route.unwrap_or_else(|| snap.no_route()).clone(),
                method: method.clone(),
                // Only the access log reads the path (as received): no copy when it is off.
                path: if snap.access_log {
                    path.to_owned()
                } else {
                    String::new()
                },
                status: 0,
                client_ip,
                request_id: request_id::resolve_bytes(request_id),
                trace,
                bytes_in,
                log: snap.access_log,
                in_flight: metrics.in_flight(),
                written: false,
            },
            traceparent: trace.header_bytes(),
            limits: None,
            allow: None,
            pointer: None,
            retry_after: None,
            identity: None,
            challenge: None,
            reason: None,
            fallback: None,
        }
    }
}

impl RequestCtx {
    /// The length of the body the request declared with `Content-Length` (0 without one).
    pub fn declared_body(&self) -> u64 {
        self.record.bytes_in.unwrap_or(0)
    }

    /// The request's ids, for the log line and audit event of a rate-limit refusal.
    fn requester(&self) -> ratelimit::Requester<'_> {
        ratelimit::Requester {
            request_id: self.record.request_id.to_str().unwrap_or_default(),
            trace_id: self.record.trace.trace_id(),
            caller: self.identity.as_deref().map(|i| i.subject.as_str()),
        }
    }
}

/// A request that goes upstream, with every decision the forwarding needs.
pub struct Admitted<'a> {
    pub ctx: RequestCtx,
    pub route: Arc<Route>,
    pub facts: Facts<'a>,
    pub forwarding: Forwarding,
    pub peer: Peer<'a>,
    /// The target for the upstream: the normalized path with the query as received.
    pub target: Cow<'a, str>,
    /// The route's rate limits when some are in Redis: the codec awaits them
    /// ([`await_limits`]) before the request goes upstream.
    pub pending_limits: Option<ratelimit::Pending>,
}

impl Admitted<'_> {
    /// Safe to send again when a reused connection failed before answering (RFC 9110 §9.2.2).
    pub fn idempotent(&self) -> bool {
        self.ctx.record.method.is_idempotent()
    }

    /// A request of another method that carries `Idempotency-Key`.
    pub fn idempotency_key(&self, head: &RequestHead<'_>) -> bool {
        !self.idempotent() && head.value("idempotency-key").is_some()
    }
}

/// The outcome of [`admit`]. Returned by value and consumed at once: boxing a variant would
/// cost an allocation per request on the hot path.
#[allow(clippy::large_enum_variant)]
pub enum Admission<'a> {
    Forward(Admitted<'a>),
    Reject(RequestCtx, Rejection),
    /// The fast codec cannot serve this request; the general codec takes the connection from
    /// this request on, before a byte of it is forwarded.
    General,
    /// The request's token names a key the issuer's cached key set lacks: the codec fetches
    /// the set ([`JwksCache::refresh_for_unknown_key`]) and admits the request again from its
    /// head when the set changed (forgetting this context), else answers with the rejection.
    Refresh(RequestCtx, Rejection, crate::identity::JwksCache),
}

/// Admits a request: reads its head, matches its route on the normalized path and runs the
/// route's head checks.
pub fn admit<'a>(
    head: &RequestHead<'a>,
    peer: Peer<'a>,
    snap: &Snapshot,
    metrics: &Metrics,
    codec: Codec,
) -> Admission<'a> {
    let facts = match Facts::read(head) {
        Ok(facts) => facts,
        Err(bad) => return refuse(head, peer, snap, metrics, bad),
    };
    // The fast codec streams a body framed by `Content-Length`; hyper takes chunked bodies,
    // upgrades and `Expect: 100-continue` (it sends the interim response when the body is read).
    if codec == Codec::Fast && !fast_body(&facts) {
        return Admission::General;
    }
    // A fragment is not part of a request target; hyper drops it, and so does the fast codec,
    // or `/internal#x` would match another route than the `/internal` the upstream serves.
    let target = head.target.split_once('#').map_or(head.target, |(t, _)| t);
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let normalized = match path::normalize(path) {
        Ok(_) if query.is_some_and(path::invalid_query) => {
            return refuse(head, peer, snap, metrics, path::BadPath::InvalidChar.into());
        }
        Ok(p) => p,
        Err(bad) => return refuse(head, peer, snap, metrics, bad.into()),
    };
    let route = snap.router.find(facts.host, &normalized, head.method);
    // h2c upstreams, webhooks and bodies checked against a JSON Schema (both buffered whole
    // first) are the general codec's.
    if codec == Codec::Fast
        && route.is_some_and(|r| {
            r.upstream.is_http2()
                || r.webhook.is_some()
                || (r.schema.is_some() && !facts.body.is_empty())
                || replays(r, &facts, head)
        })
    {
        return Admission::General;
    }
    let forwarded = |kind| {
        head.lines
            .iter()
            .filter(move |l| l.kind == kind)
            .filter(|l| !facts.connection_names(head.lines, l.name))
            .map(|l| l.value)
    };
    let mut forwarding = snap.trusted.decide(
        peer.ip,
        || forwarded(Kind::ForwardedFor),
        facts.has_forwarded_proto,
        facts.has_forwarded_host,
    );
    // A trusted peer that speaks RFC 7239 only names the client in `Forwarded`.
    if forwarding.trusted
        && forwarding.extended_for.is_none()
        && let Some(client) = snap
            .trusted
            .client_from_forwarded(forwarded(Kind::Forwarded))
    {
        forwarding.client = client;
    }
    let ctx = RequestCtx::new(
        head.method,
        path,
        snap,
        metrics,
        route.map(|r| &r.metrics),
        forwarding.client,
        facts.request_id,
        facts.traceparent,
        match facts.body {
            BodyKind::Length(n) => Some(n),
            _ => None,
        },
    );
    let close = facts.close;
    let Some(route) = route.cloned() else {
        // Routes that take the path with other methods make it a 405 (RFC 9110 §15.5.6).
        let allowed = snap.router.allowed(facts.host, &normalized);
        let mut ctx = ctx;
        let error = if allowed.is_empty() {
            ProxyError::NoRoute
        } else {
            let names: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            ctx.allow = Some(names.join(", "));
            ProxyError::MethodNotAllowed
        };
        return Admission::Reject(ctx, Rejection { error, close });
    };
    if let Some(rejection) = checks::run(&route.checks, &facts, head) {
        return Admission::Reject(ctx, rejection);
    }
    let mut ctx = ctx;
    if let Some(auth) = &route.auth {
        match identify::identify(auth, head, &mut ctx, &route.name) {
            Ok(()) => {}
            Err(identify::Refused::Answer(error)) => {
                return Admission::Reject(ctx, Rejection { error, close });
            }
            Err(identify::Refused::Refresh(jwks, error)) => {
                return Admission::Refresh(ctx, Rejection { error, close }, jwks);
            }
        }
    }
    let mut pending_limits = None;
    if route.remote_limits {
        let header = |name: &str| head.value(name);
        let input = ratelimit::KeyInput {
            client_ip: forwarding.client,
            route: &route.name,
            header: &header,
            identity: ctx.identity.as_deref(),
        };
        pending_limits = Some(ratelimit::Pending::new(&route.limits, &input, &route.name));
    } else if !route.limits.is_empty() {
        let verdict = limit(head, &route, forwarding.client, &ctx);
        let refused = verdict.refused.is_some();
        ctx.limits = Some(Box::new(verdict));
        if refused {
            let error = ProxyError::RateLimited;
            return Admission::Reject(ctx, Rejection { error, close });
        }
    }
    let target = match (normalized, query) {
        (Cow::Borrowed(_), _) => Cow::Borrowed(target),
        (Cow::Owned(mut p), Some(q)) => {
            p.push('?');
            p.push_str(q);
            Cow::Owned(p)
        }
        (Cow::Owned(p), None) => Cow::Owned(p),
    };
    Admission::Forward(Admitted {
        ctx,
        route,
        facts,
        forwarding,
        peer,
        target,
        pending_limits,
    })
}

/// Awaits a route's rate limits with Redis-backed policies: the fields go on the response,
/// and a refusal is the answer, on both codecs.
pub async fn await_limits(
    pending: ratelimit::Pending,
    ctx: &mut RequestCtx,
    close: bool,
) -> Option<Rejection> {
    let verdict = { pending.run(&ctx.requester()).await };
    let refused = verdict.refused.is_some();
    ctx.limits = Some(Box::new(verdict));
    refused.then_some(Rejection {
        error: ProxyError::RateLimited,
        close,
    })
}

/// Counts the request against every rate-limit policy of its route.
fn limit(
    head: &RequestHead<'_>,
    route: &Route,
    client_ip: IpAddr,
    ctx: &RequestCtx,
) -> ratelimit::Verdict {
    let header = |name: &str| head.value(name);
    let input = ratelimit::KeyInput {
        client_ip,
        route: &route.name,
        header: &header,
        identity: ctx.identity.as_deref(),
    };
    ratelimit::check(&route.limits, &input, &ctx.requester())
}

/// A body its upstream's retries may send again: the general codec reads it whole first.
fn replays(route: &Route, facts: &Facts<'_>, head: &RequestHead<'_>) -> bool {
    let (Some(retry), BodyKind::Length(n)) = (&route.upstream.retry, facts.body) else {
        return false;
    };
    let idempotent = head.method.is_idempotent();
    let key = !idempotent && head.value("idempotency-key").is_some();
    retry.replays(Some(n), idempotent, key)
}

/// The fast codec serves no body, or one framed by `Content-Length` without `Expect`.
fn fast_body(facts: &Facts<'_>) -> bool {
    match facts.body {
        BodyKind::None | BodyKind::Length(0) => true,
        BodyKind::Length(_) => !facts.expect,
        BodyKind::Chunked | BodyKind::Upgrade => false,
    }
}

/// A head refused with 400: the connection closes after the answer, since where this request
/// ends — and so where the next begins — is not known.
fn refuse<'a>(
    head: &RequestHead<'a>,
    peer: Peer<'a>,
    snap: &Snapshot,
    metrics: &Metrics,
    bad: BadHead,
) -> Admission<'a> {
    let first = |kind| head.lines.iter().find(|l| l.kind == kind).map(|l| l.value);
    let path = head.target.split(['?', '#']).next().unwrap_or_default();
    let ctx = RequestCtx::new(
        head.method,
        path,
        snap,
        metrics,
        None,
        peer.ip,
        first(Kind::RequestId),
        first(Kind::Traceparent),
        None,
    );
    tracing::info!(
        request_id = ctx.record.request_id.to_str().unwrap_or_default(),
        client_ip = %peer.ip,
        reason = %bad,
        "request refused: malformed head"
    );
    let error = ProxyError::BadRequest;
    Admission::Reject(ctx, Rejection { error, close: true })
}
