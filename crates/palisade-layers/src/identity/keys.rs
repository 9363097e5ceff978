//! Verification keys: what a JWK, a JWK Set, a PEM public key or a shared secret becomes. Each
//! key carries the one family of algorithms it may verify, so an RSA public key is never used
//! as an HMAC secret (the algorithm-confusion attack) and a P-256 key verifies only ES256.
//!
//! Keys are checked when they are loaded, so a bad key is a message at startup or at a JWKS
//! refresh, not a failed request: RSA moduli of 2048 to 4096 bits, curve points that are on
//! their curve, HMAC secrets of at least 32 bytes.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use super::der::{self, oid};
use super::jwt::JwtError;

/// The shortest HMAC secret accepted, in bytes. RFC 7518 §3.2 asks for a key at least as long
/// as the hash output; a token's algorithm is checked against its key's length too.
pub const MIN_SECRET_LEN: usize = 32;
/// RSA moduli below this many bits are refused (RFC 7518 §3.3 asks for 2048 or more).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest modulus the `rsa` crate verifies with (`RsaPublicKey::MAX_SIZE`).
pub const MAX_RSA_BITS: usize = 4096;

/// A key that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(String);

impl KeyError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// The kind of a key, which fixes the algorithms it verifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Hmac,
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    /// The algorithms a key of this kind may verify; no other is ever tried with it.
    pub fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            Self::Hmac => &[HS256, HS384, HS512],
            Self::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            Self::EcP256 => &[ES256],
            Self::EcP384 => &[ES384],
            Self::Ed25519 => &[EdDSA],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hmac => "HMAC secret",
            Self::Rsa => "RSA",
            Self::EcP256 => "EC P-256",
            Self::EcP384 => "EC P-384",
            Self::Ed25519 => "Ed25519",
        }
    }
}

/// One verification key.
#[derive(Clone)]
pub struct Key {
    kid: Option<String>,
    kind: KeyKind,
    /// The JWK's `alg`: when given, the only algorithm this key verifies.
    alg: Option<Algorithm>,
    /// An HMAC secret's length in bytes (0 for the others).
    secret_len: usize,
    decoding: DecodingKey,
}

impl Key {
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// Whether this key may verify a token signed with `alg`.
    pub fn fits(&self, alg: Algorithm) -> bool {
        let long_enough = match alg {
            Algorithm::HS384 => self.secret_len >= 48,
            Algorithm::HS512 => self.secret_len >= 64,
            _ => true,
        };
        self.kind.algorithms().contains(&alg) && self.alg.is_none_or(|a| a == alg) && long_enough
    }

    /// Whether this key may verify a token signed with any of `algorithms`.
    fn usable(&self, algorithms: &[Algorithm]) -> bool {
        algorithms.iter().any(|&alg| self.fits(alg))
    }

    pub(super) fn decoding(&self) -> &DecodingKey {
        &self.decoding
    }
}

/// Names the key, never its material.
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("kind", &self.kind)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// The keys a token may be verified with.
///
/// Which key verifies a token ([`KeySet::select`]): the *usable* keys are those that can verify
/// one of the allowed algorithms.
/// - A token with a `kid` is verified with a usable key of that `kid`. When none has it and the
///   set is a single usable key without a `kid` (a PEM key, a secret, a JWK without `kid`), that
///   key is used: the `kid` is only a hint and the configured key is the only candidate.
/// - A token without a `kid` is verified with the set's only usable key; with several it is
///   refused (`kid_required`) rather than tried against each.
///
/// The header's `jku`, `x5u`, `jwk` and `x5c` never choose a key: a key named by the token
/// itself proves nothing.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    keys: Vec<Key>,
    /// Why each key of a JWK Set that is not used was left out.
    skipped: Vec<String>,
}

impl KeySet {
    /// A JWK (RFC 7517 §4) or a JWK Set (§5, an object with `keys`). A single JWK must be
    /// usable; in a set, keys that are not for signatures or of a kind this gateway does not
    /// verify are left out ([`KeySet::skipped`]), and at least one must remain. `oct` keys are
    /// HMAC secrets.
    pub fn from_json(json: &str) -> Result<Self, KeyError> {
        Self::parse_json(json.as_bytes(), true)
    }

