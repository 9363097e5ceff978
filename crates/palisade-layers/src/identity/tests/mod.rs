//! The identity module against the published examples (RFC 7515 A.1–A.3, RFC 8037 A.4), every
//! refusal a route relies on, the JWK Set cache against a real HTTP server, and API keys.

mod api_keys;
mod credentials;
mod jwks;
mod jwt;
mod keys;
mod never_panics;
mod support;
mod vectors;
