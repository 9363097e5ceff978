//! Request ids: keep a well-formed incoming `X-Request-Id`, otherwise make a new one.
//!
//! Incoming ids are accepted only when they are short and made of characters that are safe in
//! logs, headers and JSON (letters, digits and `-_.:+/=@`), so a client cannot inject log lines
//! or break the problem body. The same id is forwarded upstream and returned to the client.

use http::HeaderValue;

/// Header carrying the request id, in and out.
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest incoming id that is kept.
pub const MAX_LEN: usize = 128;

/// True when an incoming id may be kept as it is.
pub fn is_valid(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= MAX_LEN
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=@".contains(b))
}

/// The id to use for a request: the incoming one when valid, else a new random UUID (v4 form).
pub fn resolve(incoming: Option<&HeaderValue>) -> HeaderValue {
    match incoming {
        Some(v) if is_valid(v.as_bytes()) => v.clone(),
        _ => generate(),
    }
}

/// [`resolve`] for an incoming value seen as bytes.
pub fn resolve_bytes(incoming: Option<&[u8]>) -> HeaderValue {
    match incoming {
        Some(v) if is_valid(v) => HeaderValue::from_bytes(v).unwrap_or_else(|_| generate()),
        _ => generate(),
    }
}

/// A new random id in UUID v4 text form.
pub fn generate() -> HeaderValue {
    let mut n: u128 = rand::random();
    // Version 4 and the RFC 4122 variant bits.
    n = (n & !(0xf << 76)) | (0x4 << 76);
    n = (n & !(0x3 << 62)) | (0x2 << 62);
    let mut out = [0u8; 36];
    let hex = crate::hex::encode_u128(n);
    let mut j = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *slot = b'-';
        } else {
            *slot = hex[j];
            j += 1;
        }
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_and_replaces_invalid() {
        let ok = HeaderValue::from_static("req-42_abc");
        assert_eq!(resolve(Some(&ok)), ok);
        let bad = HeaderValue::from_static("evil\" injected");
        assert_ne!(resolve(Some(&bad)), bad);
        let long = HeaderValue::from_str(&"a".repeat(MAX_LEN + 1)).unwrap();
        assert_ne!(resolve(Some(&long)), long);
    }

    #[test]
    fn generated_ids_look_like_uuid_v4() {
        let id = generate();
        let s = id.to_str().unwrap();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(is_valid(s.as_bytes()));
        assert_ne!(generate(), id);
    }
}
