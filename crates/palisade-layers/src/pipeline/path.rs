//! The normalized request path that routes match on, and that the upstream receives.
//!
//! RFC 3986 §6.2.2: percent-encoded unreserved characters are decoded (`/%61pi` is `/api`),
//! other escapes get upper-case hex, dot segments are removed (`/x/../api` is `/api`) and
//! repeated slashes are merged (`//api` is `/api`), so no spelling of a path skips its route's
//! checks. What cannot be normalized safely is refused: an encoded `/` or `\` (its segment
//! boundary is ambiguous between the proxy and the app), an encoded NUL, a broken escape, and
//! `..` above the root. A path that is already normal is returned as it is, without copying.

use std::borrow::Cow;

/// Why a path is refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("it does not start with /")]
    NotAbsolute,
    #[error("an encoded / or \\ in a segment")]
    EncodedSeparator,
    #[error("an encoded NUL")]
    Nul,
    #[error("a % not followed by two hex digits")]
    BadEscape,
    #[error("a .. segment above the root")]
    AboveRoot,
    #[error("a character that must be percent-encoded (<, > or `)")]
    InvalidChar,
}

/// True when `query` holds a character hyper's URI parser refuses (`"`, `<`, `>`), so both
/// codecs refuse the same targets.
pub fn invalid_query(query: &str) -> bool {
    query.bytes().any(|b| matches!(b, b'"' | b'<' | b'>'))
}

/// The normalized form of `path` (the target without its query).
pub fn normalize(path: &str) -> Result<Cow<'_, str>, BadPath> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(BadPath::NotAbsolute);
    }
    // One pass: refuse what hyper's URI parser refuses, and see whether there is work to do.
    let mut plain = true;
    let mut prev = 0u8;
    for &b in bytes {
        match b {
            b'<' | b'>' | b'`' => return Err(BadPath::InvalidChar),
            b'%' => plain = false,
            b'/' | b'.' if prev == b'/' => plain = false,
            _ => {}
        }
        prev = b;
    }
    if plain {
        return Ok(Cow::Borrowed(path));
    }
    let decoded = decode_unreserved(bytes)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    // The first piece is the empty one before the leading slash.
    for segment in decoded.split('/').skip(1) {
        trailing_slash = matches!(segment, "" | "." | "..");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop().ok_or(BadPath::AboveRoot)?;
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || segments.is_empty() {
        out.push('/');
    }
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// Decodes escapes of unreserved characters and upper-cases the hex of the others.
fn decode_unreserved(bytes: &[u8]) -> Result<String, BadPath> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'%' {
            out.push(b);
            i += 1;
            continue;
        }
        let (Some(hi), Some(lo)) = (
            bytes.get(i + 1).copied().and_then(crate::hex::value),
            bytes.get(i + 2).copied().and_then(crate::hex::value),
        ) else {
            return Err(BadPath::BadEscape);
        };
        let v = hi << 4 | lo;
        match v {
            0 => return Err(BadPath::Nul),
            b'/' | b'\\' => return Err(BadPath::EncodedSeparator),
            _ if v.is_ascii_alphanumeric() || b"-._~".contains(&v) => out.push(v),
            _ => {
                const HEX: &[u8; 16] = b"0123456789ABCDEF";
                out.extend_from_slice(&[b'%', HEX[usize::from(hi)], HEX[usize::from(lo)]]);
            }
        }
        i += 3;
    }
    // Only ASCII escapes were decoded, so the bytes are as valid UTF-8 as the input.
    String::from_utf8(out).map_err(|_| BadPath::BadEscape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/api",
            "/api/",
            "/api/v1/users.json",
            "/a-b_c~d",
            "/a|b",
            "/{\"j\":1}",
        ] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn every_spelling_of_a_path_normalizes_to_it() {
        for (raw, want) in [
            ("/x/../api/upload", "/api/upload"),
            ("/%61pi/upload", "/api/upload"),
            ("//api/upload", "/api/upload"),
            ("/api//upload", "/api/upload"),
            ("/./api/./upload", "/api/upload"),
            ("/x/%2e%2e/internal/secret", "/internal/secret"),
            ("/x/%2E%2E/internal", "/internal"),
            ("/api/..", "/"),
            ("/api/x/..", "/api/"),
            ("/api/.", "/api/"),
            ("/.well-known/x", "/.well-known/x"),
            ("/a%3ab", "/a%3Ab"),
            ("/caf%C3%A9", "/caf%C3%A9"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn what_cannot_be_normalized_is_refused() {
        for (raw, why) in [
            ("/a%2Fb", BadPath::EncodedSeparator),
            ("/a%2fb", BadPath::EncodedSeparator),
            ("/a%5cb", BadPath::EncodedSeparator),
            ("/a%00b", BadPath::Nul),
            ("/a%zz", BadPath::BadEscape),
            ("/a%4", BadPath::BadEscape),
            ("/..", BadPath::AboveRoot),
            ("/a/../../b", BadPath::AboveRoot),
            ("/%2e%2e/x", BadPath::AboveRoot),
            ("api", BadPath::NotAbsolute),
            ("/a<b", BadPath::InvalidChar),
            ("/a>b", BadPath::InvalidChar),
            ("/a`b", BadPath::InvalidChar),
        ] {
            assert_eq!(normalize(raw), Err(why), "{raw}");
        }
    }
}
