//! Test-only support for Palisade's integration tests and demos.
//!
//! - [`upstream`]: a real HTTP/1.1 + h2c upstream whose behaviour (status, latency, body size,
//!   connection close, extra headers, WebSocket echo) is chosen by the request's query string,
//!   so tests need no setup. The `palisade-upstream` binary runs the same server.
//! - [`gateway`]: spawns the real `palisade` binary on free loopback ports and waits until its
//!   ops listener says it is live, capturing its output for assertions.
//! - [`client`]: a few one-call HTTP client helpers for tests.
//! - [`document`]: a server of one changeable JSON document (an issuer's JWK Set), counting
//!   fetches.

#![forbid(unsafe_code)]

pub mod client;
pub mod document;
pub mod gateway;
pub mod upstream;

pub use gateway::{Gateway, GatewayBuilder, free_port};
pub use upstream::UpstreamServer;
