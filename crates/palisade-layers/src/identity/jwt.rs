//! JWT verification (RFC 7519 over RFC 7515 compact JWS). The header and the claims are read
//! here; jsonwebtoken decodes keys and checks the signature (its rust_crypto verifiers), with
//! the key and algorithm this module chose.
//!
//! jsonwebtoken's `decode` and `Validation` are not used, because they accept what a gateway
//! must refuse: `exp` equal to now passes (even at a leeway of 0), `iss` may be an array, an
//! `iss` or `aud` of the wrong type is skipped rather than refused, a configured issuer or
//! audience may be absent unless also listed as required, `nbf` is not checked by default,
//! `crit` is not looked at, and the time is the system clock's rather than the caller's. The
//! checks, in order: the token's shape, `crit`, `alg` against the allowed list, the key
//! ([`KeySet::select`]), the signature, then the claims.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use serde_json::{Map, Value};

use super::jwks::JwksCache;
use super::keys::{Key, KeyError, KeySet};
use super::{Identity, Method};

/// The longest token read; longer ones are refused before any decoding. The same bound as
/// [`super::credential::MAX_CREDENTIAL_LEN`].
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The clock skew allowed on `exp` and `nbf` unless configured: 60 s, Envoy's `jwt_authn`
/// default, enough for hosts kept by NTP without stretching a token's life much.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Why a token was refused. [`JwtError::as_str`] is a stable reason for metric labels and
/// problem bodies; no variant carries any part of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts, a part that is not JSON, or longer than [`MAX_TOKEN_LEN`].
    #[error("the token is malformed")]
    Malformed,
    /// `alg` is not one of the allowed algorithms (`none` never is).
    #[error("the token's algorithm is not allowed")]
    AlgorithmNotAllowed,
    /// The header has `crit`: no extension is understood, so RFC 7515 §4.1.11 says refuse.
    #[error("the token names a critical header extension that is not supported")]
    UnsupportedCrit,
    /// No key has the token's `kid`, even after a refresh of the JWK Set.
    #[error("no key matches the token's kid")]
    UnknownKid,
    /// The token has no `kid` and several keys could verify it.
    #[error("the token has no kid and several keys could verify it")]
    KidRequired,
    /// There is no key to verify with (an empty or unreachable JWK Set).
    #[error("no verification key is available")]
    NoKey,
    /// The chosen key cannot verify the token's algorithm (an RSA key and HS256, P-256 and
    /// ES384, a JWK whose `alg` differs).
    #[error("the key does not fit the token's algorithm")]
    KeyMismatch,
    #[error("the token's signature does not verify")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token's issuer is not the expected one")]
    WrongIssuer,
    #[error("the token is not meant for this audience")]
    WrongAudience,
    /// A required claim, a configured `iss` or `aud`, or the subject claim is absent.
    #[error("the token lacks a required claim")]
    MissingClaim,
    /// A claim of the wrong type: `iss` not a string, `exp` not a number, `aud` not a string
    /// or an array of strings, and so on.
    #[error("a claim of the token has the wrong type")]
    InvalidClaim,
}

impl JwtError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCrit => "unsupported_crit",
            Self::UnknownKid => "unknown_kid",
            Self::KidRequired => "kid_required",
            Self::NoKey => "no_key",
            Self::KeyMismatch => "key_mismatch",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
        }
    }

    /// Whether a fresh copy of a remote key set could change the answer.
    pub fn wants_fresh_keys(self) -> bool {
        matches!(self, Self::UnknownKid | Self::NoKey)
    }
}

/// A refused setting of [`JwtRules`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("no algorithm is allowed; list at least one, e.g. \"RS256\"")]
    NoAlgorithm,
    #[error(
        "algorithm \"none\" is never accepted: an unsigned token would let anyone claim any identity"
    )]
    NoneAlgorithm,
    #[error(
        "algorithm {0:?} is not supported; use HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA"
    )]
    UnknownAlgorithm(String),
}

/// What a valid token must say, and where the identity comes from.
#[derive(Debug, Clone)]
pub struct JwtRules {
    algorithms: Vec<Algorithm>,
    /// When set, `iss` must be present and equal to it.
    pub issuer: Option<String>,
    /// When not empty, `aud` must be present and name one of these. When empty, `aud` is not
    /// compared (only its type is checked): set it whenever the issuer serves other services
    /// too, or their tokens are good here.
    pub audiences: Vec<String>,
    /// Allowed clock skew on `exp` and `nbf`, in whole seconds.
    pub leeway: Duration,
    /// Claims that must be present (not null). Default: `exp`.
    pub required_claims: Vec<String>,
    /// The claim naming the caller, a string. Default: `sub`.
    pub user_claim: String,
    /// The claim naming the caller's rate-limit tier, a string, if any.
    pub tier_claim: Option<String>,
}

