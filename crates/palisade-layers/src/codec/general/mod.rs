//! The general codec: hyper serves the connection (HTTP/2, request bodies, WebSocket upgrades,
//! HTTP/1.0, anything the fast codec hands over), and this module turns each hyper request into
//! the pipeline's view, and the pipeline's decisions back into a hyper request and response.
//!
//! The upstream request's headers are decided by the pipeline ([`forward::keeps`],
//! [`forward::write_managed`]) and built anew, never edited in place, so the rules are exactly
//! the fast codec's; the client's values are moved over rather than copied.

pub mod body;
mod exchange;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

use crate::codec::RouteDeadline;
use crate::pipeline::head::{BodyKind, Kind, Line, RequestHead, connection_names, kind};
use crate::pipeline::reject::{ResponseSink, render};
use crate::pipeline::{
    self, Admission, Codec, Peer, Rejection, RequestCtx, call, forward, guard, respond, sanitize,
};
use crate::problem::ProxyError;
use crate::proxy::Proxy;
use crate::routing::Route;
use crate::trace_context::TRACERESPONSE;
use body::{FromUpstream, RequestBody, RequestBodyError, ResponseBody};
use exchange::GeneralExchange;

const RATELIMIT_POLICY: http::HeaderName = http::HeaderName::from_static("ratelimit-policy");
const RATELIMIT: http::HeaderName = http::HeaderName::from_static("ratelimit");

/// What the upstream request needs once the head's borrow has ended.
struct Outbound {
    ctx: RequestCtx,
    route: Arc<Route>,
    /// For each of the client's header values, in the header map's order: whether it goes on.
    keep: Vec<bool>,
    /// The headers the proxy sets.
    managed: Vec<(http::HeaderName, HeaderValue)>,
    uri: Uri,
    upgrade: bool,
    idempotent: bool,
    idempotency_key: bool,
    close: bool,
    pending_limits: Option<crate::ratelimit::Pending>,
}

