//! Environment overrides: `PALISADE_<SECTION>__<FIELD>=value` sets a field over the file.
//!
//! A double underscore separates path segments, segments are lowercased, and a single
//! underscore stays part of a field name: `PALISADE_LIFECYCLE__DRAIN_DELAY=0s` sets
//! `lifecycle.drain_delay`. The value is read as a TOML value when it is one (numbers, booleans,
//! arrays, inline tables) and as a string otherwise. Overridden values go into the parsed
//! document before deserialization, so they are checked exactly like values from the file.

use std::borrow::Cow;
use std::collections::BTreeMap;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::document::{Document, EnvSpans};
use crate::error::ConfigError;

const PREFIX: &str = "PALISADE_";
/// Holds the config file's path for the binary; not an override.
const CONFIG_PATH_VAR: &str = "PALISADE_CONFIG";

/// One override: the variable, the field path it names and its raw value.
pub(crate) struct Override {
    var: String,
    segments: Vec<String>,
    value: String,
}

/// The overrides among `env`, sorted by variable name (the last of duplicate names wins), and
/// the errors of variables that cannot be overrides.
pub(crate) fn collect(env: &[(String, String)]) -> (Vec<Override>, Vec<ConfigError>) {
    let vars: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(name, _)| name.starts_with(PREFIX) && name != CONFIG_PATH_VAR)
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let mut overrides = Vec::new();
    let mut errors = Vec::new();
    for (var, value) in vars {
        let segments: Vec<String> = var[PREFIX.len()..]
            .split("__")
            .map(str::to_lowercase)
            .collect();
        let error = |message: String| ConfigError {
            file: format!("env {var}"),
            path: segments.join("."),
            line: None,
            message,
        };
        if segments.iter().any(String::is_empty) {
            errors.push(error(format!(
                "cannot map {var} to a field: it has an empty segment; name fields as \
                 PALISADE_SECTION__FIELD, e.g. PALISADE_SERVER__LISTEN"
            )));
        } else if segments[0] == "routes" {
            errors.push(error(format!(
                "routes cannot be overridden from the environment ({var}): routes is a list and \
                 overrides do not index into lists; change the config file instead"
            )));
        } else {
            overrides.push(Override {
                var: var.to_owned(),
                segments,
                value: value.to_owned(),
            });
        }
    }
    (overrides, errors)
}

/// Writes the overrides into the document, creating missing tables.
pub(crate) fn apply<'a>(doc: &mut Document<'a>, overrides: &'a [Override]) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for o in overrides {
        let mut spans = doc.add_env_var(&o.var);
        if let Err(message) = set(doc.root.get_mut(), o, &mut spans) {
            errors.push(ConfigError {
                file: format!("env {}", o.var),
                path: o.segments.join("."),
                line: None,
                message,
            });
        }
    }
    errors
}

fn set<'a>(root: &mut DeTable<'a>, o: &'a Override, spans: &mut EnvSpans) -> Result<(), String> {
    let Some((last, parents)) = o.segments.split_last() else {
        return Err("the variable names no field".to_owned());
    };
    let mut table = root;
    for (depth, segment) in parents.iter().enumerate() {
        if !table.contains_key(segment.as_str()) {
            table.insert(
                Spanned::new(spans.next(), Cow::Borrowed(segment.as_str())),
                Spanned::new(spans.next(), DeValue::Table(DeTable::new())),
            );
        }
        let Some(next) = table.get_mut(segment.as_str()) else {
            return Err("internal error: table vanished".to_owned());
        };
        match next.get_mut() {
            DeValue::Table(inner) => table = inner,
            other => {
                return Err(format!(
                    "cannot set a field inside {}: it is a {}, not a table",
                    o.segments[..=depth].join("."),
                    other.type_str()
                ));
            }
        }
    }
    let value = match DeValue::parse(&o.value) {
        Ok(parsed) => respan(parsed, spans),
        Err(_) => Spanned::new(spans.next(), DeValue::String(Cow::Borrowed(&o.value))),
    };
    table.insert(
        Spanned::new(spans.next(), Cow::Borrowed(last.as_str())),
        value,
    );
    Ok(())
}

/// Gives a value parsed from a variable spans that map back to that variable.
fn respan<'a>(value: Spanned<DeValue<'a>>, spans: &mut EnvSpans) -> Spanned<DeValue<'a>> {
    let span = spans.next();
    let value = match value.into_inner() {
        DeValue::Table(table) => {
            let mut out = DeTable::new();
            for (key, item) in table {
                let key = Spanned::new(spans.next(), key.into_inner());
                out.insert(key, respan(item, spans));
            }
            DeValue::Table(out)
        }
        DeValue::Array(items) => {
            let mut out = DeArray::new();
            for item in items {
                out.push(respan(item, spans));
            }
            DeValue::Array(out)
        }
        scalar => scalar,
    };
    Spanned::new(span, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn maps_variable_names_to_paths() {
        let (overrides, errors) = collect(&env(&[
            ("PALISADE_LIFECYCLE__DRAIN_DELAY", "0s"),
            ("PALISADE_CONFIG", "/etc/palisade.toml"),
            ("HOME", "/root"),
        ]));
        assert!(errors.is_empty());
        assert_eq!(overrides.len(), 1);
        assert_eq!(overrides[0].segments, ["lifecycle", "drain_delay"]);
    }

    #[test]
    fn refuses_routes_and_empty_segments() {
        let (overrides, errors) = collect(&env(&[
            ("PALISADE_ROUTES__0__TIMEOUT", "1s"),
            ("PALISADE_SERVER____LISTEN", "x"),
        ]));
        assert!(overrides.is_empty());
        assert_eq!(errors.len(), 2);
        assert!(errors.iter().all(|e| e.file.starts_with("env PALISADE_")));
    }
}