impl JwtRules {
    /// Rules allowing `algorithms` (their JOSE names, e.g. `RS256`), with the defaults:
    /// [`DEFAULT_LEEWAY`], `exp` required, the subject from `sub`, no issuer, audience or tier.
    pub fn new<S: AsRef<str>>(algorithms: &[S]) -> Result<Self, RulesError> {
        let mut allowed = Vec::with_capacity(algorithms.len());
        for name in algorithms {
            let name = name.as_ref();
            if name.eq_ignore_ascii_case("none") {
                return Err(RulesError::NoneAlgorithm);
            }
            let alg = name
                .parse::<Algorithm>()
                .map_err(|_| RulesError::UnknownAlgorithm(name.to_owned()))?;
            if !allowed.contains(&alg) {
                allowed.push(alg);
            }
        }
        if allowed.is_empty() {
            return Err(RulesError::NoAlgorithm);
        }
        Ok(Self {
            algorithms: allowed,
            issuer: None,
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            required_claims: vec!["exp".to_owned()],
            user_claim: "sub".to_owned(),
            tier_claim: None,
        })
    }

    pub fn algorithms(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// The identity the claims describe, if they pass every check at `now` (Unix seconds), and
    /// the span of time in which they keep passing.
    fn identity(
        &self,
        claims: &Map<String, Value>,
        now: u64,
    ) -> Result<(Identity, Validity), JwtError> {
        let claim = |name: &str| claims.get(name).filter(|v| !v.is_null());
        if self.required_claims.iter().any(|c| claim(c).is_none()) {
            return Err(JwtError::MissingClaim);
        }
        let leeway = self.leeway.as_secs();
        let mut validity = Validity {
            before: u64::MAX,
            from: 0,
        };
        // RFC 7519 §4.1.4: now must be before exp. A fractional date is rounded towards refusal.
        if let Some(exp) = claim("exp") {
            validity.before = numeric_date(exp, f64::floor)?.saturating_add(leeway);
        }
        // §4.1.5: now must be at or after nbf.
        if let Some(nbf) = claim("nbf") {
            validity.from = numeric_date(nbf, f64::ceil)?.saturating_sub(leeway);
        }
        validity.check(now)?;
        let issuer = claim("iss")
            .map(|v| v.as_str().ok_or(JwtError::InvalidClaim))
            .transpose()?;
        match (&self.issuer, issuer) {
            (Some(_), None) => return Err(JwtError::MissingClaim),
            (Some(want), Some(iss)) if want != iss => return Err(JwtError::WrongIssuer),
            _ => {}
        }
        let audience = claim("aud").map(strings).transpose()?;
        if !self.audiences.is_empty() {
            let audience = audience.ok_or(JwtError::MissingClaim)?;
            if !audience
                .iter()
                .any(|a| self.audiences.iter().any(|w| w == a))
            {
                return Err(JwtError::WrongAudience);
            }
        }
        let subject = match claim(&self.user_claim) {
            None => return Err(JwtError::MissingClaim),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(JwtError::InvalidClaim),
        };
        let tier = match self.tier_claim.as_deref().and_then(claim) {
            None => None,
            Some(Value::String(t)) => Some(t.clone()),
            Some(_) => return Err(JwtError::InvalidClaim),
        };
        let identity = Identity {
            subject,
            tier,
            method: Method::Jwt,
            scopes: scopes(claim("scope"), claim("scp"))?,
        };
        Ok((identity, validity))
    }
}

/// When a token's time claims pass, leeway included: from `from` (Unix seconds) to just
/// before `before`.
#[derive(Debug, Clone, Copy)]
struct Validity {
    before: u64,
    from: u64,
}

impl Validity {
    fn check(self, now: u64) -> Result<(), JwtError> {
        if now >= self.before {
            Err(JwtError::Expired)
        } else if now < self.from {
            Err(JwtError::NotYetValid)
        } else {
            Ok(())
        }
    }
}

/// Most tokens a verifier remembers as verified; past it the memory starts over.
const CACHED_TOKENS: usize = 10_000;

/// Tokens that verified, by their exact text: a client sends the same token with request after
/// request, and its signature and claims need checking once. The time claims are checked again
/// on every use, and an entry counts only with the key set it was verified with (a JWK Set that
/// dropped the key makes it verify again). Only the issuer can mint valid tokens, so a client
/// cannot fill the memory with them; it is bounded anyway.
#[derive(Debug, Default)]
struct Verified(dashmap::DashMap<Box<str>, Remembered>);

/// A verified token's identity, when its time claims pass, and the key set it verified with
/// (`None` for fixed keys).
type Remembered = (Identity, Validity, Option<std::sync::Arc<KeySet>>);

impl Verified {
    fn get(
        &self,
        token: &str,
        keys: Option<&std::sync::Arc<KeySet>>,
        now: u64,
    ) -> Option<Result<Identity, JwtError>> {
        let entry = self.0.get(token)?;
        let (identity, validity, with) = &*entry;
        let same_keys = match (with, keys) {
            (Some(a), Some(b)) => std::sync::Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        };
        if !same_keys {
            return None;
        }
        Some(validity.check(now).map(|()| identity.clone()))
    }

