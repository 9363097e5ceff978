//! Checks of `[auth]` and of the routes' `auth`, `scopes` and `webhook`: what can be told from
//! the config alone. Key files, API key files and secret formats are read when the proxy
//! builds its verifiers, which `palisade validate` runs too.

use crate::error::{FieldPath, Issue};
use crate::model::{AuthConfig, Mode, RouteAuth, RouteConfig, WebhookConfig, WebhookScheme};
use crate::validate::{Draft, check_header};

pub(crate) fn check_auth(auth: &AuthConfig, issues: &mut Vec<Issue>) {
    let root = FieldPath::root().key("auth");
    if let Some(jwt) = &auth.jwt {
        let path = root.key("jwt");
        match (&jwt.jwks_url, &jwt.keys_file) {
            (Some(_), Some(_)) | (None, None) => issues.push(Issue::new(
                path.clone(),
                "set exactly one of jwks_url (e.g. \"https://issuer.example/.well-known/jwks.json\") \
                 and keys_file (a JWK, a JWK Set or a PEM public key)",
            )),
            (Some(url), None) if !url.starts_with("http://") && !url.starts_with("https://") => {
                issues.push(Issue::new(
                    path.key("jwks_url"),
                    format!("{url:?} is not an http:// or https:// URL"),
                ));
            }
            _ => {}
        }
        if jwt.algorithms.is_empty() {
            issues.push(Issue::new(
                path.key("algorithms"),
                "list the algorithms tokens are signed with, e.g. [\"RS256\"]",
            ));
        }
        if jwt.user_claim.is_empty() {
            issues.push(Issue::new(
                path.key("user_claim"),
                "must name a claim, e.g. \"sub\"",
            ));
        }
        for (field, value) in [("issuer", &jwt.issuer), ("audience", &jwt.audience)] {
            if value.as_deref() == Some("") {
                issues.push(Issue::new(
                    path.key(field),
                    format!("is empty; leave {field} out to not check it"),
                ));
            }
        }
        for (field, value) in [
            ("jwks_refresh", jwt.jwks_refresh),
            ("jwks_min_refresh", jwt.jwks_min_refresh),
        ] {
            if value.get().is_zero() {
                issues.push(Issue::new(
                    path.key(field),
                    "must be more than 0, e.g. \"30s\"",
                ));
            }
        }
    }
    if let Some(keys) = &auth.api_keys {
        let path = root.key("api_keys");
        if keys.file.is_none() && keys.keys.is_empty() {
            issues.push(Issue::new(
                path.clone(),
                "no keys: set file (a TOML file of [[keys]]) or list [[auth.api_keys.keys]]",
            ));
        }
        check_header(&keys.header, path.key("header"), issues);
        for (i, entry) in keys.keys.iter().enumerate() {
            let at = path.key("keys").index(i);
            if entry.id.is_empty() || entry.id.chars().any(char::is_control) {
                issues.push(Issue::new(
                    at.key("id"),
                    "must be a non-empty printable name",
                ));
            }
            if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                issues.push(Issue::new(
                    at.key("sha256"),
                    "must be the key's SHA-256 as 64 hex digits, e.g. the output of \
                     printf %s \"$KEY\" | sha256sum",
                ));
            }
            let first = keys.keys.iter().position(|e| e.id == entry.id);
            if first != Some(i) {
                issues.push(Issue::new(
                    at.key("id"),
                    format!("the id {:?} is used twice", entry.id),
                ));
            }
        }
    }
    let headers = [
        ("user", &auth.headers.user),
        ("tier", &auth.headers.tier),
        ("method", &auth.headers.method),
    ];
    for (field, name) in headers {
        check_header(name, root.key("headers").key(field), issues);
        if headers
            .iter()
            .filter(|(_, other)| other.eq_ignore_ascii_case(name))
            .count()
            > 1
        {
            issues.push(Issue::new(
                root.key("headers").key(field),
                format!("{name:?} is used for two identity fields; give each its own header"),
            ));
        }
    }
}

