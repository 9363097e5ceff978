//! The identity and webhook part of the config tree: `[auth]`, a route's `auth` and
//! `[routes.webhook]` (see [`crate::model`] for the conventions every field follows).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;
use crate::units::Duration;

/// Who may call a route.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RouteAuth {
    #[default]
    None,
    Jwt,
    ApiKey,
    /// A JWT when the request carries `Authorization: Bearer` with a token, else an API key.
    Either,
}

/// `[auth]`: the verifiers routes name.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// JWT verification (`auth = "jwt"`).
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// API keys (`auth = "api_key"`).
    #[serde(default)]
    pub api_keys: Option<ApiKeysConfig>,
    /// The request headers that tell the upstream who called; copies a client sends are
    /// removed on every route.
    #[serde(default)]
    pub headers: IdentityHeaders,
}

/// The headers that carry a verified identity to the upstream.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IdentityHeaders {
    /// The caller's id: the JWT's `user_claim`, or the API key's `id`.
    #[serde(default = "default_user_header")]
    pub user: String,
    /// The caller's tier, when it has one.
    #[serde(default = "default_tier_header")]
    pub tier: String,
    /// How the caller proved it: "jwt" or "api_key".
    #[serde(default = "default_method_header")]
    pub method: String,
}

/// `[auth.jwt]`: which tokens are valid.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Where the signing keys are published, e.g.
    /// "https://issuer.example/.well-known/jwks.json". Fetched at start, cached, fetched again
    /// every `jwks_refresh` and when a token names an unknown `kid` (at most once per
    /// `jwks_min_refresh`); while the URL cannot be reached the cached keys stay in use.
    /// One of `jwks_url` and `keys_file`.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// A file holding the keys instead: a JWK, a JWK Set or a PEM public key.
    #[serde(default)]
    pub keys_file: Option<String>,
    /// The algorithms a token may use, e.g. ["RS256"]; "none" is never accepted, and a key
    /// only verifies the algorithms of its type.
    pub algorithms: Vec<JwtAlgorithm>,
    /// The required `iss`. Absent: not checked.
    #[serde(default)]
    pub issuer: Option<String>,
    /// The required `aud` (the token's `aud` must contain it). Absent: not checked.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim that names the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// The claim that names the user's tier (rate-limit tiers). Absent: no tier.
    #[serde(default)]
    pub tier_claim: Option<String>,
    /// Claims a token must carry besides `iss`/`aud` when those are configured.
    #[serde(default = "default_required_claims")]
    pub require: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_jwt_leeway")]
    pub leeway: Duration,
    /// How often the JWKS is fetched again.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: Duration,
    /// Shortest time between two fetches caused by unknown `kid`s.
    #[serde(default = "default_jwks_min_refresh")]
    pub jwks_min_refresh: Duration,
}

/// `[auth.api_keys]`: keys stored as their SHA-256, never in clear.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// A TOML file of `[[keys]]` entries (the fields of `keys` below), relative to the
    /// working directory; read at load and on reload.
    #[serde(default)]
    pub file: Option<String>,
    /// Keys written here instead of (or besides) the file.
    #[serde(default)]
    pub keys: Vec<ApiKeyEntry>,
    /// The request header that carries the key; `Authorization: Bearer KEY` works too.
    #[serde(default = "default_api_key_header")]
    pub header: String,
}

/// One API key.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyEntry {
    /// Who the key belongs to: the identity's user id in logs, audit events and rate limits.
    pub id: String,
    /// The SHA-256 of the key, 64 hex digits (`printf %s "$KEY" | sha256sum`).
    pub sha256: String,
    /// The caller's tier (rate-limit tiers). Absent: none.
    #[serde(default)]
    pub tier: Option<String>,
    /// What the key may do; routes' `scopes` must all be here.
    #[serde(default)]
    pub scopes: Vec<String>,
}

/// `[routes.webhook]`: how a route's inbound webhooks are signed.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// "standard-webhooks" (Svix, Clerk, ...), "stripe", "github", "slack", "shopify" or
    /// "hmac" (any other provider: see `header`, `algorithm`, `encoding`).
    pub scheme: WebhookScheme,
    /// The signing secrets, usually secret references ("${env:CLERK_WEBHOOK_SECRET}");
    /// several while rotating: a signature made with any of them is accepted. In development
    /// `mode` a route with no secret (none listed, or only references to unset variables)
    /// passes deliveries unverified with a warning; in production that is a config error.
    #[serde(default)]
    pub secrets: Vec<Secret>,
    /// How far a delivery's timestamp may be from now, either way.
    #[serde(default = "default_webhook_tolerance")]
    pub tolerance: Duration,
    /// Where delivery ids are remembered for `tolerance`, to refuse a replayed delivery
    /// (409): "memory", "redis" (shared by every replica; needs `[redis]`) or "off".
    #[serde(default)]
    pub replay: ReplayStore,
    /// "hmac" only: the header that carries the signature.
    #[serde(default)]
    pub header: Option<String>,
    /// "hmac" only: "sha256" (the default) or "sha512".
    #[serde(default)]
    pub algorithm: HmacAlgorithm,
    /// "hmac" only: "hex" (the default) or "base64".
    #[serde(default)]
    pub encoding: SignatureEncoding,
    /// "hmac" only: text before the signature in the header, e.g. "sha256=".
    #[serde(default)]
    pub prefix: Option<String>,
    /// "hmac" only: the header with the delivery's Unix timestamp; absent: none checked.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// "hmac" only: the header with the delivery id (for replay protection).
    #[serde(default)]
    pub id_header: Option<String>,
    /// "hmac" only: what is signed, from `{id}`, `{timestamp}` and `{body}`; default "{body}".
    #[serde(default)]
    pub template: Option<String>,
}

/// How a provider signs its webhooks.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum WebhookScheme {
    /// Standard Webhooks (`webhook-*` or `svix-*` headers): Svix, Clerk, Resend, ...
    StandardWebhooks,
    Stripe,
    #[serde(rename = "github")]
    GitHub,
    Slack,
    Shopify,
    /// A configurable HMAC: `header`, `algorithm`, `encoding`, `prefix`, `timestamp_header`,
    /// `id_header`, `template`.
    Hmac,
}

/// The hash of a generic HMAC signature.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    #[default]
    Sha256,
    Sha512,
}

/// How a generic HMAC signature is written in its header.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    #[default]
    Hex,
    Base64,
}

/// A JWS algorithm a token may be signed with (RFC 7518, RFC 8037).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// Where webhook delivery ids are remembered.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReplayStore {
    #[default]
    Memory,
    Redis,
    Off,
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self {
            user: default_user_header(),
            tier: default_tier_header(),
            method: default_method_header(),
        }
    }
}

fn default_user_header() -> String {
    "x-user-id".to_owned()
}

fn default_tier_header() -> String {
    "x-user-tier".to_owned()
}

fn default_method_header() -> String {
    "x-auth-method".to_owned()
}

fn default_user_claim() -> String {
    "sub".to_owned()
}

fn default_required_claims() -> Vec<String> {
    vec!["exp".to_owned()]
}

fn default_jwt_leeway() -> Duration {
    Duration::from_secs(60)
}

fn default_jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(30)
}

fn default_api_key_header() -> String {
    "x-api-key".to_owned()
}

fn default_webhook_tolerance() -> Duration {
    Duration::from_secs(300)
}
