//! The credential verifiers of a config (`[auth]`), built once per load or reload: the JWT
//! verifier with its keys, the API key store, and each route's check. `palisade validate`
//! builds them too, so a key file that does not parse is reported before anything starts.
//!
//! A JWT verifier whose `[auth.jwt]` did not change is kept across reloads
//! ([`RetainedJwt`]): its cached JWK Set and refresher go on.

use std::sync::Arc;

use http::HeaderName;
use palisade_config::{
    AuthConfig, HmacAlgorithm, JwtConfig, ReplayStore, RouteAuth as AuthMode, RouteConfig,
    SignatureEncoding, WebhookConfig, WebhookScheme,
};
use palisade_telemetry::audit::AuditSink;
use palisade_telemetry::metrics::Metrics;

use crate::identity::{
    ApiKeyStore, Authenticator, JwksCache, JwksOptions, JwtRules, JwtVerifier, KeySet,
};
use crate::pipeline::identify::{IdentityHeaders, RouteAuth};
use crate::pipeline::webhook::{MemoryReplay, Replay, RouteWebhook};
use crate::webhook::{Algorithm, Encoding, HmacSpec, Spec, Verifier};

/// Why a config's verifiers cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum VerifierError {
    #[error("auth.jwt: {0}")]
    Jwt(String),
    #[error("auth.api_keys: {0}")]
    ApiKeys(String),
    #[error("auth.headers: {0}")]
    Headers(String),
    #[error("routes[{index}] ({route}).webhook: {problem}")]
    Webhook {
        index: usize,
        route: String,
        problem: String,
    },
}

/// The JWT verifier of the running config, with the `[auth.jwt]` it was built from.
pub type RetainedJwt = crate::kept::Kept<(), JwtConfig, Arc<JwtVerifier>>;

/// A config's verifiers, shared by its routes.
pub struct Verifiers {
    jwt: Option<Arc<JwtVerifier>>,
    api_keys: Option<Arc<ApiKeyStore>>,
    api_key_header: String,
    pub headers: Arc<IdentityHeaders>,
}

impl Verifiers {
    /// Builds the verifiers of `auth`, reusing the retained JWT verifier when its settings are
    /// unchanged. A new JWK Set cache starts fetching at once when a runtime is running.
    pub fn build(auth: &AuthConfig, retained: &RetainedJwt) -> Result<Self, VerifierError> {
        let jwt = match &auth.jwt {
            // Dropped, so a removed JWK Set's refresher stops.
            None => {
                retained.retain(|_| false);
                None
            }
            Some(cfg) => Some(retained.get_or_try((), cfg, || {
                let verifier = Arc::new(jwt_verifier(cfg)?);
                start(&verifier);
                Ok(verifier)
            })?),
        };
        let api_keys = match &auth.api_keys {
            None => None,
            Some(cfg) => {
                let store = ApiKeyStore::from_entries(cfg.keys.clone()).map_err(|errors| {
                    let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    VerifierError::ApiKeys(all.join("; "))
                })?;
                Some(Arc::new(store))
            }
        };
        let name = |n: &str| {
            HeaderName::from_bytes(n.as_bytes())
                .map_err(|_| VerifierError::Headers(format!("invalid header name {n:?}")))
        };
        let headers = IdentityHeaders::new(
            name(&auth.headers.user)?,
            name(&auth.headers.tier)?,
            name(&auth.headers.method)?,
        );
        Ok(Self {
            jwt,
            api_keys,
            api_key_header: auth
                .api_keys
                .as_ref()
                .map_or_else(|| "x-api-key".to_owned(), |k| k.header.clone()),
            headers: Arc::new(headers),
        })
    }

    /// The credential check of `route`, or `None` for `auth = "none"`.
    pub fn route_auth(
        &self,
        route: &RouteConfig,
        metrics: &Metrics,
        audit: &AuditSink,
    ) -> Option<RouteAuth> {
        let (jwt, keys) = match route.auth {
            AuthMode::None => return None,
            AuthMode::Jwt => (self.jwt.clone(), None),
            AuthMode::ApiKey => (None, self.api_keys.clone()),
            AuthMode::Either => (self.jwt.clone(), self.api_keys.clone()),
        };
        let authenticator =
            Authenticator::shared(jwt, keys).with_api_key_header(&self.api_key_header);
        Some(RouteAuth {
            authenticator,
            scopes: route.scopes.clone(),
            metrics: metrics.security(&route.name),
            audit: audit.clone(),
        })
    }
}

