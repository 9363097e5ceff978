//! The request path of Palisade, one module per concern.
//!
//! [`proxy::Proxy`] runs a request through request id and trace context, route matching, the
//! body-size check, forwarding headers and the pooled upstream client, and turns every
//! failure into a small `application/problem+json` response ([`problem`]).
#![forbid(unsafe_code)]

pub mod access;
pub mod body;
pub mod direct;
pub mod forwarded;
pub mod headers;
mod hex;
pub mod pool;
pub mod problem;
pub mod proxy;
pub mod request_id;
pub mod routing;
pub mod trace_context;
pub mod upstream;

pub use proxy::{Proxy, Snapshot};
