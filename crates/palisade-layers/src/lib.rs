//! The request path of Palisade: two codecs under one pipeline.
//!
//! - [`codec`]: the fast HTTP/1.1 codec and the general (hyper) codec; they parse and
//!   serialize, nothing else.
//! - [`pipeline`]: every decision, made once on a borrowed view of the request: head rules,
//!   the normalized path, route match, forwarding headers, rejections, the upstream call.
//! - The pieces the pipeline uses: [`routing`], [`forwarded`], [`request_id`],
//!   [`trace_context`], [`headers`], [`problem`], [`access`], and the upstreams with their
//!   connection pools ([`upstream`], [`pool`]). [`proxy::Proxy`] holds the current snapshot.
#![forbid(unsafe_code)]

pub mod access;
pub mod codec;
pub mod forwarded;
pub mod headers;
pub mod health_check;
mod hex;
pub mod identity;
pub mod kept;
pub mod pipeline;
pub mod pool;
pub mod problem;
pub mod proxy;
pub mod ratelimit;
pub mod request_id;
pub mod resilience;
pub mod routing;
pub mod trace_context;
pub mod upstream;
pub mod verifiers;
pub mod webhook;

/// The fast codec under the name the binary knows it by.
pub use codec::fast as direct;
pub use proxy::{Proxy, Retained, Snapshot};
pub use upstream::EndpointRegistry;