/// Handles one request end to end. Never fails: every problem becomes a response.
pub async fn handle(
    proxy: &Proxy,
    mut req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let snap = proxy.snapshot();
    let ip = peer.ip().to_canonical();
    let ip_text = ip.to_string();
    let peer = Peer {
        ip,
        ip_text: &ip_text,
    };
    let admitted = loop {
        let lines: Vec<Line<'_>> = req
            .headers()
            .iter()
            .map(|(n, v)| Line::new(n.as_str().as_bytes(), v.as_bytes()))
            .collect();
        let head = RequestHead {
            method: req.method(),
            target: req.uri().path_and_query().map_or("/", |pq| pq.as_str()),
            authority: req.uri().authority().map(|a| a.as_str()),
            version: req.version(),
            lines: &lines,
        };
        break match pipeline::admit(&head, peer, &snap, proxy.metrics(), Codec::General) {
            Admission::Forward(a) => {
                // The client's header values are moved, not copied, into the upstream
                // request below: here only which ones go on is decided, in `lines` order.
                let keep: Vec<bool> = lines
                    .iter()
                    .map(|l| forward::keeps(&head, &a, l.kind, l.name))
                    .collect();
                let mut managed = Vec::with_capacity(10);
                forward::write_managed(&a, &mut managed);
                match a.target.parse::<Uri>() {
                    Ok(uri) => Ok(Outbound {
                        idempotent: a.idempotent(),
                        idempotency_key: a.idempotency_key(&head),
                        pending_limits: a.pending_limits,
                        close: a.facts.close,
                        upgrade: a.facts.body == BodyKind::Upgrade,
                        ctx: a.ctx,
                        route: a.route,
                        keep,
                        managed,
                        uri,
                    }),
                    Err(_) => Err((a.ctx, bad_request())),
                }
            }
            Admission::Reject(ctx, rejection) => Err((ctx, rejection)),
            // Only the fast codec is ever sent elsewhere.
            Admission::General => return plain(StatusCode::INTERNAL_SERVER_ERROR),
            // A key rotated at the issuer: the head is decided again after the fetch.
            Admission::Refresh(ctx, rejection, jwks) => {
                if jwks.refresh_for_unknown_key().await {
                    ctx.record.forget();
                    continue;
                }
                Err((ctx, rejection))
            }
        };
    };
    let out = match admitted {
        Ok(out) => out,
        Err((ctx, mut rejection)) => {
            // hyper closes a connection whose request body was left unread: say so.
            rejection.close |= !http_body::Body::is_end_stream(req.body());
            return reject(ctx, rejection, req.version());
        }
    };
    let Outbound {
        mut ctx,
        route,
        keep,
        managed,
        uri,
        upgrade,
        idempotent,
        idempotency_key,
        close,
        pending_limits,
    } = out;
    if let Some(pending) = pending_limits
        && let Some(mut rejection) = pipeline::await_limits(pending, &mut ctx, close).await
    {
        // hyper closes a connection whose request body was left unread: say so.
        rejection.close |= !http_body::Body::is_end_stream(req.body());
        return reject(ctx, rejection, req.version());
    }
    let mut headers = upstream_headers(std::mem::take(req.headers_mut()), &keep, managed);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let version = req.version();
    let method = req.method().clone();
    let head_request = method == http::Method::HEAD;
    let deadline = Arc::new(RouteDeadline::new(route.timeout));
    let body = RequestBody::new(
        req.into_body(),
        route.max_request_body,
        snap.request_body_timeout,
        Some(deadline.clone()),
    );
    // The body is read whole (within the route's limit and the body timeout) when something
    // must see all of it before a byte goes upstream: a webhook signature, the route's JSON
    // Schema, or a retry that may send it again. It then goes upstream as it came.
    let bodiless = http_body::Body::is_end_stream(&body);
    let replays = route
        .upstream
        .retry
        .as_ref()
        .is_some_and(|retry| retry.replays(ctx.record.bytes_in, idempotent, idempotency_key));
    let whole = route.webhook.is_some() || (!bodiless && (route.schema.is_some() || replays));
    let body = if whole {
        let bytes = match read_whole(body).await {
            Ok(bytes) => bytes,
            Err(Some(error)) => return reject(ctx, Rejection { error, close: true }, version),
            Err(None) => {
                ctx.record.client_closed(0);
                return plain(StatusCode::BAD_REQUEST);
            }
        };
        // The signature over the bytes received, with the headers that go upstream (the
        // signature's own pass unchanged).
        if let Some(hook) = &route.webhook {
            let verified = pipeline::webhook::verify(hook, &headers, &bytes, &mut ctx, &route.name);
            let delivery = match verified.await {
                Ok(delivery) => delivery,
                Err(error) => return reject(ctx, Rejection { error, close }, version),
            };
            use crate::pipeline::identify::{WEBHOOK_ID, WEBHOOK_VERIFIED};
            let verified = HeaderValue::from_static(delivery.verified);
            headers.insert(WEBHOOK_VERIFIED.clone(), verified);
            if let Some(id) = delivery.id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                headers.insert(WEBHOOK_ID.clone(), id);
            }
        }
        if let (Some(schema), false) = (&route.schema, bodiless)
            && let Err((error, pointer)) = schema_check(&bytes, schema)
        {
            ctx.pointer = pointer;
            let close = close || error != ProxyError::UnprocessableEntity;
            return reject(ctx, Rejection { error, close }, version);
        }
        RequestBody::buffered(bytes)
    } else {
        body
    };
    // The route's concurrency limit and the upstream's breaker; refused, hyper closes a
    // connection whose body is left unread.
    let mut slot = match guard::enter(&route, &mut ctx, close).await {
        Ok(slot) => slot,
        Err(mut rejection) => {
            rejection.close |= !http_body::Body::is_end_stream(&body);
            return reject(ctx, rejection, version);
        }
    };
    let request_sent = body.sent_flag();
    // hyper consumes a streamed body: only a bodiless or buffered one can be sent again.
    let repeat = call::Repeat {
        idempotent,
        idempotency_key,
        body: http_body::Body::is_end_stream(&body) || body.buffered_bytes().is_some(),
    };
    let mut outbound = Request::new(body);
    *outbound.method_mut() = method;
    *outbound.uri_mut() = uri;
    *outbound.headers_mut() = headers;

    // While the upstream's breaker is open, its fallback upstream may serve instead.
    let instead = slot.instead.take();
    let upstream = instead.as_ref().unwrap_or(&route.upstream);
    let mut exchange = GeneralExchange::new(outbound, upstream);
    // The route's timeout stands still while the body waits for the client, and runs from
    // the last bytes that moved, then for the response head (see `RouteDeadline`).
    let sent = tokio::select! {
        biased;
        sent = call::call(upstream, repeat, &mut exchange, tokio::time::Instant::now() + route.timeout) => Ok(sent),
        () = deadline.passed() => Err(()),
    };
    let (resp, checkout) = match sent {
        Ok(Ok(sent)) => {
            slot.answered(sent.0.status().as_u16());
            sent
        }
        Ok(Err(error)) => {
            // The client's own body ended the call: its fault, not the upstream's.
            if let Some(body) = body_error(&error) {
                return match client_fault(body) {
                    Some(error) => reject(ctx, Rejection { error, close: true }, version),
                    None => {
                        ctx.record.client_closed(0);
                        plain(StatusCode::BAD_REQUEST)
                    }
                };
            }
            slot.failed(error.timed_out());
            // A body not sent whole is left unread, and hyper closes the connection then.
            let close = close || !request_sent.load(std::sync::atomic::Ordering::Relaxed);
            let rejection = call::failed(&route, &ctx, Some(&error), close);
            return reject(ctx, rejection, version);
        }
        Err(_) => {
            slot.failed(true);
            let close = close || !request_sent.load(std::sync::atomic::Ordering::Relaxed);
            let rejection = call::failed(&route, &ctx, None, close);
            return reject(ctx, rejection, version);
        }
    };
    // A 5xx on a route that sanitizes is read whole and judged before anything is sent.
    let (parts, body) = resp.into_parts();
    let held = route.sanitize_errors && sanitize::holds(parts.status.as_u16()) && !head_request;
    let body = if held {
        match hold(&parts, body, route.timeout).await {
            Ok(bytes) => Source::Held(bytes),
            Err((leak, bytes)) => {
                let status = parts.status.as_u16();
                sanitize::log_replaced(&ctx, &route.name, status, leak, &bytes);
                ctx.retry_after = parts.headers.get(header::RETRY_AFTER).cloned();
                let error = ProxyError::UpstreamFailed(status);
                return reject(ctx, Rejection { error, close }, version);
            }
        }
    } else {
        Source::Upstream(body)
    };
    let exchanged = Exchanged {
        place: slot.into_place(),
        security: route.clone(),
        checkout,
        client_upgrade,
        request_sent,
        close,
        version,
        head_request,
        idle: route.timeout,
        metrics: upstream.metrics.clone(),
    };
    respond(ctx, parts, body, exchanged)
}

