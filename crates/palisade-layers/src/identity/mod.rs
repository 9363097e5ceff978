//! Who is calling: a verified JWT or a known API key, made into one [`Identity`] that a route's
//! checks read (required scopes, the rate-limit tier) and the audit log records.
//!
//! - [`jwt`]: the verifier and its rules; [`keys`]: the keys it may use (a JWK, a JWK Set, a
//!   PEM public key, a secret); [`jwks`]: a JWK Set fetched from the issuer and kept fresh.
//! - [`api_key`]: the configured keys, stored as their SHA-256.
//! - [`credential`]: the bearer token or the API key, out of the request's header values.
//!
//! Per request the pipeline calls [`Authenticator::authenticate`] with the head's lines and the
//! time. An error is a 401 whose reason (`as_str()`) goes in the problem body and the metric
//! label; a route that requires scopes answers 403 when [`Identity::has_scopes`] is false.

pub mod api_key;
pub mod credential;
mod der;
pub mod jwks;
pub mod jwt;
pub mod keys;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use arrayvec::ArrayVec;

pub use api_key::{ApiKeyConfigError, ApiKeyEntry, ApiKeyStore};
pub use credential::CredentialError;
pub use jwks::{JwksCache, JwksError, JwksOptions};
pub use jwt::{JwtError, JwtRules, JwtVerifier, RulesError};
pub use keys::{KeyError, KeySet};

/// The caller of a request, once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The JWT's user claim (`sub` unless configured), or the API key's id.
    pub subject: String,
    /// The rate-limit tier: the JWT's tier claim, or the API key's tier.
    pub tier: Option<String>,
    pub method: Method,
    /// The scopes granted: the JWT's `scope`/`scp`, or the API key's.
    pub scopes: Vec<String>,
}

impl Identity {
    /// Whether every scope of `required` was granted.
    pub fn has_scopes<S: AsRef<str>>(&self, required: &[S]) -> bool {
        required
            .iter()
            .all(|r| self.scopes.iter().any(|s| s == r.as_ref()))
    }
}

/// How the caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Jwt,
    ApiKey,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jwt => "jwt",
            Self::ApiKey => "api_key",
        }
    }
}

/// Why a request's credential was refused. [`AuthError::as_str`] is a stable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Credential(#[from] CredentialError),
    #[error(transparent)]
    Jwt(#[from] JwtError),
    #[error("the API key is not known")]
    UnknownApiKey,
}

impl AuthError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credential(e) => e.as_str(),
            Self::Jwt(e) => e.as_str(),
            Self::UnknownApiKey => "unknown_api_key",
        }
    }
}

/// The header API keys are read from unless configured otherwise.
pub const DEFAULT_API_KEY_HEADER: &str = "x-api-key";

/// The credential checks of a route: a JWT verifier, API keys, or both. The verifiers are
/// shared: routes that accept different methods hold the same ones.
#[derive(Debug, Clone)]
pub struct Authenticator {
    jwt: Option<Arc<JwtVerifier>>,
    api_keys: Option<Arc<ApiKeyStore>>,
    api_key_header: String,
}

/// What a request presents, before any JWT is verified: the answer already (no credential, or
/// a known API key), or a token for the verifier.
enum Presented<'s, 'a> {
    Settled(Option<Identity>),
    Token(&'s JwtVerifier, &'a str),
}

impl Authenticator {
    pub fn new(jwt: Option<JwtVerifier>, api_keys: Option<ApiKeyStore>) -> Self {
        Self::shared(jwt.map(Arc::new), api_keys.map(Arc::new))
    }

    pub fn shared(jwt: Option<Arc<JwtVerifier>>, api_keys: Option<Arc<ApiKeyStore>>) -> Self {
        Self {
            jwt,
            api_keys,
            api_key_header: DEFAULT_API_KEY_HEADER.to_owned(),
        }
    }

    /// Reads API keys from header `name` (any case) instead of `X-API-Key`.
    pub fn with_api_key_header(mut self, name: &str) -> Self {
        self.api_key_header = name.to_ascii_lowercase();
        self
    }

    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_deref()
    }

    /// The caller of a request with header `lines` (name, value) at `now` (Unix seconds);
    /// `Ok(None)` when it presents no credential, for the route to decide.
    ///
    /// With API keys configured, the API-key header is read first and, when present, decides
    /// alone (an `Authorization` header is then the upstream's business). Otherwise the bearer
    /// token is looked up as an API key (so a key sent that way must be a `b64token`), and
    /// verified as a JWT when it is not one.
    pub async fn authenticate<'a>(
        &self,
        lines: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        now: u64,
    ) -> Result<Option<Identity>, AuthError> {
        match self.presented(lines)? {
            Presented::Settled(identity) => Ok(identity),
            Presented::Token(jwt, token) => Ok(Some(jwt.verify(token, now).await?)),
        }
    }

    /// As [`authenticate`](Self::authenticate) with the keys at hand: never fetches, never
    /// waits. A token whose key is not cached is refused; [`AuthError::wants_fresh_keys`]
    /// tells whether fetching the issuer's keys could change that.
    pub fn authenticate_cached<'a>(
        &self,
        lines: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
        now: u64,
    ) -> Result<Option<Identity>, AuthError> {
        match self.presented(lines)? {
            Presented::Settled(identity) => Ok(identity),
            Presented::Token(jwt, token) => Ok(Some(jwt.verify_cached(token, now)?)),
        }
    }

    /// The JWK Set to fetch again for a request refused with `error`, when that may help.
    pub fn refreshable(&self, error: &AuthError) -> Option<&JwksCache> {
        match error {
            AuthError::Jwt(e) if e.wants_fresh_keys() => self.jwt.as_ref()?.jwks(),
            _ => None,
        }
    }

    fn presented<'s, 'a>(
        &'s self,
        lines: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Presented<'s, 'a>, AuthError> {
        // Two values of a header are enough to know it is repeated.
        let mut authorization = ArrayVec::<&[u8], 2>::new();
        let mut api_key = ArrayVec::<&[u8], 2>::new();
        for (name, value) in lines {
            let values = if name.eq_ignore_ascii_case(b"authorization") {
                &mut authorization
            } else if self.api_keys.is_some()
                && name.eq_ignore_ascii_case(self.api_key_header.as_bytes())
            {
                &mut api_key
            } else {
                continue;
            };
            let _ = values.try_push(value);
        }
        if let (Some(store), Some(value)) = (&self.api_keys, credential::single(api_key)?) {
            let presented = credential::api_key(value)?;
            return store
                .lookup(presented)
                .map(|identity| Presented::Settled(Some(identity)))
                .ok_or(AuthError::UnknownApiKey);
        }
        let Some(value) = credential::single(authorization)? else {
            return Ok(Presented::Settled(None));
        };
        let token = credential::bearer_token(value)?;
        if let Some(identity) = self
            .api_keys
            .as_ref()
            .and_then(|s| s.lookup(token.as_bytes()))
        {
            return Ok(Presented::Settled(Some(identity)));
        }
        match &self.jwt {
            Some(jwt) => Ok(Presented::Token(jwt, token)),
            None => Err(AuthError::UnknownApiKey),
        }
    }
}
