//! Taking the credential out of a request's header values: the token of
//! `Authorization: Bearer <token>`, or the value of an API-key header. Functions over bytes, so
//! either codec's head can be passed as it is.
//!
//! A credential header sent twice is refused rather than one of its values picked: a proxy in
//! front of the gateway and the upstream behind it might each read a different one.

/// The longest credential accepted, in bytes (8 KiB): larger than any token an issuer sends,
/// small enough that a JWT is never decoded from an arbitrarily large header.
pub const MAX_CREDENTIAL_LEN: usize = 8 * 1024;

/// Why a credential header could not be read. [`CredentialError::as_str`] is stable, for
/// metric labels and problem bodies; no variant carries the header's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the credential header is sent more than once")]
    Duplicated,
    #[error("the Authorization header does not use the Bearer scheme")]
    NotBearer,
    #[error("the credential is empty or has characters it may not have")]
    Malformed,
    #[error("the credential is longer than 8 KiB")]
    TooLong,
}

impl CredentialError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Duplicated => "duplicate_header",
            Self::NotBearer => "not_bearer",
            Self::Malformed => "malformed_credential",
            Self::TooLong => "credential_too_long",
        }
    }
}

/// The token of an `Authorization` header's value. The scheme is case-insensitive (RFC 9110
/// §11.1), followed by one or more spaces and exactly one `b64token` (RFC 6750 §2.1): letters,
/// digits, `-._~+/`, then `=`s.
pub fn bearer_token(value: &[u8]) -> Result<&str, CredentialError> {
    if value.len() > MAX_CREDENTIAL_LEN + "Bearer ".len() {
        return Err(CredentialError::TooLong);
    }
    let value = value.trim_ascii();
    let (scheme, token) = match value.iter().position(|&b| b == b' ') {
        Some(at) => (&value[..at], value[at..].trim_ascii_start()),
        None => (value, &[][..]),
    };
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Err(CredentialError::NotBearer);
    }
    if token.len() > MAX_CREDENTIAL_LEN {
        return Err(CredentialError::TooLong);
    }
    let body_len = token.iter().rposition(|&b| b != b'=').map_or(0, |i| i + 1);
    let b64token = |b: &u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(b);
    if body_len == 0 || !token[..body_len].iter().all(b64token) {
        return Err(CredentialError::Malformed);
    }
    std::str::from_utf8(token).map_err(|_| CredentialError::Malformed)
}

/// An API-key header's value: visible ASCII without spaces, at most [`MAX_CREDENTIAL_LEN`]
/// bytes.
pub fn api_key(value: &[u8]) -> Result<&[u8], CredentialError> {
    let value = value.trim_ascii();
    if value.len() > MAX_CREDENTIAL_LEN {
        return Err(CredentialError::TooLong);
    }
    if value.is_empty() || !value.iter().all(u8::is_ascii_graphic) {
        return Err(CredentialError::Malformed);
    }
    Ok(value)
}

/// The one value of a credential header given all of its values, `None` without any; refused
/// when repeated.
pub fn single<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Option<&'a [u8]>, CredentialError> {
    let mut values = values.into_iter();
    match (values.next(), values.next()) {
        (Some(_), Some(_)) => Err(CredentialError::Duplicated),
        (first, _) => Ok(first),
    }
}
