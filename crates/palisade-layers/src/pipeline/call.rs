//! The upstream call: which endpoint, how many attempts, and which failures may be tried again.
//! Both codecs drive it through [`Exchange`], which performs one attempt on one endpoint.
//!
//! A request that never reached the upstream — the connection was refused or timed out, or a
//! reused connection failed while the request was being written — goes to the next endpoint
//! (as NGINX's default `proxy_next_upstream error timeout`), and an endpoint that refused a
//! connection is skipped for a short backoff. A request that may have reached the upstream is
//! sent again only when it is safe to repeat and its connection was a reused one that closed
//! before a complete final response head (the upstream closing an idle connection as it was
//! being reused), as NGINX's `proxy_next_upstream error` does. The
//! route's timeout covers every attempt; the codec enforces it around [`call`].

use std::sync::Arc;

use palisade_telemetry::metrics::UpstreamErrorKind;

use crate::pool::Endpoint;
use crate::upstream::Upstream;

/// How far an attempt got before it failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection: refused, unreachable or timed out. Nothing was sent.
    Connect,
    /// A reused connection failed while the request was written: nothing was delivered.
    StaleBeforeSend,
    /// A reused connection closed after the request was written, before a complete final
    /// response head.
    StaleAfterSend,
    /// Anything else, after the request may have been delivered.
    Exchange(UpstreamErrorKind),
    /// The client ended the request while its body was being sent (it closed the connection
    /// or stopped sending): not the upstream's failure, never tried again.
    Client,
}

impl Failure {
    /// The `kind` label this failure counts under when it ends the call.
    pub fn kind(self) -> UpstreamErrorKind {
        match self {
            Self::Connect => UpstreamErrorKind::Connect,
            Self::StaleBeforeSend | Self::StaleAfterSend => UpstreamErrorKind::Protocol,
            Self::Exchange(kind) => kind,
            Self::Client => UpstreamErrorKind::Other,
        }
    }
}

/// One failed attempt: how far it got and the cause, for the operator's log.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct AttemptError {
    pub failure: Failure,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl AttemptError {
    pub fn new(
        failure: Failure,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            failure,
            source: source.into(),
        }
    }
}

/// One attempt of a request on one endpoint, as a codec performs it.
pub trait Exchange {
    type Output;

    /// Sends the request to `endpoint` and reads the response head. `fresh` asks for a new
    /// connection rather than a pooled one.
    fn attempt(
        &mut self,
        endpoint: &Arc<Endpoint>,
        fresh: bool,
    ) -> impl Future<Output = Result<Self::Output, AttemptError>>;
}

/// Calls `upstream` for one request. `idempotent`: the request may be repeated when it may
/// have been delivered already.
pub async fn call<X: Exchange>(
    upstream: &Upstream,
    idempotent: bool,
    exchange: &mut X,
) -> Result<X::Output, AttemptError> {
    let mut endpoint = upstream
        .pick()
        .ok_or_else(|| AttemptError::new(Failure::Connect, "the upstream has no endpoint"))?;
    let mut endpoints_left = upstream.endpoint_count().saturating_sub(1);
    let (mut fresh, mut repeated) = (false, false);
    loop {
        let error = match exchange.attempt(&endpoint, fresh).await {
            Ok(out) => {
                endpoint.connected();
                return Ok(out);
            }
            Err(error) => error,
        };
        match error.failure {
            Failure::Connect => {
                endpoint.refused();
                let next = upstream.pick_after(&endpoint);
                match next {
                    Some(next) if endpoints_left > 0 => {
                        endpoints_left -= 1;
                        upstream.metrics.failover();
                        tracing::debug!(
                            upstream = %upstream.name,
                            from = %endpoint.authority,
                            to = %next.authority,
                            error = %error,
                            "endpoint unreachable; trying the next one"
                        );
                        (endpoint, fresh) = (next, false);
                    }
                    _ => return Err(error),
                }
            }
            Failure::StaleBeforeSend if !fresh => fresh = true,
            Failure::StaleAfterSend if !fresh && idempotent && !repeated => {
                (fresh, repeated) = (true, true);
            }
            _ => return Err(error),
        }
    }
}

/// The answer to a request whose call failed (`error`), or found no response head within the
/// route's timeout (`None`): counted under the upstream's errors and logged with the request
/// id, once for both codecs.
pub fn failed(
    route: &crate::routing::Route,
    ctx: &super::RequestCtx,
    error: Option<&AttemptError>,
    close: bool,
) -> super::Rejection {
    let upstream = &route.upstream;
    let request_id = ctx.record.request_id.to_str().unwrap_or_default();
    let error = match error {
        Some(error) => {
            upstream.metrics.error(error.failure.kind());
            tracing::warn!(
                request_id,
                route = &*route.name,
                upstream = %upstream.name,
                error = %crate::proxy::ErrorChain(error),
                "upstream request failed"
            );
            crate::problem::ProxyError::UpstreamUnavailable
        }
        None => {
            upstream.metrics.error(UpstreamErrorKind::Timeout);
            tracing::warn!(
                request_id,
                route = &*route.name,
                upstream = %upstream.name,
                timeout_ms = route.timeout.as_millis() as u64,
                "upstream did not answer within the route timeout"
            );
            crate::problem::ProxyError::UpstreamTimeout
        }
    };
    super::Rejection { error, close }
}