/// A response body: the upstream's, streamed, or one held whole for [`sanitize::judge`].
enum Source {
    Upstream(Incoming),
    Held(bytes::Bytes),
}

/// Reads a 5xx body whole, within [`sanitize::HOLD_MAX`] and `wait`, and judges it: the body
/// when it may go on, else why not and what was read of it.
async fn hold(
    parts: &http::response::Parts,
    body: Incoming,
    wait: std::time::Duration,
) -> Result<bytes::Bytes, (sanitize::Leak, bytes::Bytes)> {
    use http_body_util::BodyExt;
    let limited = http_body_util::Limited::new(body, sanitize::HOLD_MAX).collect();
    let bytes = match tokio::time::timeout(wait, limited).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        // Longer than the hold, broken off or too slow: nothing vouches for it.
        _ => return Err((sanitize::Leak::Unchecked, bytes::Bytes::new())),
    };
    let read = |name| parts.headers.get(name).map(HeaderValue::as_bytes);
    match sanitize::judge(
        read(header::CONTENT_TYPE),
        read(header::CONTENT_ENCODING),
        &bytes,
    ) {
        None => Ok(bytes),
        Some(leak) => Err((leak, bytes)),
    }
}

/// The upstream request's headers: the client's values the pipeline keeps, moved in the order
/// `keep` was decided (the map's own iteration order), then the managed ones.
fn upstream_headers(
    client: HeaderMap,
    keep: &[bool],
    managed: Vec<(http::HeaderName, HeaderValue)>,
) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(client.len() + managed.len());
    let mut name = None;
    for ((next, value), keep) in client.into_iter().zip(keep) {
        if next.is_some() {
            name = next;
        }
        if let (true, Some(name)) = (*keep, &name) {
            headers.append(name.clone(), value);
        }
    }
    for (name, value) in managed {
        headers.append(name, value);
    }
    headers
}