    /// A key file's contents (`keys_file`, `palisade jwt verify --key`): a JWK or a JWK Set when
    /// it starts with `{` (text that cannot be PEM, so its JSON error is the one worth showing),
    /// else a PEM public key.
    pub fn from_file_contents(bytes: &[u8]) -> Result<Self, KeyError> {
        match std::str::from_utf8(bytes) {
            Ok(text) if text.trim_start().starts_with('{') => Self::from_json(text),
            _ => Self::from_pem(bytes),
        }
    }

    /// A PEM public key: `PUBLIC KEY` (SubjectPublicKeyInfo of an RSA, EC P-256, EC P-384 or
    /// Ed25519 key) or `RSA PUBLIC KEY` (PKCS#1). Certificates and private keys are refused,
    /// and a PEM never yields an HMAC secret.
    pub fn from_pem(pem: &[u8]) -> Result<Self, KeyError> {
        let (label, der) = der::pem(pem).map_err(KeyError::new)?;
        let key = match label.as_str() {
            "PUBLIC KEY" => spki_key(&der)?,
            "RSA PUBLIC KEY" => {
                let (n, e) = der::rsa_public_key(&der)
                    .ok_or_else(|| KeyError::new("the RSA PUBLIC KEY is not a valid PKCS#1 key"))?;
                rsa_key(n, e)?
            }
            "CERTIFICATE" => {
                return Err(KeyError::new(
                    "a certificate was given; give its public key instead \
                     (`openssl x509 -pubkey -noout -in cert.pem`): certificates are not checked here",
                ));
            }
            label if label.contains("PRIVATE KEY") => {
                return Err(KeyError::new(
                    "a private key was given; give only the public key (`openssl pkey -pubout`)",
                ));
            }
            other => {
                return Err(KeyError::new(format!(
                    "the PEM block is a {other:?}; expected \"PUBLIC KEY\" or \"RSA PUBLIC KEY\""
                )));
            }
        };
        Ok(Self::one(key))
    }

