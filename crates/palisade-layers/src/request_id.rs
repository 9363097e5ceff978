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
pub fn resolve_bytes(incoming: Option<&[u8]>) -> HeaderValue {
    match incoming {
        Some(v) if is_valid(v) => HeaderValue::from_bytes(v).unwrap_or_else(|_| generate()),
        _ => generate(),
    }
}

/// A new random id in UUID v4 text form.
pub fn generate() -> HeaderValue {
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated();
    HeaderValue::from_bytes(id.encode_lower(&mut text).as_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_valid_and_replaces_invalid() {
        assert_eq!(resolve_bytes(Some(b"req-42_abc")), "req-42_abc");
        assert_ne!(resolve_bytes(Some(b"evil\" injected")), "evil\" injected");
        let long = "a".repeat(MAX_LEN + 1);
        assert_ne!(resolve_bytes(Some(long.as_bytes())), long.as_str());
        assert_eq!(resolve_bytes(None).len(), 36);
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
