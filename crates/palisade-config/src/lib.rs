//! Palisade's configuration: one TOML file, typed and validated whole.
//!
//! Loading goes defaults → file → environment overrides (`PALISADE_SECTION__FIELD`), then
//! resolves secret references and validates the result, returning *every* error at once, each
//! naming the file, the field path, the line where TOML gives one, and what would be valid.
//! The result is an immutable [`Config`] snapshot; reload builds a new one.
#![forbid(unsafe_code)]

mod diff;
mod document;
mod env;
mod error;
mod headers;
mod load;
mod model;
mod model_auth;
mod model_jobs;
mod model_resilience;
mod secret;
mod units;
mod validate;
mod validate_auth;
mod validate_jobs;
mod validate_resilience;

#[cfg(test)]
mod tests;

pub use diff::changed_settings;
pub use error::{ConfigError, ConfigErrors};
pub use headers::MANAGED_REQUEST_HEADERS;
pub use load::{LoadedConfig, defaults, load_file, load_str};
pub use model::*;
pub use secret::Secret;
pub use units::{ByteSize, Duration};
pub use validate::{compile_schema, load_schema};
pub use validate_jobs::{SqlName, parse_schedule};

/// A complete, commented example config (`palisade config example`); it validates as is.
pub const EXAMPLE: &str = include_str!("../palisade.example.toml");

/// The JSON Schema of the config file (`palisade config schema`), for editors; field doc
/// comments become descriptions.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Config);
    serde_json::to_string_pretty(&schema).unwrap_or_default()
}
