//! The loading pipeline: parse TOML → apply environment overrides → deserialize piece by piece
//! → resolve secret references → validate, collecting every error on the way.
//!
//! serde stops at the first error of a value, so each top-level section, each
//! `[upstreams.NAME]` and each `[[routes]]` element is deserialized on its own: problems in
//! different pieces are all reported together, each with the line TOML gives for it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use crate::document::Document;
use crate::error::{ConfigError, ConfigErrors, FieldPath, Issue};
use crate::model::Config;
use crate::validate::{Draft, validate};
use crate::{env, secret};

/// The top-level sections of the config file.
const SECTIONS: &[&str] = &[
    "mode",
    "server",
    "ops",
    "log",
    "audit",
    "lifecycle",
    "upstreams",
    "redis",
    "rate_limits",
    "auth",
    "routes",
    "databases",
    "jobs",
];

/// A validated config snapshot and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// The effective config: defaults, then the file, then environment overrides, with secret
    /// references resolved.
    pub config: Config,
    /// The config file's name as given.
    pub source: String,
    /// 12 hex characters identifying the effective config (a hash of its JSON form, in which
    /// secrets appear as `[redacted]`): equal configs have equal versions.
    pub version: String,
}

impl LoadedConfig {
    fn new(config: Config, source: String) -> Self {
        let version = version_of(&config);
        Self {
            config,
            source,
            version,
        }
    }
}

/// Loads and validates a config file, with overrides and secrets from the process environment.
pub fn load_file(path: &Path) -> Result<LoadedConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError {
        file: file.clone(),
        path: String::new(),
        line: None,
        message: format!("cannot read the config file: {error}"),
    })?;
    // Variables that are not valid UTF-8 cannot be overrides or secrets; skip them.
    let env: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_str(&file, &text, &env)
}

/// Loads and validates config text. `file_name` is used in errors; `env` holds the variables to
/// consider for overrides (`PALISADE_…`) and `${env:NAME}` secret references. Pure apart from
/// reading `${file:PATH}` secrets.
pub fn load_str(
    file_name: &str,
    text: &str,
    env: &[(String, String)],
) -> Result<LoadedConfig, ConfigErrors> {
    let (overrides, mut errors) = env::collect(env);
    let mut doc = match Document::parse(file_name, text) {
        Ok(doc) => doc,
        Err(error) => {
            errors.insert(0, error);
            return Err(ConfigErrors(errors));
        }
    };
    errors.extend(env::apply(&mut doc, &overrides));
    let mut draft = deserialize(&doc, &mut errors);
    let mut issues = resolve_secrets(&mut draft, env);
    issues.extend(crate::validate_auth::load_api_key_file(&mut draft));
    issues.extend(validate(&draft));
    errors.extend(issues.into_iter().map(|issue| doc.locate_issue(issue)));
    if !errors.is_empty() {
        // File errors by line, then those without a line, then those from the environment.
        errors.sort_by_key(|e| (e.file != file_name, e.line.unwrap_or(usize::MAX)));
        return Err(ConfigErrors(errors));
    }
    match assemble(draft) {
        Some(config) => Ok(LoadedConfig::new(config, file_name.to_owned())),
        None => Err(ConfigErrors(vec![ConfigError {
            file: file_name.to_owned(),
            path: String::new(),
            line: None,
            message: "internal error: a section failed to load without an error".to_owned(),
        }])),
    }
}

/// The built-in defaults: what an empty config file would give (no upstreams, no routes). Not a
/// config to serve with: validation requires at least one route.
pub fn defaults() -> LoadedConfig {
    LoadedConfig::new(Config::default(), "(defaults)".to_owned())
}