    /// An HMAC secret, as raw bytes, of at least [`MIN_SECRET_LEN`] bytes.
    pub fn from_secret(secret: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::one(hmac_key(secret)?))
    }

    /// A JWK Set fetched from an issuer. `oct` keys are left out: a set served over the network
    /// is public, and a secret in it would let anyone who can read it mint tokens.
    pub(super) fn from_fetched(body: &[u8]) -> Result<Self, KeyError> {
        Self::parse_json(body, false)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Why each key of a JWK Set that is not used was left out, e.g. for a log line.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Whether a key of this set can verify one of `algorithms`: a verifier whose fixed keys
    /// cannot would refuse every token.
    pub fn usable_with(&self, algorithms: &[Algorithm]) -> bool {
        self.keys.iter().any(|k| k.usable(algorithms))
    }

    /// The key that verifies a token with header `kid` and `alg` (see [`KeySet`]). `alg` is
    /// already one of `allowed`.
    pub fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        allowed: &[Algorithm],
    ) -> Result<&Key, JwtError> {
        let mut usable = self.keys.iter().filter(|k| k.usable(allowed));
        let chosen = match kid {
            Some(kid) => {
                let mut named = usable.clone().filter(|k| k.kid() == Some(kid)).peekable();
                if named.peek().is_some() {
                    return named.find(|k| k.fits(alg)).ok_or(JwtError::KeyMismatch);
                }
                match (usable.next(), usable.next()) {
                    (Some(only), None) if only.kid.is_none() => only,
                    _ => return Err(JwtError::UnknownKid),
                }
            }
            None => match (usable.next(), usable.next()) {
                (Some(only), None) => only,
                (None, _) => return Err(JwtError::NoKey),
                (Some(_), Some(_)) => return Err(JwtError::KidRequired),
            },
        };
        if chosen.fits(alg) {
            Ok(chosen)
        } else {
            Err(JwtError::KeyMismatch)
        }
    }

    fn one(key: Key) -> Self {
        Self {
            keys: vec![key],
            skipped: Vec::new(),
        }
    }

    fn parse_json(json: &[u8], secrets: bool) -> Result<Self, KeyError> {
        let value: Value = serde_json::from_slice(json)
            .map_err(|e| KeyError::new(format!("the key is not valid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(KeyError::new("a JWK or JWK Set must be a JSON object"));
        };
        let Some(keys) = object.get("keys") else {
            return jwk(&object, secrets).map(Self::one).map_err(KeyError::new);
        };
        let Value::Array(keys) = keys else {
            return Err(KeyError::new("the JWK Set's \"keys\" must be an array"));
        };
        let mut set = Self::default();
        for (i, key) in keys.iter().enumerate() {
            let parsed = match key {
                Value::Object(object) => jwk(object, secrets),
                _ => Err("is not a JSON object".to_owned()),
            };
            match parsed {
                Ok(key) => set.keys.push(key),
                Err(why) => set.skipped.push(format!("key {i}: {why}")),
            }
        }
        if set.keys.is_empty() {
            let why = match set.skipped.first() {
                Some(first) => format!("; {first}"),
                None => String::new(),
            };
            return Err(KeyError::new(format!(
                "the JWK Set has no key this gateway can verify with{why}"
            )));
        }
        Ok(set)
    }
}

/// One JWK. The error says what is wrong with it, naming the member.
fn jwk(jwk: &Map<String, Value>, secrets: bool) -> Result<Key, String> {
    let kid = text(jwk, "kid")?.map(str::to_owned);
    let named = |why: String| match &kid {
        Some(kid) => format!("kid {kid:?}: {why}"),
        None => why,
    };
    parse_jwk(jwk, secrets)
        .map(|(kind, alg, secret_len, decoding)| Key {
            kid: kid.clone(),
            kind,
            alg,
            secret_len,
            decoding,
        })
        .map_err(named)
}

fn parse_jwk(
    jwk: &Map<String, Value>,
    secrets: bool,
) -> Result<(KeyKind, Option<Algorithm>, usize, DecodingKey), String> {
    let kty = text(jwk, "kty")?.ok_or("the JWK has no \"kty\"")?;
    if let Some(usage) = text(jwk, "use")?
        && usage != "sig"
    {
        return Err(format!("\"use\" is {usage:?}, not \"sig\""));
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|op| op == "verify"));
        if !verifies {
            return Err("\"key_ops\" does not include \"verify\"".to_owned());
        }
    }
    let alg = match text(jwk, "alg")? {
        None => None,
        Some(name) => Some(name.parse::<Algorithm>().map_err(|_| {
            format!("\"alg\" {name:?} is not a signature algorithm this gateway verifies")
        })?),
    };
    if kty != "oct" && jwk.contains_key("d") {
        return Err("the JWK holds a private key (\"d\"); publish only the public key".to_owned());
    }
    let (kind, secret_len, decoding) = match kty {
        "RSA" => {
            let key = rsa_key(&bytes(jwk, "n")?, &bytes(jwk, "e")?).map_err(|e| e.0)?;
            (KeyKind::Rsa, 0, key.decoding)
        }
        "EC" => {
            let (kind, len) = match text(jwk, "crv")? {
                Some("P-256") => (KeyKind::EcP256, 32),
                Some("P-384") => (KeyKind::EcP384, 48),
                other => {
                    return Err(format!(
                        "EC curve {other:?} is not supported (P-256 or P-384)"
                    ));
                }
            };
            let (x, y) = (bytes(jwk, "x")?, bytes(jwk, "y")?);
            if x.len() != len || y.len() != len {
                return Err(format!("\"x\" and \"y\" must be {len} bytes each"));
            }
            let point = [&[0x04][..], &x, &y].concat();
            (kind, 0, ec_key(kind, &point).map_err(|e| e.0)?.decoding)
        }
        "OKP" => {
            if text(jwk, "crv")? != Some("Ed25519") {
                return Err("an OKP key must have \"crv\": \"Ed25519\"".to_owned());
            }
            let key = ed25519_key(&bytes(jwk, "x")?).map_err(|e| e.0)?;
            (KeyKind::Ed25519, 0, key.decoding)
        }
        "oct" if secrets => {
            let key = hmac_key(&bytes(jwk, "k")?).map_err(|e| e.0)?;
            (KeyKind::Hmac, key.secret_len, key.decoding)
        }
        "oct" => {
            return Err(
                "a shared secret (\"oct\") in a JWK Set fetched from the network is never used"
                    .to_owned(),
            );
        }
        other => {
            return Err(format!(
                "\"kty\" {other:?} is not supported (RSA, EC, OKP or oct)"
            ));
        }
    };
    if let Some(alg) = alg
        && !kind.algorithms().contains(&alg)
    {
        return Err(format!(
            "\"alg\" {alg:?} does not fit a {} key",
            kind.as_str()
        ));
    }
    Ok((kind, alg, secret_len, decoding))
}

