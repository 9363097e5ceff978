//! One attempt of a hyper request on one endpoint, for the pipeline's upstream call.
//!
//! HTTP/1.1 upstreams use the pool in [`crate::pool`]: a request that could not be written is
//! handed back by hyper untouched, so the call can send it to the next endpoint. An h2c
//! upstream goes through hyper-util's client, which consumes the request: it is not tried on
//! another endpoint.

use std::sync::Arc;

use http::uri::{Parts, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, header};
use hyper::body::Incoming;
use palisade_telemetry::metrics::UpstreamErrorKind;

use super::body::RequestBody;
use crate::pipeline::call::{AttemptError, Exchange, Failure};
use crate::pool::{Checkout, Endpoint};
use crate::upstream::Upstream;

pub struct GeneralExchange<'a> {
    /// The request, until an attempt consumes it.
    request: Option<Request<RequestBody>>,
    /// A bodiless or buffered request's head and body, to build it again for a second attempt
    /// after hyper consumed the first.
    replay: Option<(http::request::Parts, Option<bytes::Bytes>)>,
    upstream: &'a Upstream,
}

impl<'a> GeneralExchange<'a> {
    pub fn new(request: Request<RequestBody>, upstream: &'a Upstream) -> Self {
        let buffered = request.body().buffered_bytes();
        let bodiless = http_body::Body::is_end_stream(request.body());
        let replay = (bodiless || buffered.is_some()).then(|| {
            let mut parts = Request::new(()).into_parts().0;
            parts.method = request.method().clone();
            parts.uri = request.uri().clone();
            parts.headers = request.headers().clone();
            (parts, buffered)
        });
        Self {
            request: Some(request),
            replay,
            upstream,
        }
    }
}

impl Exchange for GeneralExchange<'_> {
    type Output = (Response<Incoming>, Option<Checkout>);

    fn status(output: &Self::Output) -> (u16, Option<std::time::Duration>) {
        let resp = &output.0;
        let status = resp.status().as_u16();
        let retry_after = (status >= 400)
            .then(|| {
                let value = resp.headers().get(header::RETRY_AFTER)?;
                crate::resilience::parse_retry_after(value.as_bytes(), std::time::SystemTime::now())
            })
            .flatten();
        (status, retry_after)
    }

    async fn attempt(
        &mut self,
        endpoint: &Arc<Endpoint>,
        fresh: bool,
    ) -> Result<Self::Output, AttemptError> {
        let request = self.request.take().or_else(|| {
            let (parts, body) = self.replay.clone()?;
            let body = body.map_or_else(RequestBody::empty, RequestBody::buffered);
            Some(Request::from_parts(parts, body))
        });
        let Some(mut req) = request else {
            return Err(AttemptError::new(
                Failure::Exchange(UpstreamErrorKind::Other),
                "the request was consumed by an earlier attempt",
            ));
        };
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        if let Some(client) = self.upstream.http2_client() {
            let mut parts = Parts::default();
            parts.scheme = Some(Scheme::HTTP);
            parts.authority = Some(endpoint.authority.clone());
            parts.path_and_query = Some(path);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
            *req.version_mut() = http::Version::HTTP_2;
            return match client.request(req).await {
                Ok(resp) => Ok((resp, None)),
                Err(e) => {
                    let kind = if e.is_connect() {
                        UpstreamErrorKind::Connect
                    } else {
                        UpstreamErrorKind::Protocol
                    };
                    Err(AttemptError::new(Failure::Exchange(kind), e))
                }
            };
        }
        *req.uri_mut() = Uri::from(path);
        *req.version_mut() = http::Version::HTTP_11;
        if !req.headers().contains_key(header::HOST)
            && let Ok(host) = HeaderValue::from_str(endpoint.authority.as_str())
        {
            req.headers_mut().insert(header::HOST, host);
        }
        let pooled = if fresh { None } else { endpoint.checkout() };
        let reused = pooled.is_some();
        let mut sender = match pooled {
            Some(sender) => sender,
            None => match endpoint.connect().await {
                Ok(sender) => sender,
                Err(e) => {
                    self.request = Some(req);
                    return Err(AttemptError::new(Failure::Connect, e));
                }
            },
        };
        match sender.try_send_request(req).await {
            Ok(resp) => Ok((resp, Some(endpoint.lend(sender)))),
            Err(mut e) => {
                let unsent = e.take_message();
                let error = e.into_error();
                let failure = match unsent {
                    // Never written: the connection went away first.
                    Some(req) => {
                        self.request = Some(req);
                        if reused {
                            Failure::StaleBeforeSend
                        } else {
                            Failure::Exchange(UpstreamErrorKind::Protocol)
                        }
                    }
                    None if error.is_incomplete_message() && reused => Failure::StaleAfterSend,
                    None => Failure::Exchange(UpstreamErrorKind::Protocol),
                };
                Err(AttemptError::new(failure, error))
            }
        }
    }
}
