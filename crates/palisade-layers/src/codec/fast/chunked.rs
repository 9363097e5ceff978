//! Follows an upstream's chunked body (RFC 9112 §7.1) and writes it again for the client with
//! the same chunks but without chunk extensions and without trailer fields, as NGINX does:
//! both are rarely meant for the client and have carried control bytes and a second
//! `Content-Length`. It also finds where the body stops, to reuse the upstream connection, and
//! counts its data bytes, for the access log.

/// Why a chunked body could not be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed chunked body")]
pub struct ChunkError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size; `digits` counts them.
    Size {
        value: u64,
        digits: u8,
    },
    /// A chunk extension, up to the CR.
    Extension,
    /// The LF ending a size line.
    SizeLf,
    Data {
        remaining: u64,
    },
    DataCr,
    DataLf,
    /// The start of a trailer line, or the CR of the final empty line.
    TrailerStart,
    TrailerLine,
    TrailerLf,
    EndLf,
    Done,
}

const SIZE_START: State = State::Size {
    value: 0,
    digits: 0,
};

/// Follows one chunked body across the reads it arrives in.
#[derive(Debug)]
pub struct ChunkedScanner {
    state: State,
    /// The size of the chunk whose size line is being read, kept past its digits.
    pending: u64,
    data_bytes: u64,
    /// The chunk framing is written to `out` too; without it, only the data.
    framed: bool,
}

impl Default for ChunkedScanner {
    fn default() -> Self {
        Self {
            state: SIZE_START,
            pending: 0,
            data_bytes: 0,
            framed: true,
        }
    }
}

impl ChunkedScanner {
    /// A scanner that appends only the body's data to `out`, for a body held whole.
    pub fn data_only() -> Self {
        Self {
            framed: false,
            ..Self::default()
        }
    }

    /// Data bytes seen so far (the body without its chunk framing).
    pub fn data_bytes(&self) -> u64 {
        self.data_bytes
    }

    /// Reads the next bytes of the body and appends their clean encoding to `out`. Returns
    /// `Some(n)` when the body ends after the first `n` bytes of `input`, `None` when all of
    /// `input` belongs to the body and more follows.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Option<usize>, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data { remaining } = self.state {
                let take = remaining.min((input.len() - i) as u64);
                self.data_bytes += take;
                out.extend_from_slice(&input[i..i + take as usize]);
                i += take as usize;
                self.state = if take == remaining {
                    State::DataCr
                } else {
                    State::Data {
                        remaining: remaining - take,
                    }
                };
                continue;
            }
            let next = self.step(input[i])?;
            i += 1;
            match (self.state, next) {
                _ if !self.framed => {}
                (State::SizeLf, State::Data { remaining }) => {
                    write_size_line(remaining, out);
                }
                (State::DataLf, _) => out.extend_from_slice(b"\r\n"),
                (_, State::Done) => out.extend_from_slice(b"0\r\n\r\n"),
                _ => {}
            }
            self.state = next;
            if self.state == State::Done {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    fn step(&mut self, b: u8) -> Result<State, ChunkError> {
        let next = match (self.state, b) {
            (State::Size { value, digits }, _) => match crate::hex::value(b) {
                // Leading zeros are valid; only a size past 60 bits is refused.
                Some(d) if value >> 56 == 0 => State::Size {
                    value: value << 4 | u64::from(d),
                    digits: digits + 1,
                },
                Some(_) => return Err(ChunkError),
                None if digits == 0 => return Err(ChunkError),
                None => {
                    self.pending = value;
                    match b {
                        b'\r' => State::SizeLf,
                        b';' | b' ' | b'\t' => State::Extension,
                        _ => return Err(ChunkError),
                    }
                }
            },
            (State::Extension, b'\r') => State::SizeLf,
            (State::Extension, b'\n') => return Err(ChunkError),
            (State::Extension, _) => State::Extension,
            (State::SizeLf, b'\n') if self.pending == 0 => State::TrailerStart,
            (State::SizeLf, b'\n') => State::Data {
                remaining: self.pending,
            },
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => SIZE_START,
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerLine, b'\n') => return Err(ChunkError),
            (State::TrailerLine, b'\r') => State::TrailerLf,
            (State::TrailerStart | State::TrailerLine, _) => State::TrailerLine,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            _ => return Err(ChunkError),
        };
        Ok(next)
    }
}

pub fn write_size_line(size: u64, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (64 - size.leading_zeros()).div_ceil(4).max(1);
    for k in (0..digits).rev() {
        out.push(HEX[((size >> (4 * k)) & 0xf) as usize]);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n007;ext=\"x\x01\"\r\n, world\r\n10\r\n0123456789abcdef\r\n0\r\nx-sum: 1\r\ncontent-length: 9\r\n\r\n";
    /// The same chunks without the extension, the leading zeros and the trailer fields.
    const CLEAN: &[u8] = b"5\r\nhello\r\n7\r\n, world\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n";

    #[test]
    fn finds_the_end_in_one_piece_and_counts_data() {
        let mut s = ChunkedScanner::default();
        let mut input = BODY.to_vec();
        input.extend_from_slice(b"HTTP/1.1 200 OK");
        let mut out = Vec::new();
        assert_eq!(s.feed(&input, &mut out), Ok(Some(BODY.len())));
        assert_eq!(s.data_bytes(), 28);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(CLEAN)
        );
    }

    #[test]
    fn finds_the_end_across_any_split() {
        for split in 0..BODY.len() {
            let mut s = ChunkedScanner::default();
            let mut out = Vec::new();
            assert_eq!(
                s.feed(&BODY[..split], &mut out),
                Ok(None),
                "split at {split}"
            );
            assert_eq!(
                s.feed(&BODY[split..], &mut out),
                Ok(Some(BODY.len() - split))
            );
            assert_eq!(s.data_bytes(), 28);
            assert_eq!(out, CLEAN, "split at {split}");
        }
    }

    #[test]
    fn byte_by_byte() {
        let mut s = ChunkedScanner::default();
        let mut out = Vec::new();
        let ends: Vec<_> = BODY.iter().map(|b| s.feed(&[*b], &mut out)).collect();
        assert!(ends[..BODY.len() - 1].iter().all(|e| *e == Ok(None)));
        assert_eq!(ends[BODY.len() - 1], Ok(Some(1)));
        assert_eq!(out, CLEAN);
    }

    #[test]
    fn rejects_malformed_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello\r\n",
            b"5\r\nhelloXX",
            b"1111111111111111\r\n",
            b"0\r\n\n",
        ] {
            let mut s = ChunkedScanner::default();
            assert_eq!(
                s.feed(bad, &mut Vec::new()),
                Err(ChunkError),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
