//! The codecs: they parse bytes into the pipeline's request view and serialize what the
//! pipeline decided, and decide nothing else.
//!
//! - [`fast`]: a hand-written HTTP/1.1 codec for the common request (no request body, an
//!   HTTP/1.1 upstream), socket to socket in the connection's task.
//! - [`general`]: hyper, for everything else (HTTP/2, request bodies, upgrades, HTTP/1.0).

pub mod fast;
pub mod general;