    fn put(
        &self,
        token: &str,
        identity: &Identity,
        validity: Validity,
        keys: Option<std::sync::Arc<KeySet>>,
    ) {
        if self.0.len() >= CACHED_TOKENS {
            self.0.clear();
        }
        self.0
            .insert(token.into(), (identity.clone(), validity, keys));
    }
}

/// A NumericDate (RFC 7519 §2) as whole seconds, `round` deciding a fractional one.
fn numeric_date(value: &Value, round: fn(f64) -> f64) -> Result<u64, JwtError> {
    if let Some(n) = value.as_u64() {
        return Ok(n);
    }
    match value.as_f64() {
        Some(f) if f.is_finite() && f >= 0.0 => Ok(round(f) as u64),
        _ => Err(JwtError::InvalidClaim),
    }
}

/// A string or an array of strings (`aud`, RFC 7519 §4.1.3).
fn strings(value: &Value) -> Result<Vec<&str>, JwtError> {
    match value {
        Value::String(s) => Ok(vec![s]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().ok_or(JwtError::InvalidClaim))
            .collect(),
        _ => Err(JwtError::InvalidClaim),
    }
}

/// The granted scopes: `scope`, a space-separated string (RFC 8693 §4.2), or when it is
/// absent `scp`, an array of strings or a space-separated string (as Azure AD and Okta issue
/// it). `scope` wins when both are present.
fn scopes(scope: Option<&Value>, scp: Option<&Value>) -> Result<Vec<String>, JwtError> {
    let split = |s: &str| s.split_ascii_whitespace().map(str::to_owned).collect();
    match (scope, scp) {
        (Some(Value::String(s)), _) => Ok(split(s)),
        (Some(_), _) => Err(JwtError::InvalidClaim),
        (None, Some(Value::String(s))) => Ok(split(s)),
        (None, Some(Value::Array(items))) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned).ok_or(JwtError::InvalidClaim))
            .collect(),
        (None, Some(_)) => Err(JwtError::InvalidClaim),
        (None, None) => Ok(Vec::new()),
    }
}

/// The three parts of a compact JWS.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        Ok(Self {
            header,
            payload,
            signature,
            signing_input: &token[..header.len() + 1 + payload.len()],
        })
    }
}

/// A base64url part holding a JSON object.
fn json_object(part: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

/// Checks the header and the signature of `token` against `keys`; the claims are not read.
/// Returns the payload part, still encoded.
pub(super) fn verify_jws<'a>(
    token: &'a str,
    keys: &KeySet,
    allowed: &[Algorithm],
) -> Result<&'a str, JwtError> {
    let parts = Parts::split(token)?;
    let header = json_object(parts.header)?;
    if header.contains_key("crit") {
        return Err(JwtError::UnsupportedCrit);
    }
    let alg = match header.get("alg") {
        Some(Value::String(name)) => name
            .parse::<Algorithm>()
            .ok()
            .filter(|alg| allowed.contains(alg))
            .ok_or(JwtError::AlgorithmNotAllowed)?,
        _ => return Err(JwtError::Malformed),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.as_str()),
        Some(_) => return Err(JwtError::Malformed),
    };
    let key = keys.select(kid, alg, allowed)?;
    verify_signature(&parts, key, alg)?;
    Ok(parts.payload)
}