/// A string member, absent, or an error naming it.
fn text<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("\"{name}\" must be a string")),
    }
}

/// A base64url member, decoded.
fn bytes(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let value = text(jwk, name)?.ok_or_else(|| format!("the JWK has no \"{name}\""))?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| format!("\"{name}\" is not unpadded base64url"))
}

fn spki_key(der: &[u8]) -> Result<Key, KeyError> {
    let spki = der::spki(der)
        .ok_or_else(|| KeyError::new("the PUBLIC KEY is not a valid SubjectPublicKeyInfo"))?;
    match spki.algorithm {
        oid::RSA => {
            let (n, e) = der::rsa_public_key(spki.key)
                .ok_or_else(|| KeyError::new("the RSA public key inside the PEM is malformed"))?;
            rsa_key(n, e)
        }
        oid::EC => {
            let mut params = der::Reader::new(spki.parameters);
            let kind = match params.read(der::OID) {
                Some(oid::P256) => KeyKind::EcP256,
                Some(oid::P384) => KeyKind::EcP384,
                _ => return Err(KeyError::new("the EC key is not on P-256 or P-384")),
            };
            ec_key(kind, spki.key)
        }
        oid::ED25519 => ed25519_key(spki.key),
        _ => Err(KeyError::new(
            "the PUBLIC KEY is not an RSA, EC (P-256, P-384) or Ed25519 key",
        )),
    }
}

fn rsa_key(n: &[u8], e: &[u8]) -> Result<Key, KeyError> {
    let n = trim_zeros(n);
    let e = trim_zeros(e);
    let bits = match n.first() {
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    };
    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(KeyError::new(format!(
            "the RSA modulus has {bits} bits; {MIN_RSA_BITS} to {MAX_RSA_BITS} are accepted"
        )));
    }
    let exponent = match e.len() {
        1..=8 => e.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b)),
        _ => 0,
    };
    // The range the `rsa` crate verifies with; an even exponent is never a valid key.
    if !(3..1 << 33).contains(&exponent) || exponent % 2 == 0 {
        return Err(KeyError::new(
            "the RSA public exponent must be odd and between 3 and 2^33 (usually 65537)",
        ));
    }
    Ok(Key {
        kid: None,
        kind: KeyKind::Rsa,
        alg: None,
        secret_len: 0,
        decoding: DecodingKey::from_rsa_raw_components(n, e),
    })
}

/// An uncompressed point (`04 || x || y`) on the curve of `kind`.
fn ec_key(kind: KeyKind, point: &[u8]) -> Result<Key, KeyError> {
    let (len, alg) = match kind {
        KeyKind::EcP384 => (97, Algorithm::ES384),
        _ => (65, Algorithm::ES256),
    };
    if point.len() != len || point[0] != 0x04 {
        return Err(KeyError::new(format!(
            "the {} public key must be an uncompressed point of {len} bytes",
            kind.as_str()
        )));
    }
    let decoding = DecodingKey::from_ec_der(point);
    // Building a verifier decodes the point and checks it is on the curve.
    (DEFAULT_PROVIDER.verifier_factory)(&alg, &decoding)
        .map_err(|_| KeyError::new(format!("the {} point is not on its curve", kind.as_str())))?;
    Ok(Key {
        kid: None,
        kind,
        alg: None,
        secret_len: 0,
        decoding,
    })
}

fn ed25519_key(x: &[u8]) -> Result<Key, KeyError> {
    let decoding = DecodingKey::from_ed_der(x);
    if x.len() != 32 || (DEFAULT_PROVIDER.verifier_factory)(&Algorithm::EdDSA, &decoding).is_err() {
        return Err(KeyError::new(
            "the Ed25519 public key is not a valid 32-byte point",
        ));
    }
    Ok(Key {
        kid: None,
        kind: KeyKind::Ed25519,
        alg: None,
        secret_len: 0,
        decoding,
    })
}

fn hmac_key(secret: &[u8]) -> Result<Key, KeyError> {
    if secret.len() < MIN_SECRET_LEN {
        return Err(KeyError::new(format!(
            "the HMAC secret has {} bytes; at least {MIN_SECRET_LEN} are needed",
            secret.len()
        )));
    }
    Ok(Key {
        kid: None,
        kind: KeyKind::Hmac,
        alg: None,
        secret_len: secret.len(),
        decoding: DecodingKey::from_secret(secret),
    })
}

fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}
