//! The head checks a route was compiled with ([`HeadCheck`]), run by [`crate::pipeline::admit`]
//! once the route is known, on both codecs. Checks that need the body (webhook signatures,
//! JSON Schema) are still to come.

use super::Rejection;
use super::head::{BodyKind, Facts, RequestHead};
use crate::problem::ProxyError;
use crate::routing::HeadCheck;

/// The first check of `checks` that refuses the request, as its answer.
pub fn run(checks: &[HeadCheck], facts: &Facts<'_>, head: &RequestHead<'_>) -> Option<Rejection> {
    checks.iter().find_map(|check| match check {
        HeadCheck::BodyLimit(limit) => match facts.body {
            // The body is not read, so the connection cannot carry another request.
            BodyKind::Length(n) if n > *limit => Some(Rejection {
                error: ProxyError::PayloadTooLarge,
                close: true,
            }),
            _ => None,
        },
        HeadCheck::ContentTypes(types) if !facts.body.is_empty() => {
            let accepted = content_type(head).is_some_and(|media| {
                types.iter().any(|t| match t.strip_suffix("/*") {
                    Some(top) => media
                        .split_once('/')
                        .is_some_and(|(m, _)| m.eq_ignore_ascii_case(top)),
                    None => media.eq_ignore_ascii_case(t),
                })
            });
            // The codec skips the unread body, or closes when it cannot.
            (!accepted).then_some(Rejection {
                error: ProxyError::UnsupportedMediaType,
                close: facts.close,
            })
        }
        HeadCheck::ContentTypes(_) => None,
    })
}

/// The media type of the first `Content-Type` line, without parameters (`application/json`
/// of `application/json; charset=utf-8`).
fn content_type<'a>(head: &RequestHead<'a>) -> Option<&'a str> {
    let value = std::str::from_utf8(head.value("content-type")?).ok()?;
    let media = value.split(';').next()?.trim();
    (!media.is_empty()).then_some(media)
}
