//! Bodies that cost no memory in proportion to their size: a generated response body that
//! repeats one shared chunk, and a streaming FNV-1a hash for request bodies.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

/// Size of each frame of a generated body.
const CHUNK_LEN: usize = 64 * 1024;

/// A body of exactly `remaining` bytes of a repeating pattern, sent as slices of one shared
/// 64 KiB buffer, so a 1 GiB response allocates 64 KiB.
pub(crate) struct PatternBody {
    chunk: Bytes,
    remaining: u64,
    /// Whether to advertise the exact length (content-length) or leave it unknown (chunked).
    exact: bool,
}

impl PatternBody {
    pub fn new(len: u64, exact: bool) -> Self {
        Self {
            chunk: pattern_chunk(),
            remaining: len,
            exact,
        }
    }
}

/// The repeating pattern: the bytes `0..=255`, so a byte's value is its offset modulo 256.
fn pattern_chunk() -> Bytes {
    (0..CHUNK_LEN)
        .map(|i| (i % 256) as u8)
        .collect::<Vec<u8>>()
        .into()
}

impl Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(this.remaining).map_or(CHUNK_LEN, |rest| rest.min(CHUNK_LEN));
        this.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(this.chunk.slice(..len)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

/// 64-bit FNV-1a, fed incrementally as request body frames arrive.
pub(crate) struct Fnv64(u64);

impl Fnv64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    pub fn new() -> Self {
        Self(Self::OFFSET_BASIS)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The FNV-1a 64 hash of `bytes` as 16 lowercase hex digits, as the echo reports it.
/// Tests use it to check that a body arrived intact.
pub fn fnv64_hex(bytes: &[u8]) -> String {
    let mut hash = Fnv64::new();
    hash.update(bytes);
    format!("{:016x}", hash.finish())
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv64_hex(b""), "cbf29ce484222325");
        assert_eq!(fnv64_hex(b"a"), "af63dc4c8601ec8c");
        assert_eq!(fnv64_hex(b"foobar"), "85944171f73967e8");
    }

    #[tokio::test]
    async fn pattern_body_has_exact_length() {
        let len = 3 * CHUNK_LEN as u64 + 17;
        let body = PatternBody::new(len, true);
        assert_eq!(body.size_hint().exact(), Some(len));
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(bytes.len() as u64, len);
        assert!(bytes.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8));
        assert_eq!(PatternBody::new(5, false).size_hint().exact(), None);
    }
}
