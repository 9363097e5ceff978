//! The head checks a route was compiled with ([`HeadCheck`]), run by [`crate::pipeline::admit`]
//! once the route is known, on both codecs. A check that needs the body (webhook signatures,
//! JSON Schema) will answer that the request needs the general codec instead.

use super::Rejection;
use super::head::{BodyKind, Facts};
use crate::problem::ProxyError;
use crate::routing::HeadCheck;

/// The first check of `checks` that refuses the request, as its answer.
pub fn run(checks: &[HeadCheck], facts: &Facts<'_>) -> Option<Rejection> {
    checks.iter().find_map(|check| match *check {
        HeadCheck::BodyLimit(limit) => match facts.body {
            // The body is not read, so the connection cannot carry another request.
            BodyKind::Length(n) if n > limit => Some(Rejection {
                error: ProxyError::PayloadTooLarge,
                close: true,
            }),
            _ => None,
        },
    })
}