fn deserialize(doc: &Document<'_>, errors: &mut Vec<ConfigError>) -> Draft {
    let mut draft = Draft {
        mode: Some(Default::default()),
        server: Some(Default::default()),
        ops: Some(Default::default()),
        log: Some(Default::default()),
        audit: Some(Default::default()),
        lifecycle: Some(Default::default()),
        upstreams: BTreeMap::new(),
        redis: Some(None),
        rate_limits: BTreeMap::new(),
        auth: Some(Default::default()),
        routes: Vec::new(),
        databases: BTreeMap::new(),
        jobs: BTreeMap::new(),
    };
    let root = FieldPath::root();
    for (key, value) in doc.root.get_ref() {
        let name: &str = key.get_ref();
        let path = root.key(name);
        match name {
            "mode" => draft.mode = piece(doc, value, &path, errors),
            "server" => draft.server = piece(doc, value, &path, errors),
            "ops" => draft.ops = piece(doc, value, &path, errors),
            "log" => draft.log = piece(doc, value, &path, errors),
            "audit" => draft.audit = piece(doc, value, &path, errors),
            "lifecycle" => draft.lifecycle = piece(doc, value, &path, errors),
            "redis" => draft.redis = piece(doc, value, &path, errors).map(Some),
            "auth" => draft.auth = piece(doc, value, &path, errors),
            "upstreams" => named(
                doc,
                value,
                &path,
                "[upstreams.app]",
                &mut draft.upstreams,
                errors,
            ),
            "rate_limits" => named(
                doc,
                value,
                &path,
                "[rate_limits.per-ip]",
                &mut draft.rate_limits,
                errors,
            ),
            "databases" => named(
                doc,
                value,
                &path,
                "[databases.app]",
                &mut draft.databases,
                errors,
            ),
            "jobs" => named(
                doc,
                value,
                &path,
                "[jobs.token-cleanup]",
                &mut draft.jobs,
                errors,
            ),
            "routes" => match value.get_ref() {
                DeValue::Array(routes) => {
                    for (i, route) in routes.iter().enumerate() {
                        draft.routes.push(piece(doc, route, &path.index(i), errors));
                    }
                }
                other => {
                    errors.push(doc.error_at(
                        Some(&value.span()),
                        &path,
                        format!(
                            "expected an array of tables, each starting with [[routes]], found {}",
                            other.type_str()
                        ),
                    ));
                    // Routes are there but unreadable (reported above), not missing.
                    draft.routes.push(None);
                }
            },
            unknown => errors.push(doc.error_at(
                Some(&key.span()),
                &root,
                format!(
                    "unknown field {unknown:?}; valid fields: {}",
                    SECTIONS.join(", ")
                ),
            )),
        }
    }
    draft
}

/// Deserializes one piece of the document, turning a failure into an error at its location.
fn piece<T: DeserializeOwned>(
    doc: &Document<'_>,
    value: &Spanned<DeValue<'_>>,
    path: &FieldPath,
    errors: &mut Vec<ConfigError>,
) -> Option<T> {
    match T::deserialize(ValueDeserializer::from(value.clone())) {
        Ok(loaded) => Some(loaded),
        Err(error) => {
            let span = error.span().unwrap_or_else(|| value.span());
            let hit = doc.locate(&span);
            let (mut at, on_key, text) = match hit {
                Some(hit) => (hit.path, hit.on_key, hit.text),
                None => (path.clone(), false, None),
            };
            let message = error.message();
            if on_key && message.starts_with("unknown field") {
                at = at.parent();
            }
            let message = describe(message, &at, text.as_deref());
            errors.push(doc.error_at(Some(&span), &at, message));
            None
        }
    }
}

/// Rewrites serde's messages to name what is wrong and what would be valid.
fn describe(message: &str, path: &FieldPath, value: Option<&str>) -> String {
    if let Some(rest) = message.strip_prefix("unknown field `")
        && let Some((field, expected)) = rest.split_once('`')
    {
        if expected.contains("there are no fields") {
            return format!("unknown field {field:?}; this table has no fields");
        }
        return format!(
            "unknown field {field:?}; valid fields: {}",
            backticked(expected).join(", ")
        );
    }
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((variant, expected)) = rest.split_once('`')
    {
        return format!(
            "invalid value {variant:?}; valid values: {}",
            backticked(expected).join(", ")
        );
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.trim_end_matches('`');
        return format!("missing required field {field:?}");
    }
    if path.contains_key("request_headers") && message.starts_with("invalid type") {
        // Never echo what may be a secret.
        return "invalid type; a header value is a string".to_owned();
    }
    let value = value.unwrap_or_default();
    if message.contains("invalid socket address syntax") {
        return format!(
            "invalid address {value:?}; expected an IP address and a port such as \
             \"0.0.0.0:8080\" or \"127.0.0.1:9090\" (host names are not accepted here)"
        );
    }
    if path.contains_key("trusted_proxies") && message.contains("invalid IP address syntax") {
        return format!(
            "invalid network {value:?}; expected an IP network in CIDR notation such as \
             \"10.0.0.0/8\" or \"127.0.0.1/32\""
        );
    }
    if message.starts_with("invalid type") && message.ends_with("expected socket address") {
        return format!(
            "{}; expected a string with an IP address and a port such as \"0.0.0.0:8080\"",
            message
                .trim_end_matches(", expected socket address")
                .replace('`', "")
        );
    }
    if message.contains("untagged enum Raw") {
        return "invalid size; expected a number of bytes or a number and a unit such as \
                \"512KiB\" or \"10MiB\""
            .to_owned();
    }
    if message.starts_with("invalid type") && message.ends_with("expected a sequence") {
        return format!(
            "{}, expected an array such as [\"a\", \"b\"]",
            message
                .trim_end_matches(", expected a sequence")
                .replace('`', "")
        );
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        // serde quotes numbers and booleans with backticks: `9`.
        return message.replace('`', "");
    }
    message.replace('`', "\"")
}