pub(crate) fn check_route_auth(
    draft: &Draft,
    route: &RouteConfig,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) {
    let auth = draft.auth.as_ref();
    let (jwt, keys) = (
        auth.is_some_and(|a| a.jwt.is_some()),
        auth.is_some_and(|a| a.api_keys.is_some()),
    );
    let missing = match route.auth {
        RouteAuth::None => None,
        RouteAuth::Jwt if !jwt => Some("[auth.jwt]"),
        RouteAuth::ApiKey if !keys => Some("[auth.api_keys]"),
        RouteAuth::Either if !jwt || !keys => Some("both [auth.jwt] and [auth.api_keys]"),
        _ => None,
    };
    if let Some(missing) = missing {
        issues.push(Issue::new(
            path.key("auth"),
            format!(
                "route {:?} asks for auth but {missing} is not configured",
                route.name
            ),
        ));
    }
    if !route.scopes.is_empty() && route.auth == RouteAuth::None {
        issues.push(Issue::new(
            path.key("scopes"),
            "scopes are checked on a verified caller: set auth to \"jwt\", \"api_key\" or \"either\"",
        ));
    }
    if let Some(webhook) = &route.webhook {
        check_webhook(draft, webhook, &path.key("webhook"), issues);
    }
}

fn check_webhook(
    draft: &Draft,
    webhook: &WebhookConfig,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) {
    let development = draft.mode == Some(Mode::Development);
    if webhook.secrets.is_empty() && !development {
        issues.push(Issue::new(
            path.key("secrets"),
            "a webhook route needs at least one secret, e.g. [\"${env:WEBHOOK_SECRET}\"]; only in \
             development mode may deliveries pass unverified",
        ));
    }
    for (i, secret) in webhook.secrets.iter().enumerate() {
        if secret.expose().is_empty() {
            issues.push(Issue::new(
                path.key("secrets").index(i),
                "the secret is empty",
            ));
        }
    }
    if webhook.tolerance.get().is_zero() {
        issues.push(Issue::new(
            path.key("tolerance"),
            "must be more than 0, e.g. \"5m\"",
        ));
    }
    if webhook.replay == crate::model::ReplayStore::Redis && !matches!(draft.redis, Some(Some(_))) {
        issues.push(Issue::new(
            path.key("replay"),
            "replay = \"redis\" needs a [redis] section with its url; or use \"memory\"",
        ));
    }
    let generic = [
        ("header", webhook.header.is_some()),
        ("prefix", webhook.prefix.is_some()),
        ("timestamp_header", webhook.timestamp_header.is_some()),
        ("id_header", webhook.id_header.is_some()),
        ("template", webhook.template.is_some()),
    ];
    if webhook.scheme == WebhookScheme::Hmac {
        match &webhook.header {
            None => issues.push(Issue::new(
                path.key("header"),
                "scheme \"hmac\" needs the header that carries the signature, e.g. \"x-signature\"",
            )),
            Some(name) => check_header(name, path.key("header"), issues),
        }
        for (field, name) in [
            ("timestamp_header", &webhook.timestamp_header),
            ("id_header", &webhook.id_header),
        ] {
            if let Some(name) = name {
                check_header(name, path.key(field), issues);
            }
        }
    } else {
        for (field, set) in generic {
            if set {
                issues.push(Issue::new(
                    path.key(field),
                    format!(
                        "{field} is for scheme \"hmac\"; the other schemes fix their own headers"
                    ),
                ));
            }
        }
    }
}

/// Appends the entries of `auth.api_keys.file` to `auth.api_keys.keys`, so the loaded config
/// holds every key (as hashes) and a reload notices a changed file.
pub(crate) fn load_api_key_file(draft: &mut Draft) -> Vec<Issue> {
    let Some(keys) = draft.auth.as_mut().and_then(|a| a.api_keys.as_mut()) else {
        return Vec::new();
    };
    let Some(file) = keys.file.clone() else {
        return Vec::new();
    };
    let path = FieldPath::root().key("auth").key("api_keys").key("file");
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct KeyFile {
        #[serde(default)]
        keys: Vec<crate::model::ApiKeyEntry>,
    }
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) => {
            return vec![Issue::new(
                path,
                format!("cannot read the API key file {file:?}: {e}"),
            )];
        }
    };
    match toml::from_str::<KeyFile>(&text) {
        Ok(parsed) => {
            keys.keys.extend(parsed.keys);
            Vec::new()
        }
        Err(e) => vec![Issue::new(
            path,
            format!(
                "the API key file {file:?} is not a list of [[keys]] with id, sha256, tier, scopes: {}",
                e.message()
            ),
        )],
    }
}
