//! Every rejection of the request path as one typed error, turned into a response in one place.
//!
//! The body is a small RFC 9457 `application/problem+json` document that names the kind of
//! failure and the request id, and nothing internal: no addresses, no error chains. The cause
//! is logged (with the request id) for the operator instead.

use bytes::Bytes;
use http::StatusCode;

/// Why the gateway answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    /// The request head is malformed or ambiguous (Host, framing, path).
    #[error("the request is malformed")]
    BadRequest,
    /// The client stopped sending the request body.
    #[error("the request body stopped arriving")]
    RequestTimeout,
    /// No route matches the request's host, path and method.
    #[error("no route matches the request")]
    NoRoute,
    /// The upstream refused the connection, was unreachable, or broke the exchange.
    #[error("the upstream service could not be reached")]
    UpstreamUnavailable,
    /// The upstream did not answer within the route's timeout.
    #[error("the upstream service did not answer in time")]
    UpstreamTimeout,
    /// The request body is larger than the route allows.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// A route takes the path but not the method (the answer carries `Allow`).
    #[error("the method is not allowed on this path; see the Allow header")]
    MethodNotAllowed,
    /// The request body's media type is not one the route accepts.
    #[error("the request body's media type is not accepted here")]
    UnsupportedMediaType,
    /// The request body is JSON that fails the route's schema.
    #[error("the request body does not match the schema; see pointer")]
    UnprocessableEntity,
    /// A rate-limit policy of the route is exhausted for this client.
    #[error("too many requests; retry after the time Retry-After gives")]
    RateLimited,
    /// The route requires a credential and the request has no valid one (the answer carries
    /// `WWW-Authenticate`).
    #[error("valid credentials are required; see WWW-Authenticate")]
    Unauthorized,
    /// The caller is known but lacks a scope the route requires.
    #[error("the credentials do not grant access to this route")]
    Forbidden,
    /// A webhook delivery's signature is missing or wrong.
    #[error("the webhook signature is missing or invalid")]
    BadSignature,
    /// A webhook delivery that was already accepted, sent again.
    #[error("this webhook delivery was already received")]
    Replayed,
    /// The route's concurrency limit and its queue are full, or the wait was too long.
    #[error("the service is at capacity; retry after the time Retry-After gives")]
    Overloaded,
    /// The upstream's circuit breaker is open: it is failing and gets time to recover.
    #[error(
        "the service is failing and gets time to recover; retry after the time Retry-After gives"
    )]
    CircuitOpen,
    /// The upstream failed with this 5xx status and a body that would have shown its
    /// internals (a stack trace, an HTML error page), which the gateway replaced.
    #[error("the service failed to answer this request")]
    UpstreamFailed(u16),
}

impl ProxyError {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::UnprocessableEntity => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized | Self::BadSignature => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Replayed => StatusCode::CONFLICT,
            Self::Overloaded | Self::CircuitOpen => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamFailed(status) => {
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    /// A stable, documented identifier of the problem type (the `type` member).
    pub fn type_slug(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::RequestTimeout => "request-timeout",
            Self::NoRoute => "no-route",
            Self::UpstreamUnavailable => "upstream-unavailable",
            Self::UpstreamTimeout => "upstream-timeout",
            Self::PayloadTooLarge => "payload-too-large",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::UnsupportedMediaType => "unsupported-media-type",
            Self::UnprocessableEntity => "invalid-body",
            Self::RateLimited => "rate-limited",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadSignature => "bad-signature",
            Self::Replayed => "replayed",
            Self::Overloaded => "overloaded",
            Self::CircuitOpen => "circuit-open",
            Self::UpstreamFailed(_) => "upstream-error",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::BadRequest => "Bad Request",
            Self::RequestTimeout => "Request Timeout",
            Self::NoRoute => "Not Found",
            Self::UpstreamUnavailable => "Bad Gateway",
            Self::UpstreamTimeout => "Gateway Timeout",
            Self::PayloadTooLarge => "Payload Too Large",
            Self::MethodNotAllowed => "Method Not Allowed",
            Self::UnsupportedMediaType => "Unsupported Media Type",
            Self::UnprocessableEntity => "Unprocessable Content",
            Self::RateLimited => "Too Many Requests",
            Self::Unauthorized | Self::BadSignature => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::Replayed => "Conflict",
            Self::Overloaded | Self::CircuitOpen => "Service Unavailable",
            Self::UpstreamFailed(_) => self.status().canonical_reason().unwrap_or("Server Error"),
        }
    }
}

/// The media type of every error body the gateway writes.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Builds the problem body. `request_id` is already validated (visible ASCII without quotes or
/// backslashes), so it can be embedded without escaping. `member` is one more member, e.g.
/// the `policy` of a 429 or the `pointer` of a 422; its value is escaped.
pub fn problem_body(error: ProxyError, request_id: &str, member: Option<(&str, &str)>) -> Bytes {
    let status = error.status().as_u16();
    let policy = member
        .map(|(name, value)| {
            let value = serde_json::Value::from(value);
            format!(",\"{name}\":{value}")
        })
        .unwrap_or_default();
    Bytes::from(format!(
        "{{\"type\":\"https://palisade.dev/problems/{}\",\"title\":\"{}\",\"status\":{status},\"detail\":\"{error}\",\"request_id\":\"{request_id}\"{policy}}}",
        error.type_slug(),
        error.title(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_json_and_names_only_the_problem() {
        let body = problem_body(ProxyError::UpstreamUnavailable, "abc-123", None);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 502);
        assert_eq!(v["title"], "Bad Gateway");
        assert_eq!(v["request_id"], "abc-123");
        assert_eq!(
            v["type"],
            "https://palisade.dev/problems/upstream-unavailable"
        );
        assert!(v.get("policy").is_none());
    }

    #[test]
    fn a_429_names_the_policy() {
        let body = problem_body(
            ProxyError::RateLimited,
            "abc-123",
            Some(("policy", "per-ip")),
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (v["status"].as_u64(), v["policy"].as_str()),
            (Some(429), Some("per-ip"))
        );
    }
}