/// The names between backticks in a serde "expected one of `a`, `b`" list.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// A table of named sections (`[upstreams.NAME]`, `[jobs.NAME]`): each loaded on its own, so
/// one broken entry is reported without hiding the others. `example` shows the expected form.
fn named<T: DeserializeOwned>(
    doc: &Document<'_>,
    value: &Spanned<DeValue<'_>>,
    path: &FieldPath,
    example: &str,
    into: &mut BTreeMap<String, Option<T>>,
    errors: &mut Vec<ConfigError>,
) {
    match value.get_ref() {
        DeValue::Table(entries) => {
            for (name, entry) in entries {
                let loaded = piece(doc, entry, &path.key(name.get_ref()), errors);
                into.insert(name.get_ref().to_string(), loaded);
            }
        }
        other => errors.push(doc.error_at(
            Some(&value.span()),
            path,
            format!(
                "expected a table of named entries such as {example}, found {}",
                other.type_str()
            ),
        )),
    }
}

/// Replaces every secret reference by its value; errors name the reference, never a value.
fn resolve_secrets(draft: &mut Draft, env: &[(String, String)]) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(Some(redis)) = &mut draft.redis {
        match secret::resolve(redis.url.expose(), env) {
            Ok(Some(resolved)) => redis.url.replace(resolved),
            Ok(None) => {}
            Err(message) => issues.push(Issue::new(
                FieldPath::root().key("redis").key("url"),
                message,
            )),
        }
    }
    for (name, database) in &mut draft.databases {
        let Some(database) = database else { continue };
        match secret::resolve(database.url.expose(), env) {
            Ok(Some(resolved)) => database.url.replace(resolved),
            Ok(None) => {}
            Err(message) => issues.push(Issue::new(
                FieldPath::root().key("databases").key(name).key("url"),
                message,
            )),
        }
    }
    for (name, upstream) in &mut draft.upstreams {
        let Some(upstream) = upstream else { continue };
        for (header, value) in &mut upstream.request_headers {
            match secret::resolve(value.expose(), env) {
                Ok(Some(resolved)) => value.replace(resolved),
                Ok(None) => {}
                Err(message) => issues.push(Issue::new(
                    FieldPath::root()
                        .key("upstreams")
                        .key(name)
                        .key("request_headers")
                        .key(header),
                    message,
                )),
            }
        }
    }
    let development = draft.mode == Some(crate::model::Mode::Development);
    for (index, route) in draft.routes.iter_mut().enumerate() {
        let Some(webhook) = route.as_mut().and_then(|r| r.webhook.as_mut()) else {
            continue;
        };
        let mut kept = Vec::with_capacity(webhook.secrets.len());
        for (n, mut secret) in std::mem::take(&mut webhook.secrets).into_iter().enumerate() {
            match secret::resolve(secret.expose(), env) {
                Ok(Some(resolved)) => secret.replace(resolved),
                Ok(None) => {}
                // On a developer's machine an unset secret means "not configured": the route
                // passes deliveries unverified, with a warning.
                Err(_) if development && secret.expose().starts_with("${env:") => continue,
                Err(message) => {
                    let path = FieldPath::root().key("routes").index(index);
                    issues.push(Issue::new(
                        path.key("webhook").key("secrets").index(n),
                        message,
                    ));
                }
            }
            kept.push(secret);
        }
        webhook.secrets = kept;
    }
    issues
}

/// The config from a draft in which every piece loaded.
fn assemble(draft: Draft) -> Option<Config> {
    Some(Config {
        mode: draft.mode?,
        server: draft.server?,
        ops: draft.ops?,
        log: draft.log?,
        audit: draft.audit?,
        lifecycle: draft.lifecycle?,
        upstreams: all(draft.upstreams)?,
        redis: draft.redis?,
        rate_limits: all(draft.rate_limits)?,
        auth: draft.auth?,
        routes: draft.routes.into_iter().collect::<Option<_>>()?,
        databases: all(draft.databases)?,
        jobs: all(draft.jobs)?,
    })
}

/// Every entry of a named table, if each loaded.
fn all<T>(entries: BTreeMap<String, Option<T>>) -> Option<BTreeMap<String, T>> {
    entries
        .into_iter()
        .map(|(name, entry)| Some((name, entry?)))
        .collect()
}

/// FNV-1a (64 bit) of the config's JSON form, as 12 hex characters.
fn version_of(config: &Config) -> String {
    let json = serde_json::to_vec(config).unwrap_or_default();
    let hash = json.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}")[..12].to_owned()
}
