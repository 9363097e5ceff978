//! Just enough PEM (RFC 7468) and DER to read a public key: SubjectPublicKeyInfo (RFC 5280
//! §4.1.2.7) and PKCS#1 RSAPublicKey (RFC 8017 A.1.1). jsonwebtoken's own PEM reader also takes
//! certificates and private keys and picks "the first bit string" out of them; reading the
//! structure here lets a key be refused with a reason instead of guessed at.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub const SEQUENCE: u8 = 0x30;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OID: u8 = 0x06;

/// The label and decoded body of the single PEM block of `text`.
pub fn pem(text: &[u8]) -> Result<(String, Vec<u8>), &'static str> {
    let text = std::str::from_utf8(text).map_err(|_| "the PEM text is not UTF-8")?;
    let rest = text
        .trim()
        .strip_prefix("-----BEGIN ")
        .ok_or("the text does not start with a PEM \"-----BEGIN ...-----\" line")?;
    let (label, rest) = rest
        .split_once("-----")
        .ok_or("the PEM BEGIN line is not closed with \"-----\"")?;
    let (body, after) = rest
        .split_once(&format!("-----END {label}-----"))
        .ok_or("the PEM block has no matching END line")?;
    if !after.trim().is_empty() {
        return Err("the text holds more than one PEM block; give exactly one public key");
    }
    let body: String = body.split_ascii_whitespace().collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| "the PEM body is not valid base64")?;
    Ok((label.to_owned(), der))
}

/// A cursor over DER elements.
pub struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self(bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The contents of the next element, which must carry `tag`. Only definite, minimal lengths
    /// up to 64 KiB: nothing a public key needs is longer.
    pub fn read(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&t, rest) = self.0.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = match first {
            n if n < 0x80 => (usize::from(n), rest),
            0x81 => {
                let (&n, rest) = rest.split_first()?;
                (n >= 0x80).then_some((usize::from(n), rest))?
            }
            0x82 => {
                let (len, rest) = rest.split_first_chunk::<2>()?;
                let n = usize::from(u16::from_be_bytes(*len));
                (n >= 0x100).then_some((n, rest))?
            }
            _ => return None,
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        self.0 = rest;
        Some(contents)
    }
}

/// The bytes of a BIT STRING's contents that has no unused bits.
pub fn bits(contents: &[u8]) -> Option<&[u8]> {
    match contents.split_first() {
        Some((0, rest)) => Some(rest),
        _ => None,
    }
}

/// The magnitude of a non-negative INTEGER's contents, without its sign octet.
pub fn unsigned(contents: &[u8]) -> Option<&[u8]> {
    match contents {
        [] => None,
        [first, ..] if first & 0x80 != 0 => None,
        [0, rest @ ..] if !rest.is_empty() => Some(rest),
        _ => Some(contents),
    }
}

/// `n` and `e` of a PKCS#1 RSAPublicKey.
pub fn rsa_public_key(der: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut outer = Reader::new(der);
    let mut key = Reader::new(outer.read(SEQUENCE)?);
    let n = unsigned(key.read(INTEGER)?)?;
    let e = unsigned(key.read(INTEGER)?)?;
    (outer.is_empty() && key.is_empty()).then_some((n, e))
}

/// A SubjectPublicKeyInfo: the algorithm OID, its parameters (raw, possibly empty) and the
/// public key bits.
pub struct Spki<'a> {
    pub algorithm: &'a [u8],
    pub parameters: &'a [u8],
    pub key: &'a [u8],
}

pub fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let mut outer = Reader::new(der);
    let mut info = Reader::new(outer.read(SEQUENCE)?);
    let mut algorithm = Reader::new(info.read(SEQUENCE)?);
    let oid = algorithm.read(OID)?;
    let key = bits(info.read(BIT_STRING)?)?;
    (outer.is_empty() && info.is_empty()).then_some(Spki {
        algorithm: oid,
        parameters: algorithm.0,
        key,
    })
}

/// Object identifiers, as the contents of their OID element.
pub mod oid {
    /// rsaEncryption, 1.2.840.113549.1.1.1
    pub const RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// id-ecPublicKey, 1.2.840.10045.2.1
    pub const EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 (P-256), 1.2.840.10045.3.1.7
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1 (P-384), 1.3.132.0.34
    pub const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// id-Ed25519, 1.3.101.112
    pub const ED25519: &[u8] = &[0x2b, 0x65, 0x70];
}