fn verify_signature(parts: &Parts<'_>, key: &Key, alg: Algorithm) -> Result<(), JwtError> {
    let signature = URL_SAFE_NO_PAD
        .decode(parts.signature)
        .map_err(|_| JwtError::Malformed)?;
    // The factory refuses a key of another family; `select` already made sure it fits.
    let verifier = (DEFAULT_PROVIDER.verifier_factory)(&alg, key.decoding())
        .map_err(|_| JwtError::KeyMismatch)?;
    verifier
        .verify(parts.signing_input.as_bytes(), &signature)
        .map_err(|_| JwtError::BadSignature)
}

/// Where a verifier's keys come from.
#[derive(Debug)]
enum Keys {
    Fixed(KeySet),
    Remote(JwksCache),
}

/// Verifies tokens against [`JwtRules`] with fixed keys or a JWK Set fetched over HTTP. Built
/// once per configuration snapshot and shared (`Arc`) by the requests.
#[derive(Debug)]
pub struct JwtVerifier {
    rules: JwtRules,
    keys: Keys,
    verified: Verified,
}

impl JwtVerifier {
    /// A verifier with fixed keys. Refused when no key can verify an allowed algorithm, since
    /// every token would then be refused.
    pub fn new(rules: JwtRules, keys: KeySet) -> Result<Self, KeyError> {
        if !keys.usable_with(&rules.algorithms) {
            let names: Vec<String> = rules.algorithms.iter().map(|a| format!("{a:?}")).collect();
            return Err(KeyError::new(format!(
                "no configured key can verify the allowed algorithms ({}); an RSA key verifies \
                 RS*/PS*, an EC key ES256 or ES384 by its curve, an Ed25519 key EdDSA, a secret HS*",
                names.join(", ")
            )));
        }
        Ok(Self {
            rules,
            keys: Keys::Fixed(keys),
            verified: Verified::default(),
        })
    }

    /// A verifier with the keys of a JWK Set URL.
    pub fn with_jwks(rules: JwtRules, jwks: JwksCache) -> Self {
        Self {
            rules,
            keys: Keys::Remote(jwks),
            verified: Verified::default(),
        }
    }

    pub fn rules(&self) -> &JwtRules {
        &self.rules
    }

    /// The JWK Set cache, when keys come from one (to start its refresher, for instance).
    pub fn jwks(&self) -> Option<&JwksCache> {
        match &self.keys {
            Keys::Remote(jwks) => Some(jwks),
            Keys::Fixed(_) => None,
        }
    }

    /// Verifies `token` at `now` (Unix seconds) with the keys at hand: never fetches, never
    /// waits. A token whose key is not cached is refused (`unknown_kid`, `no_key`).
    pub fn verify_cached(&self, token: &str, now: u64) -> Result<Identity, JwtError> {
        let remote = match &self.keys {
            Keys::Fixed(_) => None,
            Keys::Remote(jwks) => Some(jwks.current_full()),
        };
        if let Some(answer) = self.verified.get(token, remote.as_ref(), now) {
            return answer;
        }
        let keys = match (&self.keys, &remote) {
            (Keys::Fixed(keys), _) => keys,
            (Keys::Remote(_), Some(keys)) => keys,
            (Keys::Remote(_), None) => unreachable!("a remote verifier has the current set"),
        };
        let (identity, validity) = self.check(token, keys, now)?;
        self.verified.put(token, &identity, validity, remote);
        Ok(identity)
    }

    /// Verifies `token` at `now` (Unix seconds). With a JWK Set, a token whose key is not in
    /// the cached set causes one refresh (at most one per `min_refresh_interval`, shared by
    /// every request waiting for it) and one more try.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Identity, JwtError> {
        match (self.verify_cached(token, now), &self.keys) {
            (Err(e), Keys::Remote(jwks)) if e.wants_fresh_keys() => {
                if jwks.refresh_for_unknown_key().await {
                    self.verify_cached(token, now)
                } else {
                    Err(e)
                }
            }
            (result, _) => result,
        }
    }

    fn check(
        &self,
        token: &str,
        keys: &KeySet,
        now: u64,
    ) -> Result<(Identity, Validity), JwtError> {
        let payload = verify_jws(token, keys, &self.rules.algorithms)?;
        self.rules.identity(&json_object(payload)?, now)
    }
}