/// The client's `Content-Length` (RFC 9110 §8.6), one value: the length hyper framed the body
/// by (`exact`); a HEAD's or a 304's as the upstream said (the body it describes is not sent);
/// none on a 204 or when the upstream's body was chunked (a `Content-Length` beside
/// `Transfer-Encoding` is wrong).
fn content_length(parts: &mut http::response::Parts, exact: Option<u64>, head_request: bool) {
    let no_body = parts.status == StatusCode::NO_CONTENT;
    // A 304's length, like a HEAD's, describes a body that is not sent: keep it.
    let head_request = head_request || parts.status == StatusCode::NOT_MODIFIED;
    let headers = &mut parts.headers;
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if chunked || no_body {
        headers.remove(header::CONTENT_LENGTH);
    } else if !head_request
        && headers.contains_key(header::CONTENT_LENGTH)
        && let Some(n) = exact
    {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
}

/// Removes the upstream response headers the pipeline does not pass on ([`respond::keeps`]).
fn client_headers(headers: &mut HeaderMap, switching: bool) {
    let dropped: Vec<http::HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str().as_bytes();
            let named = || {
                let lines = headers.get_all(header::CONNECTION).iter();
                connection_names(lines.map(HeaderValue::as_bytes), name)
            };
            // Content-Length stays for hyper to frame by; it is made one value below.
            let kind = kind(name);
            kind != Kind::ContentLength && !respond::keeps(kind, named, switching)
        })
        .cloned()
        .collect();
    for name in dropped {
        headers.remove(name);
    }
    if switching {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// What the response needs from the exchange that brought it.
struct Exchanged {
    /// The request's place under the route's concurrency limit, held until the body ends.
    place: Option<crate::resilience::ConcurrencyPermit>,
    /// The route, whose security headers go on responses that lack them.
    security: Arc<Route>,
    checkout: Option<crate::pool::Checkout>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    request_sent: Arc<AtomicBool>,
    close: bool,
    /// The client's version, which frames the response.
    version: Version,
    /// The request was a HEAD: the response's `Content-Length` describes a body not sent.
    head_request: bool,
    /// Longest wait for the next response body bytes.
    idle: std::time::Duration,
    metrics: palisade_telemetry::metrics::UpstreamMetrics,
}

/// Passes the upstream's response to the client.
fn respond(
    mut ctx: RequestCtx,
    mut parts: http::response::Parts,
    body: Source,
    x: Exchanged,
) -> Response<ResponseBody> {
    let Exchanged {
        place,
        security,
        checkout,
        client_upgrade,
        request_sent,
        close,
        version,
        head_request,
        idle,
        metrics,
    } = x;
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(client_upgrade)) = (switching, client_upgrade)
        && let Some(upstream_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>()
    {
        tokio::spawn(tunnel(client_upgrade, upstream_upgrade));
    }
    let exact = match &body {
        Source::Upstream(body) => http_body::Body::size_hint(body).exact(),
        Source::Held(bytes) => Some(bytes.len() as u64),
    };
    // Before the hop-by-hop headers go: whether the body was chunked decides the length.
    content_length(&mut parts, exact, head_request);
    client_headers(&mut parts.headers, switching);
    let headers = &mut parts.headers;
    headers.insert(
        crate::request_id::X_REQUEST_ID,
        ctx.record.request_id.clone(),
    );
    if let Ok(tr) = HeaderValue::from_bytes(&ctx.traceparent) {
        headers.insert(TRACERESPONSE, tr);
    }
    for (which, value) in &security.security {
        if !headers.contains_key(which.name()) {
            headers.insert(which.name(), value.clone());
        }
    }
    // Beside the upstream's own rate-limit fields, which stay: a list field's lines combine.
    if let Some(limits) = ctx.limits.as_deref()
        && let (Ok(policy), Ok(limit)) = (
            HeaderValue::from_str(&limits.policy_field),
            HeaderValue::from_str(&limits.limit_field),
        )
    {
        headers.append(RATELIMIT_POLICY, policy);
        headers.append(RATELIMIT, limit);
    }
    if close && !switching {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    ctx.record.status = parts.status.as_u16();
    // The client's version frames the response (an HTTP/1.0 upstream's body without a
    // length goes to an HTTP/1.1 client chunked, not close-delimited).
    parts.version = version;
    let body = match body {
        Source::Upstream(body) => {
            // An upgraded connection is the tunnel's now; it never goes back to the pool.
            let checkout = if switching { None } else { checkout };
            let from = FromUpstream {
                idle,
                checkout,
                request_sent,
                metrics,
                place,
            };
            ResponseBody::upstream(body, ctx.record, from)
        }
        Source::Held(bytes) => {
            // Read to its end: the connection can serve another request.
            if let Some(checkout) = checkout
                && request_sent.load(std::sync::atomic::Ordering::Relaxed)
            {
                checkout.release();
            }
            ResponseBody::full(bytes, Some(ctx.record))
        }
    };
    Response::from_parts(parts, body)
}

fn bad_request() -> Rejection {
    Rejection {
        error: ProxyError::BadRequest,
        close: true,
    }
}

/// Reads a body whole; on failure the answer ([`client_fault`]), `None` when the client left.
async fn read_whole(body: RequestBody) -> Result<bytes::Bytes, Option<ProxyError>> {
    use http_body_util::BodyExt;
    match body.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(client_fault(&error)),
    }
}

/// Checks a body against the route's schema: 400 when it is not JSON, 422 with the JSON
/// pointer of the first failing value.
fn schema_check(
    bytes: &[u8],
    schema: &jsonschema::Validator,
) -> Result<(), (ProxyError, Option<String>)> {
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|_| (ProxyError::BadRequest, None))?;
    match schema.iter_errors(&value).next() {
        Some(failure) => Err((
            ProxyError::UnprocessableEntity,
            Some(failure.instance_path().to_string()),
        )),
        None => Ok(()),
    }
}

