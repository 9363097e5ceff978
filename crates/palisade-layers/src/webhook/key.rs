//! Secrets as prepared HMAC keys, MAC tags, and the encodings signatures travel in.
//!
//! A key is kept as its HMAC state after the key block (what `Hmac::new_from_slice` leaves),
//! so each request clones it instead of hashing the secret again, and the secret's text is
//! not kept at all.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha512};

use super::schemes::Rules;
use super::{Algorithm, SetupError};
use crate::hex;

/// Standard base64 that reads with or without padding: senders differ, the bits do not.
pub(super) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// How a scheme turns the configured secret into key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SecretForm {
    /// The text's bytes are the key (GitHub, Stripe — `whsec_` included —, Slack, Shopify,
    /// generic hmac).
    Raw,
    /// `whsec_` and base64, or the base64 alone; the decoded bytes are the key.
    Whsec,
}

pub(super) enum Key {
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Key {
    pub(super) fn new(rules: &Rules, index: usize, secret: &[u8]) -> Result<Self, SetupError> {
        if secret.is_empty() {
            return Err(SetupError::EmptySecret { index });
        }
        let decoded;
        let bytes = match rules.secret_form() {
            SecretForm::Raw => secret,
            SecretForm::Whsec => {
                let text = secret.strip_prefix(b"whsec_").unwrap_or(secret);
                decoded = BASE64.decode(text).map_err(|_| SetupError::BadSecret {
                    index,
                    problem: "is not a Standard Webhooks secret: expected `whsec_` followed by \
                              base64 (as the sender shows it), or that base64 alone",
                })?;
                if decoded.is_empty() {
                    return Err(SetupError::EmptySecret { index });
                }
                &decoded[..]
            }
        };
        // HMAC takes keys of any length; the error cannot happen, but is not unwrapped.
        let refused = |_| SetupError::BadSecret {
            index,
            problem: "was refused as an HMAC key",
        };
        Ok(match rules.algorithm() {
            Algorithm::Sha256 => Self::Sha256(Hmac::new_from_slice(bytes).map_err(refused)?),
            Algorithm::Sha512 => Self::Sha512(Hmac::new_from_slice(bytes).map_err(refused)?),
        })
    }

    /// The MAC of the pieces of signed content, in order.
    pub(super) fn tag(&self, content: &[&[u8]]) -> Tag {
        match self {
            Self::Sha256(key) => run(key.clone(), content),
            Self::Sha512(key) => run(key.clone(), content),
        }
    }
}

fn run<M: Mac>(mut mac: M, content: &[&[u8]]) -> Tag {
    for piece in content {
        mac.update(piece);
    }
    let out = mac.finalize().into_bytes();
    let mut tag = Tag::default();
    tag.bytes[..out.len()].copy_from_slice(&out);
    tag.len = out.len();
    tag
}

/// A MAC, computed or presented, up to SHA-512's 64 bytes.
#[derive(Clone, Copy)]
pub(super) struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Default for Tag {
    fn default() -> Self {
        Self {
            bytes: [0; 64],
            len: 0,
        }
    }
}

impl Tag {
    pub(super) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    pub(super) fn fingerprint(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out.copy_from_slice(&self.bytes[..16]);
        out
    }

    /// Hex of exactly `len` bytes, either case.
    pub(super) fn from_hex(text: &[u8], len: usize) -> Option<Self> {
        if text.len() != 2 * len {
            return None;
        }
        let mut tag = Self {
            len,
            ..Self::default()
        };
        for (slot, pair) in tag.bytes.iter_mut().zip(text.chunks_exact(2)) {
            *slot = hex::value(pair[0])? << 4 | hex::value(pair[1])?;
        }
        Some(tag)
    }

    /// Base64 of exactly `len` bytes.
    pub(super) fn from_base64(text: &[u8], len: usize) -> Option<Self> {
        // 4 characters per 3 bytes, padded; anything longer cannot be `len` bytes. 88
        // characters (SHA-512) may decode to 66 bytes before the length is known: hence the
        // scratch buffer.
        if text.len() > len.div_ceil(3) * 4 {
            return None;
        }
        let mut scratch = [0; 66];
        let n = BASE64.decode_slice(text, &mut scratch).ok()?;
        if n != len {
            return None;
        }
        let mut tag = Self {
            len,
            ..Self::default()
        };
        tag.bytes[..len].copy_from_slice(&scratch[..len]);
        Some(tag)
    }
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

pub(super) fn hex_lower(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