/// The verifier `[auth.jwt]` describes: its rules, and its keys from a file or a JWK Set URL.
pub fn jwt_verifier(cfg: &JwtConfig) -> Result<JwtVerifier, VerifierError> {
    let algorithms: Vec<String> = cfg.algorithms.iter().map(|a| format!("{a:?}")).collect();
    let mut rules = JwtRules::new(&algorithms).map_err(|e| VerifierError::Jwt(e.to_string()))?;
    rules.issuer = cfg.issuer.clone();
    rules.audiences = cfg.audience.iter().cloned().collect();
    rules.leeway = cfg.leeway.get();
    rules.required_claims = cfg.require.clone();
    rules.user_claim = cfg.user_claim.clone();
    rules.tier_claim = cfg.tier_claim.clone();
    if let Some(path) = &cfg.keys_file {
        let keys = read_keys(path).map_err(VerifierError::Jwt)?;
        return JwtVerifier::new(rules, keys).map_err(|e| VerifierError::Jwt(e.to_string()));
    }
    let url = cfg.jwks_url.as_deref().unwrap_or_default();
    let options = JwksOptions {
        refresh_every: cfg.jwks_refresh.get(),
        min_refresh_interval: cfg.jwks_min_refresh.get(),
        ..JwksOptions::default()
    };
    let jwks = if url.starts_with("https://") {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| VerifierError::Jwt(format!("TLS for jwks_url: {e}")))?
            .https_only()
            .enable_http1()
            .build();
        JwksCache::with_connector(url, options, connector)
    } else {
        JwksCache::new(url, options)
    }
    .map_err(|e| VerifierError::Jwt(format!("jwks_url {url:?}: {e}")))?;
    Ok(JwtVerifier::with_jwks(rules, jwks))
}

/// A key file: a JWK or a JWK Set (JSON), else a PEM public key.
pub fn read_keys(path: &str) -> Result<KeySet, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read keys_file {path:?}: {e}"))?;
    KeySet::from_file_contents(&bytes).map_err(|e| format!("keys_file {path:?}: {e}"))
}

/// Starts a new JWK Set cache: a first fetch now and the periodic refresher, when a runtime
/// runs (not under `palisade validate`).
fn start(verifier: &Arc<JwtVerifier>) {
    let Some(jwks) = verifier.jwks() else { return };
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let first = jwks.clone();
    tokio::spawn(async move {
        if let Err(error) = first.refresh().await {
            tracing::warn!(%error, "the first JWKS fetch failed; tokens wait for the next");
        }
    });
    jwks.spawn_refresher();
}

/// The webhook check of route `index`, or `None` without `[routes.webhook]`. `redis`: the
/// `[redis]` server, for `replay = "redis"`.
pub fn route_webhook(
    index: usize,
    route: &RouteConfig,
    development: bool,
    redis: Option<&Arc<crate::ratelimit::redis::RedisBackend>>,
    metrics: &Metrics,
    audit: &AuditSink,
) -> Result<Option<RouteWebhook>, VerifierError> {
    let Some(cfg) = &route.webhook else {
        return Ok(None);
    };
    let problem = |problem: String| VerifierError::Webhook {
        index,
        route: route.name.clone(),
        problem,
    };
    let spec = webhook_spec(cfg);
    let verifier = if cfg.secrets.is_empty() && development {
        tracing::warn!(
            route = %route.name,
            "webhook route without a secret in development mode: deliveries pass UNVERIFIED"
        );
        None
    } else {
        let secrets: Vec<&[u8]> = cfg.secrets.iter().map(|s| s.expose().as_bytes()).collect();
        let verifier = Verifier::new(&spec, &secrets).map_err(|e| problem(e.to_string()))?;
        Some(verifier.with_tolerance(cfg.tolerance.get()))
    };
    let replay = match (cfg.replay, redis) {
        (ReplayStore::Off, _) => Replay::Off,
        (ReplayStore::Memory, _) => Replay::Memory(MemoryReplay::default()),
        (ReplayStore::Redis, Some(redis)) => Replay::Redis(redis.clone(), MemoryReplay::default()),
        (ReplayStore::Redis, None) => {
            return Err(problem("replay = \"redis\" needs [redis]".to_owned()));
        }
    };
    Ok(Some(RouteWebhook {
        verifier,
        scheme: spec.scheme(),
        replay,
        metrics: metrics.security(&route.name),
        audit: audit.clone(),
    }))
}

/// The signing rules `[routes.webhook]` names.
pub fn webhook_spec(cfg: &WebhookConfig) -> Spec {
    match cfg.scheme {
        WebhookScheme::StandardWebhooks => Spec::StandardWebhooks,
        WebhookScheme::Stripe => Spec::Stripe,
        WebhookScheme::GitHub => Spec::GitHub,
        WebhookScheme::Slack => Spec::Slack,
        WebhookScheme::Shopify => Spec::Shopify,
        WebhookScheme::Hmac => Spec::Hmac(HmacSpec {
            signature_header: cfg.header.clone().unwrap_or_default(),
            algorithm: match cfg.algorithm {
                HmacAlgorithm::Sha256 => Algorithm::Sha256,
                HmacAlgorithm::Sha512 => Algorithm::Sha512,
            },
            encoding: match cfg.encoding {
                SignatureEncoding::Hex => Encoding::Hex,
                SignatureEncoding::Base64 => Encoding::Base64,
            },
            prefix: cfg.prefix.clone().unwrap_or_default(),
            timestamp_header: cfg.timestamp_header.clone(),
            id_header: cfg.id_header.clone(),
            template: cfg.template.clone(),
        }),
    }
}
