//! A secret value: resolved from `${env:NAME}` or `${file:PATH}` at load, never printed.
//!
//! `Debug`, `Display` and `Serialize` all print `[redacted]`, so a secret cannot reach a log line,
//! an error body or a config dump by accident. Comparison is constant-time.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use subtle::ConstantTimeEq;

const REDACTED: &str = "[redacted]";

/// A string that must never be shown. Holds the *resolved* value once the config is loaded;
/// straight after deserialization it holds the raw text, which may be a reference
/// (`${env:NAME}`, `${file:PATH}`) that [`crate::load_str`] resolves.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps an already resolved value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value. Call only where the value is used (a header, a key), never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub(crate) fn replace(&mut self, value: String) {
        self.0 = value;
    }
}

/// Resolves a secret's raw text: `${env:NAME}` from `env`, `${file:PATH}` from the file (one
/// trailing newline trimmed); anything else is a literal and is returned as `None`. Error
/// messages name the reference, never a value.
pub(crate) fn resolve(raw: &str, env: &[(String, String)]) -> Result<Option<String>, String> {
    let Some(reference) = raw.strip_prefix("${").and_then(|r| r.strip_suffix('}')) else {
        return Ok(None);
    };
    if let Some(name) = reference.strip_prefix("env:") {
        if name.is_empty() {
            return Err(
                "the secret reference \"${env:}\" names no variable; write \"${env:NAME}\""
                    .to_owned(),
            );
        }
        return match env.iter().rev().find(|(k, _)| k == name) {
            Some((_, value)) => Ok(Some(value.clone())),
            None => Err(format!(
                "environment variable {name:?} is not set; set it or change the reference"
            )),
        };
    }
    if let Some(path) = reference.strip_prefix("file:") {
        if path.is_empty() {
            return Err("the secret reference \"${file:}\" names no file; write \"${file:/path/to/secret}\"".to_owned());
        }
        return match std::fs::read_to_string(path) {
            Ok(mut value) => {
                if value.ends_with('\n') {
                    value.pop();
                    if value.ends_with('\r') {
                        value.pop();
                    }
                }
                Ok(Some(value))
            }
            Err(error) => Err(format!(
                "cannot read secret file {path:?}: {}",
                io_kind(&error)
            )),
        };
    }
    Err(
        "unsupported secret reference; write \"${env:NAME}\" to read an environment variable or \
         \"${file:/path}\" to read a file (or a literal value that does not start with \"${\")"
            .to_owned(),
    )
}

fn io_kind(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::NotFound => "not found".to_owned(),
        ErrorKind::PermissionDenied => "permission denied".to_owned(),
        ErrorKind::IsADirectory => "is a directory".to_owned(),
        ErrorKind::InvalidData => "not valid UTF-8".to_owned(),
        kind => kind.to_string(),
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        // `subtle` compares every byte without an early exit and keeps the optimizer from
        // adding one; a length difference returns at once (the length is not secret).
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A secret: a literal value, \"${env:NAME}\" or \"${file:/path}\". Never printed."
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn resolves_references() {
        let env = vec![("TOKEN".to_owned(), "s3cret".to_owned())];
        assert_eq!(resolve("literal", &env), Ok(None));
        assert_eq!(resolve("${env:TOKEN}", &env), Ok(Some("s3cret".to_owned())));
        assert_eq!(
            resolve("${env:NOPE}", &env),
            Err(
                "environment variable \"NOPE\" is not set; set it or change the reference"
                    .to_owned()
            )
        );
        assert_eq!(
            resolve("${file:/nonexistent/palisade-secret}", &env),
            Err("cannot read secret file \"/nonexistent/palisade-secret\": not found".to_owned())
        );
        assert!(
            resolve("${vault:x}", &env)
                .unwrap_err()
                .contains("${env:NAME}")
        );
    }

    #[test]
    fn compares_by_value() {
        assert_eq!(Secret::new("abc"), Secret::new("abc"));
        assert_ne!(Secret::new("abc"), Secret::new("abd"));
        assert_ne!(Secret::new("abc"), Secret::new("abcd"));
        assert_ne!(Secret::new(""), Secret::new("a"));
        assert_eq!(Secret::new(""), Secret::default());
    }
}