/// The answer to a client whose request body failed: 413 over the limit, 408 stalled, 400
/// malformed (bad chunk framing); `None` when the client closed before the end of its body —
/// it left (logged 499, as on the fast codec), and nobody reads an answer.
fn client_fault(error: &RequestBodyError) -> Option<ProxyError> {
    match error {
        RequestBodyError::TooLarge { .. } => Some(ProxyError::PayloadTooLarge),
        RequestBodyError::Idle(_) => Some(ProxyError::RequestTimeout),
        RequestBodyError::Read(e) if client_left(e) => None,
        RequestBodyError::Read(_) => Some(ProxyError::BadRequest),
    }
}

/// The body ended early because the client closed its connection, not because it was
/// malformed: hyper reports an end of input mid-body as `UnexpectedEof`.
fn client_left(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::UnexpectedEof;
        }
        source = e.source();
    }
    error.is_incomplete_message()
}

/// The cause of a failed call when it was the client's request body.
fn body_error(error: &call::AttemptError) -> Option<&RequestBodyError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<RequestBodyError>() {
            return Some(body);
        }
        source = e.source();
    }
    None
}

/// Builds a hyper response from the pipeline's rendering.
struct HyperSink {
    resp: Response<ResponseBody>,
    http1: bool,
}

impl ResponseSink for HyperSink {
    fn status(&mut self, status: StatusCode) {
        *self.resp.status_mut() = status;
    }

    fn header(&mut self, name: &'static [u8], value: &[u8]) {
        // hyper frames the body itself; `Connection` exists only in HTTP/1.
        if name == b"content-length" || (name == b"connection" && !self.http1) {
            return;
        }
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            HeaderValue::from_bytes(value),
        ) {
            self.resp.headers_mut().append(name, value);
        }
    }

    fn body(&mut self, body: bytes::Bytes) {
        *self.resp.body_mut() = ResponseBody::full(body, None);
    }
}

fn reject(mut ctx: RequestCtx, rejection: Rejection, version: Version) -> Response<ResponseBody> {
    let mut sink = HyperSink {
        resp: Response::new(ResponseBody::full(bytes::Bytes::new(), None)),
        http1: version <= Version::HTTP_11,
    };
    render(&rejection, &mut ctx, &mut sink);
    let (parts, body) = sink.resp.into_parts();
    Response::from_parts(parts, body.with_record(ctx.record))
}

fn plain(status: StatusCode) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(bytes::Bytes::new(), None));
    *resp.status_mut() = status;
    resp
}

/// Copies bytes both ways between an upgraded client connection and the upstream's.
async fn tunnel(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, upstream) {
        Ok((client, upstream)) => {
            let (mut c, mut u) = (TokioIo::new(client), TokioIo::new(upstream));
            if let Err(error) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                tracing::debug!(%error, "upgraded connection closed with an error");
            }
        }
        Err(error) => tracing::debug!(%error, "connection upgrade failed"),
    }
}
